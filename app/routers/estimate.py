"""POST /v1/estimate: what a job would be, cost and take, before running it."""

from fastapi import APIRouter, Request

from app.db import Session
from app.deps import Context, Queue, Tenant
from app.routers import problems
from app.schemas.estimate import Estimate, EstimateRequest
from app.services import estimate as service
from app.services.submission import Submitter

router = APIRouter(prefix="/v1", tags=["estimate"])


@router.post(
    "/estimate",
    operation_id="estimate_job",
    summary="Estimate a job without running it",
    response_model=Estimate,
    responses=problems(400, 401, 413, 415, 422),
)
async def estimate_job(
    body: EstimateRequest,
    request: Request,
    session: Session,
    tenant: Tenant,
    context: Context,
    queue: Queue,
) -> Estimate:
    """Check the body of a job route (`kind`: generate, edit, variants or export) with that
    route's own checks and answer what the job would be: its normalized request, each model's
    generation size, cost and expected latency, and the total cost; or, with `accepted: false`,
    the problem the route would answer. Creates no job and stores nothing. A body that does not
    match the route's schema is 422, as the route answers it."""
    submitter = Submitter(session, tenant, context, queue)
    return await service.estimate(submitter, body, request.url.path)
