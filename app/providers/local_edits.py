"""Classical, deterministic image edits behind the offline ``local`` provider.

None of this is generative. A prompt is read for look words (colours, tone, temperature,
saturation, vintage, softness) that grade the image; a mask is filled by OpenCV's Telea inpainting
from its surroundings before that grade and some seeded texture go on top, and nothing outside the
mask changes; style and colour references move the palette by Reinhard colour transfer in Lab;
``strength`` blends from the source towards the result. Variants perturb colour, grain and framing
by seeded amounts. All randomness comes from PCG64 generators seeded through hashlib, so identical
inputs give identical pixels in every process.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
from PIL import Image

from app.providers.draft_renderer import (
    COLOUR_WORDS,
    TONE_WORDS,
    match_words,
    prompt_words,
    seeded_rng,
)

REFERENCE_ROLES = frozenset({"style", "color", "subject", "composition"})
# Lab channels (L, a, b) each reference role pulls. A style reference brings its tones as well as
# its colours; a colour reference brings only its colours, so the source keeps its own lighting.
# Subject and composition references need a generative model and are ignored here.
TRANSFER_CHANNELS: dict[str, tuple[int, ...]] = {"style": (0, 1, 2), "color": (1, 2)}
# A near-flat source channel would otherwise have its noise blown up to the reference's spread.
MAX_SPREAD_GAIN = 3.0
# Palette statistics are taken from thumbnails: means and spreads barely move, the time does.
STATS_SIDE = 256

# Phrases that mean one look word; they are rewritten before the prompt is split into words.
LOOK_PHRASES: dict[str, str] = {
    "black and white": "monochrome",
    "black & white": "monochrome",
    "b&w": "monochrome",
}
# Words -> colour temperature, warm positive, cool negative.
TEMPERATURE_WORDS: dict[str, float] = {
    "warm": 1.0,
    "golden": 0.7,
    "cozy": 0.5,
    "cool": -1.0,
    "cold": -1.0,
    "icy": -1.0,
    "frosty": -0.7,
}
# Words -> saturation multiplier; several words multiply.
SATURATION_WORDS: dict[str, float] = {
    "monochrome": 0.0,
    "grayscale": 0.0,
    "greyscale": 0.0,
    "noir": 0.0,
    "desaturated": 0.3,
    "muted": 0.6,
    "faded": 0.7,
    "vibrant": 1.35,
    "vivid": 1.35,
    "saturated": 1.35,
    "colorful": 1.3,
    "colourful": 1.3,
}
# Words -> strength of the faded sepia look.
VINTAGE_WORDS: dict[str, float] = {
    "vintage": 1.0,
    "sepia": 1.0,
    "antique": 1.0,
    "retro": 0.8,
    "nostalgic": 0.6,
    "faded": 0.6,
}
# Words -> softening, 1 being a clear blur.
SOFTEN_WORDS: dict[str, float] = {
    "blur": 1.0,
    "blurry": 1.0,
    "blurred": 1.0,
    "defocused": 1.0,
    "dreamy": 0.5,
    "hazy": 0.5,
    "misty": 0.4,
    "soft": 0.35,
}

MAX_EXPOSURE = 0.6  # the same bound the draft renderer puts on its tone words
TINT_AMOUNT = 0.45  # how far the image's mean colour moves towards the named colours
WARMTH_SHIFT = np.array([4.0, 14.0], np.float32)  # Lab (a, b) shift per unit of temperature
MAX_TEMPERATURE = 1.5
MAX_SATURATION = 2.0
SEPIA = np.array([8.0, 24.0], np.float32)  # Lab (a, b) of a sepia print
SEPIA_MIX = 0.6
VINTAGE_BLACK_LIFT = 12.0  # L* the blacks fade up to at full vintage
VINTAGE_CONTRAST_LOSS = 0.2  # so whites fade down to 100 - (20 - 12) L*
SOFTEN_SIGMA = 0.006  # Gaussian sigma at softness 1, as a fraction of the long side
# Blurs wider than this many pixels run at a reduced resolution: their cost grows with the width.
SOFTEN_FULL_SIGMA = 4.0
# Whole-image colour work runs this many rows at a time, so its float32 copies (12 bytes a pixel
# each) stay small whatever the image's size.
BAND_ROWS = 256

INPAINT_RADIUS = 5
# Telea's cost grows with the hole's area, so bigger holes are filled at a reduced resolution
# where they hold at most this many pixels; a large fill comes out smooth at any resolution.
INPAINT_BUDGET = 40_000
FEATHER = 0.015  # width of the blend inside the mask edge, as a fraction of the short side
TEXTURE_GRAIN = 3.0  # std of per-pixel grain in 8-bit levels
TEXTURE_MOTTLE = 2.0  # std of the soft blotches that keep a fill from looking airbrushed
MOTTLE_CELL = 24  # blotch size in pixels

# Largest variant perturbations, reached at variation 1.
VARIANT_HUE_DEGREES = 30.0
VARIANT_SATURATION = 0.35  # natural log of the largest saturation factor
VARIANT_EXPOSURE = 0.2
VARIANT_GRAIN = 8.0  # std in 8-bit levels
VARIANT_CROP = 0.08  # fraction of each side cut away

# Modes an edit hands back as they came; any other comes back as RGB, or RGBA if it had alpha.
KEPT_MODES = frozenset({"RGB", "RGBA", "L", "LA"})


def mask_from_png(mask: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """Read an OpenAI-style mask, whose fully transparent pixels mark the area to change."""
    if mask.size != size:
        raise ValueError(
            f"mask is {mask.width}x{mask.height} but the image is {size[0]}x{size[1]}; "
            "they must have the same dimensions"
        )
    if not mask.has_transparency_data:
        raise ValueError(
            "mask has no alpha channel: use a PNG whose fully transparent pixels (alpha 0) mark "
            "the area to edit"
        )
    return np.asarray(mask.convert("RGBA").getchannel("A")) == 0


def edit_image(
    source: Image.Image,
    prompt: str,
    seed: int,
    *,
    mask: np.ndarray | None = None,
    strength: float = 0.6,
    references: Sequence[tuple[Image.Image, str, float]] = (),
) -> Image.Image:
    """Grade the image, or inpaint and grade only its masked area, after the prompt's look words.

    ``strength`` (0..1) blends from the source towards the treated image. ``references`` are
    ``(image, role, weight)``: "style" references move tones and colours and "color" references
    colours only, each by Lab colour transfer scaled by its weight (0..1); "subject" and
    "composition" references need a generative model, so this provider accepts and ignores them.
    With ``mask`` (True = change, as from ``mask_from_png``) the masked area is inpainted from
    its surroundings, graded, lightly textured with noise seeded by ``seed`` and feathered inside
    the mask edge, and every pixel outside the mask is left exactly as it was. Without a mask the
    seed is unused, and a prompt with no look words and no references leaves the image as it was.
    The result has the source's size, and its mode if RGB, RGBA, L or LA (other modes come back as
    RGB, or RGBA if they had transparency); alpha is carried over untouched.
    """
    _check_fraction("strength", strength)
    _check_references(references)
    working = _working_copy(source)
    pixels = np.asarray(working.convert("RGB"))
    if mask is not None and mask.shape != pixels.shape[:2]:
        raise ValueError(
            f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
            f"{pixels.shape[1]}x{pixels.shape[0]}; they must have the same dimensions"
        )
    if strength == 0 or (mask is not None and not mask.any()):
        return _output(working, pixels, source.mode)
    treatment = _treatment(working, prompt, references)
    if mask is None:
        edited = _treat_in_bands(pixels, treatment, strength)
    else:
        rng = seeded_rng("edit", str(seed))
        edited = _edit_masked(pixels, mask.astype(bool), treatment, strength, rng)
    return _output(working, edited, source.mode)


def variant_image(source: Image.Image, seed: int, variation: float) -> Image.Image:
    """A seeded variant that shifts colour, adds grain and reframes slightly, scaled by variation.

    ``variation`` runs from 0 (the source itself) to 1; about 0.25 is subtle and 0.7 strong.
    The seed picks the direction of every change and ``variation`` its size.
    """
    _check_fraction("variation", variation)
    working = _working_copy(source)
    if variation == 0:
        return _output(working, np.asarray(working.convert("RGB")), source.mode)
    rng = seeded_rng("variant", str(seed))
    hue, saturation, exposure = rng.uniform(-1.0, 1.0, 3)
    cut = variation * VARIANT_CROP * rng.uniform(0.5, 1.0)
    framed = _reframe(working, cut, rng.uniform(0.0, 1.0, 2))
    turn = math.radians(hue * variation * VARIANT_HUE_DEGREES)
    chroma_gain = math.exp(saturation * variation * VARIANT_SATURATION)
    exposure_map = _exposure_map(exposure * variation * VARIANT_EXPOSURE)
    colour_map = _then(exposure_map, _hue_map(turn, chroma_gain))
    pixels = np.asarray(framed.convert("RGB"))
    grain = _grain(rng, pixels.shape, variation * VARIANT_GRAIN)
    varied = np.empty_like(pixels)
    for band in _bands(pixels.shape[0]):
        recoloured = _recolour(pixels[band].astype(np.float32), colour_map)
        varied[band] = _quantise(recoloured + grain[band])
    return _output(framed, varied, source.mode)


def upscale(source: Image.Image, width: int, height: int) -> Image.Image:
    """Resize to exactly ``width`` x ``height`` with Lanczos resampling."""
    if width < 1 or height < 1:
        raise ValueError(f"upscale size must be positive, got {width}x{height}")
    image = source if source.mode in KEPT_MODES else _working_copy(source)
    return image.resize((width, height), Image.Resampling.LANCZOS)


# ---------------------------------------------------------------------------------------------
# Inputs and outputs


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be within 0..1, got {value}")


def _check_references(references: Sequence[tuple[Image.Image, str, float]]) -> None:
    for _, role, weight in references:
        if role not in REFERENCE_ROLES:
            raise ValueError(
                f"reference role must be one of {', '.join(sorted(REFERENCE_ROLES))}, got {role!r}"
            )
        _check_fraction("reference weight", weight)


def _working_copy(source: Image.Image) -> Image.Image:
    """The source as RGB, or RGBA when it carries transparency."""
    return source.convert("RGBA" if source.has_transparency_data else "RGB")


def _output(working: Image.Image, rgb: np.ndarray, mode: str) -> Image.Image:
    """Put the edited colours back with the working image's alpha, in the source's mode if kept."""
    image = Image.fromarray(rgb)
    if working.mode == "RGBA":
        image.putalpha(working.getchannel("A"))
    return image.convert(mode) if mode in KEPT_MODES else image


def _quantise(pixels: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _blend(source: np.ndarray, treated: np.ndarray, strength: float) -> np.ndarray:
    """From the 8-bit source towards the float treated pixels, rounded back to 8 bits."""
    return cv2.addWeighted(source, 1 - strength, treated, strength, 0, dtype=cv2.CV_8U)


# ---------------------------------------------------------------------------------------------
# Colour


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in 0..255 to float Lab (L* 0..100)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb, np.float32) / 255, cv2.COLOR_RGB2LAB)


def _to_rgb(lab: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(lab, np.float32), cv2.COLOR_LAB2RGB) * 255


def _recolour(pixels: np.ndarray, colour_map: np.ndarray) -> np.ndarray:
    """Float RGB through a Lab colour map and back."""
    return _to_rgb(cv2.transform(_to_lab(pixels), colour_map))


# Every colour change here is affine in Lab, so a chain of them folds into one 3x4 matrix
# (the layout cv2.transform takes) and costs a single pass over the pixels.


def _lab_map(gain: Sequence[float], offset: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """The colour map ``lab * gain + offset``, channel by channel."""
    return np.hstack([np.diag(gain), np.reshape(offset, (3, 1))]).astype(np.float32)


def _then(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The colour map that applies ``first`` and then ``second``."""
    linear = second[:, :3]
    return np.hstack([linear @ first[:, :3], linear @ first[:, 3:] + second[:, 3:]])


