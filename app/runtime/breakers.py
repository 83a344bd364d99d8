"""Vendor breaker state in Redis, so that every process of a deployment (the API and each worker)
pauses calls to a vendor once one of them has seen it fail, and one trial call among them all
decides when calls resume.

Redis is read at most once per READ_CACHE_SECONDS per vendor and process, and written only when a
breaker opens or closes, so a vendor call costs Redis next to nothing. While Redis cannot be
reached each process keeps its own state (the LocalBreakerStore it mirrors every change into)
and tries Redis again after RETRY_SECONDS: a vendor call never fails or waits long for Redis.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.config import Settings
from app.providers.breaker import BreakerState, BreakerStore, LocalBreakerStore

logger = logging.getLogger(__name__)

# How long a process reuses what it read of a vendor's state.
READ_CACHE_SECONDS = 0.5
# The longest one Redis command may hold up a vendor call.
COMMAND_TIMEOUT_SECONDS = 0.5
# After Redis failed, how long the process keeps to its own state before trying Redis again.
RETRY_SECONDS = 5.0
# A tripped mark outlives its pause by this much, for the trial call to close it; a mark nobody
# closed (no call came) then lapses and the breaker is closed.
TRIPPED_GRACE_SECONDS = 600.0

T = TypeVar("T")


class RedisBreakerStore:
    """Breaker state under `prefix` in Redis: `<prefix>:<vendor>:open` lives as long as the
    pause, `:tripped` until a call succeeds, `:trial` while a trial call is out."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.local = LocalBreakerStore()
        self._cache: dict[str, tuple[float, BreakerState]] = {}
        self._retry_at = 0.0
        self._unreachable = False

    def _key(self, vendor: str, part: str) -> str:
        return f"{self.prefix}:{vendor}:{part}"

    async def read(self, vendor: str) -> BreakerState:
        """The vendor's state, as Redis had it at most READ_CACHE_SECONDS ago."""
        cached = self._cache.get(vendor)
        if cached is not None and time.monotonic() - cached[0] < READ_CACHE_SECONDS:
            return cached[1]
        state = await self._redis(lambda: self._read(vendor))
        if state is None:
            return await self.local.read(vendor)
        self._cache[vendor] = (time.monotonic(), state)
        return state

    async def _read(self, vendor: str) -> BreakerState:
        pipeline = self.redis.pipeline(transaction=False)
        pipeline.pttl(self._key(vendor, "open"))
        pipeline.exists(self._key(vendor, "tripped"))
        open_ms, tripped = await pipeline.execute()
        return BreakerState(max(0, open_ms) / 1000, tripped=bool(tripped))

    async def trip(self, vendor: str, seconds: float) -> None:
        """Open the breaker here and in Redis."""
        await self.local.trip(vendor, seconds)
        self._cache[vendor] = (time.monotonic(), BreakerState(seconds, tripped=True))
        pipeline = self.redis.pipeline(transaction=True)
        pipeline.set(self._key(vendor, "open"), 1, px=_milliseconds(seconds))
        pipeline.set(
            self._key(vendor, "tripped"), 1, px=_milliseconds(seconds + TRIPPED_GRACE_SECONDS)
        )
        pipeline.delete(self._key(vendor, "trial"))
        await self._redis(pipeline.execute)

    async def reset(self, vendor: str) -> None:
        """Close the breaker here and in Redis."""
        await self.local.reset(vendor)
        self._cache[vendor] = (time.monotonic(), BreakerState())
        parts = ("open", "tripped", "trial")
        await self._redis(lambda: self.redis.delete(*(self._key(vendor, part) for part in parts)))

    async def claim_trial(self, vendor: str, seconds: float) -> bool:
        """SET NX on the trial key: one claim among every process; here alone without Redis."""
        key = self._key(vendor, "trial")
        claimed = await self._redis(
            lambda: self.redis.set(key, 1, px=_milliseconds(seconds), nx=True)
        )
        # SET NX answers None when the key is taken too; only a failed command marks Redis down.
        if claimed is None and not self._reachable():
            return await self.local.claim_trial(vendor, seconds)
        return bool(claimed)

    def _reachable(self) -> bool:
        return time.monotonic() >= self._retry_at

    async def _redis(self, command: Callable[[], Awaitable[T]]) -> T | None:
        """The command's result, or None (at once while Redis is known down) when Redis cannot
        be reached; one log line when that starts and one when it ends."""
        if not self._reachable():
            return None
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
                result = await command()
        except (RedisError, OSError, TimeoutError) as error:
            self._retry_at = time.monotonic() + RETRY_SECONDS
            if not self._unreachable:
                logger.warning(
                    "vendor breakers: Redis lost (%r); each process keeps its own", error
                )
            self._unreachable = True
            return None
        if self._unreachable:
            logger.info("vendor breakers: Redis back; breaker state is shared again")
        self._unreachable = False
        return result


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@asynccontextmanager
async def open_breaker_store(settings: Settings) -> AsyncIterator[BreakerStore]:
    """Redis-shared breaker state when Redis is configured (one namespace per queue, so one
    deployment's processes share it), else this process's own; for the life of a process."""
    if not settings.redis_url:
        yield LocalBreakerStore()
        return
    redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=COMMAND_TIMEOUT_SECONDS,
        socket_connect_timeout=COMMAND_TIMEOUT_SECONDS,
    )
    try:
        yield RedisBreakerStore(redis, f"{settings.queue_name}:breaker")
    finally:
        await redis.aclose()
