"""A Redis outage: the worker and the API ride it out, and every job in flight still finishes."""

import asyncio
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from app.cli import migrate
from app.jobs.worker import create_worker
from app.main import create_app
from app.runtime.progress import RedisBroadcaster
from tests.support import (
    FINAL_STATUSES,
    PrivateRedis,
    free_port,
    fresh_database,
    new_api_key,
    postgres_settings,
    start_worker,
    stop_worker,
    wait_for_status,
    wait_until,
)

OUTAGE_SECONDS = 3
# The goal: every job in flight is done this soon after Redis returns.
RECOVERY_SECONDS = 30


@asynccontextmanager
async def app_on(private_redis: PrivateRedis, data_dir: Path, **settings: Any) -> AsyncIterator:
    """An app on the private Redis and a database of its own, started (whether or not Redis
    answers), with these settings over the suite's."""
    async with fresh_database("outage") as url:
        values = postgres_settings(
            url,
            data_dir,
            redis_url=private_redis.url,
            queue_name=f"darkroom:test:outage:{uuid.uuid4().hex}",
            rate_limit_requests=0,
            **settings,
        )
        await asyncio.to_thread(migrate, values)
        application = create_app(values)
        async with application.router.lifespan_context(application):
            yield application


@pytest.fixture
async def outage_app(private_redis, data_dir) -> AsyncIterator:
    """An app on the private Redis with the default sweep."""
    await private_redis.wait_until_answering()
    # Defaults, too slow to matter: jobs lost with Redis are re-sent once it is back.
    async with app_on(
        private_redis, data_dir, sweep_interval_seconds=15, queued_grace_seconds=60
    ) as application:
        yield application


async def test_worker_and_api_ride_out_a_redis_outage_and_every_job_finishes(
    outage_app, private_redis, data_dir
):
    app = outage_app
    auth = await new_api_key(app)
    log = data_dir / f"outage-worker-{uuid.uuid4().hex}.log"
    worker = start_worker(app.state.settings, log)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://darkroom.test"
        ) as client:

            async def submit(size: str, n: int) -> dict:
                body = {
                    "prompt": "lighthouse at dusk",
                    "model": "local/draft",
                    "size": size,
                    "n": n,
                }
                response = await client.post("/v1/generate", json=body, headers=auth)
                assert response.status_code == 202, response.text
                return response.json() | {"n": n}

            slow = [await submit("2048x2048", 4)]
            before = slow + [await submit("512x512", 2) for _ in range(3)]
            for job in slow:
                await wait_for_status(client, auth, job["id"], {"running"}, seconds=30)

            private_redis.kill()
            assert (await client.get("/readyz")).status_code == 503
            during = [await submit("512x512", 2) for _ in range(4)]
            await asyncio.sleep(OUTAGE_SECONDS)
            private_redis.start()
            await private_redis.wait_until_answering()
            returned = time.monotonic()

            finals = [
                (await wait_for_status(client, auth, job["id"], FINAL_STATUSES, seconds=40))[0]
                for job in before + during
            ]
            recovery = time.monotonic() - returned
            assert (await client.get("/readyz")).status_code == 200
    finally:
        alive = worker.poll() is None
        stop_worker(worker)

    output = log.read_text()
    assert alive, output
    for job, final in zip(before + during, finals, strict=True):
        assert final["status"] == "succeeded", final
        assert len(final["outputs"]) == job["n"]
    # The running jobs went on through the outage instead of being run again.
    assert [final["attempts"] for final in finals[: len(slow)]] == [1] * len(slow)
    assert recovery < RECOVERY_SECONDS, f"{recovery:.1f} s after Redis returned"
    # One line when Redis is lost and one when it is back, not one per poll, sweep or event.
    assert output.count("app.jobs.worker Redis lost") == 1, output
    assert output.count("app.jobs.worker Redis back") == 1, output
    assert output.count("job events: Redis lost") <= 1, output
    assert output.count("sweep failed") <= 1, output
    print(f"all jobs done {recovery:.1f} s after Redis returned")


