"""The arq worker: `darkroom worker` runs these settings against the configured Redis."""

import contextlib
from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.worker import Worker
from arq.worker import create_worker as arq_create_worker

from app.config import Settings
from app.jobs import tasks
from app.jobs.background import run_background
from app.runtime import Role, open_runtime
from app.runtime.queue import json_deserializer, json_serializer
from app.webhooks.delivery import deliver


async def startup(ctx: dict[str, Any]) -> None:
    """Open the runtime on arq's Redis connection, and start the sweeper and webhooks."""
    stack = contextlib.AsyncExitStack()
    runtime = await stack.enter_async_context(
        open_runtime(ctx["settings"], Role.WORKER, redis=ctx["redis"])
    )
    ctx["darkroom"] = runtime.context
    ctx["webhooks"] = await stack.enter_async_context(run_background(runtime))
    ctx["stack"] = stack


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop the sweeper and webhooks, and close the database."""
    await ctx["stack"].aclose()


async def run_job(ctx: dict[str, Any], job_id: str) -> None:
    """The arq entry point of a job: the same task body the in-process runner calls."""
    await tasks.run_job(ctx["darkroom"], job_id)


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> None:
    """The arq entry point of one webhook delivery attempt."""
    await deliver(ctx["darkroom"], ctx["webhooks"].dispatcher, delivery_id)


class WorkerSettings:
    """arq settings of a Darkroom worker: JSON messages (never pickle), results not kept (the
    job row is the record). `create_worker` fills in Redis, queue and limits from Settings."""

    functions: ClassVar = [run_job, deliver_webhook]
    on_startup = startup
    on_shutdown = shutdown
    job_serializer = json_serializer
    job_deserializer = json_deserializer
    keep_result = 0


def create_worker(settings: Settings, **overrides: Any) -> Worker:
    """An arq worker for these settings."""
    if not settings.redis_url:
        raise SystemExit(
            "darkroom worker needs DARKROOM_REDIS_URL; without it jobs run in the API."
        )
    options: dict[str, Any] = {
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": settings.queue_name,
        "max_jobs": settings.runner_concurrency,
        # An idle worker polls the queue; at 50 ms a job waits about 25 ms on average to be
        # noticed, and each worker costs Redis 20 cheap range reads a second (2,000 for 100
        # workers, a small share of what one Redis core serves).
        "poll_delay": settings.queue_poll_seconds,
        # The task body enforces the job timeout itself and records it; arq's is a backstop.
        "job_timeout": settings.job_timeout_seconds + 60,
        "max_tries": settings.max_job_attempts,
        "ctx": {"settings": settings},
    }
    return arq_create_worker(WorkerSettings, **{**options, **overrides})  # type: ignore[arg-type]
