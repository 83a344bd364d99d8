"""The offline `local` provider: instant, deterministic procedural drafts, labelled as such,
and classical edits; no network."""

from PIL import Image, ImageDraw, ImageFilter

from app.cpu import run_image_work
from app.providers.base import (
    EditCall,
    GenerateCall,
    GenerateResult,
    ModelCapabilities,
    ModelSpec,
    RenderOptions,
)
from app.providers.draft_labels import add_labels, caption_text
from app.providers.draft_renderer import render_draft
from app.providers.local_edits import edit_image, mask_from_png, variant_image

# A decoded input takes up to 4 bytes a pixel (RGBA).
DECODED_BYTES_PER_PIXEL = 4
# What an edit holds at its peak per output pixel, its uint8 copies and float32 bands together
# (a 6000x6600 RGBA source edited to 3724x4096 peaked 454 MiB above idle; this estimates 516).
EDIT_BYTES_PER_PIXEL = 24
# What rendering a draft holds at its peak per pixel (a 4096x4096 draft peaked 233 MiB).
DRAFT_BYTES_PER_PIXEL = 16
# Quality is the render's resolution: a `draft` is asked for at half the output's sides (a
# quarter of the work) and scaled up to the exact size like any model's output.
QUALITY_LEVELS = (
    ("draft", "half resolution"),
    ("standard", "full resolution"),
    ("high", "full resolution"),
    ("auto", "full resolution"),
)
QUALITY_SCALES = (("draft", 0.5),)

DRAFT = ModelSpec(
    provider="local",
    name="draft",
    description=(
        "A stand-in for building and testing a workflow offline, not an AI model: an instant, "
        "free, deterministic sketch (palette, layout and a product's shape and colour from the "
        "brief's words, details from the seed), captioned with the brief's subject words and "
        "tagged DRAFT. Switch to a real model for real pictures."
    ),
    capabilities=ModelCapabilities(
        modes=("generate", "edit", "variants"),
        seed=True,
        mask=True,
        max_references=4,
        transparent_background=True,
        quality_levels=QUALITY_LEVELS,
        quality_scales=QUALITY_SCALES,
    ),
    price_per_image_usd=0.0,
    typical_latency_ms=50,
)


class LocalProvider:
    """Renders drafts in a worker thread so the event loop stays free. With `labels`, each
    generated draft carries a caption of its brief's subject words and a DRAFT tag; edits and
    variants work on the caller's pixels and are never stamped."""

    name = "local"
    enabled_by = None

    def __init__(self, labels: bool = True) -> None:
        self.labels = labels

    def models(self) -> list[ModelSpec]:
        """The local models."""
        return [DRAFT]

    def is_available(self) -> bool:
        """Always: it needs nothing outside this process."""
        return True

    async def aclose(self) -> None:
        """Nothing to release."""

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One draft, with the background its call asks for and, unless they are off, its
        labels."""
        memory = call.width * call.height * DRAFT_BYTES_PER_PIXEL
        image = await run_image_work(memory, self._draft, call)
        return GenerateResult(image=image, cost_usd=0.0)

    async def edit(self, call: EditCall) -> GenerateResult:
        """A classical edit (masked inpaint, grade, colour transfer) or a seeded variant, with
        the background its call asks for."""
        image = await run_image_work(edit_memory(call), _edit, call)
        return GenerateResult(image=with_background(image, call.render), cost_usd=0.0)

    def _draft(self, call: GenerateCall) -> Image.Image:
        image = render_draft(call.prompt, call.seed, call.width, call.height)
        # Labelled after the backdrop is cut out, so they stay legible on a transparent draft.
        image = with_background(image, call.render)
        return add_labels(image, caption_text(call.prompt)) if self.labels else image


def with_background(image: Image.Image, render: RenderOptions) -> Image.Image:
    """The image with a transparent background when asked for: an ellipse around the centre,
    where the renderer puts its subject, stays opaque with a soft edge; the backdrop outside it
    becomes fully transparent. Opaque otherwise."""
    if render.background == "opaque" and image.mode == "RGBA":
        return image.convert("RGB")
    if render.background != "transparent":
        return image
    width, height = image.size
    alpha = Image.new("L", image.size, 0)
    ImageDraw.Draw(alpha).ellipse(
        (width * 0.15, height * 0.1, width * 0.85, height * 0.9), fill=255
    )
    alpha = alpha.filter(ImageFilter.GaussianBlur(max(1, min(width, height) // 100)))
    cut_out = image.convert("RGBA")
    cut_out.putalpha(alpha)
    return cut_out


def edit_memory(call: EditCall) -> int:
    """The bytes an edit holds at its peak: the largest input decoded whole beside its copy
    scaled to the output, then the edit's own copies at the output size (measured: about
    EDIT_BYTES_PER_PIXEL in all)."""
    inputs = [call.image, *([call.mask] if call.mask else []), *(r.image for r in call.references)]
    largest = max(image.width * image.height for image in inputs)
    output = call.width * call.height
    return largest * DECODED_BYTES_PER_PIXEL + output * EDIT_BYTES_PER_PIXEL


def _edit(call: EditCall) -> Image.Image:
    # The edit is made at the size the output needs, not the source's: a 40 MP upload edited
    # into a 4096-pixel output never has its full-size pixels worked on.
    cover = (call.width, call.height)
    source = call.image.decode(cover)
    if call.variation is not None:
        varied = variant_image(source, call.seed, call.variation)
        if not call.prompt:
            return varied
        # A changed brief grades the variant as an unmasked edit would, at half the variation.
        return edit_image(varied, call.prompt, call.seed, strength=call.variation / 2)
    # The mask is scaled as the source was (it has the source's size), keeping it two-valued.
    mask = call.mask.decode(cover, Image.Resampling.NEAREST) if call.mask else None
    mask = mask_from_png(mask, source.size) if mask else None
    references = [(ref.image.decode(cover), ref.role, ref.weight) for ref in call.references]
    strength = 0.6 if call.strength is None else call.strength
    return edit_image(
        source, call.prompt, call.seed, mask=mask, strength=strength, references=references
    )