async def test_a_worker_stopped_during_an_outage_closes_cleanly(
    outage_app, private_redis, data_dir
):
    log = data_dir / f"outage-stop-{uuid.uuid4().hex}.log"
    worker = start_worker(outage_app.state.settings, log)
    try:
        await wait_until(lambda: _logged(log, "Starting worker"), seconds=30)
        private_redis.kill()
        await wait_until(lambda: _logged(log, "app.jobs.worker Redis lost"), seconds=10)
        worker.send_signal(signal.SIGTERM)
        returncode = await asyncio.to_thread(worker.wait, 20)
    finally:
        if worker.poll() is None:
            stop_worker(worker)
    output = log.read_text()
    assert returncode == 0, output
    assert "Traceback" not in output, output


async def test_a_worker_started_while_redis_is_down_waits_for_it(
    outage_app, private_redis, data_dir
):
    app = outage_app
    auth = await new_api_key(app)
    log = data_dir / f"outage-start-{uuid.uuid4().hex}.log"
    private_redis.kill()
    worker = start_worker(app.state.settings, log)
    transport = httpx.ASGITransport(app=app)
    try:
        await wait_until(lambda: _logged(log, "Redis unreachable at start"), seconds=30)
        private_redis.start()
        async with httpx.AsyncClient(
            transport=transport, base_url="http://darkroom.test"
        ) as client:
            body = {"prompt": "lighthouse at dusk", "model": "local/draft", "size": "512x512"}
            job = (await client.post("/v1/generate", json=body, headers=auth)).json()
            final, _ = await wait_for_status(client, auth, job["id"], FINAL_STATUSES, seconds=30)
        alive = worker.poll() is None
    finally:
        stop_worker(worker)
    output = log.read_text()
    assert alive, output
    assert final["status"] == "succeeded", final
    assert output.count("Redis unreachable at start") == 1, output


async def test_an_api_started_while_redis_is_down_takes_jobs_that_run_once_it_is_back(
    private_redis, data_dir
):
    private_redis.kill()
    log = data_dir / f"outage-api-{uuid.uuid4().hex}.log"
    # A job the queue never got is re-sent this soon after its dispatch.
    async with app_on(
        private_redis, data_dir, queued_grace_seconds=1, sweep_interval_seconds=0.3
    ) as app:
        auth = await new_api_key(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://darkroom.test"
        ) as client:
            ready_while_down = (await client.get("/readyz")).status_code
            body = {"prompt": "lighthouse at dusk", "model": "local/draft", "size": "512x512"}
            submitted = await client.post("/v1/generate", json=body, headers=auth)
            private_redis.start()
            await private_redis.wait_until_answering()
            worker = start_worker(app.state.settings, log)
            try:
                final, _ = await wait_for_status(
                    client, auth, submitted.json()["id"], FINAL_STATUSES, seconds=30
                )
            finally:
                stop_worker(worker)
            ready_after = (await client.get("/readyz")).status_code

    assert ready_while_down == 503
    assert submitted.status_code == 202, submitted.text
    assert final["status"] == "succeeded", final
    assert ready_after == 200


async def test_a_lost_redis_gives_back_the_slot_of_the_job_being_started(data_dir):
    settings = postgres_settings("postgresql+asyncpg://unused/unused", data_dir)
    dead = ArqRedis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    worker = create_worker(settings, redis_pool=dead, handle_signals=False)
    try:
        with pytest.raises(RedisConnectionError):
            await worker.start_jobs([b"job_starting"])
        assert worker.job_counter == 0
        assert worker.sem._value == settings.runner_concurrency + 1
    finally:
        await dead.aclose()


async def test_events_published_while_redis_is_lost_are_dropped_with_one_log_line(caplog):
    broadcaster = RedisBroadcaster(Redis(host="127.0.0.1", port=free_port()))
    try:
        with caplog.at_level(logging.INFO, logger="app.runtime.progress"):
            for index in range(3):
                await broadcaster.publish("job_lost", {"event": "progress", "completed": index})
    finally:
        await broadcaster.close()
    assert [record.getMessage()[:27] for record in caplog.records] == [
        "job events: Redis lost (Con"
    ]


async def _logged(log: Path, text: str) -> bool:
    return await asyncio.to_thread(lambda: log.exists() and text in log.read_text())
