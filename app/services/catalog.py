"""The model catalog as callers see it."""

from app import schemas
from app.providers.base import ModelSpec
from app.providers.registry import ProviderRegistry


def list_models(registry: ProviderRegistry) -> schemas.ModelList:
    """Every model the registry knows, with whether it is available here."""
    return schemas.ModelList(
        data=[model_view(spec, available) for spec, available in registry.catalog()]
    )


def model_view(spec: ModelSpec, available: bool) -> schemas.Model:
    """The public shape of a model."""
    capabilities = spec.capabilities
    return schemas.Model(
        id=spec.id,
        provider=spec.provider,
        name=spec.name,
        description=spec.description,
        available=available,
        capabilities=schemas.ModelCapabilities(
            modes=list(capabilities.modes),
            sizes=[f"{w}x{h}" for w, h in capabilities.sizes] if capabilities.sizes else None,
            min_side=capabilities.min_side,
            max_side=capabilities.max_side,
            output_formats=list(capabilities.output_formats),  # type: ignore[arg-type]
            transparent_background=capabilities.transparent_background,
            seed=capabilities.seed,
            negative_prompt=capabilities.negative_prompt,
            mask=capabilities.mask,
            max_references=capabilities.max_references,
            max_n=capabilities.max_n,
        ),
        price_per_image_usd=spec.price_per_image_usd,
        typical_latency_ms=spec.typical_latency_ms,
    )
