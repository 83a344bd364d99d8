"""Helpers for tests: deployment settings, worker and server processes, API keys, databases,
polling, event streams, and the mark that runs a backend-independent test on the embedded
backend only."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.cli import MIGRATIONS, migrate
from app.config import Settings
from app.main import create_app
from app.models import ApiKey, Job
from app.services.keys import create_key, hash_key
from app.storage import content_key

POSTGRES_URL = os.environ.get(
    "DARKROOM_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("DARKROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FINAL_STATUSES = {"succeeded", "failed", "canceled"}
RUN_ID = uuid.uuid4().hex[:10]


def embedded_only(fixture: str = "app") -> pytest.MarkDecorator:
    """Mark a test (or a module, as its `pytestmark`) whose behaviour does not depend on the
    backend: `fixture`, parametrized over both backends, gives it the embedded one only.
    Whatever needs Postgres and a worker (leases, locks, pub/sub, concurrent requests, work done
    by another process, SQL that differs between the backends) stays on both."""
    return pytest.mark.parametrize(fixture, ["embedded"], indirect=True)


def postgres_settings(postgres_url: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings of the Postgres + Redis deployment used by the tests."""
    values: dict[str, object] = {
        "database_url": postgres_url,
        "redis_url": REDIS_URL,
        "queue_name": f"darkroom:test:{RUN_ID}",
        "data_dir": data_dir,
        "sweep_interval_seconds": 0.5,
        "queue_poll_seconds": 0.05,
        "queued_grace_seconds": 2,
        "signing_secret": "darkroom-test-signing-secret",
        # Workers started by the tests serve no metrics unless a test gives one a port.
        "worker_metrics_port": 0,
    }
    return Settings(**(values | overrides))


def bucket_settings(endpoint: str, bucket: str, prefix: str) -> dict[str, object]:
    """Settings that put assets in `bucket` under `prefix` on the S3-compatible server at
    `endpoint` (moto's, which checks no credentials but needs some to sign with)."""
    return {
        "storage_url": f"s3://{bucket}/{prefix}",
        "storage_endpoint": endpoint,
        "storage_region": "us-east-1",
        "storage_access_key_id": "test-key-id",
        "storage_secret_access_key": "test-secret",
    }


