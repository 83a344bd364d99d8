"""GET /v1/assets and DELETE /v1/assets/{id}: newest-first pages with filters; a deleted asset
answers 404 everywhere, its file goes only with the last live asset of any tenant that has
its bytes, and the lineage of what was made from it says it was deleted."""

import asyncio

import pytest

from app.models import JobKind
from app.services.assets import collect_garbage
from tests.factories import image_bytes, queued_job_row, unique_png
from tests.support import embedded_only, insert_job, is_stored, tenant_of, wait_for_final

WAIT = {"Prefer": "wait=30"}


async def upload(client, auth, data: bytes | None = None) -> dict:
    data = data if data is not None else unique_png()
    response = await client.post(
        "/v1/assets", files={"file": ("a.png", data, "image/png")}, headers=auth
    )
    assert response.status_code == 201, response.text
    return response.json()


async def listed(client, auth, query: str = "") -> list[str]:
    response = await client.get(f"/v1/assets?{query}", headers=auth)
    assert response.status_code == 200, response.text
    return [asset["id"] for asset in response.json()["data"]]


async def test_list_is_newest_first_with_cursor_pages(client, auth, other_auth):
    created = [(await upload(client, auth, image_bytes(40 + i, 30)))["id"] for i in range(5)]

    first = (await client.get("/v1/assets?limit=2", headers=auth)).json()
    second = (
        await client.get(f"/v1/assets?limit=2&cursor={first['next_cursor']}", headers=auth)
    ).json()
    third = (
        await client.get(f"/v1/assets?limit=2&cursor={second['next_cursor']}", headers=auth)
    ).json()

    pages = (first, second, third)
    assert [asset["id"] for page in pages for asset in page["data"]] == list(reversed(created))
    assert [page["has_more"] for page in pages] == [True, True, False]
    assert third["next_cursor"] is None
    assert await listed(client, other_auth) == []


async def test_list_filters_by_source_job_and_creation_time(client, auth):
    first = await upload(client, auth, image_bytes(50, 40))
    second = await upload(client, auth, image_bytes(52, 40))
    job = await client.post("/v1/generate", json={"prompt": "a kite", "n": 2}, headers=auth | WAIT)
    assert job.status_code == 200, job.text
    outputs = [output["asset_id"] for output in job.json()["outputs"]]

    uploads = await listed(client, auth, "source=upload")
    of_job = await listed(client, auth, f"job_id={job.json()['id']}")
    after = await listed(client, auth, f"created_after={first['created_at']}&source=upload")
    before = await listed(client, auth, f"created_before={second['created_at']}")

    assert uploads == [second["id"], first["id"]]
    assert of_job == sorted(outputs, reverse=True)
    assert after == [second["id"]]
    assert before == [first["id"]]


