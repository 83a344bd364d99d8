"""Behaviour of the seeded procedural draft renderer behind the offline ``local/draft`` model."""

import colorsys
import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from app.prompts import optimize_prompt
from app.providers.draft_renderer import (
    LAYOUT_WORDS,
    SHAPE_WORDS,
    _subject,
    brief_subject,
    match_words,
    prompt_words,
    render_draft,
)
from tests.support import fresh_process_output


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def pixels(prompt: str, seed: int = 7, width: int = 256, height: int = 256) -> np.ndarray:
    return np.asarray(render_draft(prompt, seed, width, height), dtype=np.float64)


def luminance(arr: np.ndarray) -> float:
    return float((arr @ np.array([0.299, 0.587, 0.114])).mean())


def share_of_hue(
    arr: np.ndarray,
    area: tuple[float, float, float, float],
    hue: float,
    min_saturation: float,
    max_lightness: float,
) -> float:
    """Of the pixels in `area` (top, bottom, left, right as fractions) more saturated than
    `min_saturation`, the share within 30 degrees of `hue` (0..1) and no lighter than
    `max_lightness`: a pale pink is not red."""
    height, width, _ = arr.shape
    top, bottom, left, right = area
    region = arr[int(top * height) : int(bottom * height), int(left * width) : int(right * width)]
    hls = np.array([colorsys.rgb_to_hls(*pixel) for pixel in region.reshape(-1, 3) / 255])
    saturated = hls[:, 2] > min_saturation
    distance = np.abs(hls[:, 0] - hue)
    matching = (np.minimum(distance, 1 - distance) <= 1 / 12) & (hls[:, 1] <= max_lightness)
    return float((saturated & matching).sum() / max(1, saturated.sum()))


def blue_height(prompt: str, seed: int) -> float:
    """How much of the image's height the blue pixels span."""
    arr = pixels(prompt, seed, 128, 128)
    blue = (arr[..., 2] > arr[..., 0] + 60) & (arr[..., 2] > arr[..., 1] + 40)
    rows = np.flatnonzero(blue.any(axis=1))
    return (rows[-1] - rows[0] + 1) / 128 if rows.size else 0.0


def edge_energy(img: Image.Image) -> tuple[float, float]:
    """Horizontal detail in the outer quarter on each side, measured above the film grain."""
    small = np.asarray(img.resize((64, 32), Image.Resampling.BOX), dtype=np.float64)
    detail = np.abs(np.diff(small, axis=1)).sum(axis=2)
    return float(detail[:, :16].mean()), float(detail[:, -16:].mean())


@pytest.mark.parametrize(
    ("prompt", "width", "height"),
    [
        ("portrait of a woman", 64, 64),
        ("red sneaker product shot", 1360, 765),
        ("night city skyline", 512, 2048),
        ("mountain landscape banner", 4096, 1024),
        ("abstract shapes", 97, 65),
    ],
)
def test_returns_rgb_image_of_exactly_the_requested_size(prompt: str, width: int, height: int):
    img = render_draft(prompt, 1, width, height)

    assert img.mode == "RGB"
    assert img.size == (width, height)


@pytest.mark.parametrize(("width", "height"), [(63, 256), (256, 63), (4097, 256), (256, 4097)])
def test_rejects_sizes_outside_64_to_4096(width: int, height: int):
    with pytest.raises(ValueError, match=r"64\.\.4096"):
        render_draft("anything", 1, width, height)


@pytest.mark.parametrize(
    "prompt", ["portrait of a woman", "pastel perfume bottle", "forest valley", "hero banner", ""]
)
def test_same_inputs_give_byte_identical_png(prompt: str):
    first = png_bytes(render_draft(prompt, 42, 320, 200))
    second = png_bytes(render_draft(prompt, 42, 320, 200))

    assert first == second


def test_render_is_identical_in_a_fresh_process():
    code = (
        "import hashlib, io\n"
        "from app.providers.draft_renderer import render_draft\n"
        "buf = io.BytesIO()\n"
        "render_draft('sunset city skyline banner', 1234, 400, 300).save(buf, 'PNG')\n"
        "print(hashlib.sha256(buf.getvalue()).hexdigest())\n"
    )
    here = hashlib.sha256(png_bytes(render_draft("sunset city skyline banner", 1234, 400, 300)))
    assert fresh_process_output(code) == here.hexdigest()


