"""GET /v1/models: the model catalog with capabilities, price and latency."""

from fastapi import APIRouter

from app import schemas
from app.deps import Registry, Tenant
from app.providers.base import ModelSpec
from app.routers import problems

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get(
    "",
    operation_id="list_models",
    summary="List models",
    response_model=schemas.ModelList,
    responses=problems(401),
)
async def list_models(registry: Registry, tenant: Tenant) -> schemas.ModelList:
    """Every model this server knows, with whether it is available here."""
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
        capabilities=schemas.ModelCapabilitiesOut(
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
