"""The sweeper: re-sends jobs whose queue message was lost or whose worker died, so none is lost."""

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import or_, select, update

from app.db import database_now
from app.errors import problem
from app.jobs.context import TaskContext
from app.jobs.queue import JobQueue
from app.models import Job
from app.services.jobs import dispatch

logger = logging.getLogger(__name__)


async def sweep(context: TaskContext, queue: JobQueue) -> int:
    """Re-dispatch every stranded job once; fail those out of attempts. Returns how many moved."""
    moved = 0
    for job in await _stranded_jobs(context, queue):
        if job.attempts >= context.settings.max_job_attempts:
            moved += await _give_up(context, job)
        else:
            moved += await _redispatch(context, queue, job)
    return moved


async def _stranded_jobs(context: TaskContext, queue: JobQueue) -> list[Job]:
    async with context.sessionmaker() as session:
        now = await database_now(session)
        grace = now - timedelta(seconds=context.settings.queued_grace_seconds)
        candidates = await session.scalars(
            select(Job).where(
                or_(
                    (Job.status == "queued") & (Job.dispatched_at <= grace),
                    (Job.status == "running") & (Job.lease_expires_at < now),
                )
            )
        )
        jobs = list(candidates)
    return [
        job
        for job in jobs
        if job.status == "running" or not await queue.is_pending(job.id, job.dispatches)
    ]


async def _redispatch(context: TaskContext, queue: JobQueue, job: Job) -> int:
    # The dispatch counter is compared and bumped in one statement, so of several sweepers
    # looking at the same job only one re-sends it.
    number = job.dispatches + 1
    async with context.sessionmaker() as session:
        bumped = await session.execute(
            update(Job)
            .where(Job.id == job.id, Job.dispatches == job.dispatches, Job.status == job.status)
            .values(dispatches=number, dispatched_at=await database_now(session))
        )
        await session.commit()
    if bumped.rowcount == 0:
        return 0
    logger.info("re-dispatching %s job %s (dispatch %d)", job.status, job.id, number)
    await dispatch(queue, job.id, number)
    return 1


async def _give_up(context: TaskContext, job: Job) -> int:
    detail = f"The job's worker was lost {job.attempts} times; it was not run again."
    error = problem(500, "worker-lost", "Worker lost", detail)
    async with context.sessionmaker() as session:
        failed = await session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == job.status, Job.attempts == job.attempts)
            .values(
                status="failed",
                error=error,
                finished_at=await database_now(session),
                lease_expires_at=None,
            )
        )
        await session.commit()
    return failed.rowcount


async def sweep_forever(context: TaskContext, queue: JobQueue) -> None:
    """Sweep every `sweep_interval_seconds` until canceled; a failed sweep is logged, not fatal."""
    while True:
        try:
            await sweep(context, queue)
        except Exception:
            logger.exception("sweep failed")
        await asyncio.sleep(context.settings.sweep_interval_seconds)
