"""Retention: once a tenant's retention runs out, the sweeper deletes its finished jobs (with
their outputs) and its assets made by no job (uploads, references), as the API deletes them."""

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import database_now
from app.errors import Conflict, InvalidInput, NotFound
from app.models import FINAL_STATUSES, Asset, Job, Tenant
from app.runtime.context import TaskContext
from app.services.assets import delete_asset, release_content
from app.services.jobs import delete_job

logger = logging.getLogger(__name__)

# Jobs, and assets, one sweep deletes per tenant at most; the next sweep goes on.
RETENTION_BATCH = 100
# The longest retention a tenant can have (about 270 years; 0 keeps data for good).
MAX_RETENTION_DAYS = 100_000


async def set_retention(session: AsyncSession, tenant_name: str, days: int | None) -> None:
    """Keep the tenant's data `days` days (0: for good; None: as the deployment's
    `retention_days` says). NotFound for an unknown tenant; InvalidInput for a number out of
    0..MAX_RETENTION_DAYS."""
    if days is not None and not 0 <= days <= MAX_RETENTION_DAYS:
        raise InvalidInput(f"Retention is a number of days, 0 to {MAX_RETENTION_DAYS}.")
    tenant = await session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        raise NotFound(f"No tenant {tenant_name!r}.")
    tenant.retention_days = days


async def delete_expired(context: TaskContext) -> int:
    """Delete, for every tenant with a retention, the finished jobs that finished and the job-less
    assets that were stored longer ago than it, up to RETENTION_BATCH of each. Whatever a queued
    or running job still takes as input is kept for a later sweep. Returns how many jobs and
    assets were deleted."""
    async with context.sessionmaker() as session:
        now = await database_now(session)
        tenants = await _retention_by_tenant(session, context.settings.retention_days)
    deleted = 0
    for tenant_id, days in tenants:
        cutoff = now - timedelta(days=days)
        for job_id in await _expired_jobs(context, tenant_id, cutoff):
            deleted += await _delete(context, tenant_id, job_id, deleting_job=True)
        for asset_id in await _expired_uploads(context, tenant_id, cutoff):
            deleted += await _delete(context, tenant_id, asset_id, deleting_job=False)
    if deleted:
        logger.info("retention deleted %d jobs and assets", deleted)
    return deleted


async def _retention_by_tenant(
    session: AsyncSession, default_days: int | None
) -> list[tuple[str, int]]:
    """(tenant id, days) of every tenant whose data expires: its own setting, else the default."""
    days = func.coalesce(Tenant.retention_days, default_days)
    rows = await session.execute(select(Tenant.id, days).where(days > 0))
    return [(tenant_id, int(tenant_days)) for tenant_id, tenant_days in rows]


async def _expired_jobs(context: TaskContext, tenant_id: str, cutoff: datetime) -> list[str]:
    async with context.reader() as session:
        return list(
            await session.scalars(
                select(Job.id)
                .where(
                    Job.tenant_id == tenant_id,
                    Job.status.in_(FINAL_STATUSES),
                    Job.finished_at < cutoff,
                )
                .limit(RETENTION_BATCH)
            )
        )


async def _expired_uploads(context: TaskContext, tenant_id: str, cutoff: datetime) -> list[str]:
    async with context.reader() as session:
        return list(
            await session.scalars(
                select(Asset.id)
                .where(
                    Asset.tenant_id == tenant_id,
                    Asset.job_id.is_(None),
                    Asset.live(),
                    Asset.created_at < cutoff,
                )
                .limit(RETENTION_BATCH)
            )
        )


async def _delete(context: TaskContext, tenant_id: str, object_id: str, deleting_job: bool) -> int:
    """Delete one job or asset in a transaction of its own; 0 if it is in use or already gone."""
    async with context.sessionmaker() as session:
        try:
            if deleting_job:
                # Only finished jobs expire, so the deletion cancels nothing to announce.
                keys = (await delete_job(session, tenant_id, object_id)).keys
            else:
                keys = await delete_asset(session, tenant_id, object_id)
        except (Conflict, NotFound):
            return 0
        await session.commit()
    await release_content(context.sessionmaker, context.storage, keys)
    return 1
