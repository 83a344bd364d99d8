"""The export pipeline: production-ready files for every destination from one source image.

A source is decoded once (reduced on decode when it is a JPEG), turned upright, converted to
8-bit sRGB RGB or RGBA, then each target is cut and resized (from the source itself when its
region is small, else from a shared pyramid of box-reduced copies made as they are first needed)
and encoded, two targets at a time: Pillow releases the GIL while it resamples and while it
encodes WebP and PNG (not JPEG, which is quick; AVIF encoding is threaded inside libavif).
"""

import io
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, get_args
from xml.sax.saxutils import escape

import numpy as np
from PIL import ExifTags, Image, ImageCms, ImageOps, PngImagePlugin

from app.imaging.presets import PRESETS, ExportTarget, resolve_target
from app.imaging.saliency import crop_window, saliency_map, smart_crop_box

__all__ = [
    "PRESETS",
    "ExportBudgetError",
    "ExportOptions",
    "ExportTarget",
    "ExportedImage",
    "PreparedExport",
    "export_all",
    "export_image",
    "prepare_export",
    "prepare_source",
    "resolve_target",
    "smart_crop_box",
]

Fit = Literal["cover", "contain", "pad", "smart"]
Format = Literal["png", "jpeg", "webp", "avif"]

PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
FORMATS_WITH_ALPHA = {"png", "webp", "avif"}
DEFAULT_QUALITY: Mapping[str, int] = MappingProxyType({"jpeg": 85, "webp": 82, "avif": 60})
# PNG has no quality to trade for bytes, only effort: each setting is tried in turn against a
# byte budget, and the first is the everyday one.
PNG_SETTINGS_BY_EFFORT: tuple[Mapping[str, Any], ...] = (
    {"compress_level": 6},
    {"compress_level": 9},
    {"optimize": True},
)
# Deflate spends at least 2 bits on a run of 258 bytes, so no zlib stream is smaller than 1/1032
# of what it holds; with the signature, IHDR, IDAT framing, IEND and zlib framing every PNG has,
# that bounds a PNG's size from below before any effort is spent encoding it.
DEFLATE_BEST_RATIO = 1032
PNG_FIXED_BYTES = 8 + 25 + 12 + 12 + 6
# WebP at libwebp's method 2 rather than Pillow's default 4: bench/export.py measures its encoding
# of a photo to all 15 presets 2.6x faster (0.51 s of CPU against 1.33) for 4% more bytes (941 KiB
# against 905) and a luma SSIM against the unencoded pixels 0.001 lower; method 3 costs as much as
# 4, and methods 0-1 make files a third larger.
ENCODER_SETTINGS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "png": PNG_SETTINGS_BY_EFFORT[0],
        "jpeg": {"optimize": True, "progressive": True},
        "webp": {"method": 2},
        "avif": {"speed": 6},
    }
)

# A reduced copy (a pyramid level, a box reduction inside resize, a JPEG decoded at a smaller
# DCT scale) serves a target only while it keeps this many pixels per output pixel, so the final
# Lanczos pass still does the anti-aliasing. Pillow's thumbnail() keeps 2.0; at 1.2 the common
# 2.5-4x reductions (a 4096-pixel source to 1000-1600 wide) resample from a quarter of the pixels.
# bench/export.py (a 4096x4096 photo to all 15 presets) measures a target cut from a level at SSIM
# 0.987-0.991 (WebP) against a full Lanczos resize of the whole source, PSNR above 44 dB; moving
# from 1.5 to 1.2 takes the 1600x900 and 1000x1500 presets off the full-resolution source for 6-8%
# less CPU over all presets, and the mean SSIM from 0.993 to 0.991 (WebP) and 0.994 to 0.993 (JPEG).
REDUCING_GAP = 1.2
# A target whose region holds at most this many source pixels is resampled from the source itself
# in one Lanczos pass, as a full resize would: that pass costs about six multiply-adds per region
# pixel and channel (0.04 s for 5.6 MP on the bench machine), while the pyramid loses the most
# where it reduces the most. bench/export.py measures the 728x90 and 600x200 presets cut from a
# 4096x4096 photo at SSIM 0.972-0.979 (WebP) against a full resize through the pyramid and 1.000
# this way, for 0.05 s more CPU over all 15 presets.
FULL_RESOLUTION_PIXELS = 6_000_000

