"""Seeded procedural draft renderer behind the offline ``local/draft`` model.

It is not a generative model: it turns a prompt into a quick, deterministic sketch. Colour and
mood words pick the palette, subject words pick a layout (figure, product, landscape, skyline or
abstract, optionally pushed to one side for banners), the brief at the head of the prompt (the
caller's own words) names a product's shape and colours, and the seed decides every position,
size, count and the film grain. All randomness comes from PCG64 generators seeded through
hashlib, so identical inputs give identical pixels in every process.
"""

from __future__ import annotations

import colorsys
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from app.providers.draft_labels import brief_phrases

RGB = tuple[int, int, int]
RGBA = tuple[int, int, int, int]
Box = tuple[float, float, float, float]  # left, top, right, bottom
V = TypeVar("V")
# Draws a product standing at (x, base) at a size in pixels in a colour; gives its body's box.
ProductShape = Callable[[ImageDraw.ImageDraw, float, float, float, RGB], Box]

MIN_SIDE = 64
MAX_SIDE = 4096
# Shapes are drawn on a canvas of at most this side and resized at the end, which keeps 4096 px
# renders fast; small images are drawn at twice their size so edges come out anti-aliased.
WORK_MAX_SIDE = 1536
SUPERSAMPLE = 2.0
# The background and the blurred far layer are drawn this many times smaller than the working
# canvas, at most: they end up out of focus anyway, and full-size blurs dominate the render time.
BACKDROP_REDUCTION = 4
# Largest grain offset in 8-bit levels; grain also hides banding left by upscaling gradients.
GRAIN = 4


def render_draft(prompt: str, seed: int, width: int, height: int) -> Image.Image:
    """Render a deterministic RGB draft of exactly ``width`` x ``height`` for a prompt and seed."""
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ValueError(f"size must be within {MIN_SIDE}..{MAX_SIDE} px, got {width}x{height}")
    words = prompt_words(prompt)
    subject, banner = _subject(words)
    layout = LAYOUTS[subject]
    brief = brief_subject(prompt)
    # A product wears the colours its brief gives it and its surface; the other words colour the
    # backdrop around it, so a red sneaker on a light-grey backdrop is not red on red.
    taken = brief.colour_words if subject == "product" else frozenset()
    palette = _palette(_without(words, taken), _without(brief.words, taken))
    rng = seeded_rng("render", str(seed), prompt)
    focus = _focus(layout, banner, rng)
    size = _work_size(width, height)
    backdrop = _background(palette, _backdrop_size(size), focus)
    scene = _Scene(backdrop, size, palette, rng, focus, banner, brief)
    layout.paint(scene)
    # Area averaging anti-aliases the downscale and is the cheapest filter that does.
    img, resample = scene.img, Image.Resampling.BOX
    if width > img.width:  # upscaling would magnify the hard polygon edges: anti-alias first
        img, resample = img.filter(ImageFilter.GaussianBlur(0.7)), Image.Resampling.BICUBIC
    return _add_grain(img.resize((width, height), resample), rng)


def prompt_words(prompt: str) -> list[str]:
    """The prompt's words, lower-cased, for looking up in the word tables."""
    return re.findall(r"[a-z]+", prompt.lower())


def match_words(words: list[str], table: Mapping[str, V]) -> list[V]:
    """Look words up in order, tolerating a plural ``s``."""
    found: list[V] = []
    for word in words:
        key = word if word in table else word.removesuffix("s")
        if key in table:
            found.append(table[key])
    return found


def _without(words: list[str], left_out: frozenset[str]) -> list[str]:
    return [word for word in words if word not in left_out]


def seeded_rng(*parts: str) -> np.random.Generator:
    """A generator seeded from the parts through SHA-256: the same in every process."""
    material = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(material, "big")))


def _work_size(width: int, height: int) -> tuple[int, int]:
    scale = min(SUPERSAMPLE, WORK_MAX_SIDE / max(width, height))
    return round(width * scale), round(height * scale)