@pytest.mark.parametrize(
    "prompt",
    [
        "portrait of a woman",
        "red sneaker product shot",
        "mountain landscape",
        "night city skyline",
        "hero banner",
        "abstract shapes",
    ],
)
def test_another_seed_gives_a_visibly_different_image(prompt: str):
    difference = np.abs(pixels(prompt, seed=1) - pixels(prompt, seed=2)).mean()

    assert difference > 4.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_red_prompt_is_red_dominant(seed: int):
    arr = pixels("a red poster", seed)

    assert arr[..., 0].mean() > arr[..., 2].mean() + 60


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deep_blue_ocean_prompt_is_blue_dominant(seed: int):
    arr = pixels("deep blue ocean", seed)

    assert arr[..., 2].mean() > arr[..., 0].mean() + 60


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_night_prompt_is_much_darker_than_white_snow(seed: int):
    night = luminance(pixels("a quiet night", seed))
    snow = luminance(pixels("white snow", seed))

    assert night < snow - 80


def test_colour_words_match_regardless_of_case_and_plural_s():
    arr = pixels("BLUE Oceans and Seas")

    assert arr[..., 2].mean() > arr[..., 0].mean() + 60


def test_prompts_without_colour_words_still_get_their_own_palette():
    cat = pixels("a cat").mean(axis=(0, 1))
    tractor = pixels("an old tractor").mean(axis=(0, 1))

    assert np.abs(cat - tractor).sum() > 20


def test_subject_words_pick_different_layouts_for_the_same_seed():
    portrait = pixels("blue portrait of a woman", seed=3)
    landscape = pixels("blue mountain landscape", seed=3)

    assert np.abs(portrait - landscape).mean() > 15


@pytest.mark.parametrize(
    "prompt", ["portrait banner", "product banner", "city skyline hero", "abstract header"]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_banner_leaves_one_side_calm_for_copy(prompt: str, seed: int):
    left, right = edge_energy(render_draft(prompt, seed, 512, 256))

    assert min(left, right) < 0.4 * max(left, right)


@pytest.mark.parametrize(
    ("brief", "shape"),
    [
        ("a ceramic mug on a walnut desk", "mug"),
        ("a red sneaker", "shoe"),
        ("hiking boots", "shoe"),
        ("close-up of a green perfume bottle", "bottle"),
        ("a shoe box", "box"),
        ("a blue vase", "vase"),
        ("a jar of face cream", "jar"),
        ("a brass table lamp", "lamp"),
        ("a watch", None),
        ("product banner", None),
    ],
)
def test_brief_subject_names_the_shape_of_the_product(brief: str, shape: str | None):
    assert brief_subject(brief).shape == shape


@pytest.mark.parametrize("rendering", ["sentences", "tags"])
def test_brief_subject_reads_only_the_callers_words_at_the_head_of_the_prompt(rendering: str):
    prompt = optimize_prompt("a red sneaker on a walnut desk", rendering=rendering).prompt
    subject = brief_subject(prompt)

    assert (subject.shape, subject.colour) == ("shoe", (200, 35, 45))
    assert (
        subject.surface is not None and subject.surface[0] > subject.surface[1] > subject.surface[2]
    )
    assert subject.words == ["red", "sneaker", "walnut", "desk"]


@pytest.mark.parametrize(
    "brief",
    [
        "a ceramic mug on a walnut desk",
        "a blue vase",
        "a table lamp",
        "a stoneware jug",
        "a tumbler",
    ],
)
def test_product_words_route_to_the_product_layout(brief: str):
    assert match_words(prompt_words(brief), LAYOUT_WORDS)[0] == "product"


def test_every_shape_word_draws_a_product_and_colour_words_do_not():
    assert all(LAYOUT_WORDS[word] == "product" for word in SHAPE_WORDS)
    assert _subject(prompt_words("a cream sofa"))[0] != "product"


@pytest.mark.parametrize(("brief", "hue"), [("a red sneaker", 0.0), ("a blue vase", 0.62)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_product_wears_the_colour_its_brief_names_not_the_optimizers_tones(
    brief: str, hue: float, seed: int
):
    arr = pixels(optimize_prompt(brief).prompt, seed, 128, 128)

    assert share_of_hue(arr, (0.45, 0.8, 0.3, 0.7), hue, 0.45, 0.65) > 0.85


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_walnut_desk_is_a_brown_surface_under_the_mug(seed: int):
    arr = pixels(optimize_prompt("a ceramic mug on a walnut desk").prompt, seed, 128, 128)

    assert share_of_hue(arr, (0.88, 1.0, 0.45, 0.55), 0.07, 0.2, 0.45) > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_mug_is_drawn_as_a_mug_and_a_bottle_as_a_bottle_whatever_the_seed(seed: int):
    assert blue_height("a blue mug, white backdrop", seed) < 0.35
    assert blue_height("a blue bottle, white backdrop", seed) > 0.45


def test_a_product_the_brief_names_no_shape_for_takes_its_shape_from_the_seed():
    heights = [blue_height("a blue watch, white backdrop", seed) for seed in range(4)]

    assert brief_subject("a blue watch").shape is None
    assert max(heights) > 0.45 and min(heights) < 0.35