DECODABLE_FORMATS = ("PNG", "JPEG", "WEBP", "AVIF")
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
PROFILE_MODES = {"RGB ": "RGB", "GRAY": "L", "CMYK": "CMYK"}
TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
SRGB_ICC = SRGB_PROFILE.tobytes()

HEX_COLOUR = re.compile(r"#([0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
# A provenance key must be both an XML element name and a PNG keyword (at most 79 characters).
PROVENANCE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,78}")
XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
XMP_NAMESPACE = "https://darkroom.dev/ns/provenance/1.0/"
XMP_PACKET = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:darkroom="{namespace}">{properties}</rdf:Description>'
    "</rdf:RDF></x:xmpmeta>"
    '<?xpacket end="w"?>'
)


class ExportBudgetError(ValueError):
    """No encoding of a target fits `max_bytes`; `smallest_bytes` is the best that was achieved
    or, for a PNG budget below what any PNG of that size can be, that floor."""

    def __init__(self, message: str, *, max_bytes: int, smallest_bytes: int) -> None:
        super().__init__(message)
        self.max_bytes = max_bytes
        self.smallest_bytes = smallest_bytes


@dataclass(frozen=True)
class ExportOptions:
    """How to export: the fit, the format, quality or a byte budget, background and metadata.

    `quality` is ignored for png, which is lossless; `max_bytes` lowers the quality from `quality`
    (or the format's default) until the file fits. With `strip_metadata` off, the source's EXIF
    and XMP are kept, except that provenance, when given, replaces the XMP packet.
    """

    fit: Fit = "cover"
    format: Format = "webp"
    quality: int | None = None
    max_bytes: int | None = None
    background: str = "#ffffff"
    strip_metadata: bool = True
    provenance: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.fit not in get_args(Fit):
            raise ValueError(f"fit must be one of {', '.join(get_args(Fit))}; got {self.fit!r}.")
        if self.format not in PILLOW_FORMATS:
            raise ValueError(
                f"format must be one of {', '.join(PILLOW_FORMATS)}; got {self.format!r}."
            )
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be from 1 to 100; got {self.quality}.")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ValueError(f"max_bytes must be positive; got {self.max_bytes}.")
        _parse_colour(self.background)
        for key in self.provenance or {}:
            if not PROVENANCE_KEY.fullmatch(key):
                raise ValueError(
                    f"Provenance key {key!r} must start with a letter or underscore and hold "
                    "only letters, digits, '_' and '-' (at most 79)."
                )


@dataclass(frozen=True)
class ExportedImage:
    """One encoded output: its bytes and what they are."""

    target: ExportTarget
    data: bytes
    format: str
    width: int
    height: int
    quality: int | None
    upscaled: bool


@dataclass(frozen=True)
class _Plan:
    """What one target takes from the source: a region, the size it becomes, and whether that
    enlarges it."""

    target: ExportTarget
    box: tuple[float, float, float, float]
    size: tuple[int, int]
    upscaled: bool

    @property
    def scale(self) -> float:
        """Output pixels per source pixel along the axis that needs the most."""
        left, top, right, bottom = self.box
        return max(self.size[0] / (right - left), self.size[1] / (bottom - top))

    @property
    def full_resolution(self) -> bool:
        """Whether the region is small enough to resample from the source itself."""
        left, top, right, bottom = self.box
        return (right - left) * (bottom - top) <= FULL_RESOLUTION_PIXELS


