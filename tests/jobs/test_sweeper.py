"""The sweeper: no job is lost to a dropped queue message or a dead worker."""

from datetime import timedelta

import pytest

from app.models import Job, utcnow
from tests.factories import queued_job_row
from tests.support import insert_job, tenant_of, wait_for_final


async def job_row(app, job_id: str) -> Job:
    async with app.state.sessionmaker() as session:
        return await session.get(Job, job_id)


async def test_job_whose_queue_message_was_lost_is_finished(app, client, auth):
    # Committed two minutes ago and never enqueued: the API died between commit and enqueue.
    job = queued_job_row(await tenant_of(app, auth), age_seconds=120, n=2)
    await insert_job(app, job)

    final, _ = await wait_for_final(client, auth, job.id, seconds=30)

    assert final["status"] == "succeeded"
    assert len(final["outputs"]) == 2
    assert (await job_row(app, job.id)).dispatches >= 2


async def test_job_whose_worker_died_is_run_again(app, client, auth):
    job = queued_job_row(await tenant_of(app, auth), age_seconds=120)
    job.status, job.attempts = "running", 1
    job.started_at = utcnow() - timedelta(seconds=100)
    job.lease_expires_at = utcnow() - timedelta(seconds=1)
    await insert_job(app, job)

    final, _ = await wait_for_final(client, auth, job.id, seconds=30)

    assert final["status"] == "succeeded"
    assert final["attempts"] == 2
    assert final["started_at"] == job.started_at.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("app", ["postgres"], indirect=True)
async def test_job_whose_message_a_dead_worker_took_before_claiming_it_is_run_again(
    app, client, auth
):
    # What a worker killed between taking the message and claiming the job leaves: the job
    # queued in Postgres, and its message in arq marked in progress for arq's whole timeout.
    job = queued_job_row(await tenant_of(app, auth), age_seconds=120)
    in_progress = f"arq:in-progress:{job.id}"
    redis = app.state.queue.redis
    await redis.psetex(in_progress, 3_600_000, b"1")
    try:
        await insert_job(app, job)
        await app.state.queue.enqueue(job.id, 1)

        final, _ = await wait_for_final(client, auth, job.id, seconds=30)
    finally:
        await redis.delete(in_progress)

    assert final["status"] == "succeeded"
    assert final["attempts"] == 1
    assert (await job_row(app, job.id)).dispatches >= 2


async def test_job_that_lost_every_attempt_is_failed_not_retried_forever(app, client, auth):
    job = queued_job_row(await tenant_of(app, auth), age_seconds=120)
    job.status, job.attempts = "running", app.state.settings.max_job_attempts
    job.lease_expires_at = utcnow() - timedelta(seconds=1)
    await insert_job(app, job)

    final, _ = await wait_for_final(client, auth, job.id, seconds=30)

    assert final["status"] == "failed"
    assert final["error"]["type"].endswith("/worker-lost")
    assert final["outputs"] == []