def _backdrop_size(size: tuple[int, int]) -> tuple[int, int]:
    factor = min(BACKDROP_REDUCTION, max(1, max(size) // 256))
    return -(-size[0] // factor), -(-size[1] // factor)


# ---------------------------------------------------------------------------------------------
# Colour


def _luma(colour: RGB) -> float:
    r, g, b = colour
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _hls(hue: float, light: float, sat: float) -> RGB:
    r, g, b = colorsys.hls_to_rgb(hue % 1.0, min(max(light, 0.0), 1.0), min(max(sat, 0.0), 1.0))
    return round(r * 255), round(g * 255), round(b * 255)


def _shift(colour: RGB, light: float = 0.0, hue: float = 0.0) -> RGB:
    h, lum, s = colorsys.rgb_to_hls(*(c / 255 for c in colour))
    return _hls(h + hue, lum + light, s)


def _tone(colour: RGB, tone: float) -> RGB:
    """Move lightness proportionally, so dark colours never clip to pure black and vice versa."""
    h, lum, s = colorsys.rgb_to_hls(*(c / 255 for c in colour))
    return _hls(h, lum + tone * (1 - lum) if tone > 0 else lum * (1 + tone), s)


# Words for the colour of a thing, and the materials that give one -> the colours they evoke,
# the most characteristic first. Only these colour a draft's subject or what it stands on.
OBJECT_COLOUR_WORDS: dict[str, tuple[RGB, ...]] = {
    "red": ((200, 35, 45), (150, 20, 30)),
    "crimson": ((170, 15, 40),),
    "rose": ((230, 120, 140),),
    "coral": ((250, 120, 100),),
    "orange": ((245, 130, 30), (200, 90, 20)),
    "peach": ((255, 200, 165),),
    "rust": ((170, 70, 35),),
    "yellow": ((250, 215, 60), (230, 180, 30)),
    "lemon": ((250, 240, 100),),
    "gold": ((212, 170, 60), (160, 120, 30)),
    "green": ((60, 160, 80), (30, 110, 60)),
    "emerald": ((20, 150, 90),),
    "olive": ((120, 130, 50),),
    "mint": ((170, 230, 200), (100, 200, 160)),
    "teal": ((20, 130, 130), (40, 170, 160)),
    "turquoise": ((50, 200, 190),),
    "cyan": ((40, 200, 220),),
    "blue": ((40, 90, 200), (25, 55, 140)),
    "navy": ((20, 35, 80),),
    "indigo": ((60, 40, 130),),
    "purple": ((120, 60, 170), (80, 35, 120)),
    "violet": ((140, 90, 210),),
    "lavender": ((190, 170, 225), (150, 130, 200)),
    "magenta": ((210, 40, 160),),
    "pink": ((240, 130, 170), (250, 190, 210)),
    "silver": ((190, 195, 200), (140, 145, 155)),
    "black": ((20, 20, 22), (45, 45, 50)),
    "charcoal": ((50, 52, 56),),
    "white": ((245, 245, 242), (220, 222, 225)),
    "grey": ((128, 130, 132), (90, 92, 95)),
    "gray": ((128, 130, 132), (90, 92, 95)),
    "monochrome": ((30, 30, 30), (130, 130, 130), (230, 230, 230)),
    "brown": ((120, 80, 50), (85, 55, 35)),
    "coffee": ((110, 70, 45), (190, 150, 110), (60, 40, 30)),
    "beige": ((225, 205, 175), (200, 180, 150)),
    "cream": ((245, 235, 210),),
    "sand": ((230, 205, 160),),
    "walnut": ((95, 60, 38), (125, 82, 52)),
    "oak": ((190, 145, 95), (160, 115, 70)),
    "wood": ((150, 100, 60), (115, 75, 45)),
    "wooden": ((150, 100, 60), (115, 75, 45)),
    "marble": ((235, 233, 228), (200, 200, 198)),
    "concrete": ((160, 160, 155), (125, 125, 122)),
    "terracotta": ((200, 105, 70), (165, 80, 55)),
}
# Mood and scene words -> the colours they evoke, for the whole palette.
SCENE_COLOUR_WORDS: dict[str, tuple[RGB, ...]] = {
    "pastel": ((250, 200, 210), (190, 220, 240), (200, 235, 210)),
    "neon": ((255, 40, 200), (40, 240, 255), (25, 10, 45)),
    "cyberpunk": ((250, 40, 180), (30, 220, 250), (20, 15, 50)),
    "vintage": ((200, 170, 130), (150, 110, 80), (100, 120, 110)),
    "sepia": ((170, 130, 90), (110, 80, 55)),
    "sunset": ((250, 110, 70), (250, 180, 90), (110, 60, 130)),
    "sunrise": ((255, 190, 120), (250, 140, 130), (150, 180, 220)),
    "dawn": ((250, 200, 170), (170, 170, 210)),
    "dusk": ((90, 70, 140), (230, 120, 110)),
    "ocean": ((10, 95, 145), (5, 55, 95), (70, 190, 200)),
    "sea": ((30, 120, 160), (15, 75, 110), (120, 200, 210)),
    "sky": ((120, 180, 235), (200, 225, 250)),
    "forest": ((35, 90, 50), (20, 60, 35), (110, 150, 70)),
    "desert": ((225, 175, 110), (190, 125, 70), (240, 215, 170)),
    "snow": ((240, 245, 250), (205, 220, 235)),
    "winter": ((215, 230, 245), (150, 175, 205)),
    "night": ((12, 16, 40), (30, 40, 90), (225, 215, 170)),
    "midnight": ((10, 12, 35), (35, 30, 80)),
    "fire": ((240, 80, 20), (255, 170, 40), (120, 20, 10)),
    "autumn": ((200, 100, 30), (160, 60, 30), (220, 170, 60)),
    "spring": ((170, 220, 120), (250, 190, 210), (255, 240, 150)),
    "summer": ((255, 200, 60), (60, 180, 220)),
    "tropical": ((30, 190, 160), (255, 150, 60), (250, 90, 120)),
}
COLOUR_WORDS: dict[str, tuple[RGB, ...]] = {**OBJECT_COLOUR_WORDS, **SCENE_COLOUR_WORDS}

# Mood words -> how far they darken (negative) or lighten (positive) the whole palette.
TONE_WORDS: dict[str, float] = {
    "night": -0.3,
    "midnight": -0.35,
    "dark": -0.35,
    "noir": -0.35,
    "deep": -0.15,
    "moody": -0.2,
    "shadow": -0.2,
    "gloomy": -0.2,
    "bright": 0.25,
    "light": 0.2,
    "white": 0.2,
    "snow": 0.25,
    "airy": 0.25,
    "pale": 0.2,
    "sunny": 0.15,
    "pastel": 0.2,
    "soft": 0.1,
}

# Hue offsets of classic harmonies: analogous, complementary, split-complementary, triadic.
HARMONIES: tuple[tuple[float, ...], ...] = (
    (0.0, 0.08, -0.08),
    (0.0, 0.5, 0.04),
    (0.0, 0.42, 0.58),
    (0.0, 0.333, 0.667),
)


@dataclass(frozen=True)
class _Palette:
    top: RGB  # background at the top edge
    bottom: RGB  # background at the bottom edge
    inks: tuple[RGB, ...]  # shape colours

    @property
    def middle(self) -> RGB:
        return _mix(self.top, self.bottom, 0.5)

    def contrasting(self) -> RGB:
        return max(self.inks, key=lambda ink: abs(_luma(ink) - _luma(self.middle)))

    def lightest(self) -> RGB:
        return max(self.inks, key=_luma)

    def darkest(self) -> RGB:
        return min(self.inks, key=_luma)


def _overall_tone(words: list[str]) -> float:
    return min(max(sum(match_words(words, TONE_WORDS)), -0.6), 0.6)


def _palette(words: list[str], brief_words: list[str]) -> _Palette:
    """The palette of the prompt's `words`; when the brief's own `brief_words` name a colour, only
    they set the tone, so words the optimizer adds (`soft`, `light-grey`) cannot wash it out."""
    named = [colour for colours in match_words(words, COLOUR_WORDS) for colour in colours]
    tone = _overall_tone(brief_words if match_words(brief_words, COLOUR_WORDS) else words)
    base = [_tone(c, tone) for c in dict.fromkeys(named) or _derived_colours(words)]
    # Variants on the far side of mid-grey keep single-colour prompts from looking flat.
    variants = [_shift(c, light=-0.25 if _luma(c) > 0.5 else 0.25, hue=0.03) for c in base]
    return _Palette(
        top=_shift(base[0], light=0.08),
        bottom=_shift(_mix(base[0], base[1 % len(base)], 0.5), light=-0.06),
        inks=(*base, *variants),
    )


def _derived_colours(words: list[str]) -> list[RGB]:
    """A harmony seeded by the prompt's words, so colourless prompts differ from each other."""
    rng = seeded_rng("palette", *words)
    hue, sat, light = rng.random(), rng.uniform(0.35, 0.7), rng.uniform(0.35, 0.65)
    offsets = HARMONIES[int(rng.integers(len(HARMONIES)))]
    return [_hls(hue + offset, light + rng.uniform(-0.2, 0.2), sat) for offset in offsets]


# ---------------------------------------------------------------------------------------------
# Canvas


@dataclass
class _Scene:
    img: Image.Image  # starts as the reduced backdrop, full working size after blur_backdrop()
    size: tuple[int, int]  # working size
    palette: _Palette
    rng: np.random.Generator
    focus: tuple[float, float]  # subject centre as fractions of width and height
    banner: bool
    brief: BriefSubject

    @property
    def draw(self) -> ImageDraw.ImageDraw:
        # RGBA ink blends translucent shapes into the RGB canvas.
        return ImageDraw.Draw(self.img, "RGBA")

    @property
    def unit(self) -> float:
        return float(min(self.img.size))

    def centre(self) -> tuple[float, float]:
        return self.focus[0] * self.img.width, self.focus[1] * self.img.height

    def blur_backdrop(self, fraction: float) -> None:
        """Put everything drawn so far out of focus and go on drawing at full working size."""
        if self.banner:
            _clear_copy_space(self)
        blurred = self.img.filter(ImageFilter.GaussianBlur(fraction * max(self.img.size)))
        self.img = blurred.resize(self.size, Image.Resampling.BILINEAR)

    def weight(self, x: np.ndarray) -> np.ndarray:
        """Height multiplier across the width that calms the copy side of a banner."""
        if not self.banner:
            return np.ones_like(x)
        return 0.25 + 0.75 * np.exp(-(((x - self.focus[0]) / 0.3) ** 2))


def _gradient(palette: _Palette, height: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, bottom = np.array(palette.top, np.float32), np.array(palette.bottom, np.float32)
    return top + (bottom - top) * t


def _background(
    palette: _Palette, size: tuple[int, int], focus: tuple[float, float]
) -> Image.Image:
    """A vertical gradient lit by a glow at the focus and darkened towards the corners."""
    w, h = size
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :, None]
    y = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None, None]
    dx = (x * 0.5 + 0.5 - focus[0]) * (w / min(w, h))
    dy = (y * 0.5 + 0.5 - focus[1]) * (h / min(w, h))
    glow = np.exp(-(dx * dx + dy * dy) / 0.18) * 0.55
    halo = np.array(_shift(palette.top, light=0.3), np.float32)
    column = _gradient(palette, h)
    field = (column + (halo - column) * glow) * (1 - 0.11 * (x * x + y * y))
    return Image.fromarray(np.clip(field + 0.5, 0, 255).astype(np.uint8))


def _clear_copy_space(scene: _Scene) -> None:
    """Fade the side away from the subject back to the plain gradient, leaving room for text.

    Only the backdrop is faded, which is cheap at its reduced size; near shapes stay calm on that
    side through ``_Scene.weight`` and by clustering around the focus.
    """
    w, h = scene.img.size
    ramp = np.clip((np.linspace(0.0, 1.0, w) - 0.5) / 0.25, 0, 1) * (0.85 * 255)
    away = (ramp if scene.focus[0] < 0.5 else ramp[::-1]).astype(np.uint8)
    mask = Image.fromarray(np.broadcast_to(away, (h, w)).copy())
    column = np.clip(_gradient(scene.palette, h) + 0.5, 0, 255).astype(np.uint8)
    plain = Image.fromarray(np.broadcast_to(column, (h, w, 3)).copy())
    scene.img = Image.composite(plain, scene.img, mask)


def _add_grain(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    noise = rng.integers(0, 2 * GRAIN + 1, size=(img.height, img.width), dtype=np.uint8)
    layer = Image.fromarray(noise)
    return ImageChops.add(img, Image.merge("RGB", (layer, layer, layer)), offset=-GRAIN)


def _rgba(colour: RGB, alpha: int) -> RGBA:
    return (*colour, alpha)


def _scatter(scene: _Scene, spread: float) -> tuple[float, float]:
    fx, fy = scene.focus
    x = min(max(scene.rng.normal(fx, spread), -0.1), 1.1)
    y = min(max(scene.rng.normal(fy, spread), -0.1), 1.1)
    return x * scene.img.width, y * scene.img.height


def _pick(rng: np.random.Generator, options: tuple[V, ...]) -> V:
    return options[int(rng.integers(len(options)))]


def _bokeh(scene: _Scene, count: int) -> None:
    draw, rng = scene.draw, scene.rng
    for _ in range(count):
        x, y = _scatter(scene, 0.35)
        r = scene.unit * rng.uniform(0.03, 0.12)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_rgba(_pick(rng, scene.palette.inks), 90))


def _sun(scene: _Scene) -> None:
    x, y = scene.centre()
    r = scene.unit * scene.rng.uniform(0.05, 0.09)
    disc = _shift(scene.palette.lightest(), light=0.2)
    scene.draw.ellipse((x - 2 * r, y - 2 * r, x + 2 * r, y + 2 * r), fill=_rgba(disc, 40))
    scene.draw.ellipse((x - r, y - r, x + r, y + r), fill=_rgba(disc, 235))


# ---------------------------------------------------------------------------------------------
# Layouts


def _draw_figure(scene: _Scene) -> None:
    """A head-and-shoulders silhouette with out-of-focus lights behind it."""
    _bokeh(scene, int(scene.rng.integers(4, 10)))
    scene.blur_backdrop(0.01)
    rng, draw = scene.rng, scene.draw
    body = scene.palette.contrasting()
    skin, hair = _mix(body, scene.palette.lightest(), 0.45), _shift(body, light=-0.12)
    r = scene.unit * rng.uniform(0.11, 0.15) * (0.85 if scene.banner else 1.0)
    cx, cy = scene.centre()
    if rng.random() < 0.5:  # long hair falls behind the shoulders
        hair_box = (cx - 1.15 * r, cy - 1.15 * r, cx + 1.15 * r, cy + r * rng.uniform(0.9, 1.8))
        draw.rounded_rectangle(hair_box, radius=r, fill=hair)
    else:
        draw.ellipse((cx - 1.08 * r, cy - 1.2 * r, cx + 1.08 * r, cy + 0.3 * r), fill=hair)
    shoulders, top = r * rng.uniform(2.0, 2.7), cy + 1.25 * r
    draw.ellipse((cx - shoulders, top, cx + shoulders, top + 2.6 * shoulders), fill=body)
    draw.rectangle((cx - 0.38 * r, cy + 0.5 * r, cx + 0.38 * r, top + 0.4 * r), fill=skin)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=skin)


def _bottle(draw: ImageDraw.ImageDraw, cx: float, base: float, size: float, ink: RGB) -> Box:
    top, neck = base - size * 3.0, size * 0.38
    draw.rectangle((cx - neck, top - size, cx + neck, top + size), fill=ink)
    cap = (cx - neck * 1.2, top - size * 1.5, cx + neck * 1.2, top - size * 0.9)
    draw.rounded_rectangle(cap, radius=neck * 0.3, fill=_shift(ink, light=-0.15))
    body = (cx - size, top, cx + size, base)
    draw.rounded_rectangle(body, radius=size * 0.35, fill=ink)
    return body


def _mug(draw: ImageDraw.ImageDraw, cx: float, base: float, size: float, ink: RGB) -> Box:
    half, top, s = size * 1.1, base - size * 2.0, size
    handle = (cx + half - s * 0.45, top + s * 0.35, cx + half + s * 0.65, base - s * 0.45)
    draw.ellipse(handle, outline=ink, width=max(1, round(size * 0.22)))
    body = (cx - half, top, cx + half, base)
    draw.rounded_rectangle(body, radius=size * 0.2, fill=ink)
    rim = (cx - half, top - size * 0.2, cx + half, top + size * 0.2)
    draw.ellipse(rim, fill=_shift(ink, light=-0.1))
    return body


def _box(draw: ImageDraw.ImageDraw, cx: float, base: float, size: float, ink: RGB) -> Box:
    half, depth, top = size * 1.3, size * 0.55, base - size * 2.4
    left, right, lift = cx - half - depth / 2, cx + half - depth / 2, depth * 0.6
    side = [(right, top), (right + depth, top - lift), (right + depth, base - lift), (right, base)]
    lid = [(left, top), (left + depth, top - lift), (right + depth, top - lift), (right, top)]
    draw.polygon(side, fill=_shift(ink, light=-0.12))
    draw.polygon(lid, fill=_shift(ink, light=0.1))
    body = (left, top, right, base)
    draw.rectangle(body, fill=ink)
    return body


def _shoe(draw: ImageDraw.ImageDraw, cx: float, base: float, size: float, ink: RGB) -> Box:
    """A sneaker in side view, toe to the right: the upper over a pale sole."""
    s, heel, toe = size, cx - size * 1.7, cx + size * 1.7
    sole_top = base - s * 0.4
    upper = [
        (heel, sole_top),
        (heel + s * 0.05, base - s * 1.75),  # back of the collar
        (heel + s * 0.9, base - s * 1.6),
        (heel + s * 1.35, base - s * 1.85),  # the tongue
        (heel + s * 1.65, base - s * 1.3),
        (toe - s * 0.6, base - s * 0.95),  # the laces run down to the toe box
        (toe - s * 0.1, base - s * 0.72),
        (toe, sole_top),
    ]
    draw.polygon(upper, fill=ink)
    draw.ellipse((toe - s * 0.9, base - s * 0.98, toe + s * 0.05, sole_top + s * 0.2), fill=ink)
    sole = (heel - s * 0.05, sole_top, toe + s * 0.12, base)
    draw.rounded_rectangle(sole, radius=s * 0.15, fill=_mix(ink, (240, 240, 236), 0.9))
    return heel, base - s * 1.75, toe, base


def _jar(draw: ImageDraw.ImageDraw, cx: float, base: float, size: float, ink: RGB) -> Box:
    """A squat jar or tub with a darker lid."""
    half, top = size * 1.15, base - size * 1.9
    body = (cx - half, top, cx + half, base)
    draw.rounded_rectangle(body, radius=size * 0.25, fill=ink)
    lid = (cx - half * 1.04, top - size * 0.45, cx + half * 1.04, top + size * 0.1)
    draw.rounded_rectangle(lid, radius=size * 0.12, fill=_shift(ink, light=-0.15))
    return body


def _vase(draw: ImageDraw.ImageDraw, cx: float, base: float, size: float, ink: RGB) -> Box:
    """A round-bellied vase whose neck flares to a lip."""
    s, neck_top = size, base - size * 3.2
    neck = [(cx - s * 0.5, base - s * 2.2), (cx - s * 0.75, neck_top)]
    draw.polygon([*neck, (cx + s * 0.75, neck_top), (cx + s * 0.5, base - s * 2.2)], fill=ink)
    lip = (cx - s * 0.8, neck_top - s * 0.15, cx + s * 0.8, neck_top + s * 0.15)
    draw.ellipse(lip, fill=_shift(ink, light=-0.1))
    draw.ellipse((cx - s * 1.2, base - s * 2.6, cx + s * 1.2, base), fill=ink)
    # The gloss is drawn over the middle of the belly, where it stays inside the curve.
    return cx - s * 1.0, base - s * 2.3, cx + s * 1.0, base - s * 0.2


def _lamp(draw: ImageDraw.ImageDraw, cx: float, base: float, size: float, ink: RGB) -> Box:
    """A table lamp: a tapered shade on a thin stem and a round foot."""
    foot = (cx - size * 0.8, base - size * 0.3, cx + size * 0.8, base)
    draw.ellipse(foot, fill=_shift(ink, light=-0.15))
    stem = (cx - size * 0.1, base - size * 2.3, cx + size * 0.1, base - size * 0.15)
    draw.rectangle(stem, fill=_shift(ink, light=-0.15))
    top, bottom = base - size * 3.6, base - size * 2.2
    shade = [(cx - size * 0.7, top), (cx + size * 0.7, top), (cx + size * 1.2, bottom)]
    draw.polygon([*shade, (cx - size * 1.2, bottom)], fill=ink)
    return cx - size * 1.0, top, cx + size * 1.0, bottom


PRODUCT_SHAPES: dict[str, ProductShape] = {
    "bottle": _bottle,
    "mug": _mug,
    "box": _box,
    "shoe": _shoe,
    "jar": _jar,
    "vase": _vase,
    "lamp": _lamp,
}
# The shapes the seed chooses between when the brief names none of the words below.
SEEDED_SHAPES = ("bottle", "mug", "box")
# Words for a product -> the shape that draws it.
SHAPE_WORDS: dict[str, str] = {
    **dict.fromkeys(("mug", "cup", "teacup", "tumbler"), "mug"),
    **dict.fromkeys(("bottle", "perfume", "fragrance", "flask", "serum"), "bottle"),
    **dict.fromkeys(("box", "package", "packaging", "carton", "parcel", "gift"), "box"),
    **dict.fromkeys(("sneaker", "shoe", "boot", "trainer", "footwear"), "shoe"),
    **dict.fromkeys(("jar", "candle", "cosmetic", "tub"), "jar"),
    **dict.fromkeys(("vase", "jug", "pitcher", "urn"), "vase"),
    **dict.fromkeys(("lamp",), "lamp"),
}


def _pedestal(scene: _Scene, floor: float, half: float, rim: float, shadow: float) -> None:
    """Draw a cylinder whose top sits at ``floor`` (a fraction of the height), sizes in units, in
    the colour the brief gives the surface, else a shade of the backdrop."""
    draw, h, u = scene.draw, scene.img.height, scene.unit
    cx, top = scene.centre()[0], floor * h
    stand = scene.brief.surface or _shift(scene.palette.middle, light=-0.08)
    draw.rectangle((cx - half * u, top, cx + half * u, h), fill=stand)
    lid = (cx - half * u, top - rim * u, cx + half * u, top + rim * u)
    draw.ellipse(lid, fill=_shift(stand, light=0.06))
    contact = (cx - shadow * u, top - rim * u * 0.45, cx + shadow * u, top + rim * u * 0.45)
    draw.ellipse(contact, fill=(0, 0, 0, 110))


def _draw_product(scene: _Scene) -> None:
    """A studio object standing on a pedestal over a soft contact shadow: the shape and colour
    the brief names, else a shape the seed picks in a colour that stands out."""
    rng = scene.rng
    floor, size = rng.uniform(0.7, 0.78), rng.uniform(0.1, 0.14)
    _pedestal(scene, floor, rng.uniform(0.22, 0.32), rng.uniform(0.04, 0.07), size * 1.8)
    scene.blur_backdrop(0.005)
    draw, cx, base = scene.draw, scene.centre()[0], floor * scene.img.height
    shape = PRODUCT_SHAPES[scene.brief.shape or _pick(rng, SEEDED_SHAPES)]
    ink = scene.brief.colour or scene.palette.contrasting()
    x0, y0, x1, y1 = shape(draw, cx, base, size * scene.unit, ink)
    # A specular strip reads as a glossy object rather than a flat cut-out.
    w, h = x1 - x0, y1 - y0
    gloss = (x0 + 0.16 * w, y0 + 0.12 * h, x0 + 0.28 * w, y1 - 0.18 * h)
    draw.rounded_rectangle(gloss, radius=0.06 * w, fill=(255, 255, 255, 70))


def _ridge(scene: _Scene, baseline: float, amplitude: float, colour: RGB, jagged: bool) -> None:
    """Fill below a noisy skyline curve; baseline and amplitude are fractions of the height."""
    w, h = scene.img.size
    x = np.linspace(0.0, 1.0, max(32, w // 6))
    y = np.zeros_like(x)
    for octave in range(1, 6):
        freq = octave * scene.rng.uniform(1.0, 2.2)
        y += np.sin(2 * np.pi * freq * x + scene.rng.uniform(0, 2 * np.pi)) / octave**1.3
    y /= np.abs(y).max()
    if jagged:
        y = 1 - 2 * np.abs(y)  # folding the curve turns its zero crossings into sharp peaks
    tops = h * (baseline - amplitude * y * scene.weight(x))
    points = [*zip((x * w).tolist(), tops.tolist(), strict=True), (w, h), (0, h)]
    scene.draw.polygon(points, fill=colour)


def _draw_landscape(scene: _Scene) -> None:
    """A sun or moon over layered ridges that fade into the sky with distance."""
    rng = scene.rng
    _sun(scene)
    layers = int(rng.integers(3, 6))
    jagged = rng.random() < 0.6  # mountains rather than rolling hills
    near = _shift(scene.palette.darkest(), light=-0.1)
    for i in range(layers):
        depth = (i + 1) / layers
        if i == layers - 1:
            scene.blur_backdrop(0.004)
        baseline = 0.45 + 0.4 * depth + rng.uniform(-0.03, 0.03)
        amplitude = rng.uniform(0.08, 0.18) * (1.3 - 0.6 * depth)
        # Haze: distant ridges take on the colour of the sky near the horizon.
        colour = _mix(scene.palette.bottom, near, depth)
        _ridge(scene, baseline, amplitude, colour, jagged and i < layers - 1)


def _windows(scene: _Scene, draw: ImageDraw.ImageDraw, building: Box, ink: RGB) -> None:
    left, top, right, bottom = building
    cell = scene.unit * 0.028
    cols, rows = int((right - left) / cell), int((bottom - top) / cell)
    margin = (right - left - cols * cell) / 2
    lit = scene.rng.random((rows, cols)) < 0.3
    for row, col in np.argwhere(lit).tolist():
        x, y = left + margin + (col + 0.25) * cell, top + (row + 0.4) * cell
        draw.rectangle((x, y, x + cell * 0.5, y + cell * 0.45), fill=_rgba(ink, 200))


def _buildings(scene: _Scene, colour: RGB, tallest: float, lit: bool) -> None:
    rng, (w, h), u, draw = scene.rng, scene.img.size, scene.unit, scene.draw
    widths = u * rng.uniform(0.05, 0.12, size=int(w / (u * 0.05)) + 2)
    lefts = np.cumsum(widths) - widths - u * rng.uniform(0.0, 0.05)
    tops = h - h * tallest * rng.uniform(0.35, 1.0, widths.size) * scene.weight(lefts / w)
    window = _shift(scene.palette.lightest(), light=0.15)
    for left, width, top in zip(lefts.tolist(), widths.tolist(), tops.tolist(), strict=True):
        if left >= w:
            break
        draw.rectangle((left, top, left + width, h), fill=colour)
        if rng.random() < 0.2:  # an occasional spire breaks up the roofline
            spire = (left + width * 0.45, top - (h - top) * 0.15, left + width * 0.55, top)
            draw.rectangle(spire, fill=colour)
        if lit:
            _windows(scene, draw, (left, top, left + width, h), window)


def _draw_skyline(scene: _Scene) -> None:
    """Two rows of buildings, the nearer one darker and dotted with lit windows."""
    _sun(scene)
    near = _shift(scene.palette.darkest(), light=-0.1)
    _buildings(scene, _mix(scene.palette.bottom, near, 0.45), 0.6, lit=False)
    scene.blur_backdrop(0.004)
    _buildings(scene, near, 0.42, lit=True)


def _disc(
    draw: ImageDraw.ImageDraw, x: float, y: float, size: float, ink: RGBA, rng: np.random.Generator
) -> None:
    squash = size * rng.uniform(0.8, 1.2)
    draw.ellipse((x - size, y - squash, x + size, y + squash), fill=ink)


def _ring(
    draw: ImageDraw.ImageDraw, x: float, y: float, size: float, ink: RGBA, rng: np.random.Generator
) -> None:
    width = max(1, round(size * rng.uniform(0.08, 0.25)))
    draw.ellipse((x - size, y - size, x + size, y + size), outline=ink, width=width)


def _panel(
    draw: ImageDraw.ImageDraw, x: float, y: float, size: float, ink: RGBA, rng: np.random.Generator
) -> None:
    half_w, half_h = size * rng.uniform(1.0, 2.2), size * rng.uniform(0.6, 1.5)
    box = (x - half_w, y - half_h, x + half_w, y + half_h)
    draw.rounded_rectangle(box, radius=size * 0.2, fill=ink)


def _blob(
    draw: ImageDraw.ImageDraw, x: float, y: float, size: float, ink: RGBA, rng: np.random.Generator
) -> None:
    angles = np.linspace(0.0, 2 * np.pi, 48, endpoint=False)
    wobble = np.sin(angles * 2 + rng.uniform(0, 6.3)) + np.sin(angles * 3 + rng.uniform(0, 6.3))
    radii = size * (1 + 0.12 * wobble)
    points = np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], axis=1)
    draw.polygon([tuple(p) for p in points.tolist()], fill=ink)


ABSTRACT_SHAPES = (_disc, _ring, _panel, _blob)


def _draw_abstract(scene: _Scene) -> None:
    """Blurred colour fields under a seeded mix of crisp discs, rings, panels and blobs."""
    rng, inks, draw = scene.rng, scene.palette.inks, scene.draw
    for _ in range(int(rng.integers(3, 6))):
        x, y = _scatter(scene, 0.3)
        r = scene.unit * rng.uniform(0.2, 0.45)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_rgba(_pick(rng, inks), 150))
    scene.blur_backdrop(0.03)
    draw = scene.draw
    for _ in range(int(rng.integers(4, 9))):
        x, y = _scatter(scene, 0.15 if scene.banner else 0.25)
        ink = _rgba(_pick(rng, inks), int(rng.integers(150, 240)))
        _pick(rng, ABSTRACT_SHAPES)(draw, x, y, scene.unit * rng.uniform(0.04, 0.16), ink, rng)


