"""Estimates: a job route's body checked and normalized by that route's own code and held to the
tenant's budget, then priced and timed per model, all in a transaction that is rolled back, so
no job or asset is created."""

from typing import Any

from app.errors import DarkroomError
from app.models import JobKind
from app.providers.base import ModelSpec
from app.schemas.common import Problem
from app.schemas.estimate import Estimate, EstimateRequest, ModelEstimate
from app.services.catalog import observed_latencies
from app.services.edits import EDIT, VARIANTS
from app.services.export import EXPORT
from app.services.generate import GENERATE
from app.services.pricing import expected_cost, job_models, model_cost
from app.services.submission import Kind, Submitter, keep_within_budget, normalize_request

KINDS: dict[str, Kind[Any]] = {
    JobKind.GENERATE: GENERATE,
    JobKind.EDIT: EDIT,
    JobKind.VARIANTS: VARIANTS,
    JobKind.EXPORT: EXPORT,
}


async def estimate(submitter: Submitter, body: EstimateRequest, instance: str) -> Estimate:
    """What the job `body` describes would be, cost and take; or the problem its route would
    answer (`instance` names the route in it), the tenant's monthly budget included. Rolls back
    whatever checking the body wrote."""
    try:
        request = await normalize_request(submitter, KINDS[body.kind], body)
        cost = expected_cost(submitter.registry, request)
        await keep_within_budget(submitter, cost)
    except DarkroomError as exc:
        refusal = Problem.model_validate(exc.to_problem(instance))
        return Estimate(kind=body.kind, accepted=False, refusal=refusal)
    finally:
        # Inputs given by URL or base64 were recorded as assets to be checked, and the budget
        # check locked the tenant: the estimate keeps neither. (The stored files no asset
        # refers to are left to `darkroom gc`.)
        await submitter.session.rollback()
    models = await model_estimates(submitter, request)
    return Estimate(
        kind=body.kind,
        accepted=True,
        request=request,
        models=models,
        cost_usd=cost,
        unpriced_models=[model.model for model in models if model.cost_usd is None],
    )


async def model_estimates(submitter: Submitter, request: dict[str, Any]) -> list[ModelEstimate]:
    """Each model the normalized request runs (none for an export): its images, the size it is
    asked for, its cost at the request's quality, and its expected latency."""
    specs = job_models(submitter.registry, request)
    observed = await observed_latencies(submitter.session) if specs else {}
    return [model_estimate(spec, request, observed.get(spec.id)) for spec in specs]


def model_estimate(
    spec: ModelSpec, request: dict[str, Any], observed_latency_ms: int | None
) -> ModelEstimate:
    """One model's share of the job."""
    quality = request.get("quality", "auto")
    width, height = spec.capabilities.generation_size(request["width"], request["height"], quality)
    latency, source = observed_latency_ms, "observed"
    if latency is None:
        latency, source = spec.typical_latency_ms, "catalog"
    return ModelEstimate(
        model=spec.id,
        images=int(request["n"]),
        generation_size=f"{width}x{height}",
        native_quality=spec.capabilities.native_quality(quality),
        cost_usd=model_cost(spec, request),
        latency_ms=latency,
        latency_source=source if latency is not None else None,
    )