class _Pyramid:
    """The source and its successive 2x box reductions, down to the smallest any plan can use.

    A reduction is made the first time a render asks for it, so the renders cut from the source
    itself (the largest targets, which go first) start at once and the reductions are made on a
    render thread beside them rather than before any of them."""

    def __init__(self, source: Image.Image, plans: Sequence[_Plan]) -> None:
        self.sizes = [source.size]
        reduced = [plan.scale for plan in plans if not plan.full_resolution]
        while reduced and self.sizes[-1][0] / source.width / 2 >= REDUCING_GAP * min(reduced):
            width, height = self.sizes[-1]
            # Image.reduce keeps the partial box at the edge.
            self.sizes.append((math.ceil(width / 2), math.ceil(height / 2)))
        self._levels = [source]
        self._lock = threading.Lock()

    @property
    def source(self) -> Image.Image:
        """The full-resolution level."""
        return self._levels[0]

    def level(self, index: int) -> Image.Image:
        """Level `index` (0 is the source), made from the one above it on first use."""
        # Appending to a list is atomic: a level once listed is complete and never replaced.
        if index < len(self._levels):
            return self._levels[index]
        with self._lock:
            while len(self._levels) <= index:
                self._levels.append(self._levels[-1].reduce(2))
        return self._levels[index]

    def level_for(self, plan: _Plan) -> Image.Image:
        """The source for a small region, else the smallest level that keeps REDUCING_GAP pixels
        per output pixel along both axes."""
        if plan.full_resolution:
            return self.source
        full_width, full_height = self.sizes[0]
        for index in reversed(range(len(self.sizes))):
            width, height = self.sizes[index]
            if min(width / full_width, height / full_height) >= REDUCING_GAP * plan.scale:
                return self.level(index)
        return self.source


def _parse_colour(value: str) -> tuple[int, int, int, int]:
    """RGBA from a hex colour: #rgb, #rgba, #rrggbb or #rrggbbaa."""
    match = HEX_COLOUR.fullmatch(value)
    if match is None:
        raise ValueError(f"background must be a hex colour like #fff or #ffffff; got {value!r}.")
    digits = match.group(1)
    if len(digits) <= 4:
        digits = "".join(digit * 2 for digit in digits)
    digits = digits.ljust(8, "f")
    red, green, blue, alpha = (int(digits[i : i + 2], 16) for i in range(0, 8, 2))
    return red, green, blue, alpha


def prepare_source(data: bytes, *, max_side_needed: int | None = None) -> Image.Image:
    """Decode validated bytes to an upright 8-bit sRGB image in RGB or RGBA; a JPEG is decoded at
    the smallest DCT scale whose longer side still reaches `max_side_needed`.

    The result's `info` holds only what an export may write: the sRGB profile when the source's
    own profile was converted, and the source's EXIF (orientation applied) and XMP.
    """
    image = Image.open(io.BytesIO(data), formats=DECODABLE_FORMATS)
    if image.format == "JPEG" and max_side_needed is not None and max_side_needed < max(image.size):
        image.draft(None, _draft_size(image.size, max_side_needed))
    ImageOps.exif_transpose(image, in_place=True)
    source_info = image.info
    image, converted = _to_srgb(image)
    if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
        image = image.convert("RGB")
    image.info = {key: source_info[key] for key in ("exif", "xmp") if key in source_info}
    if converted:
        image.info["icc_profile"] = SRGB_ICC
    return image


def export_image(
    source: Image.Image, target: ExportTarget, options: ExportOptions
) -> ExportedImage:
    """Export a source made by prepare_source to one target."""
    if source.mode not in ("RGB", "RGBA"):
        raise ValueError(f"export_image takes a prepared RGB or RGBA source; got {source.mode}.")
    saliency = saliency_map(source) if options.fit == "smart" else None
    plan = _plan(source.size, target, options.fit, saliency)
    return _render(_Pyramid(source, []), plan, options)


@dataclass(frozen=True)
class PreparedExport:
    """One source decoded for many targets: the shared pyramid of reduced copies and each
    target's plan. `render` may run on several threads at once."""

    pyramid: _Pyramid
    plans: Sequence[_Plan]
    options: ExportOptions

    def render(self, index: int) -> ExportedImage:
        """Cut, resize and encode target `index`."""
        return _render(self.pyramid, self.plans[index], self.options)


def prepare_export(
    data: bytes, targets: Sequence[ExportTarget], options: ExportOptions
) -> PreparedExport:
    """Decode the source once (reduced on decode as far as every target allows), plan each
    target, and set up the pyramid they are cut from (its reductions are made as renders need
    them)."""
    if not targets:
        raise ValueError("prepare_export needs at least one target.")
    source = prepare_source(data, max_side_needed=_max_side_needed(data, targets, options.fit))
    saliency = saliency_map(source) if options.fit == "smart" else None
    plans = [_plan(source.size, target, options.fit, saliency) for target in targets]
    return PreparedExport(_Pyramid(source, plans), plans, options)


