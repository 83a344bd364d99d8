"""A tenant's cap on running jobs, as a worker keeps it: a job runs in a slot of its tenant
(held in Redis, see app.runtime.slots), or, with every slot taken, goes back in line under a new
dispatch. A new dispatch is a new queue message, so putting a job back spends none of the
queue's tries on it (arq fails a message tried too often) and none of the job's attempts; the
job stays `queued`, with no event, until it starts."""

import logging

from sqlalchemy import update

from app import metrics
from app.db import database_clock
from app.jobs import tasks
from app.models import Job
from app.runtime import Runtime
from app.runtime.queue import ArqQueue
from app.runtime.slots import Take, TenantSlots

logger = logging.getLogger(__name__)


async def run_within_cap(
    runtime: Runtime, slots: TenantSlots, job_id: str, tenant: str, lane: str = ""
) -> None:
    """Run the job in one of its tenant's slots, or put it back in line (in its `lane`) if they
    are all taken."""
    take = await slots.take(tenant, job_id)
    if take is Take.FULL:
        await put_back(runtime, job_id, tenant, lane)
        return
    async with slots.holding(tenant, job_id, take):
        await tasks.run_job(runtime.context, job_id)


async def put_back(runtime: Runtime, job_id: str, tenant: str, lane: str = "") -> None:
    """Send the job again under its next dispatch number, to be taken a moment later; nothing is
    sent for a job no longer waiting to run (finished, canceled, or running elsewhere). The
    number is bumped in the row first, so the sweeper asks the queue about the new message."""
    # One statement standing on its own; a bump lost with a database crash costs nothing, as the
    # sweeper sends again a queued job the queue has no message for.
    async with runtime.context.bookkeeper() as session:
        number = await session.scalar(
            update(Job)
            .where(Job.id == job_id, Job.claimable(database_clock(session)))
            .values(dispatches=Job.dispatches + 1, dispatched_at=database_clock(session))
            .returning(Job.dispatches)
        )
    if number is None:
        return
    assert isinstance(runtime.queue, ArqQueue)
    metrics.jobs_put_back.inc()
    logger.debug("tenant %s at its cap; job %s waits (dispatch %d)", tenant, job_id, number)
    await runtime.queue.defer(job_id, number, tenant, lane)
