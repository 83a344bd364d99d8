"""Live job events: a broadcaster carries each lifecycle event from whoever publishes it (the API,
the in-process runner, a worker process on another machine) to every stream watching that job.
Redis pub/sub when Redis is configured, an in-process fan-out on the embedded default."""

import asyncio
import json
import logging
import os
import random
import secrets
import socket
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection

from app.config import Settings
from app.runtime.queue import (
    RECONNECT_FIRST_DELAY_SECONDS,
    RECONNECT_MAX_DELAY_SECONDS,
    REDIS_UNREACHABLE,
)

if TYPE_CHECKING:
    from app.models import Job, JobEventType
    from app.runtime.context import TaskContext

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "darkroom:job-events:"
SUBSCRIBE_TIMEOUT_SECONDS = 5
# A silent subscriber connection is sent a PING this often; no answer by the next one means it
# died without closing (a lost network path) and it is replaced.
KEEPALIVE_SECONDS = 30


class Subscription(Protocol):
    """The events of one job, as they are published."""

    async def next_message(self, seconds: float) -> dict[str, Any] | None:
        """The next event, or None if none came within `seconds`."""
        ...


class Broadcaster(Protocol):
    """Publishes job events and hands them to subscribers of that job."""

    async def publish(self, job_id: str, message: dict[str, Any]) -> None:
        """Send an event to every current subscriber of the job."""
        ...

    def subscribe(self, job_id: str) -> AbstractAsyncContextManager[Subscription]:
        """Listen to the job's events; every event published after entry is received."""
        ...

    async def watchers(self, job_id: str) -> int:
        """How many subscriptions to the job are open in this process."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class _QueueSubscription:
    def __init__(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.queue = queue

    async def next_message(self, seconds: float) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self.queue.get(), seconds)
        except TimeoutError:
            return None


class LocalBroadcaster:
    """Fan-out within one process: the embedded default, where the API runs the jobs itself,
    and the local half of the Redis broadcaster."""

    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    async def publish(self, job_id: str, message: dict[str, Any]) -> None:
        """Put the event on every subscriber's queue."""
        for queue in self._queues.get(job_id, ()):
            queue.put_nowait(message)

    @asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[Subscription]:
        """A queue of the job's events, removed on exit."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues[job_id].add(queue)
        try:
            yield _QueueSubscription(queue)
        finally:
            self._queues[job_id].discard(queue)
            if not self._queues[job_id]:
                del self._queues[job_id]

    async def watchers(self, job_id: str) -> int:
        """Open subscriptions to the job in this process."""
        return len(self._queues.get(job_id, ()))

    async def close(self) -> None:
        """Nothing to release."""


class RedisBroadcaster:
    """Redis pub/sub, one channel per job, so events cross processes and machines.

    A process holds one subscriber connection for all its streams, opened with the first
    stream and named `connection_name` (see CLIENT LIST). A job's channel is subscribed when
    its first local watcher arrives and unsubscribed when its last one leaves; each event that
    comes in is fanned out to the watchers' queues. A lost connection is reopened with backoff
    and every watched channel subscribed again; events published meanwhile are lost, and a
    stream's heartbeat re-read of the job is what still ends it. Publishing uses the pool."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.local = LocalBroadcaster()
        self.connection_name = (
            f"darkroom-events:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        )
        # Watched jobs, each with an event set while its channel is subscribed on the
        # current connection.
        self._subscribed: dict[str, asyncio.Event] = {}
        # Per job, the events of SUBSCRIBE commands sent on the current connection and not yet
        # confirmed, oldest first: Redis confirms in order, so each confirmation sets its own.
        self._unconfirmed: dict[str, deque[asyncio.Event]] = defaultdict(deque)
        self._connection: AbstractConnection | None = None
        # Keeps commands in the order their confirmations are expected in.
        self._commands = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._publish_failing = False

    async def publish(self, job_id: str, message: dict[str, Any]) -> None:
        """PUBLISH the event as JSON on the job's channel. While Redis cannot be reached events
        are dropped, with one log line when that starts and one when it ends; a stream's
        heartbeat re-read of the job still ends it."""
        try:
            await self.redis.publish(CHANNEL_PREFIX + job_id, json.dumps(message))
        except REDIS_UNREACHABLE as error:
            if not self._publish_failing:
                logger.warning("job events: Redis lost (%r); events are dropped meanwhile", error)
            self._publish_failing = True
            return
        if self._publish_failing:
            logger.info("job events: Redis back; events are published again")
        self._publish_failing = False

    @asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[Subscription]:
        """The job's events, once Redis has confirmed its channel is subscribed, so no event
        published afterwards is missed; ConnectionError if Redis does not confirm in time.
        The channel is left on exit, however it ends, if no other local stream watches it."""
        self._start_listening()
        try:
            async with self.local.subscribe(job_id) as subscription:
                await self._join(job_id)
                yield subscription
        finally:
            # A disconnected client cancels the stream; the shield lets the UNSUBSCRIBE still go.
            with anyio.CancelScope(shield=True):
                await self._leave(job_id)

    async def watchers(self, job_id: str) -> int:
        """Open subscriptions to the job in this process (Redis sees one, however many)."""
        return await self.local.watchers(job_id)

    async def close(self) -> None:
        """Stop listening and close the Redis connections."""
        if self._listener is not None:
            self._listener.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener
        await self.redis.aclose()

    async def _join(self, job_id: str) -> None:
        subscribed = self._subscribed.get(job_id)
        if subscribed is None:
            subscribed = self._subscribed[job_id] = asyncio.Event()
            with anyio.CancelScope(shield=True):
                await self._subscribe_channel(job_id, subscribed)
        try:
            await asyncio.wait_for(subscribed.wait(), SUBSCRIBE_TIMEOUT_SECONDS)
        except TimeoutError:
            raise ConnectionError(f"Redis did not confirm the subscription to {job_id}") from None

    async def _leave(self, job_id: str) -> None:
        if await self.local.watchers(job_id):
            return
        if self._subscribed.pop(job_id, None) is None:
            return
        async with self._commands:
            # A stream that arrived meanwhile keeps the channel (its SUBSCRIBE is queued).
            if job_id not in self._subscribed:
                await self._send("UNSUBSCRIBE", CHANNEL_PREFIX + job_id)

    async def _subscribe_channel(self, job_id: str, subscribed: asyncio.Event) -> None:
        async with self._commands:
            # Left before its turn, or no connection: a (re)connection subscribes what is
            # watched then.
            if self._subscribed.get(job_id) is not subscribed or self._connection is None:
                return
            self._unconfirmed[job_id].append(subscribed)
            await self._send("SUBSCRIBE", CHANNEL_PREFIX + job_id)

    async def _send(self, *command: str) -> None:
        connection = self._connection
        # A connection that failed is never reopened here: the listener replaces it, and
        # subscribes every watched channel on the new one.
        if connection is None or not connection.is_connected:
            return
        try:
            await connection.send_command(*command, check_health=False)
        except Exception:
            logger.warning("job events: %s failed; the listener reconnects", command[0])

    def _start_listening(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name=self.connection_name)

    async def _listen(self) -> None:
        """Keep the subscriber connection open for the life of the broadcaster: read it while
        it lasts, then open a new one after a growing pause."""
        delay = RECONNECT_FIRST_DELAY_SECONDS
        while True:
            connection = self._new_connection()
            try:
                await connection.connect()
                await self._resubscribe(connection)
                delay = RECONNECT_FIRST_DELAY_SECONDS
                await self._read(connection)
            except Exception as error:
                logger.warning(
                    "job events: Redis subscriber connection failed (%r); reconnecting", error
                )
            finally:
                self._lost(connection)
                await connection.disconnect(nowait=True)
            await asyncio.sleep(delay * random.uniform(0.5, 1))
            delay = min(delay * 2, RECONNECT_MAX_DELAY_SECONDS)

    def _new_connection(self) -> AbstractConnection:
        pool = self.redis.connection_pool
        return pool.connection_class(
            **(pool.connection_kwargs | {"client_name": self.connection_name})
        )

    async def _resubscribe(self, connection: AbstractConnection) -> None:
        async with self._commands:
            self._connection = connection
            if not self._subscribed:
                return
            for job_id, subscribed in self._subscribed.items():
                self._unconfirmed[job_id].append(subscribed)
            channels = [CHANNEL_PREFIX + job_id for job_id in self._subscribed]
            await connection.send_command("SUBSCRIBE", *channels, check_health=False)

    def _lost(self, connection: AbstractConnection) -> None:
        # Synchronous, so no command slips onto the dead connection before it is forgotten.
        if self._connection is connection:
            self._connection = None
        self._unconfirmed.clear()
        for subscribed in self._subscribed.values():
            subscribed.clear()

    async def _read(self, connection: AbstractConnection) -> None:
        pinged = False
        while True:
            reply = await connection.read_response(timeout=KEEPALIVE_SECONDS)
            if reply is None:
                if pinged:
                    raise ConnectionError("Redis did not answer PING")
                pinged = True
                await connection.send_command("PING", check_health=False)
                continue
            pinged = False
            await self._handle(reply)

    async def _handle(self, reply: Any) -> None:
        # Pub/sub replies are [kind, channel, data or count]; a PONG is anything else.
        if not isinstance(reply, list) or len(reply) != 3:
            return
        kind, channel, data = (_text(part) for part in reply)
        job_id = channel.removeprefix(CHANNEL_PREFIX)
        if kind == "subscribe":
            self._confirm(job_id)
        elif kind == "message":
            try:
                message = json.loads(data)
            except ValueError:
                logger.warning("job events: ignored a message that is not JSON on %s", channel)
                return
            await self.local.publish(job_id, message)

    def _confirm(self, job_id: str) -> None:
        unconfirmed = self._unconfirmed.get(job_id)
        if not unconfirmed:
            return
        unconfirmed.popleft().set()
        if not unconfirmed:
            del self._unconfirmed[job_id]


def _text(part: Any) -> Any:
    return part.decode() if isinstance(part, bytes) else part


def open_broadcaster(settings: Settings) -> Broadcaster:
    """Redis pub/sub when Redis is configured, else the in-process fan-out."""
    if settings.redis_url:
        return RedisBroadcaster(Redis.from_url(settings.redis_url))
    return LocalBroadcaster()


async def broadcast_event(
    context: "TaskContext", job: "Job", event: "JobEventType", data: dict[str, Any]
) -> None:
    """A TaskContext listener: pass the event on to the job's live streams."""
    await context.broadcaster.publish(job.id, {"event": event, "job_id": job.id, **data})
