"""Real `darkroom worker` processes on Redis: JSON messages, and a worker killed mid-job (alone,
or beside another worker that takes its job over)."""

import asyncio
import json
import re
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select

from app.cli import migrate
from app.main import create_app
from app.models import Asset
from app.runtime.queue import ArqQueue, DispatchState
from tests.fakes.openai_images import API_KEY, FakeOpenAIImages, slow
from tests.support import (
    REDIS_URL,
    fresh_database,
    new_api_key,
    postgres_settings,
    start_worker,
    stop_worker,
    wait_for_final,
    wait_until,
)


async def test_queue_messages_are_json_not_pickle():
    queue_name = f"darkroom:test:json:{uuid.uuid4().hex}"
    queue = ArqQueue.connect(REDIS_URL, queue_name)
    redis = Redis.from_url(REDIS_URL)
    try:
        await queue.enqueue("job_json", 1)
        await queue.enqueue("job_json", 2)

        first = json.loads(await redis.get("arq:job:job_json"))
        second = json.loads(await redis.get("arq:job:job_json.2"))
        assert (first["f"], first["a"]) == ("run_job", ["job_json", ""])
        assert second["a"] == ["job_json", ""]
        assert await queue.dispatch_state("job_json", 1) == DispatchState.WAITING
        assert await queue.dispatch_state("job_json", 3) == DispatchState.GONE
    finally:
        await redis.delete("arq:job:job_json", "arq:job:job_json.2", queue_name)
        await redis.aclose()
        await queue.close()


@pytest.fixture
async def isolated_app(data_dir) -> AsyncIterator[FastAPI]:
    """An app with a database and queue of its own (so no other worker or sweeper sees its jobs),
    short leases, and no worker until the test starts one."""
    async with fresh_database("kill") as url:
        settings = postgres_settings(
            url,
            data_dir,
            queue_name=f"darkroom:test:kill:{uuid.uuid4().hex}",
            job_lease_seconds=5,
            sweep_interval_seconds=0.3,
        )
        await asyncio.to_thread(migrate, settings)
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            yield application


async def test_worker_killed_mid_job_is_replaced_and_the_job_finishes_once(isolated_app, data_dir):
    app = isolated_app
    auth = await new_api_key(app)
    transport = httpx.ASGITransport(app=app)
    log = data_dir / "kill-test-worker.log"
    first = start_worker(app.state.settings, log)
    second = None
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://darkroom.test"
        ) as client:
            body = {"prompt": "storm over a harbour", "size": "4096x4096", "n": 4, "seed": 1}
            job = (await client.post("/v1/generate", json=body, headers=auth)).json()

            async def stored_outputs() -> list[Asset]:
                async with app.state.sessionmaker() as session:
                    query = select(Asset).where(Asset.job_id == job["id"])
                    return list(await session.scalars(query.order_by(Asset.output_index)))

            await wait_until(lambda: _non_empty(stored_outputs()), seconds=120)
            first.send_signal(signal.SIGKILL)
            first.wait()
            before_kill = await stored_outputs()
            assert 1 <= len(before_kill) < 4, "the worker must die mid-job"

            second = start_worker(app.state.settings, log)
            final, _ = await wait_for_final(client, auth, job["id"], seconds=180)

            assert final["status"] == "succeeded", final
            assert final["attempts"] >= 2
            after = await stored_outputs()
            assert [asset.output_index for asset in after] == [0, 1, 2, 3]
            assert {a.id for a in before_kill} <= {a.id for a in after}
            assert [o["seed"] for o in final["outputs"]] == [1, 2, 3, 4]
    finally:
        if first.poll() is None:
            stop_worker(first)
        if second is not None:
            stop_worker(second)


async def _non_empty(awaitable) -> bool:
    return bool(await awaitable)


async def test_job_of_a_killed_worker_finishes_on_the_other_worker_with_each_output_once(
    data_dir,
):
    # One job at a time per worker and one output at a time per job, each a vendor call of a
    # second, so the job is mid-way when its worker dies; a short lease so the test takes seconds
    # (3 s, not 2: on a loaded machine a renewal a second late let the other worker take the
    # job before the kill).
    async with FakeOpenAIImages() as vendor, fresh_database("takeover") as url:
        vendor.script(*[slow(1)] * 20)
        settings = postgres_settings(
            url,
            data_dir,
            queue_name=f"darkroom:test:takeover:{uuid.uuid4().hex}",
            job_lease_seconds=3,
            sweep_interval_seconds=0.3,
            runner_concurrency=1,
            job_output_concurrency=1,
            openai_api_key=API_KEY,
            openai_base_url=vendor.base_url,
        )
        await asyncio.to_thread(migrate, settings)
        app = create_app(settings)
        logs = [data_dir / f"takeover-{uuid.uuid4().hex}.log" for _ in range(2)]
        workers = [start_worker(settings, log) for log in logs]
        try:
            async with app.router.lifespan_context(app):
                await _kill_the_holder_and_check_the_takeover(app, vendor, workers, logs)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    stop_worker(worker)


async def _kill_the_holder_and_check_the_takeover(app, vendor, workers, logs) -> None:
    auth = await new_api_key(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://darkroom.test") as client:
        body = {"prompt": "a kettle", "model": "openai/gpt-image-2", "size": "1024x1024", "n": 3}
        response = await client.post("/v1/generate", json=body, headers=auth)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]

        await wait_until(lambda: _non_empty(_outputs(app, job_id)), seconds=60)
        [holder] = [index for index, log in enumerate(logs) if _holds(log, job_id)]
        workers[holder].send_signal(signal.SIGKILL)
        workers[holder].wait()
        before_kill = await _outputs(app, job_id)
        assert 1 <= len(before_kill) < 3, "the worker must die mid-job"

        final, _ = await wait_for_final(client, auth, job_id, seconds=60)

    assert final["status"] == "succeeded", final
    # The second run was the other worker's: the holder was dead, and the API runs no jobs.
    assert final["attempts"] == 2
    after = await _outputs(app, job_id)
    assert [asset.output_index for asset in after] == [0, 1, 2]
    assert {asset.id for asset in before_kill} <= {asset.id for asset in after}
    assert len(final["outputs"]) == 3
    # Each output was asked of the vendor once, but for the one in flight when the worker died.
    assert 3 <= len(vendor.received) <= 4
    assert workers[1 - holder].poll() is None


async def _outputs(app: FastAPI, job_id: str) -> list[Asset]:
    async with app.state.sessionmaker() as session:
        query = select(Asset).where(Asset.job_id == job_id).order_by(Asset.output_index)
        return list(await session.scalars(query))


def _holds(log: Path, job_id: str) -> bool:
    """Whether the worker writing `log` has taken a message of the job and not finished it, by
    arq's lines: `→ job_id[.dispatch]:run_job(...)` when it takes one, `← ...` when it is done.
    A sweep may re-send a job a moment before its worker claims it, so the other worker may
    have taken (and dropped) a message of the job too."""
    taken = re.findall(rf"→ ({job_id}(?:\.\d+)?):run_job", log.read_text())
    done = re.findall(rf"← ({job_id}(?:\.\d+)?):run_job", log.read_text())
    return bool(set(taken) - set(done))
