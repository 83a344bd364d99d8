"""The one submission pipeline. A job kind is declared once (its name, request schema and how a
request becomes the normalized request its runner reads); `submit_job` then does the same steps
for every kind, from the JSON routes and the OpenAI-compatible ones alike: tell a retry from a
new request, check the webhook URL, normalize, keep within the tenant's monthly budget, record
(and count in its spend), commit, queue, and wait when asked."""

import functools
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import metrics
from app.config import Settings
from app.db import database_clock, database_now
from app.errors import Conflict, IdempotencyKeyReused
from app.fetcher import check_url
from app.ids import new_id
from app.models import Job, JobEventType, JobKind, JobStatus
from app.providers.registry import ProviderRegistry
from app.runtime.context import TaskContext
from app.runtime.events import publish
from app.runtime.queue import JobQueue
from app.schemas.catalog import PriceRange
from app.schemas.webhooks import WebhookOptions
from app.services.budgets import check_budget, count_job
from app.services.jobs import wait_for_job
from app.services.pricing import expected_cost
from app.storage import Storage

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=BaseModel)


@dataclass
class Submitter:
    """Who submits, in which transaction, to which process's runtime."""

    session: AsyncSession
    tenant_id: str
    context: TaskContext
    queue: JobQueue
    # The tenant's monthly budget in USD, if it has one (remembered with its API key).
    monthly_budget_usd: float | None = None

    @property
    def settings(self) -> Settings:
        """The process's settings."""
        return self.context.settings

    @property
    def registry(self) -> ProviderRegistry:
        """The models this process can call."""
        return self.context.registry

    @property
    def storage(self) -> Storage:
        """Where input images are stored."""
        return self.context.storage


@dataclass(frozen=True)
class Kind(Generic[RequestT]):
    """A job kind: its name, the request it takes, and `normalize`, which checks the request
    against the models and the tenant's assets and returns what the runner reads (the model,
    exact sizes, seeds, the planned prompt). A bad request raises its 4xx error there."""

    name: JobKind
    request: type[RequestT]
    normalize: Callable[[Submitter, RequestT], Awaitable[dict[str, Any]]]


async def submit_job(
    submitter: Submitter,
    kind: Kind[RequestT],
    body: RequestT,
    idempotency_key: str | None,
    wait_seconds: float = 0,
) -> tuple[Job, bool]:
    """Create and queue a job of `kind` for `body`, or find the one this Idempotency-Key made
    for the same request within the key's lifetime; commits. Waits up to `wait_seconds` for it
    to finish. The job as it then is, and whether this call created it."""
    session, tenant_id = submitter.session, submitter.tenant_id
    fingerprint = request_hash(kind.name, body)
    lifetime = timedelta(seconds=submitter.settings.idempotency_key_seconds)
    job = await find_replay(session, tenant_id, idempotency_key, fingerprint, lifetime)
    created = job is None
    if job is None:
        request = await normalize_request(submitter, kind, body)
        metadata = getattr(body, "metadata", None)
        expected = expected_cost(submitter.registry, request)
        await keep_within_budget(submitter, expected)
        job = await add_job(
            session, tenant_id, kind.name, request, metadata, idempotency_key, fingerprint, expected
        )
    await session.commit()
    send = functools.partial(start, submitter.context, submitter.queue, job) if created else None
    if created:
        metrics.jobs_submitted.labels(kind.name, job.model).inc()
    if wait_seconds > 0:
        job = await wait_for_job(submitter.context, tenant_id, job.id, wait_seconds, send)
    elif send is not None:
        await send()
    return job, created


async def normalize_request(
    submitter: Submitter, kind: Kind[RequestT], body: RequestT
) -> dict[str, Any]:
    """The normalized request a job of `kind` records for `body`, or the 4xx error that refuses
    it: what every submission and every estimate checks. Input images given by URL or base64
    are stored in the submitter's transaction, which the caller commits or rolls back."""
    webhook_url = getattr(body, "webhook_url", None)
    # Checked before any input is fetched or stored, so a refused request leaves nothing.
    if webhook_url:
        await check_url(webhook_url, submitter.settings.url_policy)
    request = await kind.normalize(submitter, body)
    if isinstance(body, WebhookOptions):
        request |= body.webhook_fields()
    return request