def export_all(
    data: bytes, targets: Sequence[ExportTarget], options: ExportOptions, *, workers: int = 2
) -> list[ExportedImage]:
    """Export one source to many targets, in order: decode once, cut every target from a shared
    pyramid of reduced copies, and resize and encode on `workers` threads."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1; got {workers}.")
    if not targets:
        return []
    prepared = prepare_export(data, targets, options)
    plans = prepared.plans
    # Largest first, so the workers finish together rather than one waiting on the biggest file.
    order = sorted(range(len(plans)), key=lambda index: -math.prod(plans[index].size))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {index: pool.submit(prepared.render, index) for index in order}
    return [futures[index].result() for index in range(len(plans))]


def _draft_size(size: tuple[int, int], max_side_needed: int) -> tuple[int, int]:
    width, height = size
    shrink = max_side_needed / max(size)
    return max(1, math.ceil(width * shrink)), max(1, math.ceil(height * shrink))


def _to_srgb(image: Image.Image) -> tuple[Image.Image, bool]:
    """8-bit sRGB RGB or RGBA, and whether an embedded ICC profile was converted to get there."""
    image = _to_eight_bit(image)
    has_alpha = image.mode in ALPHA_MODES or "transparency" in image.info
    icc_profile = image.info.get("icc_profile")
    if icc_profile:
        converted = _convert_profile(image, icc_profile, has_alpha)
        if converted is not None:
            return converted, True
    mode = "RGBA" if has_alpha else "RGB"
    # convert() to the same mode copies every pixel; a large source is better left alone.
    return (image if image.mode == mode else image.convert(mode)), False


def _to_eight_bit(image: Image.Image) -> Image.Image:
    if image.mode not in SIXTEEN_BIT_MODES:
        return image
    # convert("L") clips 16-bit values at 255 instead of scaling them.
    values = np.asarray(image)
    luma = Image.fromarray(np.rint(values / 257).clip(0, 255).astype(np.uint8))
    transparent_value = image.info.get("transparency")
    if isinstance(transparent_value, int):
        alpha = Image.fromarray(np.where(values == transparent_value, 0, 255).astype(np.uint8))
        luma = Image.merge("LA", (luma, alpha))
    luma.info = {key: value for key, value in image.info.items() if key != "transparency"}
    return luma


def _convert_profile(image: Image.Image, icc_profile: bytes, has_alpha: bool) -> Image.Image | None:
    """`image` converted from its embedded profile to sRGB, or None when the profile is unusable
    or describes another kind of colour than the pixels hold."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        profile_mode = PROFILE_MODES.get(profile.profile.xcolor_space)
        if profile_mode != _colour_mode(image):
            return None
        converted = ImageCms.profileToProfile(
            image.convert(profile_mode), profile, SRGB_PROFILE, outputMode="RGB"
        )
    except (OSError, ImageCms.PyCMSError):
        # Browsers show pixels with a broken profile as sRGB; so do we.
        return None
    if converted is not None and has_alpha:
        converted.putalpha(image.convert("RGBA").getchannel("A"))
    return converted


def _colour_mode(image: Image.Image) -> str:
    if image.mode == "CMYK":
        return "CMYK"
    if image.mode in ("1", "L", "LA", "La"):
        return "L"
    return "RGB"


def _max_side_needed(data: bytes, targets: Sequence[ExportTarget], fit: Fit) -> int | None:
    """How far a JPEG's longer side may shrink on decode while every target keeps REDUCING_GAP of
    margin; None for other formats, which cannot reduce on decode."""
    header = Image.open(io.BytesIO(data), formats=DECODABLE_FORMATS)
    if header.format != "JPEG":
        return None
    width, height = header.size
    if header.getexif().get(ExifTags.Base.Orientation) in TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    scale = max(_scale((width, height), target, fit) for target in targets)
    return math.ceil(max(width, height) * scale * REDUCING_GAP)


def _scale(size: tuple[int, int], target: ExportTarget, fit: Fit) -> float:
    """Output pixels per source pixel: cover and smart fill the target, contain and pad fit in."""
    width, height = size
    if fit in ("contain", "pad"):
        return min(target.width / width, target.height / height)
    return max(target.width / width, target.height / height)


