"""POST /v1/edit and POST /v1/variants: work from real images, with masks, references and
side-by-side model comparison."""

from typing import Annotated

from fastapi import APIRouter, Body

from app.deps import IdempotencyKey
from app.routers import problems
from app.routers.submission import FINISHED_RESPONSE, Submission
from app.schemas.edit import EditRequest, VariantsRequest
from app.schemas.jobs import Job
from app.services import edits

router = APIRouter(prefix="/v1", tags=["edit"])

EDIT_EXAMPLES = {
    "one model": {
        "summary": "A masked edit on one model",
        "value": EditRequest.model_config["json_schema_extra"]["example"],  # type: ignore[index]
    },
    "compare": {
        "summary": "The same edit and seed on two models, side by side",
        "value": {
            "image": {"asset_id": "ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"},
            "prompt": "replace the background with a sunlit marble kitchen counter",
            "keep": ["product_angle"],
            "models": ["local/draft", "openai/gpt-image-1-mini"],
            "seed": 7,
        },
    },
}


@router.post(
    "/edit",
    operation_id="edit_image",
    summary="Edit an image",
    status_code=202,
    response_model=Job,
    responses=FINISHED_RESPONSE | problems(400, 401, 402, 404, 409, 413, 415, 422),
)
async def edit_image(
    body: Annotated[EditRequest, Body(openapi_examples=EDIT_EXAMPLES)],
    submission: Submission,
    idempotency_key: IdempotencyKey = None,
) -> Job:
    """Queue an edit of `image`: change what the prompt asks, only where the mask's fully
    transparent pixels allow, keeping what `keep` names, steered by reference images. Every
    input given by URL or base64 is validated and stored as a `reference` asset, and each
    output lists its inputs as parents. With `models` the same edit and seeds run on each
    model, and the finished job's `groups` compare them."""
    return await submission.submit(edits.EDIT, body, idempotency_key)


@router.post(
    "/variants",
    operation_id="create_variants",
    summary="Make variants of an image",
    status_code=202,
    response_model=Job,
    responses=FINISHED_RESPONSE | problems(400, 401, 402, 404, 409, 413, 415, 422),
)
async def create_variants(
    body: VariantsRequest,
    submission: Submission,
    idempotency_key: IdempotencyKey = None,
) -> Job:
    """Queue `n` variants of an asset or of a job's output, on one model or on several side by
    side. The finished job groups its outputs by model with each model's latency and cost;
    every output keeps its seed, so a later request with that seed and `n: 1` makes it again."""
    return await submission.submit(edits.VARIANTS, body, idempotency_key)
