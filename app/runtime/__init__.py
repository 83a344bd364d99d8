"""What every Darkroom process opens: the task context, the job queue, job events and live
progress. `open_runtime` is the one way in, for the API's lifespan and a worker's start-up."""

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum

from arq.connections import ArqRedis

from app.config import Settings
from app.cpu import set_memory_budget, set_threads
from app.providers.self_hosted import GPU_QUEUE
from app.runtime.context import TaskContext, open_context
from app.runtime.queue import ArqQueue, InProcessQueue, JobQueue
from app.runtime.self_hosted import report_loaded

RunJob = Callable[[TaskContext, str], Awaitable[None]]


class Role(StrEnum):
    """What a process is for: serving the API, or running jobs from the queue."""

    API = "api"
    WORKER = "worker"


@dataclass
class Runtime:
    """A process's open context and queue."""

    role: Role
    context: TaskContext
    queue: JobQueue

    @property
    def sweeps(self) -> bool:
        """Whether this process re-sends stranded jobs and overdue webhook deliveries: every
        worker does, and the API does when it runs jobs itself (no Redis)."""
        return self.role is Role.WORKER or isinstance(self.queue, InProcessQueue)

    @property
    def redis(self) -> ArqRedis | None:
        """The queue's Redis connection, when jobs go through arq."""
        return self.queue.redis if isinstance(self.queue, ArqQueue) else None


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    role: Role,
    *,
    run_job: RunJob | None = None,
    redis: ArqRedis | None = None,
    lane: str = "",
) -> AsyncIterator[Runtime]:
    """Open the context and the queue for a process of this role. A worker passes the Redis
    connection arq gave it and the lane it takes jobs from; the API passes `run_job` to run
    jobs itself when there is no Redis. The processes that run self-hosted models' jobs (a
    worker of the `gpu` lane, or the API running jobs itself) serve them: they load their
    weights; no other process ever does."""
    set_threads(settings.cpu_threads)
    set_memory_budget(settings.memory_budget_mb)
    async with open_context(settings) as context:
        queue = await _open_queue(context, role, run_job, redis)
        if isinstance(queue, InProcessQueue):
            await context.registry.serve_self_hosted()
        elif lane == GPU_QUEUE and isinstance(queue, ArqQueue):
            await context.registry.serve_self_hosted(
                functools.partial(report_loaded, queue.redis, settings.queue_name)
            )
        try:
            yield Runtime(role, context, queue)
        finally:
            if role is Role.API:
                await queue.close()


async def _open_queue(
    context: TaskContext, role: Role, run_job: RunJob | None, redis: ArqRedis | None
) -> JobQueue:
    settings = context.settings
    if redis is not None:
        return ArqQueue(redis, settings.queue_name)
    if settings.redis_url:
        return ArqQueue.connect(settings.redis_url, settings.queue_name)
    if role is not Role.API or run_job is None:
        raise ValueError("without Redis, only the API runs jobs, and it needs run_job")
    return InProcessQueue(
        lambda job_id: run_job(context, job_id),
        settings.runner_concurrency,
        settings.tenant_max_running,
    )
