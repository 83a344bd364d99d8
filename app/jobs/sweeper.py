"""The sweeper: re-sends jobs whose queue message was lost or whose worker died, so none is lost,
and deletes what outlived its retention."""

import logging
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import ColumnElement, select, update

from app.db import database_now
from app.errors import problem
from app.models import Job, JobStatus
from app.runtime.context import TaskContext
from app.runtime.periodic import take_turn
from app.runtime.queue import DispatchState, JobQueue
from app.services.retention import delete_expired
from app.services.submission import dispatch

logger = logging.getLogger(__name__)


async def sweep_in_turn(context: TaskContext, queue: JobQueue, redis: Redis | None) -> int:
    """The periodic sweep, then retention. Every worker sweeps, so that any survivor finds a dead
    worker's jobs, but one of them per interval takes the turn (see `take_turn`). Returns how
    many jobs moved."""
    settings = context.settings
    turn = f"{settings.queue_name}:sweep-turn"
    if not await take_turn(redis, turn, settings.sweep_interval_seconds):
        return 0
    moved = await sweep(context, queue)
    await delete_expired(context)
    return moved


async def sweep(
    context: TaskContext, queue: JobQueue, *, grace_seconds: float | None = None
) -> int:
    """Re-dispatch every stranded job once; fail those out of attempts. Returns how many moved.
    A job counts as stranded `grace_seconds` after its last dispatch (`queued_grace_seconds`
    unless given; shorter right after a Redis outage, when messages are known to be lost)."""
    if grace_seconds is None:
        grace_seconds = context.settings.queued_grace_seconds
    moved = 0
    for job in await _stranded_jobs(context, queue, grace_seconds):
        if job.attempts >= context.settings.max_job_attempts:
            moved += await _give_up(context, job)
        else:
            moved += await _redispatch(context, queue, job)
    return moved


async def _stranded_jobs(context: TaskContext, queue: JobQueue, grace_seconds: float) -> list[Job]:
    lease_seconds = context.settings.job_lease_seconds
    async with context.sessionmaker() as session:
        now = await database_now(session)
        # Every job waits a while after its last dispatch, so a re-sent job that is still waiting
        # for a free worker is not re-sent on every sweep. A run renews its lease after its
        # dispatch, so the first re-send of a dead worker's running job waits for the lease alone.
        queued_before = now - timedelta(seconds=min(grace_seconds, lease_seconds))
        running_before = now - timedelta(seconds=lease_seconds)
        candidates = await session.scalars(
            select(Job).where(
                ((Job.status == JobStatus.QUEUED) & (Job.dispatched_at <= queued_before))
                | (
                    (Job.status == JobStatus.RUNNING)
                    & (Job.lease_expires_at < now)
                    & (Job.dispatched_at <= running_before)
                )
            )
        )
        jobs = list(candidates)
    grace_over = now - timedelta(seconds=grace_seconds)
    lease_over = now - timedelta(seconds=lease_seconds)
    return [job for job in jobs if await _is_stranded(context, queue, job, grace_over, lease_over)]


async def _is_stranded(
    context: TaskContext, queue: JobQueue, job: Job, grace_over: datetime, lease_over: datetime
) -> bool:
    """A running job read here lost its worker (its lease ran out); its own message may still
    look in progress to the queue, so the queue is not asked. A queued job is stranded when the
    queue lost its message (after the grace: a job just committed may be on its way to it), or
    when a worker took the message a lease ago and the job is still queued: a live worker claims
    a job as soon as it takes it, so that worker died in between, and the queue would hold the
    message as in progress until arq's own timeout (the job timeout and more)."""
    if job.status == JobStatus.RUNNING:
        return True
    assert job.dispatched_at is not None
    lane = context.registry.queue_for(job.model_ids())
    state = await queue.dispatch_state(job.id, job.dispatches, lane)
    if state is DispatchState.TAKEN:
        return job.dispatched_at <= lease_over
    return state is DispatchState.GONE and job.dispatched_at <= grace_over


def _still_stranded(job: Job, now: datetime) -> ColumnElement[bool]:
    """True while nobody has touched the job since the sweep read it: same status, attempt
    and dispatch, and for a running job a lease that is still expired."""
    condition = (
        (Job.id == job.id)
        & (Job.status == job.status)
        & (Job.attempts == job.attempts)
        & (Job.dispatches == job.dispatches)
    )
    if job.status == JobStatus.RUNNING:
        condition &= Job.lease_expires_at < now
    return condition


async def _redispatch(context: TaskContext, queue: JobQueue, job: Job) -> int:
    # The dispatch counter is compared and bumped in one statement, so of several sweepers
    # looking at the same job only one re-sends it.
    number = job.dispatches + 1
    async with context.sessionmaker() as session:
        now = await database_now(session)
        bumped = await session.execute(
            update(Job)
            .where(_still_stranded(job, now))
            .values(dispatches=number, dispatched_at=now)
        )
        await session.commit()
    if bumped.rowcount == 0:
        return 0
    logger.info("re-dispatching %s job %s (dispatch %d)", job.status, job.id, number)
    # In line where it was first queued, not behind every job queued since: a dead worker's
    # job runs again as soon as a worker is free.
    await dispatch(context, queue, job, number, since=job.created_at)
    return 1


async def _give_up(context: TaskContext, job: Job) -> int:
    detail = f"The job's worker was lost {job.attempts} times; it was not run again."
    error = problem(500, "worker-lost", "Worker lost", detail)
    async with context.sessionmaker() as session:
        now = await database_now(session)
        failed = await session.execute(
            update(Job)
            .where(_still_stranded(job, now))
            .values(status=JobStatus.FAILED, error=error, finished_at=now, lease_expires_at=None)
        )
        await session.commit()
    return failed.rowcount
