"""Revision 0008 (migrations/versions/0008_keys.py): keys minted before it, in the old format and
with the old prefix, go on working after it, on both backends."""

import asyncio
import secrets
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, text

from app.config import Settings
from app.db import create_engine
from app.models import UTCDateTime
from app.services.keys import hash_key
from tests.support import empty_database, serving, upgrade

ADMIN_TOKEN = "admin-token-for-tests"
BEFORE_KEYS = "0007"
MINTED_AT = datetime(2026, 11, 1, tzinfo=UTC)


async def insert_old_key(database_url: str, tenant: str) -> str:
    """A key as `darkroom keys create` minted it before 0008: no separate prefix, its first
    ten characters stored as one."""
    key = "dk_" + secrets.token_urlsafe(32)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO tenants (id, name, created_at) VALUES (:id, :name, :now)"
                ).bindparams(bindparam("now", type_=UTCDateTime())),
                {"id": f"ten_{uuid.uuid4().hex[:26]}", "name": tenant, "now": MINTED_AT},
            )
            await connection.execute(
                text(
                    "INSERT INTO api_keys (id, tenant_id, prefix, key_hash, created_at) "
                    "SELECT :id, id, :prefix, :hash, :now FROM tenants WHERE name = :name"
                ).bindparams(bindparam("now", type_=UTCDateTime())),
                {
                    "id": f"key_{uuid.uuid4().hex[:26]}",
                    "prefix": key[:10],
                    "hash": hash_key(key),
                    "now": MINTED_AT,
                    "name": tenant,
                },
            )
    finally:
        await engine.dispose()
    return key


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_key_minted_before_the_migration_keeps_working_after_it(tmp_path, backend):
    async with empty_database(backend, "old_keys", tmp_path) as url:
        settings = Settings(database_url=url, data_dir=tmp_path, admin_token=ADMIN_TOKEN)
        await asyncio.to_thread(upgrade, settings, BEFORE_KEYS)
        key = await insert_old_key(url, "old")

        async with serving(settings) as (_, client, _auth):
            jobs = await client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"})
            listed = await client.get(
                "/v1/admin/keys",
                params={"tenant": "old"},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )

    assert jobs.status_code == 200, jobs.text
    (item,) = listed.json()["data"]
    assert item["prefix"] == key[:10] and item["status"] == "active"
