"""POST /v1/estimate: what a job would be, cost and take, before running it."""

from fastapi import APIRouter, Request

from app.db import Session
from app.deps import Context, MonthlyBudget, Queue, Tenant
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
    budget: MonthlyBudget,
) -> Estimate:
    """Check the body of a job route (`kind`: generate, edit, variants or export) with that
    route's own checks (the tenant's monthly budget included) and answer what the job would be:
    its normalized request, each model's generation size, cost and expected latency, and the
    total cost; or, with `accepted: false`, the problem the route would answer
    (`budget-exceeded` when the job would take this month's spend past the budget). Creates no
    job and no asset; input images given by URL or base64 are fetched and decoded to check
    them, and their files, which no asset refers to, are removed by `darkroom gc`. A body that
    does not match the route's schema is 422, as the route answers it."""
    submitter = Submitter(session, tenant, context, queue, budget)
    return await service.estimate(submitter, body, request.url.path)
