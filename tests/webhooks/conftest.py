"""An app whose webhooks may reach receivers on 127.0.0.1 and retry within a second, on the
embedded default and on Postgres with a `darkroom worker` of its own (so deliveries made by the
worker process use these settings too)."""

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.support import fresh_database, postgres_settings, serving, start_worker, stop_worker

WEBHOOK_SETTINGS: dict[str, object] = {
    "url_allow": "127.0.0.1",
    "webhook_retry_schedule": "0.3,0.3,0.3,0.3",
    "webhook_timeout_seconds": 2,
    "sweep_interval_seconds": 0.3,
    "queued_grace_seconds": 2,
}


@pytest.fixture(scope="module", params=["embedded", "postgres"])
async def hooked(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app and a client for it; each test makes its own tenants."""
    data_dir = tmp_path_factory.mktemp("webhooks")
    if request.param == "embedded":
        async with serving(Settings(data_dir=data_dir, **WEBHOOK_SETTINGS)) as (app, client, _):
            yield app, client
        return
    async with fresh_database(f"webhooks_{uuid.uuid4().hex[:6]}") as url:
        settings = postgres_settings(
            url,
            data_dir,
            queue_name=f"darkroom:test:webhooks:{uuid.uuid4().hex}",
            **WEBHOOK_SETTINGS,
        )
        async with serving(settings) as (app, client, _):
            worker = start_worker(settings, data_dir / "worker.log")
            try:
                yield app, client
            finally:
                stop_worker(worker)


@pytest.fixture
def app(hooked: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    """The webhook-enabled app."""
    return hooked[0]


@pytest.fixture
def client(hooked: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    """A client of the webhook-enabled app."""
    return hooked[1]
