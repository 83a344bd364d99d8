"""Task bodies: the only place a job runs. Each step is keyed by job id and output index, so a
job run twice (a redelivered message, a worker killed mid-job) ends with one set of outputs."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from PIL import Image
from sqlalchemy import or_, select, update

from app.errors import DarkroomError, problem
from app.imaging.codecs import ImageInfo, encode
from app.imaging.geometry import fit_exact, generation_size
from app.jobs.context import TaskContext
from app.models import Asset, Job, utcnow
from app.providers.base import GenerateCall
from app.services.assets import record_output

logger = logging.getLogger(__name__)


async def run_job(context: TaskContext, job_id: str) -> None:
    """Run one job to a final status, unless it is finished, canceled or run elsewhere."""
    job = await claim(context, job_id)
    if job is None:
        return
    try:
        async with keep_lease(context, job_id):
            provider_ms, cost_usd = await produce_outputs(context, job)
    except DarkroomError as exc:
        await finish(context, job_id, "failed", error=exc.to_problem())
        return
    except Exception:
        logger.exception("job %s crashed", job_id)
        error = problem(500, "internal-error", "Internal error", "The job failed unexpectedly.")
        await finish(context, job_id, "failed", error=error)
        return
    await finish(context, job_id, "succeeded", provider_ms=provider_ms, cost_usd=cost_usd)


async def claim(context: TaskContext, job_id: str) -> Job | None:
    """Mark the job running under a fresh lease; None if it is not ours to run now."""
    now = utcnow()
    lease = now + timedelta(seconds=context.settings.job_lease_seconds)
    async with context.sessionmaker() as session:
        claimed = await session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.attempts < context.settings.max_job_attempts,
                or_(
                    Job.status == "queued",
                    (Job.status == "running") & (Job.lease_expires_at < now),
                ),
            )
            .values(status="running", attempts=Job.attempts + 1, lease_expires_at=lease)
        )
        if claimed.rowcount == 0:
            return None
        await session.execute(
            update(Job).where(Job.id == job_id, Job.started_at.is_(None)).values(started_at=now)
        )
        job = await session.get(Job, job_id)
        await session.commit()
        return job


async def produce_outputs(context: TaskContext, job: Job) -> tuple[int, float | None]:
    """Make and store each output the job does not have yet, one at a time, so a re-run
    picks up where a dead worker stopped. Returns provider milliseconds and cost."""
    request = job.request
    provider, spec = context.registry.resolve(job.model)
    width, height = generation_size(spec.capabilities, request["width"], request["height"])
    async with context.sessionmaker() as session:
        done = set(await session.scalars(select(Asset.output_index).where(Asset.job_id == job.id)))
    provider_ms, cost_usd = 0, 0.0
    for index in (index for index in range(request["n"]) if index not in done):
        if await _status(context, job.id) != "running":
            break
        seed = output_seed(request["seed"], index)
        call = GenerateCall(
            model=spec.name,
            prompt=request["prompt"],
            negative_prompt=request.get("negative_prompt"),
            width=width,
            height=height,
            seed=seed,
        )
        started = time.perf_counter()
        result = await provider.generate(call)
        provider_ms += round((time.perf_counter() - started) * 1000)
        cost_usd += result.cost_usd or 0.0
        encoded = await asyncio.to_thread(
            _finish_image,
            result.image,
            request["width"],
            request["height"],
            request["output_format"],
        )
        async with context.sessionmaker() as session:
            await record_output(session, context.storage, job, index, encoded, seed)
            await session.commit()
    return provider_ms, cost_usd


async def _status(context: TaskContext, job_id: str) -> str | None:
    async with context.sessionmaker() as session:
        return await session.scalar(select(Job.status).where(Job.id == job_id))


@asynccontextmanager
async def keep_lease(context: TaskContext, job_id: str) -> AsyncIterator[None]:
    """Renew the job's lease in the background while the body runs; when this worker dies the
    renewals stop and the sweeper hands the job to another worker once the lease runs out."""
    heartbeat = asyncio.create_task(_renew_lease_forever(context, job_id))
    try:
        yield
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat


async def _renew_lease_forever(context: TaskContext, job_id: str) -> None:
    lease_seconds = context.settings.job_lease_seconds
    while True:
        await asyncio.sleep(lease_seconds / 3)
        lease = utcnow() + timedelta(seconds=lease_seconds)
        async with context.sessionmaker() as session:
            await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "running")
                .values(lease_expires_at=lease)
            )
            await session.commit()


def output_seed(seed: int, index: int) -> int:
    """The seed of output `index`: the job's seed plus the index, within 32 bits."""
    return (seed + index) % 2**32


def _finish_image(
    image: Image.Image, width: int, height: int, image_format: str
) -> tuple[bytes, ImageInfo]:
    return encode(fit_exact(image, width, height), image_format), ImageInfo(
        image_format, width, height
    )


async def finish(
    context: TaskContext,
    job_id: str,
    status: str,
    *,
    error: dict[str, Any] | None = None,
    provider_ms: int | None = None,
    cost_usd: float | None = None,
) -> None:
    """Record a final status, unless the job was canceled (or finished) meanwhile."""
    async with context.sessionmaker() as session:
        await session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "running")
            .values(
                status=status,
                error=error,
                provider_ms=provider_ms,
                cost_usd=cost_usd,
                finished_at=utcnow(),
                lease_expires_at=None,
            )
        )
        await session.commit()
