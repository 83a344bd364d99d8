"""POST /v1/generate: accept a brief, commit the job, enqueue it, optionally wait for it."""

from typing import Annotated

from fastapi import APIRouter, Body

from app.deps import IdempotencyKey
from app.routers import problems
from app.routers.submission import COMPARE_RESPONSE, Submission
from app.schemas.generate import GenerateRequest
from app.schemas.jobs import Job
from app.services.generate import GENERATE

router = APIRouter(prefix="/v1", tags=["generate"])

GENERATE_EXAMPLES = {
    "one model": {
        "summary": "A brief on one model",
        "value": GenerateRequest.model_config["json_schema_extra"]["example"],  # type: ignore[index]
    },
    "compare": {
        "summary": "The same brief and seeds on two models, side by side",
        "value": {
            "prompt": "a ceramic coffee mug on a walnut desk, morning light",
            "models": ["local/draft", "openai/gpt-image-1-mini"],
            "n": 2,
            "size": "1024x1024",
            "seed": 42,
        },
    },
}


@router.post(
    "/generate",
    operation_id="generate_image",
    summary="Generate images from a brief",
    status_code=202,
    response_model=Job,
    responses=COMPARE_RESPONSE | problems(400, 401, 402, 409, 413, 415, 422),
)
async def generate_image(
    body: Annotated[GenerateRequest, Body(openapi_examples=GENERATE_EXAMPLES)],
    submission: Submission,
    idempotency_key: IdempotencyKey = None,
) -> Job:
    """Queue a generate job. Answers 202 with the job and its Location; with `Prefer: wait=N`
    answers 200 with the finished job if it finishes within N seconds. With `models` the same
    brief and seeds run on each model, and the finished job's `groups` compare them."""
    return await submission.submit(GENERATE, body, idempotency_key)