def _exposure_map(tone: float) -> np.ndarray:
    """Move L* proportionally, as the draft renderer does, so nothing clips to black or white."""
    if tone > 0:
        return _lab_map((1 - tone, 1, 1), (100 * tone, 0, 0))
    return _lab_map((1 + tone, 1, 1))


def _hue_map(angle: float, saturation: float) -> np.ndarray:
    """Turn the hue by ``angle`` radians and scale the chroma by ``saturation``."""
    cos, sin = saturation * math.cos(angle), saturation * math.sin(angle)
    return np.array([[1, 0, 0, 0], [0, cos, -sin, 0], [0, sin, cos, 0]], np.float32)


@dataclass(frozen=True)
class _Stats:
    """Per-channel mean and standard deviation of an image in Lab."""

    mean: np.ndarray
    spread: np.ndarray


def _lab_stats(image: Image.Image) -> _Stats:
    """Lab statistics of the visible pixels (transparent ones are often junk, such as black)."""
    scale = min(1.0, STATS_SIDE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    rgba = np.asarray(image.resize(size, Image.Resampling.BOX).convert("RGBA"))
    visible = rgba[..., 3] > 0
    lab = _to_lab(rgba[..., :3].astype(np.float32))
    samples = lab[visible] if visible.any() else lab.reshape(-1, 3)
    return _Stats(samples.mean(axis=0), samples.std(axis=0))


def _palette_target(
    source: _Stats, references: Sequence[tuple[Image.Image, str, float]]
) -> _Stats | None:
    """The statistics the style and colour references pull the source towards, if any do."""
    pulls = [(image, role, w) for image, role, w in references if role in TRANSFER_CHANNELS and w]
    if not pulls:
        return None
    weights = np.zeros((len(pulls), 3), np.float32)
    for row, (_, role, weight) in zip(weights, pulls, strict=True):
        row[list(TRANSFER_CHANNELS[role])] = weight
    # References share one pull per channel, so together they never overshoot their average.
    weights /= np.maximum(weights.sum(axis=0), 1.0)
    stats = [_lab_stats(image) for image, _, _ in pulls]
    means = np.stack([s.mean for s in stats])
    spreads = np.stack([s.spread for s in stats])
    return _Stats(
        source.mean + (weights * (means - source.mean)).sum(axis=0),
        source.spread + (weights * (spreads - source.spread)).sum(axis=0),
    )


def _transfer_map(source: _Stats, target: _Stats) -> np.ndarray:
    """Reinhard colour transfer: give each Lab channel the target's mean and spread."""
    gain = np.minimum(target.spread / np.maximum(source.spread, 1.0), MAX_SPREAD_GAIN)
    return _lab_map(gain, target.mean - source.mean * gain)


# ---------------------------------------------------------------------------------------------
# The prompt's look


@dataclass(frozen=True)
class _Look:
    """The grade a prompt's words ask for; the defaults change nothing."""

    exposure: float = 0.0  # -0.6..0.6, a proportional move of L*
    tint: tuple[float, float] | None = None  # Lab (a, b) of the named colours
    temperature: float = 0.0
    saturation: float = 1.0
    vintage: float = 0.0
    softness: float = 0.0

    def grades_colour(self) -> bool:
        return replace(self, softness=0.0) != _Look()


def _look(prompt: str) -> _Look:
    text = prompt.lower()
    for phrase, word in LOOK_PHRASES.items():
        text = text.replace(phrase, f" {word} ")
    words = prompt_words(text)
    return _Look(
        exposure=_clamp(sum(match_words(words, TONE_WORDS)), MAX_EXPOSURE),
        tint=_tint(words),
        temperature=_clamp(sum(match_words(words, TEMPERATURE_WORDS)), MAX_TEMPERATURE),
        saturation=min(math.prod(match_words(words, SATURATION_WORDS)), MAX_SATURATION),
        vintage=min(max(match_words(words, VINTAGE_WORDS), default=0.0), 1.0),
        softness=max(match_words(words, SOFTEN_WORDS), default=0.0),
    )


def _clamp(value: float, limit: float) -> float:
    return min(max(value, -limit), limit)


def _tint(words: list[str]) -> tuple[float, float] | None:
    colours = [colour for named in match_words(words, COLOUR_WORDS) for colour in named]
    if not colours:
        return None
    a, b = _to_lab(np.array([colours], np.float32))[0, :, 1:].mean(axis=0)
    return float(a), float(b)


def _grade_map(look: _Look, image_mean: np.ndarray) -> np.ndarray:
    """The look as a Lab colour map; ``image_mean`` is where the tint measures its move from."""
    shift = look.temperature * WARMTH_SHIFT
    if look.tint is not None:
        # One offset for every pixel moves the palette but keeps the image's contrasts.
        shift = shift + TINT_AMOUNT * (np.array(look.tint, np.float32) - image_mean[1:])
    grade = _then(_exposure_map(look.exposure), _lab_map((1, 1, 1), (0, *shift)))
    grade = _then(grade, _lab_map((1, look.saturation, look.saturation)))
    if not look.vintage:
        return grade
    fade, mix = 1 - VINTAGE_CONTRAST_LOSS * look.vintage, SEPIA_MIX * look.vintage
    lift = VINTAGE_BLACK_LIFT * look.vintage
    return _then(grade, _lab_map((fade, 1 - mix, 1 - mix), (lift, *(mix * SEPIA))))


@dataclass(frozen=True)
class _Treatment:
    """Everything done to the pixels an edit changes, fixed once per image."""

    colour_map: np.ndarray | None  # reference transfer and look in one, None if neither
    blur_sigma: float

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Float RGB in, float RGB out."""
        if self.colour_map is not None:
            pixels = _recolour(pixels, self.colour_map)
        if self.blur_sigma > 0:
            pixels = _soften(pixels, self.blur_sigma)
        return pixels

    def reach(self) -> tuple[int, int]:
        """How many rows beyond a pixel the treatment reads (the blur's reach), and the row
        multiple a band must start on for a reduced blur to sample the image's own grid."""
        if self.blur_sigma <= 0:
            return 0, 1
        reduction = _soften_reduction(self.blur_sigma)
        # OpenCV's float Gaussian kernel reaches 4 sigma; the reduced copy's resizes one cell more.
        rows = math.ceil(4 * self.blur_sigma) + 2 * reduction
        return -(-rows // reduction) * reduction, reduction


def _treat_in_bands(pixels: np.ndarray, treatment: _Treatment, strength: float) -> np.ndarray:
    """The pixels treated and blended by `strength`, a band of rows at a time (each read with
    the rows its blur reaches), so the float copies the treatment makes stay a band's size."""
    margin, multiple = treatment.reach()
    height = pixels.shape[0]
    edited = np.empty_like(pixels)
    for band in _bands(height, multiple):
        start, stop = max(band.start - margin, 0), min(band.stop + margin, height)
        treated = treatment.apply(pixels[start:stop].astype(np.float32))
        inner = slice(band.start - start, band.stop - start)
        edited[band] = _blend(pixels[band], treated[inner], strength)
    return edited


def _bands(height: int, multiple: int = 1) -> list[slice]:
    """Bands of about BAND_ROWS rows covering `height` rows, each a multiple of `multiple`."""
    rows = max(multiple, BAND_ROWS // multiple * multiple)
    return [slice(top, min(top + rows, height)) for top in range(0, height, rows)]


def _soften_reduction(sigma: float) -> int:
    return max(1, math.floor(sigma / SOFTEN_FULL_SIGMA))


def _soften(pixels: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur; wide ones run on a reduced copy, as they leave no fine detail to lose."""
    reduction = _soften_reduction(sigma)
    if reduction == 1:
        return cv2.GaussianBlur(pixels, (0, 0), sigma)
    height, width = pixels.shape[:2]
    small_size = (math.ceil(width / reduction), math.ceil(height / reduction))
    small = cv2.resize(pixels, small_size, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / reduction)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _treatment(
    image: Image.Image, prompt: str, references: Sequence[tuple[Image.Image, str, float]]
) -> _Treatment:
    look = _look(prompt)
    source = _lab_stats(image)
    target = _palette_target(source, references)
    maps = [] if target is None else [_transfer_map(source, target)]
    if look.grades_colour():
        maps.append(_grade_map(look, source.mean if target is None else target.mean))
    colour_map = functools.reduce(_then, maps) if maps else None
    return _Treatment(colour_map, look.softness * SOFTEN_SIGMA * max(image.size))


# ---------------------------------------------------------------------------------------------
# Masked edits


def _edit_masked(
    pixels: np.ndarray,
    mask: np.ndarray,
    treatment: _Treatment,
    strength: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Inpaint, treat and texture the masked area; only masked pixels are written."""
    reduction = _inpaint_reduction(int(mask.sum()))
    feather = max(1.0, FEATHER * min(mask.shape))
    # Work in the mask's bounding box, widened by every pixel the fill, feather and blur read.
    margin = 2 * INPAINT_RADIUS * reduction + math.ceil(3 * treatment.blur_sigma) + 2
    box = _bounds(mask, margin)
    region, hole = pixels[box], mask[box]
    filled = _inpaint(region, hole, reduction)
    change = treatment.apply(filled) + _texture(rng, hole.shape) - filled
    # Towards the edge the plain fill takes over, and it matches the pixels just outside.
    change *= _feather(hole, feather)[..., None]
    edited = pixels.copy()
    np.copyto(edited[box], _blend(region, filled + change, strength), where=hole[..., None])
    return edited


def _inpaint_reduction(hole_pixels: int) -> int:
    return max(1, math.ceil(math.sqrt(hole_pixels / INPAINT_BUDGET)))


def _bounds(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, height)),
        slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, width)),
    )


def _inpaint(region: np.ndarray, hole: np.ndarray, reduction: int) -> np.ndarray:
    """Fill the hole from its surroundings with Telea's method; float RGB out."""
    if hole.all():  # nothing around to fill from: the treatment works on the content itself
        return region.astype(np.float32)
    if reduction == 1:
        filled = cv2.inpaint(region, hole.astype(np.uint8), INPAINT_RADIUS, cv2.INPAINT_TELEA)
        return filled.astype(np.float32)
    height, width = hole.shape
    small_size = (math.ceil(width / reduction), math.ceil(height / reduction))
    small = cv2.resize(region, small_size, interpolation=cv2.INTER_AREA)
    # A reduced pixel that covers any of the hole is hole, so nothing of the old content leaks in.
    small_hole = cv2.resize(hole.astype(np.float32), small_size, interpolation=cv2.INTER_AREA) > 0
    filled = cv2.inpaint(small, small_hole.astype(np.uint8), INPAINT_RADIUS, cv2.INPAINT_TELEA)
    return cv2.resize(filled.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def _feather(hole: np.ndarray, width: float) -> np.ndarray:
    """0 at the hole's edge rising to 1 inside, never wider than the hole's reach."""
    distance = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, 3)
    # A narrow hole keeps a fully treated core instead of a mere ramp.
    width = max(1.0, min(width, float(distance.max()) / 2))
    return np.clip(distance / width, 0.0, 1.0)


def _texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Seeded fine grain over soft blotches, so a fill is not one flat smear."""
    height, width = shape
    cells = rng.standard_normal(
        (math.ceil(height / MOTTLE_CELL) + 1, math.ceil(width / MOTTLE_CELL) + 1), np.float32
    )
    mottle = cv2.resize(cells, (width, height), interpolation=cv2.INTER_CUBIC)
    return _grain(rng, shape, TEXTURE_GRAIN) + (mottle * TEXTURE_MOTTLE)[..., None]


def _grain(rng: np.random.Generator, shape: tuple[int, ...], level: float) -> np.ndarray:
    """Luminance noise with a standard deviation of ``level`` 8-bit steps, shaped (h, w, 1)."""
    return (rng.standard_normal(shape[:2], np.float32) * level)[..., None]


# ---------------------------------------------------------------------------------------------
# Variants


def _reframe(image: Image.Image, cut: float, offset: np.ndarray) -> Image.Image:
    """Crop ``cut`` of each side at a seeded offset and scale back, keeping the aspect ratio."""
    width, height = image.size
    box_width, box_height = width * (1 - cut), height * (1 - cut)
    left, top = offset[0] * (width - box_width), offset[1] * (height - box_height)
    box = (left, top, left + box_width, top + box_height)
    return image.resize(image.size, Image.Resampling.LANCZOS, box=box)
