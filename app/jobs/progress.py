"""Live job events: a broadcaster carries each lifecycle event from whoever publishes it (the API,
the in-process runner, a worker process on another machine) to every stream watching that job.
Redis pub/sub when Redis is configured, an in-process fan-out on the embedded default."""

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from app.config import Settings

if TYPE_CHECKING:
    from app.jobs.context import TaskContext
    from app.models import Job

CHANNEL_PREFIX = "darkroom:job-events:"
SUBSCRIBE_TIMEOUT_SECONDS = 5


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
        """How many subscriptions to the job are open (in this process or, on Redis, anywhere)."""
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
    """Fan-out within one process: the embedded default, where the API runs the jobs itself."""

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


class _PubSubSubscription:
    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub

    async def next_message(self, seconds: float) -> dict[str, Any] | None:
        deadline = anyio.current_time() + seconds
        while (remaining := deadline - anyio.current_time()) > 0:
            message = await self.pubsub.get_message(timeout=remaining)
            if message is not None and message["type"] == "message":
                return json.loads(message["data"])
        return None


class RedisBroadcaster:
    """Redis pub/sub, one channel per job, so events cross processes and machines."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def publish(self, job_id: str, message: dict[str, Any]) -> None:
        """PUBLISH the event as JSON on the job's channel."""
        await self.redis.publish(CHANNEL_PREFIX + job_id, json.dumps(message))

    @asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[Subscription]:
        """SUBSCRIBE on a connection of its own, confirmed before this returns, so no event
        published afterwards is missed; the connection is closed on exit, however it ends."""
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(CHANNEL_PREFIX + job_id)
            if await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT_SECONDS) is None:
                raise ConnectionError(f"Redis did not confirm the subscription to {job_id}")
            yield _PubSubSubscription(pubsub)
        finally:
            # A disconnected client cancels the stream; the shield lets the close still run.
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()

    async def watchers(self, job_id: str) -> int:
        """Subscribers to the job's channel across every process (PUBSUB NUMSUB)."""
        counts = await self.redis.pubsub_numsub(CHANNEL_PREFIX + job_id)
        return int(counts[0][1])

    async def close(self) -> None:
        """Close the Redis connections."""
        await self.redis.aclose()


def open_broadcaster(settings: Settings) -> Broadcaster:
    """Redis pub/sub when Redis is configured, else the in-process fan-out."""
    if settings.redis_url:
        return RedisBroadcaster(Redis.from_url(settings.redis_url))
    return LocalBroadcaster()


async def broadcast_event(
    context: "TaskContext", job: "Job", event: str, data: dict[str, Any]
) -> None:
    """A TaskContext listener: pass the event on to the job's live streams."""
    await context.broadcaster.publish(job.id, {"event": event, "job_id": job.id, **data})
