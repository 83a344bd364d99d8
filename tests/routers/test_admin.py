"""The operator API (app/routers/admin.py): off without DARKROOM_ADMIN_TOKEN, guarded by it, and
listing, creating, revoking and rotating keys over HTTP."""

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import update

from app.config import Settings
from app.models import ApiKey, utcnow
from app.services.keys import KeyCache
from tests.support import serving

ADMIN_TOKEN = "admin-token-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def admin_app(app):
    """The app with an admin token set, and a key cache that would remember a key for a minute,
    so only an invalidation makes a revoked key stop within a test."""
    app.state.settings = app.state.settings.model_copy(
        update={"admin_token": SecretStr(ADMIN_TOKEN)}
    )
    app.state.key_cache = KeyCache(60)
    return app


def unique(label: str) -> str:
    """A tenant name no other test uses (the Postgres database is shared by the run)."""
    return f"{label}-{uuid.uuid4().hex}"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create_key(client, tenant: str) -> dict:
    response = await client.post("/v1/admin/keys", json={"tenant": tenant}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_operator_api_is_not_there_without_an_admin_token(app, client, auth):
    listed = await client.get("/v1/admin/keys", headers=auth)
    created = await client.post("/v1/admin/keys", json={"tenant": "acme"}, headers=ADMIN)

    assert listed.status_code == created.status_code == 404
    assert listed.headers["content-type"] == "application/problem+json"


async def test_only_the_admin_token_opens_the_operator_api(admin_app, client, auth):
    missing = await client.get("/v1/admin/keys")
    wrong = await client.get("/v1/admin/keys", headers=bearer(ADMIN_TOKEN + "x"))
    tenant_key = await client.get("/v1/admin/keys", headers=auth)
    admin = await client.get("/v1/admin/keys", headers=ADMIN)

    assert missing.status_code == wrong.status_code == tenant_key.status_code == 401
    assert wrong.json()["type"].endswith("/unauthorized")
    assert admin.status_code == 200
    # The admin token is no API key.
    assert (await client.get("/v1/jobs", headers=ADMIN)).status_code == 401


async def test_a_created_key_works_and_is_listed_by_its_prefix_never_its_secret(admin_app, client):
    tenant = unique("acme")
    created = await create_key(client, tenant)

    jobs = await client.get("/v1/jobs", headers=bearer(created["key"]))
    listed = await client.get("/v1/admin/keys", params={"tenant": tenant}, headers=ADMIN)

    assert jobs.status_code == 200
    assert created["key"].startswith(created["prefix"] + "_")
    assert created["id"].startswith("key_") and created["status"] == "active"
    assert listed.status_code == 200
    (item,) = listed.json()["data"]
    assert item["id"] == created["id"] and item["prefix"] == created["prefix"]
    assert item["tenant"] == tenant and item["status"] == "active"
    assert "key" not in item and created["key"] not in listed.text


@pytest.mark.parametrize("app", ["postgres"], indirect=True)
async def test_concurrent_first_keys_of_a_new_tenant_all_go_to_that_one_tenant(admin_app, client):
    tenant = unique("newcomer")
    created = await asyncio.gather(
        *(client.post("/v1/admin/keys", json={"tenant": tenant}, headers=ADMIN) for _ in range(4))
    )

    assert [response.status_code for response in created] == [201] * 4, created[0].text
    listed = await client.get("/v1/admin/keys", params={"tenant": tenant}, headers=ADMIN)
    assert len(listed.json()["data"]) == 4
    jobs = [await client.get("/v1/jobs", headers=bearer(r.json()["key"])) for r in created]
    assert [response.status_code for response in jobs] == [200] * 4


async def test_the_key_list_pages_newest_first_and_filters_by_tenant(admin_app, client):
    tenant = unique("paged")
    made = [(await create_key(client, tenant))["id"] for _ in range(3)]
    await create_key(client, f"{tenant}-other")

    first = (
        await client.get("/v1/admin/keys", params={"tenant": tenant, "limit": 2}, headers=ADMIN)
    ).json()
    second = (
        await client.get(
            "/v1/admin/keys",
            params={"tenant": tenant, "limit": 2, "cursor": first["next_cursor"]},
            headers=ADMIN,
        )
    ).json()

    listed = [item["id"] for item in first["data"] + second["data"]]
    assert listed == made[::-1]
    assert first["has_more"] and not second["has_more"]


async def test_a_revoked_key_answers_401_at_once(admin_app, client):
    created = await create_key(client, unique("revoked"))
    assert (await client.get("/v1/jobs", headers=bearer(created["key"]))).status_code == 200

    revoked = await client.post(f"/v1/admin/keys/{created['id']}/revoke", headers=ADMIN)
    jobs = await client.get("/v1/jobs", headers=bearer(created["key"]))
    submit = await client.post(
        "/v1/generate", json={"prompt": "a kite"}, headers=bearer(created["key"])
    )
    again = await client.post(f"/v1/admin/keys/{created['id']}/revoke", headers=ADMIN)

    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked" and revoked.json()["revoked_at"]
    assert jobs.status_code == submit.status_code == 401
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]


