"""Revision 0013 (migrations/versions/0013_spend.py): the spend ledger starts with what the
jobs there already are cost, on both backends, so deleting one afterwards takes nothing back; a
job canceled part way before it gets the cost of the outputs it stored."""

import asyncio
import uuid

import pytest
from sqlalchemy import insert

from app.config import Settings
from app.db import create_engine
from app.ids import new_id
from app.models import Asset, Job, Tenant, utcnow
from tests.support import empty_database, serving, upgrade

ADMIN = {"Authorization": "Bearer admin-token-for-tests"}
BEFORE_LEDGER = "0012"
MODEL = "bfl/flux-pro-1.1"


async def insert_history(database_url: str, tenant: str) -> dict[str, str]:
    """A tenant with a job that succeeded (cost 0.08, two outputs) and one canceled after two
    outputs (no cost recorded, as before the ledger), as the database held them. Their ids."""
    engine = create_engine(database_url)
    tenant_id, now = f"ten_{uuid.uuid4().hex[:26]}", utcnow()
    ids = {"succeeded": new_id("job"), "canceled": new_id("job")}
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(Tenant).values(id=tenant_id, name=tenant))
            for status, job_id in ids.items():
                await connection.execute(
                    insert(Job).values(
                        id=job_id,
                        tenant_id=tenant_id,
                        kind="generate",
                        status=status,
                        model=MODEL,
                        request={"model": MODEL, "n": 2},
                        created_at=now,
                        finished_at=now,
                        attempts=1,
                        dispatches=1,
                        cost_usd=0.08 if status == "succeeded" else None,
                    )
                )
                for index in range(2):
                    await connection.execute(insert(Asset).values(output(tenant_id, job_id, index)))
    finally:
        await engine.dispose()
    return ids


def output(tenant_id: str, job_id: str, index: int) -> dict[str, object]:
    return {
        "id": new_id("ast"),
        "tenant_id": tenant_id,
        "source": "generated",
        "content_hash": uuid.uuid4().hex,
        "storage_key": f"missing/{uuid.uuid4().hex}.png",
        "format": "png",
        "width": 8,
        "height": 8,
        "bytes": 10,
        "job_id": job_id,
        "output_index": index,
        "details": {"model": MODEL, "cost_usd": 0.04},
        "created_at": utcnow(),
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_ledger_starts_with_what_the_existing_jobs_cost(tmp_path, backend):
    async with empty_database(backend, "ledger", tmp_path) as url:
        settings = Settings(
            database_url=url, data_dir=tmp_path, admin_token="admin-token-for-tests"
        )
        await asyncio.to_thread(upgrade, settings, BEFORE_LEDGER)
        tenant = f"before-{uuid.uuid4().hex}"
        ids = await insert_history(url, tenant)

        async with serving(settings) as (_, client, _auth):
            created = await client.post("/v1/admin/keys", json={"tenant": tenant}, headers=ADMIN)
            auth = {"Authorization": f"Bearer {created.json()['key']}"}
            canceled = (await client.get(f"/v1/jobs/{ids['canceled']}", headers=auth)).json()
            deleted = await client.delete(f"/v1/jobs/{ids['succeeded']}", headers=auth)
            usage = (await client.get("/v1/usage", headers=auth)).json()

    assert canceled["status"] == "canceled" and canceled["cost_usd"] == pytest.approx(0.08)
    assert deleted.status_code == 204
    assert usage["month_spent_usd"] == pytest.approx(0.16)
    (day,) = usage["by_day"]
    assert (day["model"], day["jobs"], day["images"]) == (MODEL, 2, 4)
    assert day["spent_usd"] == pytest.approx(0.16)
