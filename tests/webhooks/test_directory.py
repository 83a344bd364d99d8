"""The directory of webhook endpoints a process keeps between job events: it keeps what it read
only while it hears the announcements of changes on Redis, so a change it could not hear is read
at once, and it keeps again once Redis is back."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.cli import migrate
from app.db import create_engine, create_reader
from app.ids import new_id
from app.models import Tenant, WebhookEndpoint
from app.webhooks.directory import EndpointDirectory
from tests.support import PrivateRedis, fresh_database, postgres_settings, wait_until

CHANNEL = "darkroom:test:webhook-endpoints"


@pytest.fixture
async def reader(tmp_path: Path) -> AsyncIterator:
    async with fresh_database("directory") as url:
        await asyncio.to_thread(migrate, postgres_settings(url, tmp_path))
        engine = create_engine(url)
        try:
            yield create_reader(engine)
        finally:
            await engine.dispose()


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


async def test_endpoints_are_read_afresh_while_announcements_cannot_be_heard(
    private_redis: PrivateRedis, reader
):
    await private_redis.wait_until_answering()
    tenant = new_id("ten")
    directory = EndpointDirectory(reader, Redis.from_url(private_redis.url), CHANNEL)
    other_process = EndpointDirectory(reader, Redis.from_url(private_redis.url), CHANNEL)
    try:
        await wait_until(following(directory, True), seconds=10)
        first = await ids(directory, tenant)
        unannounced = await add_endpoint(reader, tenant)
        kept = await ids(directory, tenant)
        await other_process.changed(tenant)
        await wait_until(lambda: _has(directory, tenant, unannounced), seconds=5)

        private_redis.kill()
        await wait_until(following(directory, False), seconds=5)
        while_deaf = await add_endpoint(reader, tenant)
        read_while_deaf = await ids(directory, tenant)

        private_redis.start()
        await wait_until(following(directory, True), seconds=15)
        after_return = await ids(directory, tenant)
        await add_endpoint(reader, tenant)
        kept_again = await ids(directory, tenant)
    finally:
        await directory.close()
        await other_process.close()

    assert first == []
    assert kept == []
    assert read_while_deaf == [unannounced, while_deaf]
    assert after_return == [unannounced, while_deaf]
    assert kept_again == after_return


def following(directory: EndpointDirectory, wanted: bool) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return directory.is_following == wanted

    return check


async def _has(directory: EndpointDirectory, tenant_id: str, endpoint_id: str) -> bool:
    return endpoint_id in await ids(directory, tenant_id)
