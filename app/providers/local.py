"""The offline `local` provider: instant, deterministic procedural drafts, no network."""

import asyncio

from app.providers.base import GenerateCall, GenerateResult, ModelCapabilities, ModelSpec
from app.providers.draft_renderer import render_draft

DRAFT = ModelSpec(
    provider="local",
    name="draft",
    description=(
        "Offline procedural draft renderer, not an AI model: palette and layout follow the "
        "brief's words and the seed decides the rest. Instant, free and deterministic; use it "
        "to build and test a workflow before spending on a real model."
    ),
    capabilities=ModelCapabilities(seed=True),
    price_per_image_usd=0.0,
    typical_latency_ms=50,
)


class LocalProvider:
    """Renders drafts in a worker thread so the event loop stays free."""

    name = "local"

    def models(self) -> list[ModelSpec]:
        """The local models."""
        return [DRAFT]

    def is_available(self) -> bool:
        """Always: it needs nothing outside this process."""
        return True

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One draft."""
        image = await asyncio.to_thread(
            render_draft, call.prompt, call.seed, call.width, call.height
        )
        return GenerateResult(image=image, cost_usd=0.0)
