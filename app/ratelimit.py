"""Per-API-key rate limits with the generic cell rate algorithm (GCRA): a key may spend its whole
quota at once, then earns one request back every window/limit seconds. With Redis one Lua script
keeps the count atomically for every API process; without it the count lives in this process.

Every authenticated response carries the RateLimit-Limit, RateLimit-Remaining and
RateLimit-Reset fields with RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers-06); a request
over the limit is answered 429 with Retry-After."""

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from fastapi import Request
from redis.asyncio import Redis
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.errors import RateLimited
from app.services.keys import hash_key

logger = logging.getLogger(__name__)

REDIS_PREFIX = "darkroom:rate-limit:"
MICROSECONDS = 1_000_000
# A process keeps at most this many keys' counts before dropping those that are full again.
LOCAL_KEYS_BEFORE_PRUNE = 10_000


@dataclass(frozen=True)
class Decision:
    """The limiter's answer to one request, and what the RateLimit fields say about it."""

    allowed: bool
    limit: int
    window_seconds: int
    remaining: int
    # Microseconds until the next request is allowed (0 when this one was) and until the whole
    # quota is back.
    retry_after_us: int
    reset_us: int

    def headers(self) -> dict[str, str]:
        """The RateLimit fields for this decision."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(_whole_seconds(self.reset_us)),
            "RateLimit-Policy": f"{self.limit};w={self.window_seconds}",
        }


def _whole_seconds(microseconds: int) -> int:
    return math.ceil(microseconds / MICROSECONDS)


class RateLimiter(Protocol):
    """Counts requests per key against one limit."""

    async def hit(self, key: str) -> Decision:
        """Count one request for `key` if the limit allows it."""
        ...


@dataclass(frozen=True)
class Quota:
    """`limit` requests per `window_seconds`, as GCRA's emission interval and burst."""

    limit: int
    window_seconds: int

    @property
    def interval_us(self) -> int:
        """Microseconds that earn back one request."""
        return max(1, self.window_seconds * MICROSECONDS // self.limit)

    @property
    def burst_us(self) -> int:
        """How far ahead of now the theoretical arrival time may run: the whole quota."""
        return self.interval_us * self.limit

    def decide(self, now_us: int, stored_tat_us: int | None) -> tuple[Decision, int | None]:
        """GCRA for a request at `now_us` given the key's stored theoretical arrival time; the
        decision and the arrival time to store (None when the request is refused)."""
        tat = max(stored_tat_us or now_us, now_us)
        new_tat = tat + self.interval_us
        allow_at = new_tat - self.burst_us
        if now_us < allow_at:
            return self.decision(False, 0, allow_at - now_us, tat - now_us), None
        remaining = (now_us - allow_at) // self.interval_us
        return self.decision(True, remaining, 0, new_tat - now_us), new_tat

    def decision(self, allowed: bool, remaining: int, retry_after: int, reset: int) -> Decision:
        """A decision under this quota."""
        return Decision(allowed, self.limit, self.window_seconds, remaining, retry_after, reset)


class LocalRateLimiter:
    """Counts in this process: the embedded default, which runs one API process."""

    def __init__(self, quota: Quota) -> None:
        self.quota = quota
        self._tats: dict[str, int] = {}

    async def hit(self, key: str) -> Decision:
        """Decide and record one request."""
        now = time.monotonic_ns() // 1000
        if len(self._tats) > LOCAL_KEYS_BEFORE_PRUNE:
            self._tats = {k: tat for k, tat in self._tats.items() if tat > now}
        decision, new_tat = self.quota.decide(now, self._tats.get(key))
        if new_tat is not None:
            self._tats[key] = new_tat
        return decision


# Quota.decide in Lua, on the Redis clock, so every API process shares one count per key.
# Returns allowed (0/1), remaining, retry-after and reset (microseconds, as strings).
GCRA_SCRIPT = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst
if now < allow_at then
  return {0, 0, tostring(allow_at - now), tostring(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((now - allow_at) / interval), '0', tostring(new_tat - now)}
"""


class RedisRateLimiter:
    """Counts in Redis, shared by every API process; the key expires once its quota is full."""

    def __init__(self, redis: Redis, quota: Quota) -> None:
        self.redis = redis
        self.quota = quota
        self._script = redis.register_script(GCRA_SCRIPT)

    async def hit(self, key: str) -> Decision:
        """Decide and record one request, atomically."""
        allowed, remaining, retry_after, reset = await self._script(
            keys=[REDIS_PREFIX + key], args=[self.quota.interval_us, self.quota.burst_us]
        )
        return self.quota.decision(
            bool(allowed), int(remaining), int(float(retry_after)), int(float(reset))
        )


@asynccontextmanager
async def open_rate_limiter(settings: Settings) -> AsyncIterator[RateLimiter | None]:
    """The limiter these settings ask for: None when limits are off, Redis when configured."""
    if settings.rate_limit_requests == 0:
        yield None
        return
    quota = Quota(settings.rate_limit_requests, settings.rate_limit_window_seconds)
    if not settings.redis_url:
        yield LocalRateLimiter(quota)
        return
    redis = Redis.from_url(settings.redis_url)
    try:
        yield RedisRateLimiter(redis, quota)
    finally:
        await redis.aclose()


async def enforce_rate_limit(request: Request, api_key: str) -> None:
    """Count the request against its API key, once however many layers ask (the idempotency
    middleware and the route's auth); RateLimited when over the limit. Fails open: a limiter
    that cannot be reached lets the request through rather than take the API down."""
    decision: Decision | None = getattr(request.state, "rate_limit", None)
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if decision is None and limiter is not None:
        try:
            decision = await limiter.hit(hash_key(api_key))
        except Exception:
            logger.warning("rate limiter unavailable; request let through", exc_info=True)
            return
        request.state.rate_limit = decision
    if decision is not None and not decision.allowed:
        seconds = max(1, _whole_seconds(decision.retry_after_us))
        error = RateLimited(
            f"This API key made more than {decision.limit} requests in "
            f"{decision.window_seconds} seconds; retry in {seconds} s."
        )
        error.headers = {"Retry-After": str(seconds)}
        raise error


class RateLimitHeaders:
    """ASGI middleware that adds the RateLimit fields to every response whose request was
    counted, whatever answered it: a route, an error handler, or a 429."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            decision = scope.get("state", {}).get("rate_limit")
            if message["type"] == "http.response.start" and decision is not None:
                MutableHeaders(scope=message).update(decision.headers())
            await send(message)

        await self.app(scope, receive, send_with_headers)
