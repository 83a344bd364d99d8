"""Jobs: creating (idempotently), reading, listing, canceling, deleting and waiting for them."""

import asyncio
import contextlib
import logging
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import metrics
from app.db import database_now
from app.errors import Conflict, NotFound
from app.ids import is_id
from app.models import FINAL_STATUSES, Asset, Job, JobEventType, JobStatus
from app.runtime.context import TaskContext
from app.runtime.events import publish
from app.runtime.progress import Subscription
from app.schemas.catalog import PriceRange
from app.schemas.common import Problem
from app.schemas.jobs import Job as JobSchema
from app.schemas.jobs import JobGroup, JobOutput, JobPage, JobTimings, OutputFailure
from app.services.assets import check_not_in_use, content_path, retire
from app.services.pages import newest_first

logger = logging.getLogger(__name__)

# How often a wait for a job re-reads it when no final event came (one may be lost).
FALLBACK_READ_SECONDS = 1.0
FINAL_EVENTS = frozenset(JobEventType(status) for status in FINAL_STATUSES)
_WAIT_PREFERENCE = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)


def requested_wait(prefer: str | None, cap: int) -> int:
    """Seconds asked for by `Prefer: wait=N` (RFC 7240), capped; 0 without it."""
    match = _WAIT_PREFERENCE.search(prefer or "")
    if match is None:
        return 0
    digits = match.group(1).lstrip("0") or "0"
    return cap if len(digits) > 4 else min(int(digits), cap)


async def get_job(session: AsyncSession, tenant_id: str, job_id: str) -> Job:
    """The tenant's job; NotFound for a missing one, a malformed id, or another tenant's."""
    job = None
    if is_id(job_id, "job"):
        job = await session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))
    if job is None:
        raise NotFound(f"No job {job_id!r}.")
    return job


async def list_jobs(
    session: AsyncSession, tenant_id: str, status: str | None, cursor: str | None, limit: int
) -> JobPage:
    """A page of the tenant's jobs, newest first, after `cursor` (a job id)."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status:
        query = query.where(Job.status == status)
    page, next_cursor = await newest_first(session, query, Job.id, "job", cursor, limit)
    totals = await _cost_totals(session, tenant_id, status)
    return JobPage(
        data=await job_views(session, page),
        has_more=next_cursor is not None,
        next_cursor=next_cursor,
        **totals,
    )


async def _cost_totals(session: AsyncSession, tenant_id: str, status: str | None) -> dict[str, Any]:
    """Over every job the filter matches, in one query: the sum of the known costs, and how
    many succeeded jobs have none (so the sum is a lower bound, not a wrong total); and the
    sum of the estimated costs, and how many jobs have no estimate."""
    unpriced = case(((Job.status == JobStatus.SUCCEEDED) & Job.cost_usd.is_(None), 1), else_=0)
    unestimated = case((Job.estimated_cost_min_usd.is_(None), 1), else_=0)
    query = select(
        func.coalesce(func.sum(Job.cost_usd), 0.0),
        func.coalesce(func.sum(unpriced), 0),
        func.coalesce(func.sum(Job.estimated_cost_min_usd), 0.0),
        func.coalesce(func.sum(Job.estimated_cost_max_usd), 0.0),
        func.coalesce(func.sum(unestimated), 0),
    ).where(Job.tenant_id == tenant_id)
    if status:
        query = query.where(Job.status == status)
    total, count, low, high, without = (await session.execute(query)).one()
    return {
        "total_cost_usd": round(float(total), 8),
        "unpriced_jobs": int(count),
        "total_estimated_cost_usd": PriceRange(
            min_usd=round(float(low), 8), max_usd=round(float(high), 8)
        ),
        "unestimated_jobs": int(without),
    }


async def cancel_job(
    session: AsyncSession, context: TaskContext, tenant_id: str, job_id: str
) -> Job:
    """Cancel a queued or running job, commit, and announce it (job.canceled); Conflict if it
    already finished. A run holding it stops before its next output."""
    job = await mark_canceled(session, tenant_id, job_id)
    await session.commit()
    await announce_canceled(context, job)
    return job


async def mark_canceled(session: AsyncSession, tenant_id: str, job_id: str) -> Job:
    """Mark a queued or running job canceled in the session's transaction, leaving the commit
    and the announcement (`announce_canceled`) to the caller; Conflict if it already finished."""
    job = await get_job(session, tenant_id, job_id)
    canceled = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))
        .values(
            status=JobStatus.CANCELED,
            finished_at=await database_now(session),
            lease_expires_at=None,
        )
    )
    await session.refresh(job)
    if canceled.rowcount == 0:
        raise Conflict(f"Job {job_id} already {job.status}; only queued or running jobs cancel.")
    return job


async def announce_canceled(context: TaskContext, job: Job) -> None:
    """Count a committed cancellation and tell the job's listeners (job.canceled)."""
    metrics.jobs_finished.labels(job.kind, job.model, JobStatus.CANCELED).inc()
    await publish(context, job, JobEventType.CANCELED)


