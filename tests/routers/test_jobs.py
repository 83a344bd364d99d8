"""GET/POST /v1/jobs: read, list, cancel, and tenant isolation."""

from sqlalchemy import func, select

from app.models import Asset, Job
from app.runtime.queue import DispatchState
from tests.factories import queued_job_row
from tests.support import (
    embedded_only,
    insert_job,
    tenant_of,
    wait_for_final,
    wait_for_status,
    wait_until,
)


async def create_job(client, auth, **body) -> dict:
    response = await client.post("/v1/generate", json={"prompt": "a kite"} | body, headers=auth)
    assert response.status_code == 202, response.text
    return response.json()


@embedded_only()
async def test_every_v1_route_needs_a_valid_key(client):
    routes = [
        ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/job_x"),
        ("POST", "/v1/jobs/job_x/cancel"),
        ("POST", "/v1/generate"),
        ("GET", "/v1/assets/ast_x"),
        ("GET", "/v1/assets/ast_x/content"),
        ("POST", "/v1/assets"),
        ("GET", "/v1/models"),
    ]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer dk_not-a-real-key"}, {"Authorization": "x"}):
            response = await client.request(method, path, headers=headers)

            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["www-authenticate"] == "Bearer"


async def test_another_tenants_job_is_not_found(client, auth, other_auth):
    job = await create_job(client, auth)

    for method, path in [
        ("GET", f"/v1/jobs/{job['id']}"),
        ("POST", f"/v1/jobs/{job['id']}/cancel"),
    ]:
        response = await client.request(method, path, headers=other_auth)
        assert response.status_code == 404
        assert response.json()["type"].endswith("/not-found")
    assert (await client.get("/v1/jobs", headers=other_auth)).json()["data"] == []
    final, _ = await wait_for_final(client, auth, job["id"])
    asset_id = final["outputs"][0]["asset_id"]
    for path in (f"/v1/assets/{asset_id}", f"/v1/assets/{asset_id}/content"):
        assert (await client.get(path, headers=other_auth)).status_code == 404
        assert (await client.get(path, headers=auth)).status_code == 200


async def test_list_is_newest_first_with_cursor_pages(client, auth):
    created = [(await create_job(client, auth, prompt=f"brief {i}"))["id"] for i in range(5)]

    first = (await client.get("/v1/jobs?limit=2", headers=auth)).json()
    second = (
        await client.get(f"/v1/jobs?limit=2&cursor={first['next_cursor']}", headers=auth)
    ).json()
    third = (
        await client.get(f"/v1/jobs?limit=2&cursor={second['next_cursor']}", headers=auth)
    ).json()

    listed = [job["id"] for page in (first, second, third) for job in page["data"]]
    assert listed == list(reversed(created))
    assert first["has_more"] and second["has_more"] and not third["has_more"]
    assert third["next_cursor"] is None


async def test_list_filters_by_status(app, client, auth):
    done = await create_job(client, auth)
    await wait_for_final(client, auth, done["id"])
    canceled = await create_job(client, auth)
    await client.post(f"/v1/jobs/{canceled['id']}/cancel", headers=auth)

    succeeded = (await client.get("/v1/jobs?status=succeeded", headers=auth)).json()["data"]
    bad = await client.get("/v1/jobs?status=sleeping", headers=auth)

    assert [job["id"] for job in succeeded] == [done["id"]]
    assert bad.status_code == 422


async def test_cancel_queued_job_and_refuse_to_cancel_finished_one(app, client, auth):
    tenant_id = await tenant_of(app, auth)
    # A queued job no worker has reached: dispatched "in the future" so no sweeper touches it.
    job = {"id": await insert_job(app, queued_job_row(tenant_id, age_seconds=-600))}

    canceled = await client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
    again = await client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)

    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["finished_at"] is not None
    assert again.status_code == 409
    assert (await client.get(f"/v1/jobs/{job['id']}", headers=auth)).json()["outputs"] == []


async def stored_outputs(app, job_id: str) -> int:
    async with app.state.sessionmaker() as session:
        query = select(func.count()).select_from(Asset).where(Asset.job_id == job_id)
        return await session.scalar(query)


async def run_has_ended(app, job_id: str) -> bool:
    async with app.state.sessionmaker() as session:
        dispatches = await session.scalar(select(Job.dispatches).where(Job.id == job_id))
    return await app.state.queue.dispatch_state(job_id, dispatches) == DispatchState.GONE


async def test_canceled_running_job_stops_within_one_output_and_stays_canceled(app, client, auth):
    job = await create_job(client, auth, size="4096x4096", n=5)
    await wait_for_status(client, auth, job["id"], {"running"})

    canceled = await client.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
    at_cancel = await stored_outputs(app, job["id"])
    # Until the queue no longer holds the run: every output it would store is stored by then.
    await wait_until(lambda: run_has_ended(app, job["id"]), seconds=60)

    assert canceled.status_code == 200
    final = (await client.get(f"/v1/jobs/{job['id']}", headers=auth)).json()
    assert final["status"] == "canceled"
    assert final["outputs"] == []
    assert await stored_outputs(app, job["id"]) <= at_cancel + 1


async def test_malformed_ids_are_not_found_and_a_bad_cursor_is_422(client, auth):
    for path in (
        "/v1/jobs/job_%00",
        "/v1/jobs/nonsense",
        "/v1/assets/ast_%00",
        "/v1/assets/ast_%00/content",
        "/v1/assets/" + "x" * 5000,
    ):
        response = await client.get(path, headers=auth)
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    bad_cursor = await client.get("/v1/jobs?cursor=%00", headers=auth)
    assert bad_cursor.status_code == 422


@embedded_only()
async def test_unknown_routes_and_methods_are_problem_json(client, auth):
    missing = await client.get("/v1/nothing-here", headers=auth)
    wrong_method = await client.delete("/v1/generate", headers=auth)

    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"
