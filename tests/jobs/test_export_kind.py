"""The export job kind: a re-run keeps what an earlier run stored, and the bundle holds it."""

import hashlib
import io
import zipfile
from datetime import timedelta

from PIL import Image
from sqlalchemy import select

from app.ids import new_id
from app.jobs import tasks
from app.jobs.kinds.export import ExportRunner
from app.models import Asset, Job, utcnow
from app.services.assets import record_output
from tests.support import insert_job, tenant_of, wait_for_final


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


async def held_export_job(app, auth, asset_id: str) -> Job:
    """An export job no queue knows of, dispatched "later" so that no sweeper picks it up."""
    later = utcnow() + timedelta(seconds=600)
    targets = [
        {"name": "medium-rectangle", "width": 300, "height": 250},
        {"name": "40x30", "width": 40, "height": 30},
    ]
    request = {
        "model": "export",
        "asset_id": asset_id,
        "targets": targets,
        "fit": "cover",
        "background": "#ffffff",
        "format": "webp",
        "quality": 82,
        "max_bytes": None,
        "strip_metadata": True,
        "provenance": None,
        "bundle": True,
    }
    job = Job(
        id=new_id("job"),
        tenant_id=await tenant_of(app, auth),
        kind="export",
        status="queued",
        model="export",
        request=request,
        created_at=later,
        dispatches=1,
        dispatched_at=later,
        attempts=0,
    )
    await insert_job(app, job)
    return job


async def test_rerun_keeps_the_dead_runs_output_and_bundles_every_output(app, client, auth):
    uploaded = await client.post("/v1/assets", files={"file": ("a", png(320, 200))}, headers=auth)
    job = await held_export_job(app, auth, uploaded.json()["id"])
    context = app.state.context
    # A first worker claimed the job, stored output 0, and died; its lease has run out.
    claimed = await tasks.claim(context, job.id)
    runner = ExportRunner(context, claimed)
    await runner.prepare()
    output = await runner.make(0)
    async with context.sessionmaker() as session:
        await record_output(session, context.storage, claimed, 0, output)
        stale = await session.get(Job, job.id)
        stale.lease_expires_at = utcnow() - timedelta(seconds=1)
        await session.commit()

    await tasks.run_job(context, job.id)

    final, _ = await wait_for_final(client, auth, job.id)
    assert final["status"] == "succeeded", final
    assert final["attempts"] == 2
    async with app.state.sessionmaker() as session:
        query = select(Asset).where(Asset.job_id == job.id).order_by(Asset.output_index)
        assets = list(await session.scalars(query))
    assert [(a.output_index, a.format) for a in assets] == [(0, "webp"), (1, "webp"), (2, "zip")]
    assert assets[0].content_hash == hashlib.sha256(output.encoded[0]).hexdigest()
    bundle = zipfile.ZipFile(io.BytesIO(await context.storage.get(assets[2].storage_key)))
    assert bundle.namelist() == ["medium-rectangle.webp", "40x30.webp"]
    assert bundle.read("medium-rectangle.webp") == output.encoded[0]
    assert bundle.read("40x30.webp") == await context.storage.get(assets[1].storage_key)
