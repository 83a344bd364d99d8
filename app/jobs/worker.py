"""The arq worker: `darkroom worker` runs these settings against the configured Redis, and rides
out a Redis outage of any length without exiting."""

import asyncio
import contextlib
import dataclasses
import logging
import random
from typing import Any, ClassVar

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker, get_kwargs
from redis.exceptions import AuthenticationError, AuthorizationError
from redis.exceptions import ConnectionError as RedisConnectionError

from app.config import Settings
from app.jobs import tasks
from app.jobs.background import run_background
from app.jobs.sweeper import sweep
from app.jobs.tenant_cap import run_within_cap
from app.providers.self_hosted import GPU_QUEUE
from app.runtime import Role, Runtime, open_runtime
from app.runtime.queue import (
    RECONNECT_FIRST_DELAY_SECONDS,
    RECONNECT_MAX_DELAY_SECONDS,
    REDIS_UNREACHABLE,
    json_deserializer,
    json_serializer,
    lane_queue,
    wake_channel,
)
from app.runtime.slots import HOLD_LEASES, TenantSlots
from app.webhooks.delivery import deliver

logger = logging.getLogger(__name__)

PING_TIMEOUT_SECONDS = 2
# A wake connection with no message this long checks that Redis still answers.
WAKE_PING_SECONDS = 30
# Once Redis is back, jobs dispatched this long before are re-sent at once if the queue has no
# message for them (lost with Redis, or never sent during the outage) rather than after the
# usual grace; a job committed within it may still be on its way to the queue.
AFTER_OUTAGE_GRACE_SECONDS = 1


async def startup(ctx: dict[str, Any]) -> None:
    """Open the runtime on arq's Redis connection (a `gpu` worker loading its self-hosted
    models, and telling the other processes what they take), and start the sweeper and
    webhooks."""
    stack = ctx["stack"] = contextlib.AsyncExitStack()
    settings: Settings = ctx["settings"]
    runtime = await stack.enter_async_context(
        open_runtime(settings, Role.WORKER, redis=ctx["redis"], lane=ctx["lane"])
    )
    ctx["runtime"] = runtime
    ctx["darkroom"] = runtime.context
    ctx["slots"] = tenant_slots(ctx["settings"], ctx["redis"])
    ctx["webhooks"] = await stack.enter_async_context(run_background(runtime))


async def shutdown(ctx: dict[str, Any]) -> None:
    """Stop the sweeper and webhooks, and close the database."""
    await ctx["stack"].aclose()


def tenant_slots(settings: Settings, redis: ArqRedis) -> TenantSlots | None:
    """The tenants' running-job slots when their running jobs are capped: a slot is held for
    HOLD_LEASES job leases at a time, so a dead worker's slots free soon after its leases."""
    if not settings.tenant_max_running:
        return None
    return TenantSlots(
        redis,
        settings.queue_name,
        settings.tenant_max_running,
        HOLD_LEASES * settings.job_lease_seconds,
    )


async def run_job(ctx: dict[str, Any], job_id: str, tenant: str = "") -> None:
    """The arq entry point of a job: the same task body the in-process runner calls, within its
    tenant's cap on running jobs. A message sent without its tenant (by an older version) runs
    uncapped."""
    slots: TenantSlots | None = ctx["slots"]
    if slots is None or not tenant:
        await tasks.run_job(ctx["darkroom"], job_id)
        return
    await run_within_cap(ctx["runtime"], slots, job_id, tenant, ctx["lane"])


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> None:
    """The arq entry point of one webhook delivery attempt."""
    webhooks = ctx["webhooks"]
    await deliver(ctx["darkroom"], webhooks.dispatcher, webhooks.endpoints, delivery_id)


class WorkerSettings:
    """arq settings of a Darkroom worker: JSON messages (never pickle), results not kept (the
    job row is the record). `create_worker` fills in Redis, queue and limits from Settings."""

    functions: ClassVar = [run_job, deliver_webhook]
    on_startup = startup
    on_shutdown = shutdown
    job_serializer = json_serializer
    job_deserializer = json_deserializer
    keep_result = 0