async def queued_count(session: AsyncSession) -> int:
    """Jobs queued and not yet started, across every process (read from the status index)."""
    return await session.scalar(select(func.count()).where(Job.status == JobStatus.QUEUED)) or 0


@dataclass
class Deletion:
    """What deleting a job leaves to do once the deletion is committed: the storage keys to
    release, and the job it canceled (to announce), if it was queued or running."""

    keys: list[str]
    canceled: Job | None = None


async def delete_job(session: AsyncSession, tenant_id: str, job_id: str) -> Deletion:
    """Delete the tenant's job with its outputs and webhook deliveries, in the session's
    transaction; a queued or running job is canceled first, so a run holding it stores nothing
    more. NotFound for a missing job or another tenant's; Conflict while an output is the input
    of a queued or running job. What the job cost stays in the tenant's spend ledger. The
    caller commits, then releases the keys and announces the cancellation (live event streams
    hear it)."""
    job = await get_job(session, tenant_id, job_id)
    await check_not_in_use(
        session, tenant_id, [asset.id for asset in await outputs_of(session, job.id)]
    )
    canceled = None
    if job.status not in FINAL_STATUSES:
        # Conflict: it finished meanwhile, which is as good.
        with contextlib.suppress(Conflict):
            canceled = await mark_canceled(session, tenant_id, job_id)
    # Read after the cancel: a run stores an output only while it holds the job, and the
    # cancel's row lock makes a run storing one now wait for this deletion.
    keys = await retire(session, await outputs_of(session, job.id))
    await session.execute(delete(Job).where(Job.id == job.id))
    return Deletion(keys, canceled)


async def wait_for_job(
    context: TaskContext,
    tenant_id: str,
    job_id: str,
    seconds: float,
    send: Callable[[], Awaitable[None]] | None = None,
) -> Job:
    """Wait until the job is final or `seconds` pass; the job as it then is. The job's final
    event wakes the wait at once; the database is read when it starts, on that event, and every
    FALLBACK_READ_SECONDS, so an event lost with a Redis outage only delays the answer. `send`,
    for a job not sent to the queue yet, sends it once the job's events are listened to: then
    no event can come before the wait listens, and the first read is left out."""
    deadline = time.monotonic() + seconds
    unsent = send
    try:
        async with context.broadcaster.subscribe(job_id) as subscription:
            if unsent is not None:
                unsent, sending = None, unsent
                await sending()
            return await _wait_for_final_event(
                context, tenant_id, job_id, deadline, subscription, read_first=send is None
            )
    except ConnectionError:
        # Redis could not confirm the subscription, or went away during the wait: the job is
        # sent now if it was not yet (never twice), and waited for by reading it.
        logger.warning("job events unavailable; waiting for job %s by reading it", job_id)
        if unsent is not None:
            await unsent()
        return await _wait_by_reading(context, tenant_id, job_id, deadline)


async def _wait_for_final_event(
    context: TaskContext,
    tenant_id: str,
    job_id: str,
    deadline: float,
    subscription: Subscription,
    read_first: bool,
) -> Job:
    while True:
        if read_first:
            job = await _read_job(context, tenant_id, job_id)
            if job.status in FINAL_STATUSES or time.monotonic() >= deadline:
                return job
        read_first = True
        next_read = time.monotonic() + FALLBACK_READ_SECONDS
        while (now := time.monotonic()) < min(deadline, next_read):
            message = await subscription.next_message(min(deadline, next_read) - now)
            if message is not None and message.get("event") in FINAL_EVENTS:
                break


