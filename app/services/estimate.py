"""Estimates: a job route's body checked and normalized by that route's own code, then priced
and timed per model, all in a transaction that is rolled back, so nothing is created."""

from typing import Any

from app.errors import DarkroomError
from app.models import JobKind
from app.providers.base import ModelSpec
from app.schemas.catalog import PriceRange
from app.schemas.common import Problem
from app.schemas.estimate import Estimate, EstimateRequest, ModelEstimate
from app.services.catalog import observed_latencies
from app.services.edits import EDIT, VARIANTS
from app.services.export import EXPORT
from app.services.generate import GENERATE
from app.services.submission import Kind, Submitter, normalize_request

# Characters of prompt text per token, fewest to most (English runs about four, and a common
# word with its space, about six, is rarely more than one token): bounds on what a per-token
# vendor counts for a prompt it has not tokenized yet.
CHARACTERS_PER_TOKEN = (2, 8)

KINDS: dict[str, Kind[Any]] = {
    JobKind.GENERATE: GENERATE,
    JobKind.EDIT: EDIT,
    JobKind.VARIANTS: VARIANTS,
    JobKind.EXPORT: EXPORT,
}


async def estimate(submitter: Submitter, body: EstimateRequest, instance: str) -> Estimate:
    """What the job `body` describes would be, cost and take; or the problem its route would
    answer (`instance` names the route in it). Rolls back whatever checking the body wrote."""
    try:
        request = await normalize_request(submitter, KINDS[body.kind], body)
    except DarkroomError as exc:
        refusal = Problem.model_validate(exc.to_problem(instance))
        return Estimate(kind=body.kind, accepted=False, refusal=refusal)
    finally:
        # Inputs given by URL or base64 were stored to be checked; the estimate keeps none.
        await submitter.session.rollback()
    models = await model_estimates(submitter, request)
    costs = [model.cost_usd for model in models]
    unpriced = [model.model for model in models if model.cost_usd is None]
    return Estimate(
        kind=body.kind,
        accepted=True,
        request=request,
        models=models,
        cost_usd=None if unpriced else total(costs),
        unpriced_models=unpriced,
    )


async def model_estimates(submitter: Submitter, request: dict[str, Any]) -> list[ModelEstimate]:
    """Each model the normalized request runs (none for an export): its images, the size it is
    asked for, its cost at the request's quality, and its expected latency."""
    if "width" not in request:
        return []
    model_ids = request.get("models") or [request["model"]]
    specs = [submitter.registry.describe(model_id)[1] for model_id in model_ids]
    observed = await observed_latencies(submitter.session)
    return [model_estimate(spec, request, observed.get(spec.id)) for spec in specs]


def model_estimate(
    spec: ModelSpec, request: dict[str, Any], observed_latency_ms: int | None
) -> ModelEstimate:
    """One model's share of the job."""
    images = int(request["n"])
    quality = request.get("quality", "auto")
    width, height = spec.capabilities.generation_size(request["width"], request["height"], quality)
    price = spec.price_range(quality)
    cost = None
    if price is not None:
        low, high = prompt_cost(spec, str(request.get("prompt") or ""))
        # The prompt is billed once per vendor call: once for all the images at least, once
        # for each at most.
        cost = PriceRange(min_usd=price[0] * images + low, max_usd=(price[1] + high) * images)
    latency, source = observed_latency_ms, "observed"
    if latency is None:
        latency, source = spec.typical_latency_ms, "catalog"
    return ModelEstimate(
        model=spec.id,
        images=images,
        generation_size=f"{width}x{height}",
        native_quality=spec.capabilities.native_quality(quality),
        cost_usd=cost,
        latency_ms=latency,
        latency_source=source if latency is not None else None,
    )


def prompt_cost(spec: ModelSpec, prompt: str) -> tuple[float, float]:
    """The (lowest, highest) USD of sending the prompt once to a model billed per token of
    text; nothing for a model priced per image."""
    if spec.prompt_token_price_usd is None:
        return 0.0, 0.0
    most, fewest = (len(prompt) / chars for chars in CHARACTERS_PER_TOKEN)
    return fewest * spec.prompt_token_price_usd, most * spec.prompt_token_price_usd


def total(costs: list[PriceRange | None]) -> PriceRange:
    """The sum of known price ranges (an export, with no model, costs nothing)."""
    known = [cost for cost in costs if cost is not None]
    return PriceRange(
        min_usd=sum(cost.min_usd for cost in known), max_usd=sum(cost.max_usd for cost in known)
    )
