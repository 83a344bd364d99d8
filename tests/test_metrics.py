"""A real `darkroom worker` serves its own metrics on its port, and logs the job it ran as JSON
lines carrying the job's ids; a port already taken leaves the worker running without them."""

import json
import socket
import uuid
from pathlib import Path

import httpx

from app.config import Settings
from app.metrics import serve_worker_metrics
from tests.support import (
    free_port,
    fresh_database,
    metric_value,
    postgres_settings,
    serving,
    start_worker,
    stop_worker,
    tenant_of,
    wait_for_final,
    wait_until,
)


async def run_one_job_on_a_worker(
    database_url: str, data_dir: Path, tmp_path: Path
) -> tuple[dict, Path, str, str]:
    """Run one generate job through the API on a worker of its own with a metrics port and
    JSON logs; the job, the worker's log, its last scrape and a scrape of one series by name."""
    port = free_port()
    settings = postgres_settings(
        database_url,
        data_dir,
        queue_name=f"darkroom:test:metrics:{uuid.uuid4().hex}",
        worker_metrics_port=port,
        log_format="json",
    )
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    scrapes: list[str] = []

    async def run_counted() -> bool:
        try:
            async with httpx.AsyncClient() as scraper:
                scrapes.append((await scraper.get(f"http://127.0.0.1:{port}/metrics")).text)
        except httpx.TransportError:
            return False  # not listening yet
        run = {"kind": "generate", "status": "succeeded"}
        return metric_value(scrapes[-1], "darkroom_job_run_duration_seconds_count", **run) == 1

    try:
        async with serving(settings) as (app, client, auth):
            body = {"prompt": "a paper boat on a pond", "model": "local/draft", "size": "96x64"}
            submitted = await client.post("/v1/generate", json=body, headers=auth)
            assert submitted.status_code == 202, submitted.text
            job, _ = await wait_for_final(client, auth, submitted.json()["id"])
            job["tenant_id"] = await tenant_of(app, auth)
        # The run is timed just after its final status is visible.
        await wait_until(run_counted, seconds=30)
        async with httpx.AsyncClient() as scraper:
            named = await scraper.get(
                f"http://127.0.0.1:{port}/metrics",
                params={"name[]": "darkroom_jobs_finished_total"},
            )
        assert named.status_code == 200, named.text
    finally:
        stop_worker(worker)
    return job, log, scrapes[-1], named.text


async def test_a_worker_serves_the_metrics_of_the_job_it_ran(data_dir, tmp_path):
    # A database of its own: the worker's sweeper would run other tests' stranded jobs too.
    async with fresh_database("metrics") as url:
        job, log, metrics, named = await run_one_job_on_a_worker(url, data_dir, tmp_path)

    assert job["status"] == "succeeded", job
    finished = {"kind": "generate", "model": "local/draft", "status": "succeeded"}
    call = {"vendor": "local", "model": "local/draft"}
    assert metric_value(metrics, "darkroom_jobs_finished_total", **finished) == 1
    assert metric_value(named, "darkroom_jobs_finished_total", **finished) == 1
    assert "darkroom_vendor_calls_total" not in named
    assert metric_value(metrics, "darkroom_vendor_calls_total", **call, outcome="ok") == 1
    assert metric_value(metrics, "darkroom_vendor_call_duration_seconds_count", **call) == 1
    assert metric_value(metrics, "darkroom_job_queue_wait_seconds_count", kind="generate") == 1
    assert metric_value(metrics, "darkroom_jobs_in_flight") == 0
    assert "darkroom_cost_usd_total" in metrics
    assert job["id"] not in metrics
    # The queue's depth is the API's to report: a worker does not read it.
    assert "darkroom_queue_depth" not in metrics

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    of_the_job = [line for line in lines if line.get("job_id") == job["id"]]
    assert of_the_job, lines
    for line in of_the_job:
        assert line["tenant_id"] == job["tenant_id"]
        assert line["kind"] == "generate" and line["attempt"] == 1
    [vendor_call] = [line for line in of_the_job if line.get("vendor") == "local"]
    assert vendor_call["model"] == "local/draft" and vendor_call["status"] == "ok"
    assert isinstance(vendor_call["latency_ms"], int)
    # The brief is written only at DEBUG; the worker logs from INFO.
    assert "paper boat" not in log.read_text()


def test_a_taken_metrics_port_costs_the_metrics_not_the_process(tmp_path, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serve_worker_metrics(Settings(data_dir=tmp_path, worker_metrics_port=port))

    assert f"cannot serve worker metrics on 127.0.0.1:{port}" in caplog.text
