"""The model catalog as callers see it: what each model can do, what it costs, and how fast it
has been here."""

import statistics
import time
from math import gcd

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ids import first_id_at
from app.models import Asset
from app.providers.base import QUALITY_TIERS, ModelSpec
from app.runtime.context import TaskContext
from app.runtime.queue import JobQueue
from app.runtime.self_hosted import loaded_models
from app.schemas.catalog import LoadedModel, Model, ModelCapabilities, ModelList, PriceRange

# How many of a model's most recent outputs its observed latency is the median of, looking
# back at most LATENCY_MAX_AGE_SECONDS (a range of the time-sorted asset ids, so the query reads
# recent rows by the primary key instead of the whole table).
LATENCY_WINDOW = 50
LATENCY_MAX_AGE_SECONDS = 30 * 24 * 3600


async def list_models(session: AsyncSession, context: TaskContext, queue: JobQueue) -> ModelList:
    """Every model the registry knows, with whether it is available here, its median latency
    over this installation's recent outputs, and where a self-hosted one is `loaded`."""
    registry = context.registry
    loaded = await loaded_models(context, queue)
    latencies = await observed_latencies(session)
    views = []
    for spec, available in registry.catalog():
        view = model_view(spec, available, registry.pricing(spec.provider), latencies.get(spec.id))
        if spec.id in loaded:
            view.loaded = LoadedModel.model_validate(loaded[spec.id], from_attributes=True)
        views.append(view)
    return ModelList(data=views)


async def self_hosted_checks(context: TaskContext, queue: JobQueue) -> dict[str, str]:
    """Each self-hosted model as /readyz lists it: `loaded on <device> (<precision>), <n> MiB`,
    or `not loaded`."""
    loaded = await loaded_models(context, queue)
    checks = {}
    for model_id in context.registry.self_hosted_ids():
        facts = loaded.get(model_id)
        checks[model_id] = (
            f"loaded on {facts.device} ({facts.precision}), {facts.memory_bytes / 2**20:.1f} MiB"
            if facts
            else "not loaded"
        )
    return checks


async def observed_latencies(session: AsyncSession) -> dict[str, int]:
    """Model id -> median `latency_ms` of its last LATENCY_WINDOW outputs (newest by id) of the
    last LATENCY_MAX_AGE_SECONDS, read from the outputs' details in one query; models with no
    recent outputs are absent."""
    model = Asset.details["model"].as_string()
    latency = Asset.details["latency_ms"].as_float()
    ranked = (
        select(
            model.label("model"),
            latency.label("latency_ms"),
            func.row_number().over(partition_by=model, order_by=Asset.id.desc()).label("rank"),
        )
        .where(
            Asset.id >= first_id_at("ast", time.time() - LATENCY_MAX_AGE_SECONDS),
            Asset.job_id.is_not(None),
            model.is_not(None),
            latency.is_not(None),
        )
        .subquery()
    )
    rows = await session.execute(
        select(ranked.c.model, ranked.c.latency_ms).where(ranked.c.rank <= LATENCY_WINDOW)
    )
    samples: dict[str, list[float]] = {}
    for model_id, milliseconds in rows:
        samples.setdefault(model_id, []).append(milliseconds)
    return {model_id: round(statistics.median(values)) for model_id, values in samples.items()}


def aspect_ratios(sizes: tuple[tuple[int, int], ...] | None) -> list[str] | None:
    """The distinct aspect ratios of native sizes, `W:H` in lowest terms, in size order."""
    if sizes is None:
        return None
    ratios = (f"{w // gcd(w, h)}:{h // gcd(w, h)}" for w, h in sizes)
    return list(dict.fromkeys(ratios))


def model_view(
    spec: ModelSpec, available: bool, pricing: str | None, observed_latency_ms: int | None
) -> Model:
    """The public shape of a model."""
    capabilities = spec.capabilities
    return Model(
        id=spec.id,
        provider=spec.provider,
        name=spec.name,
        description=spec.description,
        available=available,
        capabilities=ModelCapabilities(
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
            aspect_ratios=aspect_ratios(capabilities.sizes),
            quality_levels=dict(capabilities.quality_levels) or None,
        ),
        price_per_image_usd=spec.price_per_image_usd,
        prices_by_quality=prices_by_quality(spec),
        pricing=pricing,
        typical_latency_ms=spec.typical_latency_ms,
        observed_latency_ms=observed_latency_ms,
    )


def prices_by_quality(spec: ModelSpec) -> dict[str, PriceRange] | None:
    """The expected price of one image at each quality tier; None when none is known."""
    prices = {}
    for tier in QUALITY_TIERS:
        price = spec.price_range(tier)
        if price is not None:
            prices[tier] = PriceRange(min_usd=price[0], max_usd=price[1])
    return prices or None