async def _wait_by_reading(
    context: TaskContext, tenant_id: str, job_id: str, deadline: float
) -> Job:
    while True:
        job = await _read_job(context, tenant_id, job_id)
        remaining = deadline - time.monotonic()
        if job.status in FINAL_STATUSES or remaining <= 0:
            return job
        await asyncio.sleep(min(FALLBACK_READ_SECONDS, remaining))


async def _read_job(context: TaskContext, tenant_id: str, job_id: str) -> Job:
    async with context.reader() as session:
        return await get_job(session, tenant_id, job_id)


async def job_views(session: AsyncSession, jobs: list[Job]) -> list[JobSchema]:
    """The public shape of jobs, with the outputs of those that succeeded."""
    succeeded = [job.id for job in jobs if job.status == JobStatus.SUCCEEDED]
    outputs: dict[str, list[JobOutput]] = defaultdict(list)
    if succeeded:
        assets = await session.scalars(
            select(Asset)
            .where(Asset.job_id.in_(succeeded), Asset.live())
            .order_by(Asset.output_index)
        )
        for asset in assets:
            outputs[asset.job_id or ""].append(_output_view(asset))
    return [_job_view(job, outputs[job.id]) for job in jobs]


async def job_view(session: AsyncSession, job: Job) -> JobSchema:
    """The public shape of one job."""
    return (await job_views(session, [job]))[0]


def _output_view(asset: Asset) -> JobOutput:
    details = dict(asset.details or {})
    return JobOutput(
        asset_id=asset.id,
        url=content_path(asset.id),
        width=asset.width,
        height=asset.height,
        format=asset.format,  # type: ignore[arg-type]
        seed=asset.seed,
        model=details.pop("model", None),
        latency_ms=details.pop("latency_ms", None),
        cost_usd=details.pop("cost_usd", None),
        details=details,
    )


def _milliseconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000)


def _groups(job: Job, outputs: list[JobOutput]) -> list[JobGroup] | None:
    """A compared job's outputs and failures by model, in the order the request named the
    models; None for a job of one model, or one not finished with outputs or failures."""
    models = job.request.get("models")
    failures = job.failures or []
    if not models or not (outputs or failures):
        return None
    groups = []
    for model in models:
        mine = [output for output in outputs if output.model == model]
        latencies = [output.latency_ms for output in mine if output.latency_ms is not None]
        costs = [output.cost_usd for output in mine]
        groups.append(
            JobGroup(
                model=model,
                outputs=mine,
                latency_ms=round(statistics.median(latencies)) if latencies else None,
                cost_usd=None if None in costs or not costs else float(sum(costs)),
                failures=[
                    OutputFailure.model_validate(failure)
                    for failure in failures
                    if failure["model"] == model
                ],
            )
        )
    return groups


def _job_view(job: Job, outputs: list[JobOutput]) -> JobSchema:
    return JobSchema(
        id=job.id,
        kind=job.kind,  # type: ignore[arg-type]
        status=job.status,  # type: ignore[arg-type]
        model=job.model,
        request=job.request,
        outputs=outputs,
        groups=_groups(job, outputs),
        error=Problem.model_validate(job.error) if job.error else None,
        attempts=job.attempts,
        cost_usd=job.cost_usd,
        estimated_cost_usd=estimated_cost(job),
        timings=JobTimings(
            queued_ms=_milliseconds(job.created_at, job.started_at),
            provider_ms=job.provider_ms,
            total_ms=_milliseconds(job.created_at, job.finished_at),
        ),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        metadata=job.caller_metadata,
    )


def estimated_cost(job: Job) -> PriceRange | None:
    """The cost the job was expected to have when submitted, if it has one."""
    if job.estimated_cost_min_usd is None or job.estimated_cost_max_usd is None:
        return None
    return PriceRange(min_usd=job.estimated_cost_min_usd, max_usd=job.estimated_cost_max_usd)


async def outputs_of(session: AsyncSession, job_id: str) -> list[Asset]:
    """A job's stored outputs that were not deleted, in order."""
    return list(
        await session.scalars(
            select(Asset).where(Asset.job_id == job_id, Asset.live()).order_by(Asset.output_index)
        )
    )