def _plan(
    size: tuple[int, int], target: ExportTarget, fit: Fit, saliency: np.ndarray | None
) -> _Plan:
    width, height = size
    scale = _scale(size, target, fit)
    upscaled = scale > 1
    if fit in ("contain", "pad"):
        scaled = (max(1, round(width * scale)), max(1, round(height * scale)))
        return _Plan(target, (0, 0, width, height), scaled, upscaled)
    if saliency is not None:
        box: tuple[float, float, float, float] = crop_window(
            saliency, size, target.width, target.height
        )
    else:
        box = _centre_box(size, target, scale)
    return _Plan(target, box, (target.width, target.height), upscaled)


def _centre_box(
    size: tuple[int, int], target: ExportTarget, scale: float
) -> tuple[float, float, float, float]:
    """The source region a cover crop keeps, on the pixel grid of resizing the whole image and
    cropping its centre (geometry.fit_exact), so only that region needs resampling."""
    width, height = size
    scaled_width = max(target.width, round(width * scale))
    scaled_height = max(target.height, round(height * scale))
    left = (scaled_width - target.width) // 2
    top = (scaled_height - target.height) // 2
    x_step, y_step = width / scaled_width, height / scaled_height
    return (
        left * x_step,
        top * y_step,
        (left + target.width) * x_step,
        (top + target.height) * y_step,
    )


def _render(pyramid: _Pyramid, plan: _Plan, options: ExportOptions) -> ExportedImage:
    source = pyramid.source
    level = pyramid.level_for(plan)
    x_ratio, y_ratio = level.width / source.width, level.height / source.height
    left, top, right, bottom = plan.box
    image = level.resize(
        plan.size,
        Image.Resampling.LANCZOS,
        box=(left * x_ratio, top * y_ratio, right * x_ratio, bottom * y_ratio),
        reducing_gap=None if plan.full_resolution else REDUCING_GAP,
    )
    size = (plan.target.width, plan.target.height) if options.fit == "pad" else image.size
    if image.size != size or (image.mode == "RGBA" and options.format not in FORMATS_WITH_ALPHA):
        image = _onto_background(image, size, options)
    # Some encoders fall back to `info` for metadata (JPEG comments, PNG profile and
    # transparency); only what _metadata chose may reach the file.
    image.info = {}
    metadata = _metadata(source.info, options)
    quality: int | None
    if options.format == "png":
        quality, data = None, _encode_png(image, metadata, options.max_bytes, plan)
    else:
        quality, data = _encode_lossy(image, metadata, options, plan)
    return ExportedImage(
        plan.target, data, options.format, image.width, image.height, quality, plan.upscaled
    )


