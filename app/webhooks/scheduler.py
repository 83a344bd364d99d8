"""Where delivery attempts run, and the scan that keeps any from being lost.

With Redis, each attempt is an arq task (`deliver_webhook`), deferred until it is due, run by
`darkroom worker` processes. Embedded, attempts are tasks of the API's own event loop. Either
way the rows are the truth: the scan re-dispatches every pending delivery that is overdue,
whose message was lost or whose process died mid-attempt, so no delivery is dropped.
"""

import asyncio
import contextlib
import logging
from datetime import timedelta
from typing import Protocol

from arq.connections import ArqRedis
from sqlalchemy import select

from app.db import database_now
from app.models import DeliveryStatus, WebhookDelivery
from app.runtime.context import TaskContext
from app.runtime.periodic import Periodic, take_turn
from app.webhooks.delivery import deliver
from app.webhooks.directory import EndpointDirectory
from app.webhooks.listener import job_event_listener

logger = logging.getLogger(__name__)

DELIVER_TASK = "deliver_webhook"
SCAN_BATCH = 500


def attempt_key(delivery_id: str, attempts: int, manual: bool) -> str:
    """The queue's id for the attempt after `attempts` earlier ones: sending it twice is a no-op.
    A manual retry has its own, so a scheduled attempt still waiting does not swallow it."""
    return f"{delivery_id}.{attempts}" + (".manual" if manual else "")


class Dispatcher(Protocol):
    """Runs a delivery's next attempt after a delay."""

    async def schedule(
        self, delivery_id: str, *, attempts: int, delay_seconds: float, manual: bool = False
    ) -> None:
        """Arrange the attempt that follows `attempts` earlier ones, `delay_seconds` from now
        (`manual` for one a caller asked for)."""
        ...

    async def close(self) -> None:
        """Stop what this process runs; pending rows stay for the scan."""
        ...


class ArqDispatcher:
    """Attempts as deferred arq tasks on the job queue, for the workers to run."""

    def __init__(self, redis: ArqRedis, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name

    async def schedule(
        self, delivery_id: str, *, attempts: int, delay_seconds: float, manual: bool = False
    ) -> None:
        """Enqueue the attempt; if Redis fails the scan sends it once it is overdue."""
        try:
            await self.redis.enqueue_job(
                DELIVER_TASK,
                delivery_id,
                _job_id=attempt_key(delivery_id, attempts, manual),
                _queue_name=self.queue_name,
                _defer_by=timedelta(seconds=delay_seconds) if delay_seconds > 0 else None,
            )
        except Exception:
            logger.exception("could not enqueue webhook delivery %s; the scan will", delivery_id)

    async def close(self) -> None:
        """Nothing to stop: the Redis connection belongs to the queue."""


class LocalDispatcher:
    """Attempts as tasks of this event loop (the embedded default)."""

    def __init__(self, context: TaskContext, endpoints: EndpointDirectory) -> None:
        self.context = context
        self.endpoints = endpoints
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def schedule(
        self, delivery_id: str, *, attempts: int, delay_seconds: float, manual: bool = False
    ) -> None:
        """Start a task that sleeps until the attempt is due, then makes it."""
        key = attempt_key(delivery_id, attempts, manual)
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._attempt(key, delivery_id, delay_seconds))

    async def close(self) -> None:
        """Cancel waiting and running attempts; a claimed one becomes due again later."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _attempt(self, key: str, delivery_id: str, delay_seconds: float) -> None:
        try:
            await asyncio.sleep(delay_seconds)
            await deliver(self.context, self, self.endpoints, delivery_id)
        finally:
            self._tasks.pop(key, None)


async def redispatch_overdue(context: TaskContext, dispatcher: Dispatcher) -> int:
    """Dispatch every pending delivery overdue by more than the grace period; how many."""
    async with context.sessionmaker() as session:
        now = await database_now(session)
        grace = timedelta(seconds=context.settings.queued_grace_seconds)
        overdue = list(
            await session.execute(
                select(WebhookDelivery.id, WebhookDelivery.attempts)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now - grace,
                    # One waiting behind an earlier event of its job is sent after it.
                    WebhookDelivery.first_in_line(),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(SCAN_BATCH)
            )
        )
    for delivery_id, attempts in overdue:
        await dispatcher.schedule(delivery_id, attempts=attempts, delay_seconds=0)
    return len(overdue)


class Webhooks:
    """A process's webhook machinery: the job-event listener, the directory of endpoints it
    reads receivers from, the dispatcher its deliveries go through, and (where this process
    sweeps) the scan."""

    def __init__(
        self,
        context: TaskContext,
        dispatcher: Dispatcher,
        endpoints: EndpointDirectory,
        redis: ArqRedis | None,
        *,
        scan: bool,
    ) -> None:
        self.context = context
        self.dispatcher = dispatcher
        self.endpoints = endpoints
        self._listener = job_event_listener(dispatcher, self.endpoints)
        context.listeners.append(self._listener)
        self._scan = (
            Periodic(
                "webhook scan",
                context.settings.sweep_interval_seconds,
                lambda: self._scan_in_turn(redis),
            )
            if scan
            else None
        )

    async def _scan_in_turn(self, redis: ArqRedis | None) -> int:
        # Every worker scans, but one per interval takes the turn (see `take_turn`).
        settings = self.context.settings
        turn = f"{settings.queue_name}:webhook-scan-turn"
        if not await take_turn(redis, turn, settings.sweep_interval_seconds):
            return 0
        return await redispatch_overdue(self.context, self.dispatcher)

    async def close(self) -> None:
        """Stop listening, scanning and running attempts."""
        with contextlib.suppress(ValueError):
            self.context.listeners.remove(self._listener)
        if self._scan is not None:
            await self._scan.stop()
        await self.endpoints.close()
        await self.dispatcher.close()


def start_webhooks(context: TaskContext, redis: ArqRedis | None, *, scan: bool) -> Webhooks:
    """Webhooks for this process: on arq when given its Redis connection, else in this process."""
    channel = f"{context.settings.queue_name}:webhook-endpoints"
    endpoints = EndpointDirectory(context.reader, redis, channel)
    dispatcher: Dispatcher = (
        ArqDispatcher(redis, context.settings.queue_name)
        if redis is not None
        else LocalDispatcher(context, endpoints)
    )
    return Webhooks(context, dispatcher, endpoints, redis, scan=scan)
