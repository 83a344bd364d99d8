"""Jobs: creating (idempotently), reading, listing, canceling and waiting for them."""

import asyncio
import hashlib
import json
import logging
import re
import secrets
import statistics
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import schemas
from app.config import Settings
from app.db import database_now
from app.errors import Conflict, IdempotencyKeyReused, InvalidInput, NotFound
from app.fetcher import UrlPolicy, check_url
from app.ids import is_id, new_id
from app.imaging.geometry import output_size
from app.jobs.context import TaskContext
from app.jobs.events import publish
from app.jobs.queue import JobQueue
from app.models import Asset, Job
from app.providers.base import ModelSpec
from app.providers.registry import ProviderRegistry
from app.schemas import parse_aspect_ratio, parse_size
from app.services.assets import content_path
from app.services.prompting import plan_prompt

logger = logging.getLogger(__name__)

FINAL_STATUSES = ("succeeded", "failed", "canceled")
_WAIT_PREFERENCE = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)


def normalize_generate(body: schemas.GenerateRequest, spec: ModelSpec) -> dict[str, Any]:
    """The request as the job runs it: model, exact output size and seed resolved."""
    capabilities = spec.capabilities
    check_model_can_make(spec, body.n, body.output_format)
    size = parse_size(body.size) if body.size else None
    aspect = parse_aspect_ratio(body.aspect_ratio) if body.aspect_ratio else None
    if aspect and aspect[0] * aspect[1] > capabilities.default_area:
        raise InvalidInput(
            f"Aspect ratio {body.aspect_ratio} is too fine to hold exactly at {spec.id}'s "
            "default size; give an exact `size` instead."
        )
    width, height = output_size(size, aspect, capabilities.default_area)
    return {
        "model": spec.id,
        "n": body.n,
        "width": width,
        "height": height,
        "aspect_ratio": body.aspect_ratio,
        "size": f"{width}x{height}",
        "output_format": body.output_format,
        "seed": body.seed if body.seed is not None else secrets.randbelow(schemas.MAX_SEED + 1),
        "fallback_models": list(body.fallback_models),
        **body.webhook_fields(),
    } | plan_prompt(
        body.prompt,
        spec,
        optimize=body.optimize,
        style=body.style,
        aspect_ratio=aspect or (width, height),
        keep=(),
        references=(),
        negative_prompt=body.negative_prompt,
        is_edit=False,
    )


def check_model_can_make(spec: ModelSpec, n: int, output_format: str) -> None:
    """InvalidInput unless the model can make `n` images per job in `output_format`."""
    capabilities = spec.capabilities
    if n > capabilities.max_n:
        raise InvalidInput(f"{spec.id} makes at most {capabilities.max_n} images per job.")
    if output_format not in capabilities.output_formats:
        raise InvalidInput(f"{spec.id} cannot output {output_format}.")


def check_fallbacks(
    registry: ProviderRegistry, body: schemas.GenerateRequest, primary: ModelSpec
) -> None:
    """Refuse at submission, not mid-job, a fallback model that is unknown or not configured
    here (ModelUnavailable), named twice or the same as the model, or unable to make the
    request (InvalidInput)."""
    seen = {primary.id}
    for model_id in body.fallback_models:
        _, spec = registry.resolve(model_id)
        if spec.id in seen:
            raise InvalidInput(f"fallback_models names {spec.id} twice or as the model itself.")
        seen.add(spec.id)
        check_model_can_make(spec, body.n, body.output_format)


def request_hash(kind: str, body: BaseModel) -> str:
    """A fingerprint of the request as sent, to tell a retry from a different request."""
    document = {"kind": kind, "body": body.model_dump(mode="json")}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def check_webhook_url(url: str | None, policy: UrlPolicy) -> None:
    """Refuse now, not at the first event, a request `webhook_url` deliveries could never
    reach (UrlRefused, 422). Services call it before any other work of the request."""
    if url:
        await check_url(url, policy)


