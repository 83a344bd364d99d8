"""Tenants take turns in the queue, on Postgres + Redis and a real `darkroom worker` with two
job slots: one tenant's burst of 200 slow jobs holds back another tenant's job by at most the
jobs already running, not by the whole burst."""

import uuid
from datetime import datetime

import httpx
import pytest

from tests.fakes.openai_images import API_KEY, FakeOpenAIImages, slow
from tests.support import (
    fresh_database,
    new_api_key,
    postgres_settings,
    serving,
    start_worker,
    stop_worker,
    wait_for_final,
    wait_for_status,
)

SLOTS = 2
BURST = 200
VENDOR_SECONDS = 0.3
BODY = {"prompt": "a lighthouse in a gale", "model": "openai/gpt-image-2"}


@pytest.fixture
async def deployment(data_dir):
    """An app and one worker with two job slots, on a database and queue of their own, and a
    vendor that takes VENDOR_SECONDS a call: a client and two tenants' headers."""
    async with FakeOpenAIImages() as vendor, fresh_database("fair") as url:
        vendor.script(*[slow(VENDOR_SECONDS)] * (BURST + 4))
        settings = postgres_settings(
            url,
            data_dir,
            queue_name=f"darkroom:test:fair:{uuid.uuid4().hex}",
            openai_api_key=API_KEY,
            openai_base_url=vendor.base_url,
            runner_concurrency=SLOTS,
            # The burst and the polling pass the default 600 requests a minute.
            rate_limit_requests=100_000,
        )
        worker = start_worker(settings, data_dir / f"fair-worker-{uuid.uuid4().hex[:6]}.log")
        try:
            async with serving(settings) as (application, client, first):
                yield client, [first, await new_api_key(application)]
        finally:
            stop_worker(worker)


async def submit(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/v1/generate", json=BODY, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def started(job: dict) -> datetime:
    return datetime.fromisoformat(job["started_at"])


async def burst_jobs(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict]:
    """Every job of the tenant, through the job list's pages."""
    jobs: list[dict] = []
    params = {"limit": 100}
    while True:
        page = (await client.get("/v1/jobs", params=params, headers=headers)).json()
        jobs += page["data"]
        if not page["has_more"]:
            return jobs
        params["cursor"] = page["next_cursor"]


async def test_a_tenants_burst_does_not_hold_back_another_tenants_job(deployment):
    client, (burst_tenant, other_tenant) = deployment
    burst = [await submit(client, burst_tenant) for _ in range(BURST)]
    # Once the worker has read the burst from the queue (a slot freed and the next burst job
    # started, or even finished while the burst was still being sent), the other tenant's one
    # job is sent...
    await wait_for_status(client, burst_tenant, burst[SLOTS], {"running", "succeeded"})
    single = await submit(client, other_tenant)

    (other, _) = await wait_for_final(client, other_tenant, single, 120)
    jobs = await burst_jobs(client, burst_tenant)

    assert other["status"] == "succeeded", other
    assert len(jobs) == BURST
    submitted = datetime.fromisoformat(other["created_at"])
    begun = [job for job in jobs if job["started_at"]]
    # ...and it starts in the next free slot: burst jobs that started between its submission
    # and its start are those whose slots freed first, never the burst's whole queue...
    ahead = [job for job in begun if submitted < started(job) < started(other)]
    assert len(ahead) <= SLOTS, [job["started_at"] for job in ahead]
    # ...while far more of the burst were still waiting in line when it was sent.
    waiting = [job for job in jobs if not job["started_at"] or started(job) > submitted]
    assert len(waiting) > 10 * SLOTS, len(waiting)
