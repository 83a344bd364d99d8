"""Generate jobs: a brief checked against the model and its fallbacks, and resolved to the
exact output size, seed and planned prompt the job runs with."""

import secrets
from typing import Any

from app.errors import InvalidInput
from app.imaging.geometry import output_size, parse_aspect_ratio, parse_size
from app.models import JobKind
from app.providers.base import ModelSpec
from app.providers.registry import ProviderRegistry
from app.schemas.common import ALPHA_FORMATS, MAX_SEED, OutputOptions
from app.schemas.generate import GenerateRequest
from app.services.prompting import plan_prompts
from app.services.submission import Kind, Submitter


async def normalize(submitter: Submitter, body: GenerateRequest) -> dict[str, Any]:
    """Resolve the model (or the compared models), refuse what one of them or a fallback cannot
    make, and normalize."""
    registry = submitter.registry
    specs = job_specs(submitter, body.model, body.models)
    fallbacks = check_fallbacks(registry, body, specs[0])
    return normalize_generate(body, specs) | render_options(registry, specs + fallbacks, body)


def job_specs(submitter: Submitter, model: str | None, models: list[str] | None) -> list[ModelSpec]:
    """The specs of the models a request names: its compared `models`, else its `model`, else
    the default. ModelUnavailable for one unknown or not configured here."""
    model_ids = models or [model or submitter.settings.default_model]
    return [submitter.registry.resolve(model_id)[1] for model_id in model_ids]


def compared(specs: list[ModelSpec], models: list[str] | None) -> dict[str, Any]:
    """The request's `models` field: the compared models' ids, when the request names them."""
    return {"models": [spec.id for spec in specs]} if models is not None else {}


def normalize_generate(body: GenerateRequest, specs: list[ModelSpec]) -> dict[str, Any]:
    """The request as the job runs it: models, exact output size and seed resolved. Compared
    models make the same exact size, the first model's default where the request gives none."""
    spec = specs[0]
    capabilities = spec.capabilities
    for each in specs:
        check_model_can_make(each, body.n, body.output_format)
    size = parse_size(body.size) if body.size else None
    aspect = parse_aspect_ratio(body.aspect_ratio) if body.aspect_ratio else None
    if aspect and aspect[0] * aspect[1] > capabilities.default_area:
        raise InvalidInput(
            f"Aspect ratio {body.aspect_ratio} is too fine to hold exactly at {spec.id}'s "
            "default size; give an exact `size` instead."
        )
    width, height = output_size(size, aspect, capabilities.default_area)
    return (
        {
            "model": spec.id,
            "n": body.n,
            "width": width,
            "height": height,
            "aspect_ratio": body.aspect_ratio,
            "size": f"{width}x{height}",
            "output_format": body.output_format,
            "seed": seed_or_random(body.seed),
            "fallback_models": list(body.fallback_models),
        }
        | compared(specs, body.models)
        | plan_prompts(
            body.prompt,
            specs,
            optimize=body.optimize,
            style=body.style,
            aspect_ratio=aspect or (width, height),
            keep=(),
            references=(),
            negative_prompt=body.negative_prompt,
            is_edit=False,
        )
    )


def seed_or_random(seed: int | None) -> int:
    """The request's seed, or a random one the job records so its outputs can be made again."""
    return seed if seed is not None else secrets.randbelow(MAX_SEED + 1)


def check_model_can_make(spec: ModelSpec, n: int, output_format: str) -> None:
    """InvalidInput unless the model can make `n` images per job in `output_format`."""
    capabilities = spec.capabilities
    if n > capabilities.max_n:
        raise InvalidInput(f"{spec.id} makes at most {capabilities.max_n} images per job.")
    if output_format not in capabilities.output_formats:
        raise InvalidInput(f"{spec.id} cannot output {output_format}.")


def check_fallbacks(
    registry: ProviderRegistry, body: GenerateRequest, primary: ModelSpec
) -> list[ModelSpec]:
    """Refuse at submission, not mid-job, a fallback model that is unknown or not configured
    here (ModelUnavailable), named twice or the same as the model, or unable to make the
    request (InvalidInput). The fallbacks' specs, in order."""
    seen = {primary.id}
    specs = []
    for model_id in body.fallback_models:
        _, spec = registry.resolve(model_id)
        if spec.id in seen:
            raise InvalidInput(f"fallback_models names {spec.id} twice or as the model itself.")
        seen.add(spec.id)
        check_model_can_make(spec, body.n, body.output_format)
        specs.append(spec)
    return specs


def render_options(
    registry: ProviderRegistry, specs: list[ModelSpec], body: OutputOptions
) -> dict[str, Any]:
    """The request's quality, background, compression and moderation, with what the quality
    tier becomes on each model (null for a model without a quality control), for the job
    record. A transparent background in a format without alpha, or on a model that cannot
    make one, is refused (InvalidInput naming the models that can)."""
    if body.background == "transparent":
        check_transparency(registry, specs, body.output_format)
    return {
        "quality": body.quality,
        "native_quality": {
            spec.id: spec.capabilities.native_quality(body.quality) for spec in specs
        },
        "background": body.background,
        "output_compression": body.output_compression,
        "moderation": body.moderation,
        "content_credentials": body.content_credentials,
    }


def check_transparency(
    registry: ProviderRegistry, specs: list[ModelSpec], output_format: str
) -> None:
    """InvalidInput unless every model can make a transparent background in `output_format`."""
    if output_format not in ALPHA_FORMATS:
        raise InvalidInput(
            f"A transparent background needs output_format png or webp, not {output_format}.",
            field="background",
        )
    unable = [spec.id for spec in specs if not spec.capabilities.transparent_background]
    if not unable:
        return
    able = [
        spec.id
        for spec, available in registry.catalog()
        if available and spec.capabilities.transparent_background
    ]
    raise InvalidInput(
        f"{', '.join(unable)} cannot make a transparent background; models here that can: "
        f"{', '.join(able)}.",
        field="background",
        transparent_models=able,
    )


GENERATE = Kind(JobKind.GENERATE, GenerateRequest, normalize)