def _onto_background(
    image: Image.Image, size: tuple[int, int], options: ExportOptions
) -> Image.Image:
    """`image` centred on a `size` canvas of the background colour, transparent only where both
    the format and the colour allow it."""
    red, green, blue, alpha = _parse_colour(options.background)
    keeps_alpha = options.format in FORMATS_WITH_ALPHA and (image.mode == "RGBA" or alpha < 255)
    offset = ((size[0] - image.width) // 2, (size[1] - image.height) // 2)
    if keeps_alpha:
        canvas = Image.new("RGBA", size, (red, green, blue, alpha))
        canvas.alpha_composite(image.convert("RGBA"), offset)
        return canvas
    canvas = Image.new("RGB", size, (red, green, blue))
    canvas.paste(image, offset, image if image.mode == "RGBA" else None)
    return canvas


def _metadata(source_info: Mapping[str, Any], options: ExportOptions) -> dict[str, Any]:
    """The save arguments that carry metadata: the sRGB profile when the source's was converted,
    the source's EXIF and XMP unless stripped, and provenance when asked."""
    metadata: dict[str, Any] = {}
    if "icc_profile" in source_info:
        metadata["icc_profile"] = source_info["icc_profile"]
    if not options.strip_metadata:
        metadata |= {key: source_info[key] for key in ("exif", "xmp") if key in source_info}
    if options.format != "png":
        if options.provenance:
            metadata["xmp"] = _provenance_xmp(options.provenance)
        return metadata
    # PNG carries XMP and provenance as text chunks; Pillow adds iTXt for non-Latin-1 text.
    text = PngImagePlugin.PngInfo()
    if xmp := metadata.pop("xmp", None):
        text.add_itxt("XML:com.adobe.xmp", xmp.decode() if isinstance(xmp, bytes) else xmp)
    for key, value in (options.provenance or {}).items():
        text.add_text(key, value)
    metadata["pnginfo"] = text
    return metadata


def _provenance_xmp(provenance: Mapping[str, str]) -> bytes:
    properties = "".join(
        f"<darkroom:{key}>{escape(XML_ILLEGAL.sub('', value))}</darkroom:{key}>"
        for key, value in provenance.items()
    )
    return XMP_PACKET.format(namespace=XMP_NAMESPACE, properties=properties).encode()


def _encode(image: Image.Image, image_format: str, settings: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, PILLOW_FORMATS[image_format], **settings)
    return buffer.getvalue()


def _encode_png(
    image: Image.Image, metadata: Mapping[str, Any], max_bytes: int | None, plan: _Plan
) -> bytes:
    encodings = (
        _encode(image, "png", {**settings, **metadata}) for settings in PNG_SETTINGS_BY_EFFORT
    )
    if max_bytes is None:
        return next(encodings)
    floor = _png_floor(image)
    if floor > max_bytes:
        # Known before encoding: the strongest efforts cost seconds on a large image.
        raise ExportBudgetError(
            f"{plan.target.name}: no PNG at {image.width}x{image.height} can be smaller than "
            f"{floor:,} bytes, over the max_bytes budget of {max_bytes:,}; "
            "a lossy format (webp, avif, jpeg) can go smaller.",
            max_bytes=max_bytes,
            smallest_bytes=floor,
        )
    sizes = []
    for data in encodings:
        if len(data) <= max_bytes:
            return data
        sizes.append(len(data))
    raise ExportBudgetError(
        f"{plan.target.name}: the smallest PNG at {image.width}x{image.height} is "
        f"{min(sizes):,} bytes, over the max_bytes budget of {max_bytes:,}; "
        "a lossy format (webp, avif, jpeg) can go smaller.",
        max_bytes=max_bytes,
        smallest_bytes=min(sizes),
    )


def _png_floor(image: Image.Image) -> int:
    """Bytes no PNG of `image` can go below: its rows (a filter byte, then a byte per sample, as
    images reach the encoder as 8-bit RGB or RGBA) at deflate's best ratio, and the fixed chunks."""
    row_bytes = 1 + image.width * len(image.getbands())
    return PNG_FIXED_BYTES + math.ceil(image.height * row_bytes / DEFLATE_BEST_RATIO)


def _encode_lossy(
    image: Image.Image, metadata: Mapping[str, Any], options: ExportOptions, plan: _Plan
) -> tuple[int, bytes]:
    settings = {**ENCODER_SETTINGS[options.format], **metadata}

    def encode_at(quality: int) -> bytes:
        return _encode(image, options.format, {**settings, "quality": quality})

    ceiling = options.quality or DEFAULT_QUALITY[options.format]
    data = encode_at(ceiling)
    if options.max_bytes is None or len(data) <= options.max_bytes:
        return ceiling, data
    lowest = encode_at(1)
    if len(lowest) > options.max_bytes:
        raise ExportBudgetError(
            f"{plan.target.name}: even quality 1 {options.format} at {image.width}x{image.height} "
            f"is {len(lowest):,} bytes, over the max_bytes budget of {options.max_bytes:,}.",
            max_bytes=options.max_bytes,
            smallest_bytes=len(lowest),
        )
    return _highest_quality_within(encode_at, 1, lowest, ceiling - 1, options.max_bytes)


def _highest_quality_within(
    encode_at: Callable[[int], bytes], low: int, low_data: bytes, high: int, max_bytes: int
) -> tuple[int, bytes]:
    """Binary search for the highest quality in low..high whose file fits `max_bytes`, given that
    `low` (encoded as `low_data`) fits; file size grows with quality."""
    best = low, low_data
    low += 1
    while low <= high:
        middle = (low + high) // 2
        data = encode_at(middle)
        if len(data) <= max_bytes:
            best = middle, data
            low = middle + 1
        else:
            high = middle - 1
    return best
