"""What a job is expected to cost, from its normalized request and the catalog's prices: the
figure an estimate answers and every job records beside its actual cost."""

from typing import Any

from app.providers.base import ModelSpec
from app.providers.registry import ProviderRegistry
from app.schemas.catalog import PriceRange
from app.services.prompting import prompt_for

# Characters of prompt text per token, fewest to most (English runs about four, and a common
# word with its space, about six, is rarely more than one token): bounds on what a per-token
# vendor counts for a prompt it has not tokenized yet.
CHARACTERS_PER_TOKEN = (2, 8)


def job_models(registry: ProviderRegistry, request: dict[str, Any]) -> list[ModelSpec]:
    """The models a normalized request runs, in order (not its fallbacks); none for an export,
    which runs Darkroom's own pipeline."""
    if "width" not in request:
        return []
    model_ids = request.get("models") or [request["model"]]
    return [registry.describe(model_id)[1] for model_id in model_ids]


def model_cost(spec: ModelSpec, request: dict[str, Any]) -> PriceRange | None:
    """What one model's images of the request are expected to cost; None if its price is
    unknown. The prompt is billed once per vendor call: once for all the images at least, once
    for each at most."""
    price = spec.price_range(request.get("quality", "auto"))
    if price is None:
        return None
    images = int(request["n"])
    low, high = prompt_cost(spec, str(prompt_for(request, spec.id).get("prompt") or ""))
    return PriceRange(min_usd=price[0] * images + low, max_usd=(price[1] + high) * images)


def prompt_cost(spec: ModelSpec, prompt: str) -> tuple[float, float]:
    """The (lowest, highest) USD of sending the prompt once to a model billed per token of
    text; nothing for a model priced per image."""
    if spec.prompt_token_price_usd is None:
        return 0.0, 0.0
    most, fewest = (len(prompt) / chars for chars in CHARACTERS_PER_TOKEN)
    return fewest * spec.prompt_token_price_usd, most * spec.prompt_token_price_usd


def total_cost(costs: list[PriceRange | None]) -> PriceRange | None:
    """The sum of the models' expected costs; None when one is unknown (an export, with no
    model, costs nothing)."""
    if None in costs:
        return None
    known = [cost for cost in costs if cost is not None]
    return PriceRange(
        min_usd=sum(cost.min_usd for cost in known), max_usd=sum(cost.max_usd for cost in known)
    )


def expected_cost(registry: ProviderRegistry, request: dict[str, Any]) -> PriceRange | None:
    """What the job of a normalized request is expected to cost in all; None if unknown."""
    return total_cost([model_cost(spec, request) for spec in job_models(registry, request)])
