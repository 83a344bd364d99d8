"""DELETE /v1/jobs/{id}: the job goes with its outputs; a queued or running job is canceled
first, and a run that held it stores nothing more."""

import json

import httpx
from sqlalchemy import func, select

from app.models import Asset, Job, JobKind
from app.runtime.queue import DispatchState
from tests.factories import queued_job_row
from tests.support import (
    events_acting_on_the_first,
    insert_job,
    is_stored,
    tenant_of,
    wait_for_status,
    wait_until,
)

WAIT = {"Prefer": "wait=30"}


async def finished_job(client, auth, **body) -> dict:
    response = await client.post(
        "/v1/generate", json={"prompt": "a kite"} | body, headers=auth | WAIT
    )
    assert response.status_code == 200, response.text
    return response.json()


async def rows_of(app, tenant_id: str) -> tuple[int, int]:
    """The tenant's job rows, and its live asset rows."""
    async with app.state.sessionmaker() as session:
        jobs = await session.scalar(
            select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id)
        )
        assets = await session.scalar(
            select(func.count())
            .select_from(Asset)
            .where(Asset.tenant_id == tenant_id, Asset.live())
        )
    return jobs, assets


async def test_deleting_a_finished_job_deletes_its_outputs(app, client, auth):
    job = await finished_job(client, auth, n=2)
    hashes = [
        (await client.get(f"/v1/assets/{output['asset_id']}", headers=auth)).json()["content_hash"]
        for output in job["outputs"]
    ]

    deleted = await client.delete(f"/v1/jobs/{job['id']}", headers=auth)

    assert deleted.status_code == 204
    assert (await client.get(f"/v1/jobs/{job['id']}", headers=auth)).status_code == 404
    for output in job["outputs"]:
        for path in ("", "/content"):
            response = await client.get(f"/v1/assets/{output['asset_id']}{path}", headers=auth)
            assert response.status_code == 404
    assert (await client.get("/v1/jobs", headers=auth)).json()["data"] == []
    assert (await client.get("/v1/assets", headers=auth)).json()["data"] == []
    assert len(hashes) == 2
    assert [h for h in hashes if await is_stored(app, h)] == []
    assert (await client.delete(f"/v1/jobs/{job['id']}", headers=auth)).status_code == 404


async def test_another_tenants_job_is_not_found_and_stays(app, client, auth, other_auth):
    job = await finished_job(client, auth)

    response = await client.delete(f"/v1/jobs/{job['id']}", headers=other_auth)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get(f"/v1/jobs/{job['id']}", headers=auth)).json() == job
    assert (await client.get(job["outputs"][0]["url"], headers=auth)).status_code == 200


async def test_deleting_a_queued_job_cancels_it_and_it_never_runs(app, client, auth):
    tenant_id = await tenant_of(app, auth)
    # A queued job no worker has reached: dispatched "in the future" so no sweeper touches it.
    job_id = await insert_job(app, queued_job_row(tenant_id, age_seconds=-600))

    deleted = await client.delete(f"/v1/jobs/{job_id}", headers=auth)

    assert deleted.status_code == 204
    assert (await client.get(f"/v1/jobs/{job_id}", headers=auth)).status_code == 404
    assert await rows_of(app, tenant_id) == (0, 0)


async def test_deleting_a_queued_job_ends_its_live_stream_with_canceled_once_it_is_gone(app, auth):
    job_id = await insert_job(app, queued_job_row(await tenant_of(app, auth), age_seconds=-600))

    async def delete(http: httpx.AsyncClient) -> None:
        deleted = await http.delete(f"/v1/jobs/{job_id}", headers=auth)
        assert deleted.status_code == 204

    events = await events_acting_on_the_first(app, auth, job_id, delete)

    assert [event["event"] for event in events] == ["queued", "canceled"]
    canceled = json.loads(events[1]["data"])
    assert canceled["status"] == "canceled"
    # Announced once the deletion is committed, which the stream then finds: no `job` to show.
    assert "job" not in canceled


async def run_has_ended(app, job_id: str, dispatches: int) -> bool:
    return await app.state.queue.dispatch_state(job_id, dispatches) == DispatchState.GONE


async def test_deleting_a_running_job_stops_it_and_leaves_no_output(app, client, auth):
    tenant_id = await tenant_of(app, auth)
    response = await client.post(
        "/v1/generate", json={"prompt": "a kite", "size": "4096x4096", "n": 5}, headers=auth
    )
    job = response.json()
    await wait_for_status(client, auth, job["id"], {"running"})

    deleted = await client.delete(f"/v1/jobs/{job['id']}", headers=auth)
    # Until the queue no longer holds the run: every output it would store is stored by then.
    await wait_until(lambda: run_has_ended(app, job["id"], 1), seconds=60)

    assert deleted.status_code == 204
    assert (await client.get(f"/v1/jobs/{job['id']}", headers=auth)).status_code == 404
    assert await rows_of(app, tenant_id) == (0, 0)
    assert (await client.get("/v1/assets", headers=auth)).json()["data"] == []


async def test_a_job_whose_output_a_queued_job_takes_as_input_is_kept(app, client, auth):
    job = await finished_job(client, auth)
    output_id = job["outputs"][0]["asset_id"]
    edit = queued_job_row(await tenant_of(app, auth), age_seconds=-600, image=output_id)
    edit.kind = JobKind.EDIT
    await insert_job(app, edit)

    refused = await client.delete(f"/v1/jobs/{job['id']}", headers=auth)

    assert refused.status_code == 409
    assert edit.id in refused.json()["detail"]
    assert (await client.get(f"/v1/jobs/{job['id']}", headers=auth)).json() == job
    assert (await client.get(job["outputs"][0]["url"], headers=auth)).status_code == 200
