"""Task bodies: the only place a job runs. Each output is keyed by job id and index, and each
run holds the job under a lease fenced by its attempt number, so a job run twice (a redelivered
message, a worker killed mid-job) ends with one set of outputs and one final status."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from app import metrics
from app.db import database_clock
from app.errors import DarkroomError, EveryModelFailed, ProviderError, problem
from app.jobs.credentials import sign_output, wants_credentials
from app.jobs.kinds import KINDS
from app.logs import job_context
from app.models import Asset, Job, JobEventType, JobStatus
from app.providers.base import step_hook
from app.runtime.context import TaskContext
from app.runtime.events import publish
from app.services.assets import Output, record_output

logger = logging.getLogger(__name__)

# How long a confirmed hold on a job is taken as still true before an output starts. A cancel
# within it is still caught: the output's store finds the job gone and nothing is recorded.
HOLD_CONFIRMED_SECONDS = 1.0
# A run renews its lease three times per lease length, so two renewals in a row may be lost
# before another worker may take the job over; a failed one is tried again this soon.
RENEWALS_PER_LEASE = 3
RENEWAL_RETRY_SECONDS = 1.0
# What a run's duration is labelled with when it recorded no status (canceled or taken over).
LEASE_LOST = "lease_lost"


class LeaseLost(Exception):
    """This run no longer holds the job: it was canceled, or another run took it over."""


async def run_job(context: TaskContext, job_id: str) -> None:
    """Run one job to a final status, unless it is finished, canceled or run elsewhere. Its
    log lines carry the job's id, tenant, kind and attempt; its run is counted and timed."""
    job = await claim(context, job_id)
    if job is None:
        return
    if job.attempts == 1:
        waited = (job.started_at - job.created_at).total_seconds()
        metrics.job_queue_wait_seconds.labels(job.kind).observe(max(waited, 0.0))
    fields = {"job_id": job.id, "tenant_id": job.tenant_id, "kind": job.kind}
    started = time.perf_counter()
    status = LEASE_LOST
    metrics.jobs_in_flight.inc()
    try:
        with job_context(**fields, attempt=job.attempts):
            logger.info("job started", extra={"model": job.model})
            # The brief is the caller's content: written only when asked for with DEBUG.
            logger.debug("job prompt: %s", job.request.get("prompt"))
            status = await _run_claimed(context, job)
            logger.info("job ended: %s", status, extra={"status": status})
    finally:
        metrics.jobs_in_flight.dec()
        metrics.job_run_seconds.labels(job.kind, status).observe(time.perf_counter() - started)


async def _run_claimed(context: TaskContext, job: Job) -> str:
    """Run a claimed job; the status this run recorded, or LEASE_LOST if it recorded none."""
    await publish(context, job, JobEventType.STARTED)
    deadline = asyncio.timeout(context.settings.job_timeout_seconds)
    try:
        async with deadline, keep_lease(context, job) as lease:
            produced = await produce_outputs(context, job, lease)
    except LeaseLost:
        return LEASE_LOST
    except EveryModelFailed as exc:
        status = JobStatus.FAILED
        outcome = {"error": exc.to_problem(), "failures": exc.failures}
    except DarkroomError as exc:
        status, outcome = JobStatus.FAILED, {"error": exc.to_problem()}
    except Exception as exc:
        status = JobStatus.FAILED
        outcome = {"error": _unexpected_failure(context, job, exc, deadline)}
    else:
        status = JobStatus.SUCCEEDED
        outcome = {
            "provider_ms": produced.provider_ms,
            "cost_usd": produced.cost_usd,
            "failures": produced.failures or None,
        }
    return status if await finish(context, job, status, **outcome) else LEASE_LOST


def _unexpected_failure(
    context: TaskContext, job: Job, exc: Exception, deadline: asyncio.Timeout
) -> dict[str, Any]:
    if isinstance(exc, TimeoutError) and deadline.expired():
        detail = f"The job ran longer than {context.settings.job_timeout_seconds:g} seconds."
        return problem(504, "job-timeout", "Job timed out", detail)
    logger.error("job %s crashed", job.id, exc_info=exc)
    return problem(500, "internal-error", "Internal error", "The job failed unexpectedly.")


