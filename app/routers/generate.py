"""POST /v1/generate: accept a brief, commit the job, enqueue it, optionally wait for it."""

from fastapi import APIRouter

from app.deps import IdempotencyKey
from app.routers import problems
from app.routers.submission import FINISHED_RESPONSE, Submission
from app.schemas.generate import GenerateRequest
from app.schemas.jobs import Job
from app.services.generate import GENERATE

router = APIRouter(prefix="/v1", tags=["generate"])


@router.post(
    "/generate",
    operation_id="generate_image",
    summary="Generate images from a brief",
    status_code=202,
    response_model=Job,
    responses=FINISHED_RESPONSE | problems(400, 401, 402, 409, 413, 415, 422),
)
async def generate_image(
    body: GenerateRequest,
    submission: Submission,
    idempotency_key: IdempotencyKey = None,
) -> Job:
    """Queue a generate job. Answers 202 with the job and its Location; with `Prefer: wait=N`
    answers 200 with the finished job if it finishes within N seconds."""
    return await submission.submit(GENERATE, body, idempotency_key)
