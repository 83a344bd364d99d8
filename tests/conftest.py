"""Shared fixtures: a fresh Postgres database, a real arq worker process on Redis, and the app
on both backends (Postgres + Redis + arq, and the embedded SQLite + in-process runner)."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.cli import migrate
from app.config import Settings
from app.main import create_app
from app.services.keys import create_key

POSTGRES_URL = os.environ.get(
    "DARKROOM_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("DARKROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FINAL_STATUSES = {"succeeded", "failed", "canceled"}
RUN_ID = uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Asset directory shared by the Postgres-backed API and its worker processes."""
    return tmp_path_factory.mktemp("darkroom-data")


@pytest.fixture(scope="session")
async def postgres_url(data_dir: Path) -> AsyncIterator[str]:
    """A database of its own for this run, migrated with `darkroom migrate`, dropped after."""
    name = f"darkroom_test_{RUN_ID}"
    admin_dsn = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(False)
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(False)
    await asyncio.to_thread(migrate, Settings(database_url=url, data_dir=data_dir))
    try:
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def postgres_settings(postgres_url: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings of the Postgres + Redis deployment used by the tests."""
    values: dict[str, object] = {
        "database_url": postgres_url,
        "redis_url": REDIS_URL,
        "queue_name": f"darkroom:test:{RUN_ID}",
        "data_dir": data_dir,
        "sweep_interval_seconds": 0.5,
        "queued_grace_seconds": 2,
    }
    return Settings(**(values | overrides))


def worker_environment(settings: Settings) -> dict[str, str]:
    """The environment that makes `darkroom worker` use these settings."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            environment[f"DARKROOM_{name.upper()}"] = str(value)
    return environment


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """A real `darkroom worker` process (arq on Redis) for these settings."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main(['worker'])"],
            env=worker_environment(settings),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Stop a worker gracefully, or kill it."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def worker(postgres_url: str, data_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One worker process serving the shared test queue for the whole run."""
    process = start_worker(postgres_settings(postgres_url, data_dir), data_dir / "worker.log")
    yield process
    stop_worker(process)


@pytest.fixture(params=["embedded", "postgres"])
async def app(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    postgres_url: str,
    data_dir: Path,
    worker: subprocess.Popen[bytes],
) -> AsyncIterator[FastAPI]:
    """The app on the embedded default (SQLite, in-process runner) and on Postgres + arq."""
    if request.param == "postgres":
        settings = postgres_settings(postgres_url, data_dir)
    else:
        settings = Settings(
            data_dir=tmp_path / "var", sweep_interval_seconds=0.2, queued_grace_seconds=1
        )
        await asyncio.to_thread(migrate, settings)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://darkroom.test") as client:
        yield client


async def new_api_key(app: FastAPI) -> dict[str, str]:
    """Authorization headers for a brand-new tenant."""
    async with app.state.sessionmaker() as session:
        key = await create_key(session, f"tenant-{uuid.uuid4().hex}")
        await session.commit()
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def auth(app: FastAPI) -> dict[str, str]:
    """Headers of the test's own tenant."""
    return await new_api_key(app)


@pytest.fixture
async def other_auth(app: FastAPI) -> dict[str, str]:
    """Headers of a second, unrelated tenant."""
    return await new_api_key(app)


async def wait_for_final(
    client: httpx.AsyncClient, headers: dict[str, str], job_id: str, timeout: float = 60
) -> tuple[dict, list[str]]:
    """Poll GET /v1/jobs/{id} until the job is final; the job and every status seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        job = response.json()
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in FINAL_STATUSES:
            return job, seen
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} not final after {timeout}s; statuses seen: {seen}")