async def create_generate_job(
    session: AsyncSession,
    registry: ProviderRegistry,
    settings: Settings,
    tenant_id: str,
    body: schemas.GenerateRequest,
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    """Add a generate job to the session, or find the one this Idempotency-Key already made;
    the job and whether it is new. The caller commits, then dispatches a new job."""
    fingerprint = request_hash("generate", body)
    existing = await find_replay(session, tenant_id, idempotency_key, fingerprint)
    if existing is not None:
        return existing, False
    await check_webhook_url(body.webhook_url, settings.url_policy)
    _, spec = registry.resolve(body.model or settings.default_model)
    check_fallbacks(registry, body, spec)
    request = normalize_generate(body, spec)
    job = await add_job(
        session, tenant_id, "generate", request, body.metadata, idempotency_key, fingerprint
    )
    return job, True


async def find_replay(
    session: AsyncSession, tenant_id: str, idempotency_key: str | None, fingerprint: str
) -> Job | None:
    """The job this Idempotency-Key already made for the same request; IdempotencyKeyReused if
    it made one for another request; None for a new key or none at all."""
    if not idempotency_key:
        return None
    existing = await _job_by_idempotency_key(session, tenant_id, idempotency_key)
    if existing is None:
        return None
    if existing.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request body; use a new key."
        )
    return existing


async def add_job(
    session: AsyncSession,
    tenant_id: str,
    kind: str,
    request: dict[str, Any],
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
    fingerprint: str,
) -> Job:
    """Add a queued job for a normalized request and flush it; Conflict when a concurrent
    request with the same Idempotency-Key got there first. The caller commits."""
    now = await database_now(session)
    job = Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        kind=kind,
        status="queued",
        model=request["model"],
        request=request,
        caller_metadata=metadata,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        created_at=now,
        attempts=0,
        dispatches=1,
        dispatched_at=now,
    )
    session.add(job)
    try:
        # On Postgres a concurrent insert of the same key waits here for the other to commit.
        await session.flush()
    except IntegrityError as exc:
        raise Conflict("A request with this Idempotency-Key is already in progress.") from exc
    return job


async def start(context: TaskContext, queue: JobQueue, job: Job) -> None:
    """Announce a new, committed job (job.queued) and send it to the queue."""
    await publish(context, job, "queued")
    await dispatch(queue, job.id, 1)


async def dispatch(queue: JobQueue, job_id: str, number: int) -> None:
    """Send a committed job to the queue; if that fails the sweeper sends it later."""
    try:
        await queue.enqueue(job_id, number)
    except Exception:
        logger.exception("could not enqueue job %s; the sweeper will retry", job_id)


def requested_wait(prefer: str | None, cap: int) -> int:
    """Seconds asked for by `Prefer: wait=N` (RFC 7240), capped; 0 without it."""
    match = _WAIT_PREFERENCE.search(prefer or "")
    if match is None:
        return 0
    digits = match.group(1).lstrip("0") or "0"
    return cap if len(digits) > 4 else min(int(digits), cap)


async def _job_by_idempotency_key(session: AsyncSession, tenant_id: str, key: str) -> Job | None:
    return await session.scalar(
        select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
    )


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
) -> schemas.JobPage:
    """A page of the tenant's jobs, newest first, after `cursor` (a job id)."""
    if cursor is not None and not is_id(cursor, "job"):
        raise InvalidInput("cursor must be the next_cursor of a previous page.")
    query = select(Job).where(Job.tenant_id == tenant_id).order_by(Job.id.desc()).limit(limit + 1)
    if status:
        query = query.where(Job.status == status)
    if cursor:
        query = query.where(Job.id < cursor)
    jobs = list(await session.scalars(query))
    page, has_more = jobs[:limit], len(jobs) > limit
    total_cost, unpriced = await _cost_totals(session, tenant_id, status)
    return schemas.JobPage(
        data=await job_views(session, page),
        has_more=has_more,
        next_cursor=page[-1].id if has_more else None,
        total_cost_usd=total_cost,
        unpriced_jobs=unpriced,
    )


