"""POST /v1/prompts/optimize: see the prompt a brief becomes before spending on a model."""

from fastapi import APIRouter

from app.deps import AppSettings, Registry, Tenant
from app.routers import problems
from app.schemas.prompts import OptimizedPromptView, OptimizePromptRequest
from app.services import prompting

router = APIRouter(prefix="/v1/prompts", tags=["prompts"])


@router.post(
    "/optimize",
    operation_id="optimize_prompt",
    summary="Expand a brief into a model-ready prompt",
    response_model=OptimizedPromptView,
    responses=problems(400, 401, 413, 415, 422),
)
async def optimize_prompt(
    body: OptimizePromptRequest, tenant: Tenant, settings: AppSettings, registry: Registry
) -> OptimizedPromptView:
    """The brief read into slots (which it gave, which the optimizer filled), its use case,
    and the prompt and negative prompt a job for `model` would send. Jobs do the same with
    `optimize: auto` (the default) or `llm`."""
    # The plan needs only the model's prompt style, so it need not be configured here.
    _, spec = registry.describe(body.model or settings.default_model)
    return await prompting.optimize(settings, spec, body)
