"""The directory of webhook endpoints a process keeps between job events: it keeps what it read
only while it hears the announcements of changes on Redis, so a change it could not hear is read
at once, and it keeps again once Redis is back; a subscription gone silent is found by PING."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from app.db import create_engine, create_reader
from app.ids import new_id
from app.models import Tenant, WebhookEndpoint
from app.webhooks import directory as directory_module
from app.webhooks.directory import EndpointDirectory
from tests.support import PrivateRedis, wait_until

CHANNEL = "darkroom:test:webhook-endpoints"


@pytest.fixture
async def reader(postgres_url: str) -> AsyncIterator:
    engine = create_engine(postgres_url)
    try:
        yield create_reader(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def directory_on(reader, private_redis: PrivateRedis) -> AsyncIterator[EndpointDirectory]:
    """A directory as a process holds one, on the private Redis; closed with its client."""
    redis = Redis.from_url(private_redis.url)
    directory = EndpointDirectory(reader, redis, CHANNEL)
    try:
        yield directory
    finally:
        await directory.close()
        await redis.aclose()


async def add_endpoint(reader, tenant_id: str) -> str:
    """An endpoint written straight to the database, as another process would, unannounced."""
    endpoint_id = new_id("whe")
    async with reader() as session:
        if await session.get(Tenant, tenant_id) is None:
            session.add(Tenant(id=tenant_id, name=tenant_id))
            await session.flush()
        session.add(
            WebhookEndpoint(
                id=endpoint_id,
                tenant_id=tenant_id,
                url="https://hooks.example.com/darkroom",
                events=["job.succeeded"],
                secret="whsec_test",
            )
        )
        await session.commit()
    return endpoint_id


async def ids(directory: EndpointDirectory, tenant_id: str) -> list[str]:
    return [endpoint.id for endpoint in await directory.active(tenant_id)]


def following(directory: EndpointDirectory, wanted: bool) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return directory.is_following == wanted

    return check


async def test_endpoints_are_read_afresh_while_announcements_cannot_be_heard(
    private_redis: PrivateRedis, reader
):
    await private_redis.wait_until_answering()
    tenant = new_id("ten")
    async with (
        directory_on(reader, private_redis) as directory,
        directory_on(reader, private_redis) as other_process,
    ):
        await wait_until(following(directory, True), seconds=10)
        first = await ids(directory, tenant)
        unannounced = await add_endpoint(reader, tenant)
        kept = await ids(directory, tenant)
        await other_process.changed(tenant)

        async def announced() -> bool:
            return unannounced in await ids(directory, tenant)

        await wait_until(announced, seconds=5)

        private_redis.kill()
        await wait_until(following(directory, False), seconds=5)
        while_deaf = await add_endpoint(reader, tenant)
        read_while_deaf = await ids(directory, tenant)

        private_redis.start()
        await wait_until(following(directory, True), seconds=15)
        after_return = await ids(directory, tenant)
        await add_endpoint(reader, tenant)
        kept_again = await ids(directory, tenant)

    assert first == []
    assert kept == []
    assert read_while_deaf == [unannounced, while_deaf]
    assert after_return == [unannounced, while_deaf]
    assert kept_again == after_return


async def test_a_subscription_gone_silent_is_found_by_its_ping_and_nothing_is_kept_meanwhile(
    private_redis: PrivateRedis, reader, monkeypatch
):
    monkeypatch.setattr(directory_module, "KEEPALIVE_SECONDS", 0.2)
    await private_redis.wait_until_answering()
    tenant = new_id("ten")
    async with directory_on(reader, private_redis) as directory:
        await wait_until(following(directory, True), seconds=10)
        await ids(directory, tenant)
        # The connection stays open, but nothing answers on it any more.
        private_redis.pause()
        try:
            await wait_until(following(directory, False), seconds=5)
            added = await add_endpoint(reader, tenant)
            read_while_silent = await ids(directory, tenant)
        finally:
            private_redis.resume()

    assert read_while_silent == [added]
