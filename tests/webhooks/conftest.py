"""An app whose webhooks may reach receivers on 127.0.0.1 and retry within a second, on the
embedded default and on Postgres with a `darkroom worker` of its own (so deliveries made by the
worker process use these settings too), the two sharing only Postgres, Redis and the bucket."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

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


@asynccontextmanager
async def serving_on(
    backend: str, data_dir: Path, name: str, values: dict[str, object], bucket: dict[str, object]
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, dict]]:
    """The app with these settings, a client and a tenant, on the embedded default (assets in
    `data_dir`) or on Postgres with a `darkroom worker` of its own in a data dir of its own and
    assets in the bucket."""
    if backend == "embedded":
        async with serving(Settings(data_dir=data_dir, **values)) as served:
            yield served
        return
    async with fresh_database(f"{name}_{uuid.uuid4().hex[:6]}") as url:
        queue_name = f"darkroom:test:{name}:{uuid.uuid4().hex}"
        settings = postgres_settings(url, data_dir, queue_name=queue_name, **values, **bucket)
        worker_dir = data_dir / "worker"
        worker_dir.mkdir()
        async with serving(settings) as served:
            worker_settings = settings.model_copy(update={"data_dir": worker_dir})
            worker = start_worker(worker_settings, worker_dir / "worker.log")
            try:
                yield served
            finally:
                stop_worker(worker)


@pytest.fixture(scope="module", params=["embedded", "postgres"])
async def hooked(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    bucket: dict[str, object],
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app and a client for it; each test makes its own tenants."""
    data_dir = tmp_path_factory.mktemp("webhooks")
    async with serving_on(request.param, data_dir, "webhooks", WEBHOOK_SETTINGS, bucket) as served:
        app, client, _ = served
        yield app, client


@pytest.fixture
def app(hooked: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    """The webhook-enabled app."""
    return hooked[0]


@pytest.fixture
def client(hooked: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    """A client of the webhook-enabled app."""
    return hooked[1]
