"""POST /v1/generate: accept a brief, commit the job, enqueue it, optionally wait for it."""

from fastapi import APIRouter, Response

from app import schemas
from app.db import Session
from app.deps import (
    AppSettings,
    IdempotencyKey,
    Prefer,
    Queue,
    Registry,
    Sessionmaker,
    Tenant,
)
from app.routers import problems
from app.services import jobs

router = APIRouter(prefix="/v1", tags=["generate"])


@router.post(
    "/generate",
    operation_id="generate_image",
    summary="Generate images from a brief",
    status_code=202,
    response_model=schemas.Job,
    responses={
        200: {"description": "The job finished within `Prefer: wait`.", "model": schemas.Job}
    }
    | problems(400, 401, 409, 413, 422),
)
async def generate_image(
    body: schemas.GenerateRequest,
    response: Response,
    session: Session,
    sessionmaker: Sessionmaker,
    tenant: Tenant,
    settings: AppSettings,
    registry: Registry,
    queue: Queue,
    idempotency_key: IdempotencyKey = None,
    prefer: Prefer = None,
) -> schemas.Job:
    """Queue a generate job. Answers 202 with the job and its Location; with `Prefer: wait=N`
    answers 200 with the finished job if it finishes within N seconds."""
    wait = jobs.requested_wait(prefer, settings.max_wait_seconds)
    job, created = await jobs.create_generate_job(
        session, registry, tenant, body, idempotency_key, settings.default_model
    )
    await session.commit()
    if created:
        await jobs.dispatch(queue, job.id, 1)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if wait:
        response.headers["Preference-Applied"] = f"wait={wait}"
        job = await jobs.wait_for_job(sessionmaker, tenant, job.id, wait)
        if job.status in jobs.FINAL_STATUSES:
            response.status_code = 200
    return await jobs.job_view(session, job)