@dataclass(frozen=True)
class _Layout:
    paint: Callable[[_Scene], None]
    spread: float  # how far the subject may wander sideways from the centre
    band: tuple[float, float]  # vertical range of the subject centre


LAYOUTS: dict[str, _Layout] = {
    "figure": _Layout(_draw_figure, 0.04, (0.33, 0.42)),
    "product": _Layout(_draw_product, 0.04, (0.4, 0.5)),
    "landscape": _Layout(_draw_landscape, 0.3, (0.15, 0.38)),
    "skyline": _Layout(_draw_skyline, 0.3, (0.12, 0.3)),
    "abstract": _Layout(_draw_abstract, 0.15, (0.35, 0.65)),
}

# Subject words -> layout. "banner" is a modifier: it pushes whatever subject to one side.
LAYOUT_WORDS: dict[str, str] = {
    "portrait": "figure",
    "person": "figure",
    "face": "figure",
    "woman": "figure",
    "women": "figure",
    "man": "figure",
    "men": "figure",
    "girl": "figure",
    "boy": "figure",
    "headshot": "figure",
    "selfie": "figure",
    "character": "figure",
    "people": "figure",
    "product": "product",
    # Every word of a product shape draws that product.
    **dict.fromkeys(SHAPE_WORDS, "product"),
    "watch": "product",
    "phone": "product",
    "landscape": "landscape",
    "mountain": "landscape",
    "beach": "landscape",
    "field": "landscape",
    "hill": "landscape",
    "valley": "landscape",
    "lake": "landscape",
    "meadow": "landscape",
    "countryside": "landscape",
    "horizon": "landscape",
    "coast": "landscape",
    "city": "skyline",
    "skyline": "skyline",
    "town": "skyline",
    "street": "skyline",
    "downtown": "skyline",
    "skyscraper": "skyline",
    "building": "skyline",
    "cityscape": "skyline",
    "banner": "banner",
    "hero": "banner",
    "header": "banner",
    "cover": "banner",
    "billboard": "banner",
}


