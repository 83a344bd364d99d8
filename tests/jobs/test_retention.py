"""Retention: the sweeper deletes finished jobs (with their outputs) and uploads older than the
deployment's or the tenant's retention, as DELETE does, and keeps what a queued job uses."""

import asyncio
import subprocess
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select, update

from app.config import Settings
from app.jobs.sweeper import sweep_in_turn
from app.models import Asset, Job, JobKind, Tenant, utcnow
from app.runtime.context import TaskContext
from app.services.retention import set_retention
from tests.factories import queued_job_row, unique_png
from tests.support import (
    darkroom_command,
    darkroom_environment,
    insert_job,
    is_stored,
    serving,
    tenant_of,
)

WAIT = {"Prefer": "wait=30"}


async def upload(client, auth, width: int = 64) -> dict:
    response = await client.post(
        "/v1/assets", files={"file": ("a.png", unique_png(width, 48), "image/png")}, headers=auth
    )
    assert response.status_code == 201, response.text
    return response.json()


async def finished_job(client, auth) -> dict:
    response = await client.post("/v1/generate", json={"prompt": "a kite"}, headers=auth | WAIT)
    assert response.status_code == 200, response.text
    return response.json()


async def age(app, days: float, *, jobs: list[dict] = (), assets: list[dict] = ()) -> None:
    """Move jobs' finish and assets' creation `days` into the past."""
    then = utcnow() - timedelta(days=days)
    async with app.state.sessionmaker() as session:
        for job in jobs:
            await session.execute(
                update(Job).where(Job.id == job["id"]).values(created_at=then, finished_at=then)
            )
            await session.execute(
                update(Asset).where(Asset.job_id == job["id"]).values(created_at=then)
            )
        for asset in assets:
            await session.execute(
                update(Asset).where(Asset.id == asset["id"]).values(created_at=then)
            )
        await session.commit()


def with_retention(app, days: int | None) -> TaskContext:
    """The app's context as a deployment with DARKROOM_RETENTION_DAYS=days sees it."""
    settings = app.state.settings.model_copy(update={"retention_days": days})
    return replace(app.state.context, settings=settings)


async def sweep(app, context: TaskContext) -> None:
    await sweep_in_turn(context, app.state.queue, None)


async def exists(client, auth, path: str) -> bool:
    status = (await client.get(path, headers=auth)).status_code
    assert status in (200, 404), path
    return status == 200


async def tenant_retention(app, auth, days: int | None) -> None:
    async with app.state.sessionmaker() as session:
        tenant_id = await tenant_of(app, auth)
        name = await session.scalar(select(Tenant.name).where(Tenant.id == tenant_id))
        await set_retention(session, name, days)
        await session.commit()


async def test_sweep_deletes_finished_jobs_and_uploads_past_retention(app, client, auth):
    old_job, new_job = await finished_job(client, auth), await finished_job(client, auth)
    old_upload, new_upload = await upload(client, auth, 64), await upload(client, auth, 65)
    await age(app, 3, jobs=[old_job], assets=[old_upload])
    old_output = old_job["outputs"][0]["url"]

    await sweep(app, with_retention(app, 2))

    assert not await exists(client, auth, f"/v1/jobs/{old_job['id']}")
    assert not await exists(client, auth, old_output)
    assert not await exists(client, auth, old_upload["url"])
    assert not await is_stored(app, old_upload["content_hash"])
    assert await exists(client, auth, f"/v1/jobs/{new_job['id']}")
    assert await exists(client, auth, new_job["outputs"][0]["url"])
    assert await exists(client, auth, new_upload["url"])


async def test_without_retention_nothing_is_deleted(app, client, auth):
    job, asset = await finished_job(client, auth), await upload(client, auth)
    await age(app, 3650, jobs=[job], assets=[asset])

    await sweep(app, with_retention(app, None))

    assert await exists(client, auth, f"/v1/jobs/{job['id']}")
    assert await exists(client, auth, asset["url"])


async def test_a_tenants_retention_overrides_the_deployments(app, client, auth, other_auth):
    mine, theirs = await upload(client, auth, 70), await upload(client, other_auth, 71)
    await age(app, 3, assets=[mine, theirs])

    await tenant_retention(app, auth, 1)
    await sweep(app, with_retention(app, None))

    assert not await exists(client, auth, mine["url"])
    assert await exists(client, other_auth, theirs["url"])

    await tenant_retention(app, other_auth, 0)
    await sweep(app, with_retention(app, 1))

    assert await exists(client, other_auth, theirs["url"])


async def test_what_a_queued_job_takes_as_input_outlives_retention(app, client, auth):
    job, asset = await finished_job(client, auth), await upload(client, auth)
    await age(app, 3, jobs=[job], assets=[asset])
    tenant_id = await tenant_of(app, auth)
    for input_id in (asset["id"], job["outputs"][0]["asset_id"]):
        # Queued edits no worker has reached: dispatched "in the future" so no sweeper runs them.
        edit = queued_job_row(tenant_id, age_seconds=-600, image=input_id)
        edit.kind = JobKind.EDIT
        await insert_job(app, edit)

    await sweep(app, with_retention(app, 1))

    assert await exists(client, auth, f"/v1/jobs/{job['id']}")
    assert await exists(client, auth, asset["url"])


async def test_tenants_retention_command_sets_and_resets_the_override(tmp_path):
    settings = Settings(data_dir=tmp_path / "var")
    async with serving(settings) as (app, _client, auth):
        tenant_id = await tenant_of(app, auth)
        async with app.state.sessionmaker() as session:
            name = await session.scalar(select(Tenant.name).where(Tenant.id == tenant_id))

        async def run(*arguments: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(
                subprocess.run,
                darkroom_command("tenants", "retention", *arguments),
                env=darkroom_environment(settings),
                capture_output=True,
                text=True,
            )

        async def stored() -> int | None:
            async with app.state.sessionmaker() as session:
                return await session.scalar(
                    select(Tenant.retention_days).where(Tenant.id == tenant_id)
                )

        thirty = await run("--tenant", name, "--days", "30")
        assert thirty.returncode == 0, thirty.stderr
        assert await stored() == 30
        assert (await run("--tenant", name, "--days", "default")).returncode == 0
        assert await stored() is None
        for days in ("-1", "²", "1e3", "100001"):
            refused = await run("--tenant", name, "--days", days)
            assert refused.returncode == 2, (days, refused.stderr)
            assert "--days: must be a whole number of days" in refused.stderr
        unknown = await run("--tenant", "nobody", "--days", "3")
        assert unknown.returncode == 1
        assert unknown.stderr.strip() == "darkroom: No tenant 'nobody'."
        assert await stored() is None
