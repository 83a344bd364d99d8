"""GET /metrics, the API's Prometheus metrics, and the request id every response carries: the
series move when a job goes through the public API, on both backends."""

import httpx

from app.config import Settings
from tests.factories import queued_job_row
from tests.support import (
    embedded_only,
    insert_job,
    metric_value,
    serving,
    tenant_of,
    wait_for_final,
    wait_until,
)


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text


def moved(before: str, after: str, sample: str, **labels: str) -> float:
    """How far one series moved between two scrapes."""
    return metric_value(after, sample, **labels) - metric_value(before, sample, **labels)


async def scrape_when_moved(
    client: httpx.AsyncClient, before: str, sample: str, labels: dict[str, str]
) -> str:
    """A scrape taken once `sample` has moved since `before`."""
    scrapes: list[str] = []

    async def has_moved() -> bool:
        scrapes.append(await scrape(client))
        return moved(before, scrapes[-1], sample, **labels) > 0

    await wait_until(has_moved, seconds=10)
    return scrapes[-1]


async def generate_two(client: httpx.AsyncClient, auth: dict) -> dict:
    body = {"prompt": "a red kite over the dunes", "n": 2}
    submitted = await client.post("/v1/generate", json=body, headers=auth)
    assert submitted.status_code == 202, submitted.text
    final, _ = await wait_for_final(client, auth, submitted.json()["id"])
    assert final["status"] == "succeeded", final
    return final


async def test_a_job_through_the_api_moves_its_series(app, client, auth):
    before = await scrape(client)

    job = await generate_two(client, auth)
    after = await scrape(client)

    posted = {"route": "/v1/generate", "method": "POST"}
    polled = {"route": "/v1/jobs/{job_id}", "method": "GET", "status": "200"}
    assert moved(before, after, "darkroom_http_requests_total", **posted, status="202") == 1
    assert moved(before, after, "darkroom_http_requests_total", **polled) >= 1
    assert moved(before, after, "darkroom_http_request_duration_seconds_count", **posted) == 1
    submitted = {"kind": "generate", "model": "local/draft"}
    assert moved(before, after, "darkroom_jobs_submitted_total", **submitted) == 1
    # The label is the route's template: no job id, no raw path, in any series.
    assert job["id"] not in after
    assert "darkroom_queue_depth" in after


@embedded_only()
async def test_the_in_process_runner_counts_the_job_it_ran(client, auth):
    before = await scrape(client)

    await generate_two(client, auth)
    # A run is timed last, just after its final status is visible: wait until it is counted.
    run = {"kind": "generate", "status": "succeeded"}
    after = await scrape_when_moved(client, before, "darkroom_job_run_duration_seconds_count", run)

    finished = {"kind": "generate", "model": "local/draft", "status": "succeeded"}
    call = {"vendor": "local", "model": "local/draft"}
    assert moved(before, after, "darkroom_jobs_finished_total", **finished) == 1
    assert moved(before, after, "darkroom_job_run_duration_seconds_count", **run) == 1
    assert moved(before, after, "darkroom_job_queue_wait_seconds_count", kind="generate") == 1
    assert moved(before, after, "darkroom_vendor_calls_total", **call, outcome="ok") == 2
    assert moved(before, after, "darkroom_vendor_call_duration_seconds_count", **call) == 2
    assert metric_value(after, "darkroom_jobs_in_flight") == 0


async def test_the_queue_depth_counts_queued_jobs_and_a_cancel_counts_as_finished(tmp_path):
    # A long grace keeps the sweeper from sending the never-enqueued job while the test looks.
    settings = Settings(data_dir=tmp_path / "var", queued_grace_seconds=60)
    async with serving(settings) as (app, client, auth):
        job = queued_job_row(await tenant_of(app, auth), age_seconds=0)
        await insert_job(app, job)
        queued = await scrape(client)
        canceled = await client.post(f"/v1/jobs/{job.id}/cancel", headers=auth)
        after = await scrape(client)

    assert canceled.status_code == 200, canceled.text
    assert metric_value(queued, "darkroom_queue_depth") == 1
    assert metric_value(after, "darkroom_queue_depth") == 0
    finished = {"kind": "generate", "model": "local/draft", "status": "canceled"}
    assert metric_value(after, "darkroom_jobs_finished_total", **finished) == (
        metric_value(queued, "darkroom_jobs_finished_total", **finished) + 1
    )


async def test_metrics_turned_off_are_not_served(tmp_path):
    async with serving(Settings(data_dir=tmp_path / "var", metrics=False)) as (_, client, _):
        response = await client.get("/metrics")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@embedded_only()
async def test_a_path_no_route_matches_is_counted_under_one_label(client):
    before = await scrape(client)

    for path in ("/no/such/page", "/wp-admin/setup.php"):
        assert (await client.get(path)).status_code == 404
    after = await scrape(client)

    labels = {"route": "unmatched", "method": "GET", "status": "404"}
    assert metric_value(after, "darkroom_http_requests_total", **labels) == (
        metric_value(before, "darkroom_http_requests_total", **labels) + 2
    )
    assert "/no/such/page" not in after and "wp-admin" not in after


@embedded_only()
async def test_a_request_id_is_echoed_or_made(client):
    sent = await client.get("/healthz", headers={"X-Request-ID": "checkout-4f2a:7"})
    made = await client.get("/healthz")
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "x" * 200})

    assert sent.headers["X-Request-ID"] == "checkout-4f2a:7"
    assert len(made.headers["X-Request-ID"]) == 32
    assert unsafe.headers["X-Request-ID"] != "x" * 200
    assert len(unsafe.headers["X-Request-ID"]) == 32
