"""POST /v1/generate: accept a brief, commit the job, enqueue it, optionally wait for it."""

import re
from typing import Annotated

from fastapi import APIRouter, Header, Response

from app import schemas
from app.db import Session
from app.deps import AppSettings, Queue, Registry, Sessionmaker, Tenant
from app.routers import problems
from app.services import jobs

router = APIRouter(prefix="/v1", tags=["generate"])

_WAIT_PREFERENCE = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=255,
        description="Any unique string; retrying with the same key and body returns the first job.",
    ),
]
Prefer = Annotated[
    str | None,
    Header(description="`wait=N`: hold the response up to N seconds (at most 60) for the result."),
]


def requested_wait(prefer: str | None, cap: int) -> int:
    """Seconds asked for by `Prefer: wait=N` (RFC 7240), capped; 0 without it."""
    match = _WAIT_PREFERENCE.search(prefer or "")
    return min(int(match.group(1)), cap) if match else 0


@router.post(
    "/generate",
    operation_id="generate_image",
    summary="Generate images from a brief",
    status_code=202,
    response_model=schemas.Job,
    responses={
        200: {"description": "The job finished within `Prefer: wait`.", "model": schemas.Job}
    }
    | problems(401, 409, 413, 422),
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
    job = await jobs.create_generate_job(
        session, registry, queue, tenant, body, idempotency_key, settings.default_model
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    wait = requested_wait(prefer, settings.max_wait_seconds)
    if wait:
        response.headers["Preference-Applied"] = f"wait={wait}"
        finished = await jobs.wait_for_job(sessionmaker, tenant, job.id, wait)
        if finished is not None:
            response.status_code = 200
            job = finished
    return await jobs.job_view(session, job)
