"""Aspect and size math: parsing `W:H` and `WxH`, the exact output size, and how a made
image fits it."""

from math import gcd, isqrt

from PIL import Image


def parse_aspect_ratio(value: str) -> tuple[int, int]:
    """`"16:9"` -> (16, 9), reduced to lowest terms."""
    width_part, _, height_part = value.partition(":")
    width, height = int(width_part), int(height_part)
    divisor = gcd(width, height)
    return width // divisor, height // divisor


def parse_size(value: str) -> tuple[int, int]:
    """`"1024x768"` -> (1024, 768)."""
    width_part, _, height_part = value.lower().partition("x")
    return int(width_part), int(height_part)


def output_size(
    size: tuple[int, int] | None, aspect: tuple[int, int] | None, area: int
) -> tuple[int, int]:
    """The exact output size: `size` as given, else the largest multiple of the reduced
    aspect ratio whose area stays within `area` (so the ratio holds to the pixel)."""
    if size is not None:
        return size
    ratio_width, ratio_height = aspect or (1, 1)
    scale = max(1, isqrt(area // (ratio_width * ratio_height)))
    return ratio_width * scale, ratio_height * scale


def fit_kind(made: tuple[int, int], width: int, height: int) -> str:
    """What `fit_exact` does to an image of size `made` to give width x height: "exact" (nothing),
    "scaled" (resized only, the aspect ratio already held) or "cropped" (resized to cover, then
    cut to the requested aspect ratio)."""
    if made == (width, height):
        return "exact"
    return "scaled" if cover_size(made, width, height) == (width, height) else "cropped"


def cover_size(made: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """The size an image of size `made` is scaled to so that it covers width x height."""
    scale = max(width / made[0], height / made[1])
    return max(width, round(made[0] * scale)), max(height, round(made[1] * scale))


def fit_exact(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover width x height and crop the centre, so the result is exactly that size."""
    if image.size == (width, height):
        return image
    scaled_width, scaled_height = cover_size(image.size, width, height)
    left = (scaled_width - width) // 2
    top = (scaled_height - height) // 2
    resized = image.resize((scaled_width, scaled_height), Image.Resampling.LANCZOS)
    return resized.crop((left, top, left + width, top + height))