def _subject(words: list[str]) -> tuple[str, bool]:
    found = match_words(words, LAYOUT_WORDS)
    return next((name for name in found if name != "banner"), "abstract"), "banner" in found


# Words for what a product stands on: a brief's phrase with one gives the surface its colour.
SURFACE_WORDS: dict[str, str] = dict.fromkeys(
    (
        *("desk", "table", "tabletop", "counter", "countertop", "worktop", "shelf", "floor"),
        *("pedestal", "plinth", "stand", "surface", "tray", "board", "slab", "block", "bench"),
    ),
    "surface",
)


@dataclass(frozen=True)
class BriefSubject:
    """What the caller's own words, the brief at the head of the prompt, say about a product:
    its shape and colour (from the phrase that names it, else the first) and the colour of the
    surface it stands on (from a phrase that names one)."""

    words: list[str]  # the brief's words, lower-cased
    shape: str | None  # a key of PRODUCT_SHAPES
    colour: RGB | None
    surface: RGB | None
    colour_words: frozenset[str]  # the colour and tone words that gave the two colours


def brief_subject(prompt: str) -> BriefSubject:
    """Read a product's shape and colours from the brief at the head of `prompt`; the last shape
    word of the subject's phrase wins (`shoe box` is a box)."""
    phrases = [prompt_words(" ".join(phrase)) for phrase in brief_phrases(prompt)]
    named = [index for index, phrase in enumerate(phrases) if match_words(phrase, SHAPE_WORDS)]
    subject = phrases[named[0]] if named else phrases[0] if phrases else []
    surface_words = [
        word
        for phrase in phrases
        if phrase is not subject and match_words(phrase, SURFACE_WORDS)
        for word in phrase
    ]
    colour, colour_words = _object_colour(subject)
    surface, surface_colour_words = _object_colour(surface_words)
    shapes = match_words(subject, SHAPE_WORDS)
    return BriefSubject(
        words=[word for phrase in phrases for word in phrase],
        shape=shapes[-1] if shapes else None,
        colour=colour,
        surface=surface,
        colour_words=frozenset([*colour_words, *surface_colour_words]),
    )


def _object_colour(words: list[str]) -> tuple[RGB | None, list[str]]:
    """The first colour of a thing the words name, lightened or darkened by their tone words
    (`dark red`), with the words that gave it; none when they name no such colour."""
    colours = match_words(words, OBJECT_COLOUR_WORDS)
    if not colours:
        return None, []
    tables: tuple[Mapping[str, object], ...] = (OBJECT_COLOUR_WORDS, TONE_WORDS)
    taken = [word for word in words if any(match_words([word], table) for table in tables)]
    return _tone(colours[0][0], _overall_tone(words)), taken


def _focus(layout: _Layout, banner: bool, rng: np.random.Generator) -> tuple[float, float]:
    if banner:
        x = (0.3 if rng.random() < 0.5 else 0.7) + rng.uniform(-0.03, 0.03)
    else:
        x = 0.5 + rng.uniform(-layout.spread, layout.spread)
    return x, rng.uniform(*layout.band)
