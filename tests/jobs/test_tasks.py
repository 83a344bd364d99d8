"""The task body: idempotent by job id and output index, whoever runs it and however often."""

import asyncio
from datetime import UTC, timedelta

from sqlalchemy import select

from app.config import Settings
from app.jobs import tasks
from app.jobs.kinds.generate import GenerateRunner
from app.models import Asset, Job, utcnow
from app.services.assets import record_output
from tests.factories import queued_job_row
from tests.support import insert_job, serving, tenant_of, wait_for_final


async def outputs_of(app, job_id: str) -> list[Asset]:
    async with app.state.sessionmaker() as session:
        query = select(Asset).where(Asset.job_id == job_id).order_by(Asset.output_index)
        return list(await session.scalars(query))


async def held_job(app, auth, **request) -> Job:
    """A job row no queue knows of, dispatched "later" so that no sweeper picks it up."""
    job = queued_job_row(await tenant_of(app, auth), age_seconds=-600, **request)
    await insert_job(app, job)
    return job


async def test_job_run_twice_at_once_has_one_set_of_outputs(app, client, auth):
    job = await held_job(app, auth, n=3)

    await asyncio.gather(*(tasks.run_job(app.state.context, job.id) for _ in range(2)))

    final, _ = await wait_for_final(client, auth, job.id)
    assert final["status"] == "succeeded"
    assert final["attempts"] == 1
    assets = await outputs_of(app, job.id)
    assert [asset.output_index for asset in assets] == [0, 1, 2]
    assert [output["asset_id"] for output in final["outputs"]] == [a.id for a in assets]


async def test_rerun_after_a_dead_worker_keeps_its_outputs_and_adds_the_rest(app, client, auth):
    job = await held_job(app, auth, n=3)
    context = app.state.context
    # A first worker claimed the job, stored output 0, and died; its lease has run out.
    claimed = await tasks.claim(context, job.id)
    output = await GenerateRunner(context, claimed).make(0)
    async with context.sessionmaker() as session:
        await record_output(session, context.storage, claimed, 0, output)
        stale = await session.get(Job, job.id)
        stale.lease_expires_at = utcnow() - timedelta(seconds=1)
        await session.commit()
    first_output = (await outputs_of(app, job.id))[0].id

    await tasks.run_job(context, job.id)
    await tasks.run_job(context, job.id)

    final, _ = await wait_for_final(client, auth, job.id)
    assets = await outputs_of(app, job.id)
    assert final["status"] == "succeeded"
    assert final["attempts"] == 2
    assert [asset.output_index for asset in assets] == [0, 1, 2]
    assert assets[0].id == first_output


async def test_a_live_lease_keeps_a_second_runner_out(app, auth):
    job = await held_job(app, auth)
    context = app.state.context

    first = await tasks.claim(context, job.id)
    second = await tasks.claim(context, job.id)

    assert first is not None and first.status == "running"
    assert second is None


async def test_finished_job_is_not_run_again(app, client, auth):
    job = await held_job(app, auth)
    await tasks.run_job(app.state.context, job.id)
    before = await outputs_of(app, job.id)

    await tasks.run_job(app.state.context, job.id)

    final, _ = await wait_for_final(client, auth, job.id)
    assert final["attempts"] == 1
    assert [a.id for a in await outputs_of(app, job.id)] == [a.id for a in before]


async def test_unavailable_model_fails_the_job_with_a_problem(app, client, auth):
    job = queued_job_row(await tenant_of(app, auth), age_seconds=-600)
    job.model = "gone/model"
    await insert_job(app, job)

    await tasks.run_job(app.state.context, job.id)

    final, _ = await wait_for_final(client, auth, job.id)
    assert final["status"] == "failed"
    assert final["error"]["status"] == 422
    assert "gone/model" in final["error"]["detail"]
    assert final["outputs"] == []


async def test_a_run_that_lost_its_lease_cannot_write_the_final_status(app, client, auth):
    job = await held_job(app, auth)
    context = app.state.context
    stale_run = await tasks.claim(context, job.id)
    async with context.sessionmaker() as session:
        row = await session.get(Job, job.id)
        row.lease_expires_at = utcnow() - timedelta(seconds=1)
        await session.commit()
    await tasks.run_job(context, job.id)

    written = await tasks.finish(context, stale_run, "failed", error={"status": 500})

    final, _ = await wait_for_final(client, auth, job.id)
    assert written is False
    assert final["status"] == "succeeded"
    assert final["attempts"] == 2
    assert len(final["outputs"]) == 1


async def test_a_canceled_job_is_not_finished_by_its_run(app, client, auth):
    job = await held_job(app, auth)
    context = app.state.context
    run = await tasks.claim(context, job.id)
    await client.post(f"/v1/jobs/{job.id}/cancel", headers=auth)

    written = await tasks.finish(context, run, "succeeded")

    final, _ = await wait_for_final(client, auth, job.id)
    assert written is False
    assert final["status"] == "canceled"


async def test_a_job_past_its_timeout_fails_with_job_timeout(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", job_timeout_seconds=0.5)
    async with serving(settings) as (_, client, auth):
        body = {"prompt": "a slow one", "size": "4096x4096", "n": 3}
        job = (await client.post("/v1/generate", json=body, headers=auth)).json()

        final, _ = await wait_for_final(client, auth, job["id"])

    assert final["status"] == "failed"
    assert final["error"]["type"].endswith("/job-timeout")
    assert final["outputs"] == []


async def test_renewals_keep_a_job_longer_than_its_lease_with_its_first_worker(tmp_path):
    # Outputs one at a time: three 4096x4096 renders at once would hold both cores of a small
    # machine, and this test is about renewals, not about sharing the cores.
    settings = Settings(
        data_dir=tmp_path / "var",
        # Short enough that the run (about 5 s) outlives it several times; long enough that a
        # renewal held up a second by a busy machine still lands in time.
        job_lease_seconds=1.5,
        sweep_interval_seconds=0.1,
        queued_grace_seconds=0,
        job_output_concurrency=1,
    )
    async with serving(settings) as (_, client, auth):
        body = {"prompt": "a long one", "size": "4096x4096", "n": 3}
        job = (await client.post("/v1/generate", json=body, headers=auth)).json()

        final, _ = await wait_for_final(client, auth, job["id"])

    assert final["status"] == "succeeded"
    assert final["attempts"] == 1
    assert final["timings"]["total_ms"] > 2 * 1500


async def test_an_output_stored_twice_counts_once_in_the_spend(app, client, auth):
    job = await held_job(app, auth, n=1)
    context = app.state.context
    claimed = await tasks.claim(context, job.id)
    output = await GenerateRunner(context, claimed).make(0)

    # Two runs storing the same output (a redelivered message racing the first) keep one.
    for _ in range(2):
        async with context.sessionmaker() as session:
            await record_output(session, context.storage, claimed, 0, output)
            await session.commit()

    day = job.created_at.astimezone(UTC).date()
    usage = (await client.get(f"/v1/usage?from={day}&to={day}", headers=auth)).json()
    assert len(await outputs_of(app, job.id)) == 1
    assert usage["images"] == 1
