"""Jobs through a vendor failure storm, on Postgres + Redis and a real `darkroom worker`: a fake
OpenAI answering a mix of 500s, 429s with Retry-After, answers slower than the time limit and
cut-off JSON. Without a fallback every job succeeds or fails with the vendor's own error once its
attempts are spent, never because a breaker was open; a malformed answer is retried."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from app.cli import migrate
from app.main import create_app
from tests.fakes.openai_images import API_KEY, FakeOpenAIImages, FaultMix, malformed_json
from tests.fakes.openai_images import server_error as vendor_error
from tests.support import (
    fresh_database,
    new_api_key,
    postgres_settings,
    start_worker,
    stop_worker,
    wait_for_final,
)

JOBS = 24
MAX_RETRIES = 6
THRESHOLD = 5


@dataclass
class Storm:
    """The app, a client and a tenant, and the misbehaving vendor."""

    app: FastAPI
    client: httpx.AsyncClient
    auth: dict[str, str]
    vendor: FakeOpenAIImages


@pytest.fixture
async def storm(data_dir) -> AsyncIterator[Storm]:
    """The fake vendor, an app with a database and queue of its own, and one worker. A 2 s
    time limit per vendor call, short backoffs and breaker pauses keep a storm to seconds."""
    async with (
        FakeOpenAIImages() as vendor,
        fresh_database("storm") as url,
    ):
        settings = postgres_settings(
            url,
            data_dir,
            queue_name=f"darkroom:test:storm:{uuid.uuid4().hex}",
            openai_api_key=API_KEY,
            openai_base_url=vendor.base_url,
            provider_timeout_seconds=2,
            provider_max_retries=MAX_RETRIES,
            provider_retry_backoff_seconds=0.05,
            provider_breaker_threshold=THRESHOLD,
            provider_breaker_cooldown_seconds=0.5,
            runner_concurrency=8,
        )
        await asyncio.to_thread(migrate, settings)
        application = create_app(settings)
        worker = start_worker(settings, data_dir / f"storm-worker-{uuid.uuid4().hex[:6]}.log")
        try:
            async with application.router.lifespan_context(application):
                transport = httpx.ASGITransport(app=application)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://darkroom.test"
                ) as client:
                    auth = await new_api_key(application)
                    yield Storm(application, client, auth, vendor)
        finally:
            stop_worker(worker)


async def submit(storm: Storm, count: int) -> list[dict]:
    """Submit `count` jobs on the vendor's model without a fallback; each job once final."""
    body = {"prompt": "a lighthouse in a gale", "model": "openai/gpt-image-2"}
    ids = []
    for _ in range(count):
        response = await storm.client.post("/v1/generate", json=body, headers=storm.auth)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return [(await wait_for_final(storm.client, storm.auth, job_id, 120))[0] for job_id in ids]


async def test_a_cut_off_answer_is_retried_and_the_job_succeeds(storm) -> None:
    storm.vendor.script(malformed_json())

    [job] = await submit(storm, 1)

    assert job["status"] == "succeeded", job
    assert len(storm.vendor.received) == 2


async def test_jobs_in_a_vendor_storm_succeed_or_fail_with_the_vendors_error(storm) -> None:
    # The fault mix (Retry-After shortened, slow answers past the 2 s time limit)...
    storm.vendor.faults = FaultMix(retry_after="0.1", slow_seconds=3.0)
    # ...after a cut-off answer and a run of failures that opens the breaker.
    storm.vendor.script(malformed_json(), *[vendor_error(500)] * (THRESHOLD + 1))

    jobs = await submit(storm, JOBS)

    failures = [job["error"] for job in jobs if job["status"] != "succeeded"]
    for error in failures:
        assert error["type"].endswith(("/provider-overloaded", "/provider-malformed-response"))
        assert f"tried {MAX_RETRIES + 1} times" in error["detail"], error
        assert "circuit" not in error
    assert {job["status"] for job in jobs} <= {"succeeded", "failed"}
    assert len(failures) <= 1, failures
    # Every job's calls stay within its attempt budget: no retry storm.
    assert len(storm.vendor.received) <= JOBS * (MAX_RETRIES + 1)
    assert all(len(job["outputs"]) == 1 for job in jobs if job["status"] == "succeeded")
    # The mix did serve cut-off and slow answers, which the jobs outlived.
    served = storm.vendor.faults.served
    assert served.get("cut_off", 0) > 0 and served.get("slow", 0) > 0, served
