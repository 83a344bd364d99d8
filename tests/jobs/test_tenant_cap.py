"""A tenant's cap on running jobs, on Postgres + Redis and real `darkroom worker` processes: it
holds across workers, another tenant's job starts meanwhile, jobs put back spend none of their
attempts nor the queue's tries, and a killed worker's slots free once their holds run out."""

import asyncio
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.fakes.openai_images import API_KEY, FakeOpenAIImages, slow
from tests.support import (
    free_port,
    fresh_database,
    live_server,
    metric_value,
    most_at_once,
    new_api_key,
    postgres_settings,
    read_events,
    serving,
    start_worker,
    stop_worker,
    wait_for_final,
    wait_until,
)

CAP = 2
# Each worker could run more of one tenant's jobs than the cap on its own.
SLOTS = 3
BURST = 8
VENDOR_SECONDS = 0.5
BODY = {"prompt": "a lighthouse in a gale", "model": "openai/gpt-image-2"}


@dataclass
class Deployment:
    settings: Settings
    app: FastAPI
    client: httpx.AsyncClient
    vendor: FakeOpenAIImages
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    metrics_ports: list[int] = field(default_factory=list)

    def start_worker(self) -> None:
        """Start a worker that serves its metrics on a port of its own."""
        port = free_port()
        settings = self.settings.model_copy(update={"worker_metrics_port": port})
        log = self.logs / f"cap-worker-{uuid.uuid4().hex[:6]}.log"
        self.workers.append(start_worker(settings, log))
        self.metrics_ports.append(port)

    async def jobs_put_back(self) -> float:
        """Jobs put back at their tenant's cap, over the workers started so far."""
        total = 0.0
        async with httpx.AsyncClient() as scraper:
            for port in self.metrics_ports:
                exposition = (await scraper.get(f"http://127.0.0.1:{port}/metrics")).text
                total += metric_value(exposition, "darkroom_jobs_put_back_total")
        return total


@pytest.fixture(scope="module")
async def deployment(data_dir):
    """An app and two workers on a database and queue of their own, tenants capped at CAP
    running jobs, and a vendor the tests script. Two attempts a job, so a job put back more
    often than that would fail if putting back spent the queue's tries."""
    async with FakeOpenAIImages() as vendor, fresh_database("cap") as url:
        settings = postgres_settings(
            url,
            data_dir,
            queue_name=f"darkroom:test:cap:{uuid.uuid4().hex}",
            openai_api_key=API_KEY,
            openai_base_url=vendor.base_url,
            runner_concurrency=SLOTS,
            tenant_max_running=CAP,
            max_job_attempts=2,
            job_lease_seconds=3,
            sweep_interval_seconds=0.3,
            # The tests poll each job's status: no quota on it.
            rate_limit_requests=0,
        )
        async with serving(settings) as (application, client, _):
            deployment = Deployment(settings, application, client, vendor, data_dir)
            try:
                deployment.start_worker()
                deployment.start_worker()
                yield deployment
            finally:
                for worker in deployment.workers:
                    if worker.poll() is None:
                        stop_worker(worker)


async def submit(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/v1/generate", json=BODY, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def events_of(app: FastAPI, headers: dict[str, str], job_id: str) -> list[str]:
    """The events a live stream of the job tells, from subscribing until the job ends."""
    path = f"/v1/jobs/{job_id}/events"
    async with live_server(app) as http, http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        return [event["event"] async for event in read_events(response)]


async def runs_any(client: httpx.AsyncClient, headers: dict[str, str]) -> bool:
    """Whether one of the tenant's jobs is running."""
    response = await client.get("/v1/jobs", params={"status": "running"}, headers=headers)
    assert response.status_code == 200, response.text
    return bool(response.json()["data"])


def started(job: dict) -> datetime:
    return datetime.fromisoformat(job["started_at"])


async def test_a_tenant_runs_at_most_its_cap_across_workers_while_another_tenant_starts(
    deployment,
):
    client = deployment.client
    deployment.vendor.script(*[slow(VENDOR_SECONDS)] * (BURST + 1))
    capped, other = await new_api_key(deployment.app), await new_api_key(deployment.app)
    burst = [await submit(client, capped) for _ in range(BURST)]
    # The last job of the burst waits longest: put back again and again meanwhile.
    last_events = asyncio.create_task(events_of(deployment.app, capped, burst[-1]))
    # Which of the burst runs first is the workers' race: wait for the first round, whichever.
    await wait_until(lambda: runs_any(client, capped), seconds=30)
    single = await submit(client, other)
    jobs = [(await wait_for_final(client, capped, job_id, 60))[0] for job_id in burst]
    (other_job, _) = await wait_for_final(client, other, single, 60)
    events = await last_events

    assert {job["status"] for job in [*jobs, other_job]} == {"succeeded"}
    # Put back again and again while the tenant was at its cap, yet each ran once.
    assert await deployment.jobs_put_back() > 0
    assert [job["attempts"] for job in jobs] == [1] * BURST
    # Its stream told nothing of being put back: queued until it started.
    assert events == ["queued", "started", "progress", "succeeded"]
    assert most_at_once(jobs) <= CAP
    # The other tenant's job started in a slot the capped tenant could not use: at most the
    # capped jobs whose slots freed meanwhile started before it, not the rest of the burst.
    assert sum(started(job) > started(other_job) for job in jobs) >= BURST - 2 * CAP


async def test_slots_of_a_killed_worker_free_once_their_holds_run_out(deployment):
    client = deployment.client
    # The first jobs are still at the vendor when the workers are killed.
    deployment.vendor.script(*[slow(5)] * CAP, *[slow(VENDOR_SECONDS)] * BURST)
    tenant = await new_api_key(deployment.app)
    job_ids = [await submit(client, tenant) for _ in range(CAP + 3)]

    async def running() -> set[str]:
        statuses = {}
        for job_id in job_ids:
            response = await client.get(f"/v1/jobs/{job_id}", headers=tenant)
            statuses[job_id] = response.json()["status"]
        return {job_id for job_id, status in statuses.items() if status == "running"}

    async def cap_reached() -> bool:
        return len(await running()) == CAP

    await wait_until(cap_reached, seconds=60)
    held = await running()
    # Every worker dies, whichever holds the slots.
    for worker in deployment.workers:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    # Canceled, the dead workers' jobs never run again to give their slots back: only the end
    # of their holds frees them.
    for job_id in held:
        response = await client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant)
        assert response.status_code == 200, response.text
    deployment.start_worker()
    jobs = {job_id: (await wait_for_final(client, tenant, job_id, 60))[0] for job_id in job_ids}

    assert {job_id for job_id, job in jobs.items() if job["status"] == "canceled"} == held
    rest = [job for job_id, job in jobs.items() if job_id not in held]
    assert [(job["status"], job["attempts"]) for job in rest] == [("succeeded", 1)] * 3
    assert most_at_once(rest) <= CAP