async def keep_within_budget(submitter: Submitter, expected: PriceRange | None) -> None:
    """BudgetExceeded when a job expected to cost `expected` would take the tenant's spend
    this month past its budget; nothing for a tenant without one. A tenant with a budget stays
    locked until the submitter's transaction ends (see `check_budget`)."""
    if submitter.monthly_budget_usd is None:
        return
    await check_budget(
        submitter.session,
        submitter.tenant_id,
        submitter.monthly_budget_usd,
        expected,
        refuse_unpriced=submitter.settings.budget_unpriced_models == "refuse",
    )


def request_hash(kind: str, body: BaseModel) -> str:
    """A fingerprint of the request as sent, to tell a retry from a different request."""
    document = {"kind": kind, "body": body.model_dump(mode="json")}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def find_replay(
    session: AsyncSession,
    tenant_id: str,
    idempotency_key: str | None,
    fingerprint: str,
    lifetime: timedelta,
) -> Job | None:
    """The job this Idempotency-Key made for the same request within `lifetime`;
    IdempotencyKeyReused if it made one for another request; None for a new key, an expired
    one (released here, so it may name a new request), or none at all."""
    if not idempotency_key:
        return None
    existing = await session.scalar(
        select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == idempotency_key)
    )
    if existing is None:
        return None
    if existing.created_at <= await database_now(session) - lifetime:
        existing.idempotency_key = None
        await session.flush()
        return None
    if existing.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request body; use a new key."
        )
    return existing


async def add_job(
    session: AsyncSession,
    tenant_id: str,
    kind: JobKind,
    request: dict[str, Any],
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
    fingerprint: str,
    expected_cost: PriceRange | None = None,
) -> Job:
    """Add a queued job for a normalized request, with the cost it is expected to have, count
    it in the tenant's spend ledger, and flush it; Conflict when a concurrent request with the
    same Idempotency-Key got there first. The caller commits."""
    now = database_clock(session)
    values = {
        "id": new_id("job"),
        "tenant_id": tenant_id,
        "kind": kind,
        "status": JobStatus.QUEUED,
        "model": request["model"],
        "request": request,
        "caller_metadata": metadata,
        "idempotency_key": idempotency_key,
        "request_hash": fingerprint,
        "created_at": now,
        "attempts": 0,
        "dispatches": 1,
        "dispatched_at": now,
        "estimated_cost_min_usd": expected_cost.min_usd if expected_cost else None,
        "estimated_cost_max_usd": expected_cost.max_usd if expected_cost else None,
    }
    try:
        # On Postgres a concurrent insert of the same key waits here for the other to commit.
        inserted = await session.scalars(insert(Job).values(values).returning(Job))
    except IntegrityError as exc:
        raise Conflict("A request with this Idempotency-Key is already in progress.") from exc
    job = inserted.one()
    await count_job(session, job)
    return job


async def start(context: TaskContext, queue: JobQueue, job: Job) -> None:
    """Announce a new, committed job (job.queued) and send it to the queue."""
    await publish(context, job, JobEventType.QUEUED)
    await dispatch(context, queue, job, 1)


async def dispatch(
    context: TaskContext,
    queue: JobQueue,
    job: Job,
    number: int,
    *,
    since: datetime | None = None,
) -> None:
    """Send a committed job to its models' lane of the queue (in line as if at `since`, for a
    re-sent job, else at its tenant's turn); if that fails the sweeper sends it later."""
    lane = context.registry.queue_for(job.model_ids())
    try:
        await queue.enqueue(job.id, number, since=since, tenant=job.tenant_id, lane=lane)
    except Exception:
        logger.exception("could not enqueue job %s; the sweeper will retry", job.id)
