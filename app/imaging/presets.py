"""Export destinations: the named presets and the resolution of a target to exact pixels."""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

MAX_SIDE = 8192

PRESETS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "instagram-square": (1080, 1080),
        "instagram-portrait": (1080, 1350),
        "story": (1080, 1920),
        "og-image": (1200, 630),
        "x-post": (1600, 900),
        "linkedin-post": (1200, 627),
        "linkedin-banner": (1584, 396),
        "youtube-thumbnail": (1280, 720),
        "pinterest-pin": (1000, 1500),
        "product-card": (1000, 1000),
        "hero": (1920, 1080),
        "hero-retina": (3840, 2160),
        "leaderboard": (728, 90),
        "medium-rectangle": (300, 250),
        "email-header": (600, 200),
    }
)


@dataclass(frozen=True)
class ExportTarget:
    """One output to produce: a preset's name (or "WxH" for an explicit size) and its pixels."""

    name: str
    width: int
    height: int


def resolve_target(target: str | tuple[int, int]) -> ExportTarget:
    """The exact output for a preset name or an explicit (width, height), each side 1..8192."""
    if isinstance(target, str):
        if target not in PRESETS:
            raise ValueError(
                f"Unknown export preset {target!r}; known presets: {', '.join(PRESETS)}."
            )
        width, height = PRESETS[target]
        return ExportTarget(target, width, height)
    width, height = target
    for side in (width, height):
        # bool is an int subclass; True as a width is a caller's bug, not a 1-pixel side.
        if not isinstance(side, int) or isinstance(side, bool) or not 1 <= side <= MAX_SIDE:
            raise ValueError(
                f"An export size needs whole-pixel sides from 1 to {MAX_SIDE}; got {target!r}."
            )
    return ExportTarget(f"{width}x{height}", width, height)
