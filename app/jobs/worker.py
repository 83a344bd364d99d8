"""The arq worker: `darkroom worker` runs these settings against the configured Redis."""

import asyncio
import contextlib
from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.worker import Worker
from arq.worker import create_worker as arq_create_worker

from app.config import Settings
from app.jobs import tasks
from app.jobs.context import open_context
from app.jobs.queue import ArqQueue, json_deserializer, json_serializer
from app.jobs.sweeper import sweep_forever
from app.webhooks.delivery import deliver
from app.webhooks.scheduler import start_webhooks


async def startup(ctx: dict[str, Any]) -> None:
    """Open the database and storage, and start this worker's sweeper."""
    settings: Settings = ctx["settings"]
    stack = contextlib.AsyncExitStack()
    context = await stack.enter_async_context(open_context(settings))
    queue = ArqQueue(ctx["redis"], settings.queue_name)
    ctx["darkroom"] = context
    ctx["stack"] = stack
    ctx["sweeper"] = asyncio.create_task(sweep_forever(context, queue))
    ctx["webhooks"] = start_webhooks(context, ctx["redis"], scan=True)


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop the sweeper and close the database."""
    ctx["sweeper"].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ctx["sweeper"]
    await ctx["webhooks"].close()
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
        "poll_delay": settings.queue_poll_seconds,
        # The task body enforces the job timeout itself and records it; arq's is a backstop.
        "job_timeout": settings.job_timeout_seconds + 60,
        "max_tries": settings.max_job_attempts,
        "ctx": {"settings": settings},
    }
    return arq_create_worker(WorkerSettings, **{**options, **overrides})  # type: ignore[arg-type]
