"""The provider protocol every model adapter implements, and the capabilities it declares."""

import io
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import ExifTags, Image, ImageOps

from app.imaging.geometry import cover_size

# EXIF orientations that swap an image's width and height.
TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
# A large input scaled down for its output is first shrunk by whole factors (a box filter) to
# within this factor of the output, then resampled: much faster, and no visible difference.
REDUCING_GAP = 2.0
# Darkroom's quality tiers, in order of cost.
QUALITY_TIERS = ("draft", "standard", "high", "auto")
# Set by the task running a job, for models that work in steps (self-hosted diffusion): awaited
# after each step with the step's number and the steps in all. It tells the job's progress, and
# raises to stop the model between steps when the job is canceled.
StepHook = Callable[[int, int], Awaitable[None]]
step_hook: ContextVar[StepHook | None] = ContextVar("step_hook", default=None)


@dataclass(frozen=True)
class ModelCapabilities:
    """What one model can do; the catalog shows it and requests are checked against it."""

    modes: tuple[str, ...] = ("generate",)
    sizes: tuple[tuple[int, int], ...] | None = None
    min_side: int = 64
    max_side: int = 4096
    output_formats: tuple[str, ...] = ("png", "jpeg", "webp")
    transparent_background: bool = False
    seed: bool = True
    negative_prompt: bool = False
    mask: bool = False
    max_references: int = 0
    max_n: int = 10
    # Images one vendor call can make (OpenAI's `n`): a job's outputs are asked for together,
    # up to this many a call, by providers that are MultiImageProviders.
    images_per_call: int = 1
    default_area: int = 1024 * 1024
    # How the prompt optimizer writes for this model: natural sentences for instruction-following
    # models, weighted tags plus a negative prompt for diffusion models; and its length limit.
    prompt_style: str = "sentences"
    max_prompt_chars: int = 4000
    # Darkroom's quality tier -> the model's native setting it becomes (OpenAI's `quality`, a
    # render resolution, ...); empty for a model with no quality control of its own.
    quality_levels: tuple[tuple[str, str], ...] = ()
    # Quality tier -> the native sizes it may be made at, for models whose quality lever is
    # resolution (Gemini's size tiers); tiers not here may use any of `sizes`.
    quality_sizes: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = ()
    # Quality tier -> the factor its generation size is scaled by, for models that take any
    # size and whose quality lever is resolution (local/draft's half-resolution draft). A masked
    # edit is not scaled: scaling back up would resample the pixels the mask keeps.
    quality_scales: tuple[tuple[str, float], ...] = ()

    def native_quality(self, tier: str) -> str | None:
        """The native setting a quality tier becomes on this model; None if it has none."""
        return dict(self.quality_levels).get(tier)

    def generation_size(
        self, width: int, height: int, quality: str = "auto", masked: bool = False
    ) -> tuple[int, int]:
        """The size to ask the model for: the output size (scaled as the quality tier asks,
        unless the call is a `masked` edit) if the model takes any size in range, else its
        native size (of those the quality tier may use) closest in aspect ratio, then in area."""
        if self.sizes is None:
            factor = 1.0 if masked else dict(self.quality_scales).get(quality, 1.0)
            width, height = max(1, round(width * factor)), max(1, round(height * factor))
            low, high = self.min_side, self.max_side
            if low <= width <= high and low <= height <= high:
                return width, height
            scale = min(high / max(width, height), 1.0) * max(1.0, low / min(width, height))
            return (
                max(low, min(high, round(width * scale))),
                max(low, min(high, round(height * scale))),
            )
        wanted_ratio, wanted_area = width / height, width * height
        return min(
            dict(self.quality_sizes).get(quality, self.sizes),
            key=lambda s: (abs(s[0] / s[1] - wanted_ratio), abs(s[0] * s[1] - wanted_area)),
        )


@dataclass(frozen=True)
class ModelSpec:
    """A model in the catalog: `provider/name` plus its capabilities, price and latency."""

    provider: str
    name: str
    description: str
    capabilities: ModelCapabilities
    price_per_image_usd: float | None = None
    typical_latency_ms: int | None = None
    # Quality tier -> (lowest, highest) expected USD per image, for models whose price follows
    # the tier (a range where billing is per token); tiers not here cost price_per_image_usd.
    prices_by_quality: tuple[tuple[str, tuple[float, float]], ...] = ()
    # USD per token of prompt text, for models billed per token: an estimate adds the prompt's.
    prompt_token_price_usd: float | None = None

    def price_range(self, quality: str) -> tuple[float, float] | None:
        """The expected (lowest, highest) USD of one image at a quality tier; None if unknown."""
        by_quality = dict(self.prices_by_quality)
        if quality in by_quality:
            return by_quality[quality]
        if self.price_per_image_usd is None:
            return None
        return self.price_per_image_usd, self.price_per_image_usd

    @property
    def id(self) -> str:
        """The public model id, `provider/name`."""
        return f"{self.provider}/{self.name}"


@dataclass(frozen=True)
class RenderOptions:
    """How a job asks for its images beyond the prompt: its quality tier (Darkroom's; each
    provider maps it to its own control), background, encoder quality of lossy outputs (None:
    Darkroom's default) and the vendor's moderation level."""

    quality: str = "auto"
    background: str = "auto"
    output_compression: int | None = None
    moderation: str = "auto"