async def claim(context: TaskContext, job_id: str) -> Job | None:
    """Take the job for this run: mark it running under a fresh lease and count the attempt,
    whose number fences every later write of this run. None if it is not ours to run now."""
    async with context.bookkeeper() as session:
        now = database_clock(session)
        job = await session.scalar(
            update(Job)
            .where(
                Job.id == job_id,
                Job.attempts < context.settings.max_job_attempts,
                Job.claimable(now),
            )
            .values(
                status=JobStatus.RUNNING,
                attempts=Job.attempts + 1,
                lease_expires_at=now + timedelta(seconds=context.settings.job_lease_seconds),
                started_at=func.coalesce(Job.started_at, now),
            )
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        return job


class Lease:
    """This run's hold on a job, kept alive in the background by `keep_lease`. `confirmed` is
    when the database last said the run holds the job (the claim, a renewal, a stored output)."""

    def __init__(self) -> None:
        self.lost = False
        self.confirmed = time.monotonic()

    def recently_confirmed(self) -> bool:
        """Whether the hold was confirmed so lately that asking again would tell nothing new."""
        return time.monotonic() - self.confirmed < HOLD_CONFIRMED_SECONDS

    def check(self) -> None:
        """Raise LeaseLost once a renewal found the job canceled or taken over."""
        if self.lost:
            raise LeaseLost


@asynccontextmanager
async def keep_lease(context: TaskContext, job: Job) -> AsyncIterator[Lease]:
    """Renew the lease while the body runs. When this worker dies the renewals stop and the
    sweeper hands the job to another worker once the lease runs out."""
    lease = Lease()
    heartbeat = asyncio.create_task(_renew_until_lost(context, job, lease))
    try:
        yield lease
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat


async def _renew_until_lost(context: TaskContext, job: Job, lease: Lease) -> None:
    """Push the lease out every third of its length. A renewal that fails (a lost connection, a
    database restarting) is retried after a second rather than a period, so one lost renewal
    costs a second of the lease, not a third. A slow one is waited for up to a period, past
    which it is abandoned and tried again while the lease still has time to run."""
    lease_seconds = context.settings.job_lease_seconds
    period = lease_seconds / RENEWALS_PER_LEASE
    wait = period
    while not lease.lost:
        await asyncio.sleep(wait)
        try:
            async with asyncio.timeout(period):
                lease.lost = not await _renew(context, job, lease_seconds)
            lease.confirmed = time.monotonic()
            wait = period
        except Exception:
            logger.warning("could not renew the lease of job %s", job.id, exc_info=True)
            wait = min(RENEWAL_RETRY_SECONDS, period)


async def _renew(context: TaskContext, job: Job, lease_seconds: float) -> bool:
    """Extend this run's lease from now; False if the run no longer holds the job."""
    async with context.bookkeeper() as session:
        now = database_clock(session)
        renewed = await session.execute(
            update(Job)
            .where(Job.held_by(job))
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        )
    return renewed.rowcount == 1


@dataclass
class Produced:
    """What a run's outputs came to: provider milliseconds and cost over every output,
    whichever run made it, and the outputs a compared model failed to make."""

    provider_ms: int
    cost_usd: float | None
    failures: list[dict[str, Any]]


async def produce_outputs(context: TaskContext, job: Job, lease: Lease) -> Produced:
    """Make and store each output the job does not have yet, up to the runner's
    `output_concurrency` at a time, each stored as soon as it is made, so a re-run picks up
    where a dead worker stopped (and tries again what a compared model failed to make). A job
    comparing models records a model's failed output and goes on with the others;
    EveryModelFailed when none made an output."""
    runner = KINDS[job.kind](context, job)
    done = await _stored_outputs(context, job)
    runner.done = done
    details: list[dict[str, Any]] = []
    failures: dict[int, dict[str, Any]] = {}
    await runner.prepare()
    total = runner.output_count()
    slots = asyncio.Semaphore(runner.output_concurrency())
    # Progress events go out one at a time, so `completed` only ever counts up.
    announcing = asyncio.Lock()

    async def make_and_store(index: int) -> None:
        async with slots:
            # Checked before each output, so a cancel stops the job within one output.
            await _check_still_held(context, job, lease)
            try:
                output = await runner.make(index)
            except ProviderError as exc:
                if not runner.compares_models():
                    raise
                failures[index] = runner.failure(index, exc)
                return
            if wants_credentials(job):
                output = await sign_output(context, job, output)
            await _store_output(context, job, lease, index, output)
            details.append(output.details)
            _count_cost(output.details)
        async with announcing:
            done.add(index)
            progress = {"completed": len(done), "total": total}
            await publish(context, job, JobEventType.PROGRESS, progress)

    async def on_step(step: int, steps: int) -> None:
        # A model working in steps tells each one, and stops between them once the job is
        # canceled or taken over (the hold is asked of the database at most once a second).
        progress = {"completed": len(done), "total": total, "step": step, "steps": steps}
        await publish(context, job, JobEventType.PROGRESS, progress)
        try:
            await _check_still_held(context, job, lease)
        except LeaseLost:
            raise
        except Exception:
            # A database that does not answer now stops nothing: the lease renewals decide.
            logger.warning("could not check job %s between steps", job.id, exc_info=True)

    step_hook.set(on_step)
    missing = [index for index in range(total) if index not in done]
    try:
        async with asyncio.TaskGroup() as outputs:
            for index in missing:
                outputs.create_task(make_and_store(index))
    except ExceptionGroup as errors:
        raise _first_failure(errors) from None
    failed = [failures[index] for index in sorted(failures)]
    if failed and not done:
        raise EveryModelFailed(failed)
    if len(details) < len(done):
        # Some outputs were made by an earlier run: the totals count theirs too.
        details = await _stored_details(context, job)
    return Produced(*_totals(details), failed)


async def _stored_outputs(context: TaskContext, job: Job) -> set[int]:
    """The indexes an earlier run of the job stored; a first run has none to look for."""
    if job.attempts == 1:
        return set()
    async with context.reader() as session:
        return set(await session.scalars(select(Asset.output_index).where(Asset.job_id == job.id)))


async def _store_output(
    context: TaskContext, job: Job, lease: Lease, index: int, output: Output
) -> None:
    async with context.sessionmaker() as session:
        # Locking the job row keeps a cancel or a takeover from slipping in before commit.
        held = await session.scalar(select(Job.id).where(Job.held_by(job)).with_for_update())
        if held is None:
            raise LeaseLost
        await record_output(session, context.storage, job, index, output)
        await session.commit()
    lease.confirmed = time.monotonic()


def _count_cost(details: dict[str, Any]) -> None:
    """Add a stored output's cost to its model's total; one of unknown price adds nothing."""
    cost = details.get("cost_usd")
    if cost is not None and details.get("model"):
        metrics.cost_usd.labels(details["model"]).inc(cost)


def _first_failure(failures: ExceptionGroup) -> Exception:
    """What ends the job when outputs made at once fail: a lost lease over anything else (the
    run must stop quietly), then the first failure."""
    flat = list(_leaves(failures))
    return next((error for error in flat if isinstance(error, LeaseLost)), flat[0])


def _leaves(group: ExceptionGroup) -> Iterator[Exception]:
    for error in group.exceptions:
        if isinstance(error, ExceptionGroup):
            yield from _leaves(error)
        else:
            yield error


async def _stored_details(context: TaskContext, job: Job) -> list[dict[str, Any]]:
    async with context.reader() as session:
        details = await session.scalars(select(Asset.details).where(Asset.job_id == job.id))
        return [detail or {} for detail in details]


def _totals(details: list[dict[str, Any]]) -> tuple[int, float | None]:
    """Provider milliseconds and cost over the outputs' facts. The cost sums the known costs,
    as each output's store counted them (one of unknown price adds nothing); None when outputs
    have a price and none of them is known; 0 for outputs that cost nothing (an export's)."""
    provider_ms = sum(int(fact.get("latency_ms") or 0) for fact in details)
    costs = [fact.get("cost_usd") for fact in details if "cost_usd" in fact]
    known = [cost for cost in costs if cost is not None]
    return provider_ms, None if costs and not known else float(sum(known))


async def _check_still_held(context: TaskContext, job: Job, lease: Lease) -> None:
    """Raise LeaseLost if the run no longer holds the job. Outputs that start together right
    after the claim (or a store) take the hold as confirmed; a store checks it again anyway."""
    lease.check()
    if lease.recently_confirmed():
        return
    async with context.reader() as session:
        held = await session.scalar(select(Job.id).where(Job.held_by(job)))
    if held is None:
        raise LeaseLost
    lease.confirmed = time.monotonic()


async def finish(
    context: TaskContext,
    job: Job,
    status: JobStatus,
    *,
    error: dict[str, Any] | None = None,
    provider_ms: int | None = None,
    cost_usd: float | None = None,
    failures: list[dict[str, Any]] | None = None,
) -> bool:
    """Record this run's final status; False (and nothing written) if the run no longer holds
    the job because it was canceled or taken over."""
    async with context.bookkeeper() as session:
        finished = await session.execute(
            update(Job)
            .where(Job.held_by(job))
            .values(
                status=status,
                error=error,
                provider_ms=provider_ms,
                # A failed run keeps what the outputs it stored cost, as each store counted it.
                cost_usd=Job.cost_usd if cost_usd is None else cost_usd,
                failures=failures,
                finished_at=database_clock(session),
                lease_expires_at=None,
            )
        )
    if finished.rowcount != 1:
        return False
    metrics.jobs_finished.labels(job.kind, job.model, status).inc()
    await publish(context, job, status)
    return True
