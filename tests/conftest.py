"""Shared fixtures: a fresh Postgres database, a real S3-compatible server with a bucket, a real
arq worker process on Redis, and the app on both backends: Postgres + Redis + arq with assets in
the bucket (API and worker share nothing else), and the embedded SQLite + in-process runner with
assets in a local directory."""

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.cli import migrate
from app.config import Settings
from app.main import create_app
from tests.support import (
    RUN_ID,
    PrivateRedis,
    bucket_settings,
    free_port,
    fresh_database,
    new_api_key,
    postgres_settings,
    start_s3_server,
    start_worker,
    stop_worker,
)

S3_BUCKET = "darkroom-test"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data dir of the Postgres-backed API (its assets are in the bucket), and of the workers
    that tests start on local storage of their own."""
    return tmp_path_factory.mktemp("darkroom-data")


@pytest.fixture(scope="session")
def embedded_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An embedded database file migrated once with `darkroom migrate`. Each test gets a copy of
    it: copying takes under a millisecond, migrating about fifty."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("embedded-database"))
    migrate(settings)
    return database_file(settings)


def database_file(settings: Settings) -> Path:
    """The SQLite file of embedded settings."""
    database = make_url(str(settings.database_url)).database
    assert database is not None
    return Path(database)


@pytest.fixture(scope="session")
async def postgres_url(data_dir: Path) -> AsyncIterator[str]:
    """A database of its own for this run, migrated with `darkroom migrate`, dropped after."""
    async with fresh_database("main") as url:
        await asyncio.to_thread(migrate, Settings(database_url=url, data_dir=data_dir))
        yield url


@pytest.fixture(scope="session")
def bucket(s3_endpoint: str) -> dict[str, object]:
    """Storage settings of the Postgres half of the suite: the bucket, under a prefix of this
    run."""
    return bucket_settings(s3_endpoint, S3_BUCKET, f"{RUN_ID}-suite")


@pytest.fixture(scope="session")
def deployment_settings(postgres_url: str, data_dir: Path, bucket: dict[str, object]) -> Settings:
    """Settings of the Postgres-backed API: this run's database, Redis and the shared test
    queue, and assets in the bucket."""
    return postgres_settings(postgres_url, data_dir, **bucket)


@pytest.fixture(scope="session")
def worker_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data dir of the suite's worker process: its own, not the API's."""
    return tmp_path_factory.mktemp("worker")


@pytest.fixture(scope="session")
def worker(
    deployment_settings: Settings, worker_data_dir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """One worker process serving the shared test queue for the whole run, in a data dir of its
    own: it shares only Postgres, Redis and the bucket with the API."""
    directory = worker_data_dir
    settings = deployment_settings.model_copy(update={"data_dir": directory})
    process = start_worker(settings, directory / "worker.log")
    yield process
    stop_worker(process)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (moto's) for the run, with the bucket `S3_BUCKET`."""
    port = free_port()
    log = tmp_path_factory.mktemp("s3") / "s3.log"
    process = start_s3_server(port, log)
    endpoint = f"http://127.0.0.1:{port}"
    # moto checks no signature, so the bucket is made with a plain PUT.
    httpx.put(f"{endpoint}/{S3_BUCKET}").raise_for_status()
    yield endpoint
    stop_worker(process)


@pytest.fixture(params=["embedded", "postgres"])
async def app(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    embedded_database: Path,
    deployment_settings: Settings,
    worker: subprocess.Popen[bytes],
) -> AsyncIterator[FastAPI]:
    """The app on the embedded default (SQLite, in-process runner, a local asset directory) and
    on Postgres + arq + the bucket; a test marked `embedded_only()` gets the embedded one alone."""
    if request.param == "postgres":
        settings = deployment_settings
    else:
        settings = Settings(
            data_dir=tmp_path / "var", sweep_interval_seconds=0.2, queued_grace_seconds=1
        )
        settings.data_dir.mkdir()
        shutil.copyfile(embedded_database, database_file(settings))
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client speaking to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://darkroom.test") as client:
        yield client


@pytest.fixture
async def auth(app: FastAPI) -> dict[str, str]:
    """Headers of the test's own tenant."""
    return await new_api_key(app)


@pytest.fixture
async def other_auth(app: FastAPI) -> dict[str, str]:
    """Headers of a second, unrelated tenant."""
    return await new_api_key(app)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, started, to kill and restart; stopped at the end."""
    server = PrivateRedis(free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()