class DarkroomWorker(Worker):
    """arq's worker, kept alive through a Redis outage. arq's poll loop raises on the first
    connection error and its `run` then closes the worker; here the poll that fails waits
    instead, PINGing with backoff until Redis answers, and polling resumes. The runtime (database,
    providers, sweeper) stays open and running jobs go on: their rows are in Postgres, and their
    events and webhook messages are dropped or left to the scans while Redis is away. Once it
    answers, queued jobs it has no message for (lost with an emptied Redis, or submitted during
    the outage) are re-sent at once. One line is logged when Redis is lost and one when it is
    back.

    It overrides arq's `_poll_iteration`, `start_jobs`, `run_job` and `close` and calls its
    `_release_sem_dec_counter_on_complete`; arq is in maintenance-only mode, so they are not
    expected to move."""

    async def main(self) -> None:
        """Connect (waiting for Redis however long it takes to answer) and start; then read the
        queue whenever a dispatch is announced on its wake channel, and every `poll_delay` in
        any case (for deferred webhook attempts, and a notice missed while reconnecting)."""
        if self._pool is None:
            self._pool = await self._connect()
        logger.info("Starting worker for %s", ", ".join(self.functions))
        self.ctx["redis"] = self.pool
        if self.on_startup:
            await self.on_startup(self.ctx)
        self._work_announced = asyncio.Event()
        self._outage: asyncio.Future[None] | None = None
        listening = asyncio.create_task(self._listen_for_work())
        try:
            while True:
                self._work_announced.clear()
                await self._poll_iteration()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_delay_s):
                        await self._work_announced.wait()
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening

    async def _listen_for_work(self) -> None:
        """Set `_work_announced` on every wake message. Its connection is the first to notice
        Redis going away, even while every job slot is taken and polling reads nothing, so a
        lost connection waits out the outage here (then resubscribes)."""
        while True:
            try:
                async with self.pool.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(wake_channel(self.queue_name))
                    while True:
                        # The timeout PINGs a silent connection, so a dead path shows too.
                        message = await pubsub.get_message(timeout=WAKE_PING_SECONDS)
                        if message is not None:
                            self._work_announced.set()
                        elif not await self._redis_answers():
                            raise RedisConnectionError("the wake connection went silent")
            except REDIS_UNREACHABLE as error:
                await self._ride_out_outage(error)
            except Exception:
                logger.exception("the wake listener failed; polling goes on, retrying it")
                await asyncio.sleep(RECONNECT_MAX_DELAY_SECONDS)

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_UNREACHABLE as error:
            await self._ride_out_outage(error)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Start the jobs, passing over those this worker runs already without asking Redis
        about each: arq keeps a running job in the queue, so a worker running hundreds would
        spend a round trip on each of them whenever it reads the queue for a free slot. A
        connection error gives back the slot arq took for the job it was starting, which arq
        itself would keep for ever."""
        waiting = [job_id for job_id in job_ids if job_id.decode() not in self.tasks]
        try:
            await super().start_jobs(waiting)
        except REDIS_UNREACHABLE:
            self._release_sem_dec_counter_on_complete()
            raise

    async def run_job(self, job_id: str, score: int) -> None:
        """Run one message; if Redis is lost before or after the task body, the job's row still
        tells the truth, and the sweeper re-sends a job that never ran."""
        try:
            await super().run_job(job_id, score)
        except REDIS_UNREACHABLE as error:
            logger.debug("queue message %s: Redis unreachable (%r)", job_id, error)
        finally:
            # A worker that was full left queued jobs for later: read the queue again now.
            self._work_announced.set()

    async def close(self) -> None:
        """Close as arq does; when Redis is unreachable arq stops at its health-check key, so
        the runtime is closed here instead (running jobs were already stopped)."""
        try:
            await super().close()
        except REDIS_UNREACHABLE:
            if self.on_shutdown:
                await self.on_shutdown(self.ctx)
            await self.pool.aclose(close_connection_pool=True)
            self._pool = None

    async def _ride_out_outage(self, error: BaseException) -> None:
        """Wait until Redis answers again. The poll and the wake listener may both meet the
        outage; the first waits for it (and logs it, and re-sends what it lost), the other
        waits for that."""
        if self._outage is not None:
            await asyncio.shield(self._outage)
            return
        self._outage = asyncio.get_running_loop().create_future()
        try:
            await self._wait_for_redis(error)
        finally:
            self._outage.set_result(None)
            self._outage = None

    async def _wait_for_redis(self, error: BaseException) -> None:
        running = sum(not task.done() for task in self.tasks.values())
        logger.warning(
            "Redis lost (%r); %d running jobs go on, and polling resumes once it answers",
            error,
            running,
        )
        delay = RECONNECT_FIRST_DELAY_SECONDS
        while not await self._redis_answers():
            await asyncio.sleep(delay * random.uniform(0.5, 1))
            delay = min(delay * 2, RECONNECT_MAX_DELAY_SECONDS)
        logger.info("Redis back; polling the queue again")
        await self._resend_lost_jobs()

    async def _resend_lost_jobs(self) -> None:
        runtime: Runtime = self.ctx["runtime"]
        try:
            await sweep(runtime.context, runtime.queue, grace_seconds=AFTER_OUTAGE_GRACE_SECONDS)
        except Exception:
            logger.exception("could not re-send the jobs lost with Redis; the sweeper will")

    async def _connect(self) -> ArqRedis:
        # arq's own attempts, a second apart and each logged, give way to the backoff; a Redis
        # that refuses the credentials will not change its mind, so that still stops the worker.
        settings = dataclasses.replace(self.redis_settings, conn_retries=0)
        delay = RECONNECT_FIRST_DELAY_SECONDS
        waited = False
        while True:
            try:
                pool = await create_pool(
                    settings,
                    job_serializer=self.job_serializer,
                    job_deserializer=self.job_deserializer,
                    default_queue_name=self.queue_name,
                    expires_extra_ms=self.expires_extra_ms,
                )
            except (AuthenticationError, AuthorizationError):
                raise
            except REDIS_UNREACHABLE as error:
                if not waited:
                    logger.warning("Redis unreachable at start (%r); waiting for it", error)
                waited = True
                await asyncio.sleep(delay * random.uniform(0.5, 1))
                delay = min(delay * 2, RECONNECT_MAX_DELAY_SECONDS)
                continue
            if waited:
                logger.info("Redis back; starting")
            return pool

    async def _redis_answers(self) -> bool:
        """PING Redis on a connection of its own: a pooled one that a lost Redis broke, or
        that a timed-out PING left half made, can hang where a new one answers."""
        settings = dataclasses.replace(self.redis_settings, conn_retries=0)
        try:
            async with asyncio.timeout(PING_TIMEOUT_SECONDS):
                probe = await create_pool(settings)
                await probe.aclose(close_connection_pool=True)
        except REDIS_UNREACHABLE:
            return False
        return True


def create_worker(settings: Settings, lane: str = "", **overrides: Any) -> Worker:
    """An arq worker for these settings, taking the jobs of one lane of the queue: the default
    (""), or `gpu`, the self-hosted models' jobs, a few at a time."""
    if not settings.redis_url:
        raise SystemExit(
            "darkroom worker needs DARKROOM_REDIS_URL; without it jobs run in the API."
        )
    options: dict[str, Any] = {
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": lane_queue(settings.queue_name, lane),
        "max_jobs": (
            settings.gpu_worker_concurrency if lane == GPU_QUEUE else settings.runner_concurrency
        ),
        # A dispatch wakes idle workers at once (its wake message); the poll is the backstop.
        "poll_delay": settings.queue_poll_seconds,
        # The task body enforces the job timeout itself and records it; arq's is a backstop.
        "job_timeout": settings.job_timeout_seconds + 60,
        "max_tries": settings.max_job_attempts,
        "ctx": {"settings": settings, "lane": lane},
    }
    return DarkroomWorker(**{**get_kwargs(WorkerSettings), **options, **overrides})