def darkroom_environment(settings: Settings) -> dict[str, str]:
    """The environment that makes a `darkroom` process use these settings."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_")}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is not None:
            environment[f"DARKROOM_{name.upper()}"] = str(value)
    return environment


def darkroom_command(*arguments: str) -> list[str]:
    """The `darkroom` command line with these arguments, run by this interpreter."""
    return [sys.executable, "-c", f"from app.cli import main; main({list(arguments)!r})"]


def start_darkroom(
    command: str, settings: Settings, log: Path, *options: str
) -> subprocess.Popen[bytes]:
    """A real `darkroom <command> <options>` process for these settings, its output appended
    to `log`."""
    with log.open("ab") as output:
        return subprocess.Popen(
            darkroom_command(command, *options),
            env=darkroom_environment(settings),
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """A real `darkroom worker` process (arq on Redis) for these settings."""
    return start_darkroom("worker", settings, log)


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Stop a worker gracefully, or kill it."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_server(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """A real `darkroom serve` process for these settings, its output appended to `log`."""
    return start_darkroom("serve", settings, log)


def run_cli(settings: Settings, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run `darkroom <arguments>` for these settings to its end; its exit code and output."""
    return subprocess.run(
        darkroom_command(*arguments),
        env=darkroom_environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_api_key(settings: Settings, tenant: str) -> str:
    """A new API key for `tenant`, minted with `darkroom keys create` as an operator would."""
    created = run_cli(settings, "keys", "create", "--tenant", tenant)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


def start_s3_server(port: int, log: Path) -> subprocess.Popen[bytes]:
    """moto's standalone S3-compatible server on 127.0.0.1:`port`, answering once this returns."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the S3 server exited; see {log}"
        try:
            httpx.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    stop_worker(process)
    raise AssertionError("the S3 server did not answer within 60 s")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def wait_until_serving(base_url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until the `darkroom serve` process answers /healthz at `base_url`."""
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, "darkroom serve exited"
            try:
                if (await client.get(f"{base_url}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("darkroom serve did not answer within 60 s")


@asynccontextmanager
async def darkroom_serve(
    settings: Settings, tenant: str, log: Path, *, wait: bool = True
) -> AsyncIterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """A real `darkroom serve` process for these settings, its output appended to `log`, and a
    new API key for `tenant`: (base URL, key, process), the process stopped afterwards.
    With `wait=False` it comes back as soon as it is started, so that the caller can do slow
    work while it boots and then `wait_until_serving` itself."""
    key = await asyncio.to_thread(cli_api_key, settings, tenant)
    process = start_server(settings, log)
    base_url = f"http://127.0.0.1:{settings.port}"
    try:
        if wait:
            await wait_until_serving(base_url, process)
        yield base_url, key, process
    finally:
        stop_worker(process)


async def new_api_key(app: FastAPI) -> dict[str, str]:
    """Authorization headers for a brand-new tenant."""
    async with app.state.sessionmaker() as session:
        key = await create_key(session, f"tenant-{uuid.uuid4().hex}")
        await session.commit()
    return {"Authorization": f"Bearer {key}"}


async def wait_for_status(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    job_id: str,
    statuses: set[str],
    seconds: float = 60,
) -> tuple[dict, list[str]]:
    """Poll GET /v1/jobs/{id} until its status is one of `statuses`; the job and every status
    seen on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        job = response.json()
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in statuses:
            return job, seen
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} not in {statuses} after {seconds}s; seen: {seen}")


async def wait_for_final(
    client: httpx.AsyncClient, headers: dict[str, str], job_id: str, seconds: float = 60
) -> tuple[dict, list[str]]:
    """Poll until the job is final; the job and every status seen."""
    return await wait_for_status(client, headers, job_id, FINAL_STATUSES, seconds)


async def tenant_of(app: FastAPI, headers: dict[str, str]) -> str:
    """The tenant id behind a test's Authorization header."""
    async with app.state.sessionmaker() as session:
        key = headers["Authorization"].removeprefix("Bearer ")
        tenant_id = await session.scalar(
            select(ApiKey.tenant_id).where(ApiKey.key_hash == hash_key(key))
        )
    assert tenant_id is not None
    return tenant_id


async def insert_job(app: FastAPI, job: Job) -> str:
    """Commit a job row directly, bypassing the API (and so the queue)."""
    async with app.state.sessionmaker() as session:
        session.add(job)
        await session.commit()
    return job.id


async def is_stored(app: FastAPI, content_hash: str, image_format: str = "png") -> bool:
    """Whether the app's asset store (its directory or its bucket) holds this content."""
    try:
        await app.state.storage.get(content_key(content_hash, image_format))
    except FileNotFoundError:
        return False
    return True


async def wait_until(condition: Callable[[], Awaitable[bool]], seconds: float) -> None:
    """Poll an async condition until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met after {seconds}s")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def fresh_database(suffix: str) -> AsyncIterator[str]:
    """An empty Postgres database of this run's own (its SQLAlchemy URL), dropped afterwards."""
    name = f"darkroom_test_{RUN_ID}_{suffix}"
    # The maintenance database exists on every server, whatever the test URL names.
    admin_url = make_url(POSTGRES_URL).set(drivername="postgresql", database="postgres")
    admin = await asyncpg.connect(admin_url.render_as_string(False))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def empty_database(backend: str, name: str, directory: Path) -> AsyncIterator[str]:
    """The SQLAlchemy URL of an empty database on `backend`: a Postgres database of this run's
    own, dropped afterwards, or a SQLite file in `directory`."""
    if backend == "postgres":
        async with fresh_database(name) as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{directory / f'{name}.db'}"


def upgrade(settings: Settings, revision: str) -> None:
    """Migrate the settings' database up to `revision` only: the schema an old deployment had,
    for a test of what a later migration does to its rows."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = str(settings.database_url)
    command.upgrade(config, revision)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, dict]]:
    """An app for these settings (migrated and started), a client for it, and a tenant's
    Authorization headers."""
    await asyncio.to_thread(migrate, settings)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        auth = await new_api_key(application)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://darkroom.test"
        ) as client:
            yield application, client, auth


@asynccontextmanager
async def live_server(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the (already started) app served by a real uvicorn on a free port, so that
    responses stream as they are written and a closed connection is a real disconnect."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    serve = asyncio.create_task(server.serve())
    await wait_until(lambda: _started(server), 10)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await serve


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def read_events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """The events of an SSE response as dicts of their fields, as they arrive."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


async def events_acting_on_the_first(
    app: FastAPI,
    auth: dict[str, str],
    job_id: str,
    act: Callable[[httpx.AsyncClient], Awaitable[None]],
) -> list[dict[str, str]]:
    """Every event of the job's live stream, calling `act` with a client of the same server once
    the first has arrived (the stream's current state)."""
    events = []
    async with (
        asyncio.timeout(30),
        live_server(app) as http,
        http.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth) as response,
    ):
        async for event in read_events(response):
            events.append(event)
            if len(events) == 1:
                await act(http)
    return events


REPO_ROOT = Path(__file__).resolve().parents[1]


def fresh_process_output(code: str, hash_seed: str = "4242") -> str:
    """What `python -c code` prints in a new process run from the repository with its own
    PYTHONHASHSEED: equal output proves a result depends on nothing process-specific, such as
    Python's salted str hash."""
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return completed.stdout.strip()


class PrivateRedis:
    """A redis-server of a test's (or a bench's) own, without persistence, so a restart comes
    back empty: the one to kill, never the shared one."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def pause(self) -> None:
        """Stop the server without closing its connections: a network path gone silent."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    async def wait_until_answering(self) -> None:
        redis = Redis.from_url(self.url)
        try:

            async def answers() -> bool:
                try:
                    return bool(await redis.ping())
                except (OSError, RedisError):
                    return False

            await wait_until(answers, seconds=10)
        finally:
            await redis.aclose()


def metric_value(exposition: str, sample: str, **labels: str) -> float:
    """The value of one sample (`darkroom_jobs_submitted_total`, say) with exactly these labels
    in a Prometheus text exposition; 0 when the series is not there yet."""
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == sample and found.labels == labels:
                return found.value
    return 0.0


def most_at_once(jobs: list[dict]) -> int:
    """The most of these jobs (as the jobs API shows them) running at one instant, from their
    start and finish times: the database's clock, shared by every worker."""
    edges = []
    for job in jobs:
        edges.append((datetime.fromisoformat(job["started_at"]), 1))
        edges.append((datetime.fromisoformat(job["finished_at"]), -1))
    running = peak = 0
    # At the same instant a finish comes before a start.
    for _, step in sorted(edges):
        running += step
        peak = max(peak, running)
    return peak
