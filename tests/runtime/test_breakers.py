"""Vendor breaker state shared through Redis: two processes' registries (here two registries on
one real Redis) see each other's open breaker, and a Redis that cannot be reached leaves each
with its own breaker and never fails a vendor call."""

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.config import Settings
from app.errors import ProviderOverloaded
from app.providers.base import GenerateCall, Provider
from app.providers.breaker import fallback_available
from app.providers.registry import create_registry
from app.runtime.breakers import RedisBreakerStore
from tests.fakes.openai_images import API_KEY, FakeOpenAIImages, server_error
from tests.support import REDIS_URL, free_port

THRESHOLD = 3
CALL = GenerateCall(model="gpt-image-2", prompt="a kite", width=1024, height=1024, seed=1)


@pytest.fixture
async def vendor() -> AsyncIterator[FakeOpenAIImages]:
    """A fake OpenAI for one test."""
    async with FakeOpenAIImages() as fake:
        yield fake


def openai_of(vendor: FakeOpenAIImages, store: RedisBreakerStore, tmp_path: Path) -> Provider:
    """The openai provider of a registry whose breakers keep their state in `store`: three
    failures in a row open one for a second."""
    settings = Settings(
        data_dir=tmp_path,
        openai_api_key=API_KEY,
        openai_base_url=vendor.base_url,
        provider_max_retries=THRESHOLD - 1,
        provider_retry_backoff_seconds=0.01,
        provider_breaker_threshold=THRESHOLD,
        provider_breaker_cooldown_seconds=1.0,
    )
    provider, _ = create_registry(settings, store).resolve("openai/gpt-image-2")
    return provider


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """The test Redis, closed afterwards."""
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_a_breaker_one_process_opened_holds_back_the_other(vendor, redis, tmp_path) -> None:
    prefix = f"darkroom:test:breaker:{uuid.uuid4().hex}"
    first = openai_of(vendor, RedisBreakerStore(redis, prefix), tmp_path)
    other_process = Redis.from_url(REDIS_URL)
    second = openai_of(vendor, RedisBreakerStore(other_process, prefix), tmp_path)
    vendor.script(*[server_error(500)] * THRESHOLD)
    with pytest.raises(ProviderOverloaded):
        await first.generate(CALL)  # opens the breaker, for both

    assert await redis.exists(f"{prefix}:openai:tripped")
    with fallback_available(), pytest.raises(ProviderOverloaded) as told:
        await second.generate(CALL)
    assert told.value.extensions["circuit"] == "open"
    assert len(vendor.received) == THRESHOLD  # the second sent nothing while it was open

    result = await second.generate(CALL)  # waits out the pause and makes the trial call

    assert result.image.size == (1024, 1024)
    assert len(vendor.received) == THRESHOLD + 1
    assert not await redis.exists(f"{prefix}:openai:tripped")  # the trial closed it for both
    await first.generate(CALL)
    assert len(vendor.received) == THRESHOLD + 2
    await other_process.aclose()


async def test_without_redis_each_process_keeps_its_own_breaker(vendor, tmp_path, caplog) -> None:
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    store = RedisBreakerStore(unreachable, "darkroom:test:breaker")
    provider = openai_of(vendor, store, tmp_path)
    caplog.set_level(logging.INFO, "app.runtime.breakers")

    result = await provider.generate(CALL)  # Redis down costs the call nothing

    assert result.image.size == (1024, 1024)
    vendor.script(*[server_error(500)] * THRESHOLD)
    with pytest.raises(ProviderOverloaded):
        await provider.generate(CALL)
    with fallback_available(), pytest.raises(ProviderOverloaded) as told:
        await provider.generate(CALL)  # its own breaker opened
    assert told.value.extensions["circuit"] == "open"
    assert len(vendor.received) == 1 + THRESHOLD
    lines = [r.getMessage() for r in caplog.records if r.name == "app.runtime.breakers"]
    assert len(lines) == 1 and lines[0].startswith("vendor breakers: Redis lost")
    await unreachable.aclose()