async def _cost_totals(
    session: AsyncSession, tenant_id: str, status: str | None
) -> tuple[float, int]:
    """Over every job the filter matches, in one query: the sum of the known costs, and how
    many succeeded jobs have none (so the sum is a lower bound, not a wrong total)."""
    unpriced = case(((Job.status == "succeeded") & Job.cost_usd.is_(None), 1), else_=0)
    query = select(
        func.coalesce(func.sum(Job.cost_usd), 0.0), func.coalesce(func.sum(unpriced), 0)
    ).where(Job.tenant_id == tenant_id)
    if status:
        query = query.where(Job.status == status)
    total, count = (await session.execute(query)).one()
    return round(float(total), 8), int(count)


async def cancel_job(session: AsyncSession, tenant_id: str, job_id: str) -> Job:
    """Cancel a queued or running job; Conflict if it already finished. The caller commits."""
    job = await get_job(session, tenant_id, job_id)
    canceled = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(("queued", "running")))
        .values(status="canceled", finished_at=await database_now(session), lease_expires_at=None)
    )
    await session.refresh(job)
    if canceled.rowcount == 0:
        raise Conflict(f"Job {job_id} already {job.status}; only queued or running jobs cancel.")
    return job


async def wait_for_job(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str, job_id: str, seconds: float
) -> Job:
    """Poll until the job is final or `seconds` pass; the job as it then is."""
    deadline = time.monotonic() + seconds
    interval = 0.02
    while True:
        async with sessionmaker() as session:
            job = await get_job(session, tenant_id, job_id)
        remaining = deadline - time.monotonic()
        if job.status in FINAL_STATUSES or remaining <= 0:
            return job
        await asyncio.sleep(min(interval, remaining))
        interval = min(interval * 1.3, 0.25)


async def job_views(session: AsyncSession, jobs: list[Job]) -> list[schemas.Job]:
    """The public shape of jobs, with the outputs of those that succeeded."""
    succeeded = [job.id for job in jobs if job.status == "succeeded"]
    outputs: dict[str, list[schemas.JobOutput]] = defaultdict(list)
    if succeeded:
        assets = await session.scalars(
            select(Asset).where(Asset.job_id.in_(succeeded)).order_by(Asset.output_index)
        )
        for asset in assets:
            outputs[asset.job_id or ""].append(_output_view(asset))
    return [_job_view(job, outputs[job.id]) for job in jobs]


async def job_view(session: AsyncSession, job: Job) -> schemas.Job:
    """The public shape of one job."""
    return (await job_views(session, [job]))[0]


def _output_view(asset: Asset) -> schemas.JobOutput:
    details = dict(asset.details or {})
    return schemas.JobOutput(
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


def _groups(job: Job, outputs: list[schemas.JobOutput]) -> list[schemas.JobGroup] | None:
    """Variants outputs by model, in the order the request named the models."""
    if job.kind != "variants" or not outputs:
        return None
    groups = []
    for model in job.request.get("models", [job.model]):
        mine = [output for output in outputs if output.model == model]
        latencies = [output.latency_ms for output in mine if output.latency_ms is not None]
        costs = [output.cost_usd for output in mine]
        groups.append(
            schemas.JobGroup(
                model=model,
                outputs=mine,
                latency_ms=round(statistics.median(latencies)) if latencies else None,
                cost_usd=None if None in costs or not costs else float(sum(costs)),
            )
        )
    return groups


def _job_view(job: Job, outputs: list[schemas.JobOutput]) -> schemas.Job:
    return schemas.Job(
        id=job.id,
        kind=job.kind,  # type: ignore[arg-type]
        status=job.status,  # type: ignore[arg-type]
        model=job.model,
        request=job.request,
        outputs=outputs,
        groups=_groups(job, outputs),
        error=schemas.Problem.model_validate(job.error) if job.error else None,
        attempts=job.attempts,
        cost_usd=job.cost_usd,
        timings=schemas.JobTimings(
            queued_ms=_milliseconds(job.created_at, job.started_at),
            provider_ms=job.provider_ms,
            total_ms=_milliseconds(job.created_at, job.finished_at),
        ),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        metadata=job.caller_metadata,
    )


async def outputs_of(session: AsyncSession, job_id: str) -> list[Asset]:
    """A job's stored outputs, in order."""
    return list(
        await session.scalars(
            select(Asset).where(Asset.job_id == job_id).order_by(Asset.output_index)
        )
    )