async def test_bad_list_queries_are_422_problems(client, auth):
    for query in (
        "cursor=job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
        "cursor=%00",
        "source=painting",
        "limit=0",
        "created_after=yesterday",
        "created_before=2026-12-01T00:00:00",
        "created_before=0.5",
        # Out of the years a query time takes: moved to UTC they would leave the calendar.
        "created_after=0001-01-01T00:00:00%2B14:00",
        "created_before=9999-12-31T23:00:00-14:00",
    ):
        response = await client.get(f"/v1/assets?{query}", headers=auth)

        assert response.status_code == 422, (query, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_deleted_asset_answers_404_everywhere_and_its_file_goes(app, client, auth):
    asset = await upload(client, auth)
    signed = await client.post(f"/v1/assets/{asset['id']}/url", headers=auth)
    assert (await client.get(signed.json()["url"])).status_code == 200

    deleted = await client.delete(f"/v1/assets/{asset['id']}", headers=auth)

    assert deleted.status_code == 204
    assert deleted.content == b""
    for path in ("", "/content", "/lineage"):
        response = await client.get(f"/v1/assets/{asset['id']}{path}", headers=auth)
        assert response.status_code == 404, path
    by_signed_url = await client.get(signed.json()["url"])
    assert by_signed_url.status_code == 404
    assert by_signed_url.headers["content-type"] == "application/problem+json"
    assert (await client.post(f"/v1/assets/{asset['id']}/url", headers=auth)).status_code == 404
    assert await listed(client, auth) == []
    assert not await is_stored(app, asset["content_hash"])
    again = await client.delete(f"/v1/assets/{asset['id']}", headers=auth)
    assert again.status_code == 404
    assert again.json()["type"].endswith("/not-found")


async def test_another_tenants_asset_is_not_found_and_stays(client, auth, other_auth):
    asset = await upload(client, auth)

    for asset_id in (asset["id"], "ast_%00", "nonsense"):
        response = await client.delete(f"/v1/assets/{asset_id}", headers=other_auth)
        assert response.status_code == 404, asset_id
        assert response.headers["content-type"] == "application/problem+json"

    assert (await client.get(asset["url"], headers=auth)).status_code == 200


async def test_shared_content_stays_until_the_last_tenant_deletes_it(app, client, auth, other_auth):
    data = unique_png()
    mine = await upload(client, auth, data)
    theirs = await upload(client, other_auth, data)
    assert mine["content_hash"] == theirs["content_hash"]

    assert (await client.delete(f"/v1/assets/{mine['id']}", headers=auth)).status_code == 204

    content = await client.get(theirs["url"], headers=other_auth)
    assert content.status_code == 200
    assert content.content == data
    assert await is_stored(app, theirs["content_hash"])
    assert (
        await client.delete(f"/v1/assets/{theirs['id']}", headers=other_auth)
    ).status_code == 204
    assert not await is_stored(app, theirs["content_hash"])


async def test_uploading_deleted_content_again_stores_it_again(app, client, auth):
    data = unique_png()
    first = await upload(client, auth, data)
    await client.delete(f"/v1/assets/{first['id']}", headers=auth)

    second = await upload(client, auth, data)

    assert (await client.get(second["url"], headers=auth)).content == data


async def test_lineage_shows_a_deleted_ancestor_as_deleted(client, auth):
    source = await upload(client, auth)
    edit = await client.post(
        "/v1/edit",
        json={"image": {"asset_id": source["id"]}, "prompt": "warmer light"},
        headers=auth | WAIT,
    )
    assert edit.status_code == 200, edit.text
    output_id = edit.json()["outputs"][0]["asset_id"]

    assert (await client.delete(f"/v1/assets/{source['id']}", headers=auth)).status_code == 204

    lineage = (await client.get(f"/v1/assets/{output_id}/lineage", headers=auth)).json()["data"]
    assert [item["id"] for item in lineage] == [source["id"], output_id]
    assert lineage[0]["deleted_at"] is not None
    assert lineage[1]["deleted_at"] is None
    output = (await client.get(f"/v1/assets/{output_id}", headers=auth)).json()
    assert output["parents"] == [{"asset_id": source["id"], "role": "source"}]


async def test_asset_a_queued_job_takes_as_input_is_kept_until_the_job_ends(app, client, auth):
    source = await upload(client, auth)
    # A queued edit no worker has reached: dispatched "in the future" so no sweeper touches it.
    job = queued_job_row(await tenant_of(app, auth), age_seconds=-600, image=source["id"])
    job.kind = JobKind.EDIT
    await insert_job(app, job)

    refused = await client.delete(f"/v1/assets/{source['id']}", headers=auth)

    assert refused.status_code == 409
    assert job.id in refused.json()["detail"]
    assert (await client.get(source["url"], headers=auth)).status_code == 200
    assert (await client.post(f"/v1/jobs/{job.id}/cancel", headers=auth)).status_code == 200
    assert (await client.delete(f"/v1/assets/{source['id']}", headers=auth)).status_code == 204


async def test_a_job_whose_input_was_deleted_fails_with_a_problem(app, client, auth):
    # The deletion won the race with the job's submission: the job finds its input gone.
    source = await upload(client, auth)
    assert (await client.delete(f"/v1/assets/{source['id']}", headers=auth)).status_code == 204
    job = queued_job_row(await tenant_of(app, auth), age_seconds=120, image=source["id"])
    job.kind = JobKind.EDIT
    await insert_job(app, job)

    final, _ = await wait_for_final(client, auth, job.id, seconds=30)

    assert final["status"] == "failed"
    assert final["error"]["type"].endswith("/not-found")
    assert source["id"] in final["error"]["detail"]


async def test_variants_by_output_index_skip_no_output_when_one_is_deleted(client, auth):
    job = await client.post("/v1/generate", json={"prompt": "a kite", "n": 2}, headers=auth | WAIT)
    # A job's outputs are listed in output order.
    first, second = [output["asset_id"] for output in job.json()["outputs"]]
    assert (await client.delete(f"/v1/assets/{first}", headers=auth)).status_code == 204

    def varying(index: int) -> dict:
        return {"source": {"job_id": job.json()["id"], "index": index}}

    of_second = await client.post("/v1/variants", json=varying(1), headers=auth | WAIT)
    of_first = await client.post("/v1/variants", json=varying(0), headers=auth)

    assert of_second.status_code == 200, of_second.text
    variant = of_second.json()["outputs"][0]["asset_id"]
    parents = (await client.get(f"/v1/assets/{variant}", headers=auth)).json()["parents"]
    assert [parent["asset_id"] for parent in parents] == [second]
    assert of_first.status_code == 422
    assert "deleted" in of_first.json()["detail"]


@embedded_only()
async def test_gc_removes_a_deleted_assets_file_left_behind_and_keeps_shared_ones(
    app, client, auth, other_auth
):
    shared, alone = unique_png(), unique_png()
    mine = await upload(client, auth, shared)
    theirs = await upload(client, other_auth, shared)
    lonely = await upload(client, auth, alone)
    for asset in (mine, lonely):
        assert (await client.delete(f"/v1/assets/{asset['id']}", headers=auth)).status_code == 204
    # What a deletion that could not reach the store leaves: the file of a deleted asset.
    key = f"{lonely['content_hash'][:2]}/{lonely['content_hash']}.png"
    await app.state.storage.put(key, alone)

    async with app.state.sessionmaker() as session:
        removed = await collect_garbage(session, app.state.storage, older_than=-1)

    assert removed == 1
    assert not await is_stored(app, lonely["content_hash"])
    assert (await client.get(theirs["url"], headers=other_auth)).content == shared


@pytest.mark.parametrize("app", ["postgres"], indirect=True)
async def test_an_asset_deleted_while_an_edit_naming_it_is_submitted_goes_only_if_the_edit_fails(
    client, auth
):
    sources = [(await upload(client, auth))["id"] for _ in range(8)]

    async def race(asset_id: str) -> tuple[int, int]:
        edit = {"image": {"asset_id": asset_id}, "prompt": "warmer light"}
        submitted, deleted = await asyncio.gather(
            client.post("/v1/edit", json=edit, headers=auth),
            client.delete(f"/v1/assets/{asset_id}", headers=auth),
        )
        return submitted.status_code, deleted.status_code

    outcomes = await asyncio.gather(*(race(asset_id) for asset_id in sources))

    # Either the edit was first (and the deletion is refused while it runs) or the deletion
    # was (and the edit does not find its input): never a job whose input is gone.
    assert set(outcomes) <= {(202, 409), (404, 204)}, outcomes
