"""The offline `local` provider: instant, deterministic procedural drafts, no network."""

from PIL import Image

from app.cpu import run_cpu
from app.providers.base import (
    EditCall,
    GenerateCall,
    GenerateResult,
    ModelCapabilities,
    ModelSpec,
)
from app.providers.draft_renderer import render_draft
from app.providers.local_edits import edit_image, mask_from_png, variant_image

DRAFT = ModelSpec(
    provider="local",
    name="draft",
    description=(
        "Offline procedural draft renderer, not an AI model: palette and layout follow the "
        "brief's words and the seed decides the rest. Instant, free and deterministic; use it "
        "to build and test a workflow before spending on a real model."
    ),
    capabilities=ModelCapabilities(
        modes=("generate", "edit", "variants"), seed=True, mask=True, max_references=4
    ),
    price_per_image_usd=0.0,
    typical_latency_ms=50,
)


class LocalProvider:
    """Renders drafts in a worker thread so the event loop stays free."""

    name = "local"
    enabled_by = None

    def models(self) -> list[ModelSpec]:
        """The local models."""
        return [DRAFT]

    def is_available(self) -> bool:
        """Always: it needs nothing outside this process."""
        return True

    async def aclose(self) -> None:
        """Nothing to release."""

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One draft."""
        image = await run_cpu(render_draft, call.prompt, call.seed, call.width, call.height)
        return GenerateResult(image=image, cost_usd=0.0)

    async def edit(self, call: EditCall) -> GenerateResult:
        """A classical edit (masked inpaint, grade, colour transfer) or a seeded variant."""
        return GenerateResult(image=await run_cpu(_edit, call), cost_usd=0.0)


def _edit(call: EditCall) -> Image.Image:
    source = call.image.decode()
    if call.variation is not None:
        varied = variant_image(source, call.seed, call.variation)
        if not call.prompt:
            return varied
        # A changed brief grades the variant as an unmasked edit would, at half the variation.
        return edit_image(varied, call.prompt, call.seed, strength=call.variation / 2)
    mask = mask_from_png(call.mask.decode(), source.size) if call.mask else None
    references = [(ref.image.decode(), ref.role, ref.weight) for ref in call.references]
    strength = 0.6 if call.strength is None else call.strength
    return edit_image(
        source, call.prompt, call.seed, mask=mask, strength=strength, references=references
    )
