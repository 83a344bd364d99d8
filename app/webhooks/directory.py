"""Each tenant's active webhook endpoints, kept in memory between job events, so the events of a
tenant with no endpoints (most of them) cost no database read.

A process reads a tenant's endpoints once and keeps them until it is told they changed. Every
change (register, change, delete) is announced after its commit: to this process at once, and
with Redis on a pub/sub channel that every API and worker process sharing the queue follows.
A process keeps what it read only while it is subscribed, and forgets everything when it
subscribes again, so an announcement missed while the connection was down costs nothing; a
subscription that dies without closing is found by a PING within two KEEPALIVE_SECONDS, and
nothing is kept longer than KEEP_SECONDS in any case. Without Redis the API process is the only
one, and it hears its own changes.

An endpoint kept after it was disabled or deleted costs nothing either: its deliveries are
stopped when they come up for sending, as they always are. One registered while a process's
subscription is silently dead (found within 20 s) misses that process's events meanwhile.

API keys are kept the other way (`app.services.keys.KeyCache` polls a Redis counter each second):
a revoked key working a second longer is acceptable, whereas a job submitted right after an
endpoint is registered must already reach it, so endpoints are announced the moment they
change."""

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import WebhookEndpoint
from app.runtime.queue import RECONNECT_FIRST_DELAY_SECONDS, RECONNECT_MAX_DELAY_SECONDS

logger = logging.getLogger(__name__)

# The longest a process keeps a tenant's endpoints without reading them again.
KEEP_SECONDS = 60.0
# A silent subscription is sent a PING this often; no answer by the next one means it is dead.
KEEPALIVE_SECONDS = 10.0
MAX_KEPT_TENANTS = 10_000


@dataclass(frozen=True)
class Endpoint:
    """What deciding who receives an event needs of an endpoint."""

    id: str
    url: str
    events: frozenset[str]


class EndpointDirectory:
    """A process's view of its tenants' active endpoints; see the module docstring."""

    def __init__(
        self,
        reader: async_sessionmaker[AsyncSession],
        redis: Redis | None,
        channel: str,
    ) -> None:
        self._reader = reader
        self._redis = redis
        self._channel = channel
        self._kept: dict[str, tuple[float, tuple[Endpoint, ...]]] = {}
        # Counts what was forgotten, so a read that was under way meanwhile is not kept.
        self._forgotten = 0
        # Without Redis this process hears every change; with it, only while subscribed.
        self._following = redis is None
        self._follower: asyncio.Task[None] | None = None
        if redis is not None:
            self._follower = asyncio.create_task(self._follow(), name=f"follow {channel}")

    @property
    def is_following(self) -> bool:
        """Whether this process hears every change now, and so keeps what it reads."""
        return self._following

    async def active(self, tenant_id: str) -> Sequence[Endpoint]:
        """The tenant's endpoints that are neither disabled nor deleted, in id order."""
        kept = self._kept.get(tenant_id)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        forgotten = self._forgotten
        endpoints = await self._read(tenant_id)
        if self._following and forgotten == self._forgotten:
            if len(self._kept) >= MAX_KEPT_TENANTS:
                del self._kept[next(iter(self._kept))]
            self._kept[tenant_id] = (time.monotonic() + KEEP_SECONDS, endpoints)
        return endpoints

    async def changed(self, tenant_id: str) -> None:
        """After a change to the tenant's endpoints is committed: forget them here and tell the
        other processes. If Redis is away they read them again within KEEP_SECONDS."""
        self._forget(tenant_id)
        if self._redis is None:
            return
        try:
            await self._redis.publish(self._channel, tenant_id)
        except (RedisError, OSError):
            # The change is committed: the caller is answered whatever Redis says.
            logger.warning(
                "could not announce a change of %s's webhook endpoints (Redis away); other "
                "processes see it within %d s",
                tenant_id,
                KEEP_SECONDS,
            )

    async def close(self) -> None:
        """Stop following announcements."""
        if self._follower is not None:
            self._follower.cancel()
            with suppress(asyncio.CancelledError):
                await self._follower

    async def _read(self, tenant_id: str) -> tuple[Endpoint, ...]:
        # One read with no transaction around it.
        async with self._reader() as session:
            rows = await session.execute(
                select(WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.events)
                .where(
                    WebhookEndpoint.tenant_id == tenant_id,
                    WebhookEndpoint.disabled_at.is_(None),
                    WebhookEndpoint.deleted_at.is_(None),
                )
                .order_by(WebhookEndpoint.id)
            )
            return tuple(Endpoint(id, url, frozenset(events)) for id, url, events in rows)

    def _forget(self, tenant_id: str | None = None) -> None:
        self._forgotten += 1
        if tenant_id is None:
            self._kept.clear()
        else:
            self._kept.pop(tenant_id, None)

    async def _follow(self) -> None:
        """Stay subscribed to the announcements for the life of the process, reconnecting with
        a growing pause after a failure."""
        assert self._redis is not None
        delay = RECONNECT_FIRST_DELAY_SECONDS
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    await self._listen(pubsub)
            except Exception as error:
                logger.warning("webhook endpoints: subscription lost (%r); reconnecting", error)
            finally:
                if self._following:
                    delay = RECONNECT_FIRST_DELAY_SECONDS
                self._following = False
                self._forget()
            await asyncio.sleep(delay * random.uniform(0.5, 1))
            delay = min(delay * 2, RECONNECT_MAX_DELAY_SECONDS)

    async def _listen(self, pubsub: PubSub) -> None:
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=KEEPALIVE_SECONDS)
            if message is None:
                if pinged:
                    raise ConnectionError("Redis did not answer PING")
                pinged = True
                await pubsub.ping()
                continue
            pinged = False
            if message["type"] == "subscribe":
                # Whatever changed before now is read afresh from here on.
                self._forget()
                self._following = True
            elif message["type"] == "message":
                self._forget(_text(message["data"]))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