@dataclass(frozen=True)
class GenerateCall:
    """One image to generate, as a provider receives it: size resolved, seed fixed.
    `output_format` is the format the job stores, which a vendor that can is asked for."""

    model: str
    prompt: str
    width: int
    height: int
    seed: int
    negative_prompt: str | None = None
    output_format: str = "png"
    render: RenderOptions = field(default_factory=RenderOptions)


@dataclass(frozen=True)
class InputImage:
    """An image a caller gave (already validated and stored as an asset): its original bytes
    for vendors that take files, and the decoded pixels for local work."""

    asset_id: str
    data: bytes
    format: str
    width: int
    height: int

    def decode(
        self,
        cover: tuple[int, int] | None = None,
        resample: Image.Resampling = Image.Resampling.LANCZOS,
    ) -> Image.Image:
        """The pixels, EXIF orientation applied, as RGB or RGBA; scaled down to just cover
        `cover` if they are larger (see `decode_input`)."""
        return decode_input(self.data, cover, resample)


@dataclass(frozen=True)
class Reference:
    """A reference image that steers an edit: its role (style, subject, composition, color)
    and weight (0..1)."""

    image: InputImage
    role: str
    weight: float = 1.0


@dataclass(frozen=True)
class EditCall:
    """One edit of a source image, as a provider receives it. `mask` marks the area to change
    with fully transparent pixels; `strength` (0..1) is how far to move from the source;
    `keep` names what must stay unchanged; `variation` (0..1) is set for variants;
    `output_format` is the format the job stores, which a vendor that can is asked for."""

    model: str
    prompt: str
    image: InputImage
    width: int
    height: int
    seed: int
    mask: InputImage | None = None
    references: tuple[Reference, ...] = ()
    strength: float | None = None
    keep: tuple[str, ...] = ()
    variation: float | None = None
    negative_prompt: str | None = None
    output_format: str = "png"
    render: RenderOptions = field(default_factory=RenderOptions)


@dataclass
class GenerateResult:
    """What a provider returns: the image, what it cost, and what the vendor reported (usage,
    its own seed, a revised prompt) for the job record. `encoded` is the file the vendor sent,
    once checked like any untrusted image (decode_vendor_image), for the job to store as it is
    when it already has the requested size and format; None for an image made in-process."""

    image: Image.Image
    cost_usd: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    encoded: bytes | None = None


class Provider(Protocol):
    """A model vendor's adapter: it knows that vendor's protocol and nothing of the database."""

    name: str
    # The setting that makes it available (its key or base URL), named to a caller who asks
    # for one of its models while it is not; None for a provider that is always available.
    enabled_by: str | None

    def models(self) -> list[ModelSpec]:
        """The models this provider serves."""
        ...

    def is_available(self) -> bool:
        """Whether it is configured (keys, base URL) to take requests here."""
        ...

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """Make the image `call` describes."""
        ...

    async def aclose(self) -> None:
        """Release what it holds open (pooled connections) when the process ends."""
        ...

    async def edit(self, call: EditCall) -> GenerateResult:
        """Edit `call.image` as the call describes; only for models whose modes include
        `edit` (InvalidForModel otherwise)."""
        ...


@runtime_checkable
class MultiImageProvider(Protocol):
    """A provider whose vendor makes several images of one brief in one call."""

    async def generate_many(self, call: GenerateCall, count: int) -> list[GenerateResult]:
        """`count` images of `call` (at most the model's `images_per_call`) from one call; the
        call's cost is shared evenly between them."""
        ...


@runtime_checkable
class BatchProvider(Protocol):
    """A provider that makes several images of one brief, each from its own seed, in one call."""

    async def generate_batch(self, calls: list[GenerateCall]) -> list[GenerateResult]:
        """The images of `calls`, which differ only in their seeds (at most the model's
        `images_per_call`), from one call; each is the image its seed makes alone."""
        ...


def decode_input(
    data: bytes,
    cover: tuple[int, int] | None = None,
    resample: Image.Resampling = Image.Resampling.LANCZOS,
) -> Image.Image:
    """Decode validated image bytes to RGB or RGBA with EXIF orientation applied. With `cover`
    (width, height), an image larger than it needs to be to cover that size comes back scaled
    down to just cover it: a JPEG is decoded at a reduced DCT scale, any other is scaled straight
    after decoding, so work on it never holds more pixels than its output needs."""
    image = Image.open(io.BytesIO(data))
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if cover is not None and image.format == "JPEG":
        width, height = cover
        if image.getexif().get(ExifTags.Base.Orientation) in TRANSPOSING_ORIENTATIONS:
            width, height = height, width
        image.draft(image.mode, cover_size(image.size, width, height))
    ImageOps.exif_transpose(image, in_place=True)
    mode = "RGBA" if has_alpha else "RGB"
    if image.mode in ("1", "P", "PA"):
        # Resampling these would pick pixels instead of blending them.
        image = image.convert(mode)
    if cover is not None:
        size = cover_size(image.size, *cover)
        if size[0] < image.width:
            image = image.resize(size, resample, reducing_gap=REDUCING_GAP)
    return image if image.mode == mode else image.convert(mode)