async def test_a_rotated_key_works_beside_its_successor_until_its_grace_ends(admin_app, client):
    old = await create_key(client, unique("rotated"))
    assert (await client.get("/v1/jobs", headers=bearer(old["key"]))).status_code == 200

    # Without a body, the default grace: an hour.
    rotated = await client.post(f"/v1/admin/keys/{old['id']}/rotate", headers=ADMIN)

    assert rotated.status_code == 201, rotated.text
    new, previous = rotated.json()["key"], rotated.json()["previous_key"]
    assert new["id"] != old["id"] and new["tenant"] == old["tenant"]
    assert previous["status"] == "expiring"
    granted = datetime.fromisoformat(previous["expires_at"]) - datetime.fromisoformat(
        new["created_at"]
    )
    assert timedelta(minutes=59) < granted <= timedelta(hours=1)
    for key in (old["key"], new["key"]):
        assert (await client.get("/v1/jobs", headers=bearer(key))).status_code == 200
    # The grace ends (moved into the past rather than waited for).
    async with admin_app.state.sessionmaker() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == old["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    admin_app.state.key_cache.forget_all()
    assert (await client.get("/v1/jobs", headers=bearer(old["key"]))).status_code == 401
    assert (await client.get("/v1/jobs", headers=bearer(new["key"]))).status_code == 200
    listed = await client.get("/v1/admin/keys", params={"tenant": old["tenant"]}, headers=ADMIN)
    statuses = {item["id"]: item["status"] for item in listed.json()["data"]}
    assert statuses == {new["id"]: "active", old["id"]: "expired"}


async def test_rotating_with_no_grace_revokes_the_old_key_now(admin_app, client):
    old = await create_key(client, unique("no-grace"))
    assert (await client.get("/v1/jobs", headers=bearer(old["key"]))).status_code == 200

    rotated = await client.post(
        f"/v1/admin/keys/{old['id']}/rotate", json={"grace_seconds": 0}, headers=ADMIN
    )

    assert rotated.json()["previous_key"]["status"] == "revoked"
    assert (await client.get("/v1/jobs", headers=bearer(old["key"]))).status_code == 401
    new = rotated.json()["key"]["key"]
    assert (await client.get("/v1/jobs", headers=bearer(new))).status_code == 200


async def test_only_an_active_key_rotates_and_bad_requests_change_nothing(admin_app, client):
    key = await create_key(client, unique("refused"))
    path = f"/v1/admin/keys/{key['id']}"

    too_long = await client.post(
        f"{path}/rotate", json={"grace_seconds": 31 * 24 * 3600}, headers=ADMIN
    )
    negative = await client.post(f"{path}/rotate", json={"grace_seconds": -1}, headers=ADMIN)
    as_text = await client.post(f"{path}/rotate", json={"grace_seconds": "50"}, headers=ADMIN)
    unknown_field = await client.post("/v1/admin/keys", json={"tenant": "x", "n": 1}, headers=ADMIN)
    no_tenant = await client.post("/v1/admin/keys", json={"tenant": ""}, headers=ADMIN)
    bad_cursor = await client.get("/v1/admin/keys", params={"cursor": "nope"}, headers=ADMIN)
    missing = await client.post("/v1/admin/keys/key_nope/revoke", headers=ADMIN)
    listed = await client.get("/v1/admin/keys", params={"tenant": key["tenant"]}, headers=ADMIN)
    await client.post(f"{path}/revoke", headers=ADMIN)
    revoked_rotation = await client.post(f"{path}/rotate", headers=ADMIN)

    for refused in (too_long, negative, as_text, unknown_field, no_tenant, bad_cursor):
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert missing.status_code == 404
    assert [item["status"] for item in listed.json()["data"]] == ["active"]
    assert revoked_rotation.status_code == 409
    assert "revoked" in revoked_rotation.json()["detail"]


async def test_last_use_is_written_when_the_process_saves_it_not_on_each_request(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", admin_token=ADMIN_TOKEN)
    async with serving(settings) as (_, client, _auth):
        created = await create_key(client, "used")
        for _ in range(3):
            assert (await client.get("/v1/jobs", headers=bearer(created["key"]))).status_code == 200
        during = await client.get("/v1/admin/keys", params={"tenant": "used"}, headers=ADMIN)
    # The process saves the uses it noted once a minute and when it stops.
    async with serving(settings) as (_, client, _auth):
        after = await client.get("/v1/admin/keys", params={"tenant": "used"}, headers=ADMIN)

    assert during.json()["data"][0]["last_used_at"] is None
    assert after.json()["data"][0]["last_used_at"] is not None
