"""Jobs: read one, list them newest first, cancel one, delete one."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from app.db import Session
from app.deps import Context, Tenant
from app.models import JobStatus
from app.routers import page_cursor, problems
from app.schemas.jobs import Job, JobPage
from app.services import assets, jobs

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "/{job_id}",
    operation_id="get_job",
    summary="Get a job",
    response_model=Job,
    responses=problems(401, 404),
)
async def get_job(job_id: str, session: Session, tenant: Tenant) -> Job:
    """The job with its status, outputs or error, and timings."""
    return await jobs.job_view(session, await jobs.get_job(session, tenant, job_id))


@router.get(
    "",
    operation_id="list_jobs",
    summary="List jobs",
    response_model=JobPage,
    responses=problems(401, 422),
)
async def list_jobs(
    session: Session,
    tenant: Tenant,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    cursor: page_cursor("job") = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Jobs per page.")] = 20,
) -> JobPage:
    """The tenant's jobs, newest first, a page at a time."""
    return await jobs.list_jobs(session, tenant, status, cursor, limit)


@router.post(
    "/{job_id}/cancel",
    operation_id="cancel_job",
    summary="Cancel a job",
    response_model=Job,
    responses=problems(401, 404, 409),
)
async def cancel_job(job_id: str, session: Session, tenant: Tenant, context: Context) -> Job:
    """Cancel a queued or running job; a finished job answers 409."""
    job = await jobs.cancel_job(session, context, tenant, job_id)
    return await jobs.job_view(session, job)


@router.delete(
    "/{job_id}",
    operation_id="delete_job",
    summary="Delete a job",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted."}} | problems(401, 404, 409),
)
async def delete_job(
    job_id: Annotated[str, Path(examples=["job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"])],
    session: Session,
    tenant: Tenant,
    context: Context,
) -> Response:
    """Delete the job and its outputs (as `delete_asset` deletes an asset); a queued or running
    job is canceled first. What it cost stays in the tenant's spend (`GET /v1/usage`). 409
    while one of its outputs is the input of a queued or running job."""
    deletion = await jobs.delete_job(session, tenant, job_id)
    await session.commit()
    if deletion.canceled is not None:
        await jobs.announce_canceled(context, deletion.canceled)
    await assets.release_content(context.sessionmaker, context.storage, deletion.keys)
    return Response(status_code=204)
