"""The caption and DRAFT tag on a generated ``local/draft``: the brief's subject words, read from
the head of the prompt, drawn legibly inside the image at every size."""

import numpy as np
import pytest
from PIL import Image, ImageChops, ImageFont

from app.prompts import optimize_prompt
from app.providers.draft_labels import add_labels, brief_phrases, caption_text, wrap
from app.providers.draft_renderer import MAX_SIDE, MIN_SIDE

LONG_CAPTION = "portrait · woman · red coat · night city street · neon · rain · umbrella"


@pytest.mark.parametrize(
    ("brief", "caption"),
    [
        ("a ceramic mug on a walnut desk", "ceramic mug · walnut desk"),
        ("a red sneaker", "red sneaker"),
        ("portrait of a woman in a red coat, at night", "portrait · woman · red coat · night"),
        ("Crème brûlée on a plate", "Creme brulee · plate"),
        ("the women\u2019s running shoe", "women's running shoe"),
        ("東京のカフェ", ""),
        ("", ""),
    ],
)
def test_caption_is_the_subject_words_of_the_brief(brief: str, caption: str):
    assert caption_text(brief) == caption


@pytest.mark.parametrize("rendering", ["sentences", "tags"])
def test_caption_reads_the_brief_at_the_head_of_an_optimized_prompt(rendering: str):
    brief = "a ceramic mug on a walnut desk. Morning light."
    prompt = optimize_prompt(brief, rendering=rendering, max_chars=4000).prompt

    assert len(prompt) > len(brief)
    assert caption_text(prompt) == "ceramic mug · walnut desk"


@pytest.mark.parametrize("rendering", ["sentences", "tags"])
def test_brief_phrases_are_the_callers_words_without_the_optimizers(rendering: str):
    prompt = optimize_prompt("a red sneaker on a white table", rendering=rendering).prompt

    assert "soft" in prompt
    assert brief_phrases(prompt) == [["red", "sneaker"], ["white", "table"]]


def test_wrap_breaks_between_phrases_and_ends_what_does_not_fit_with_an_ellipsis():
    font = ImageFont.load_default(size=12)
    one_line = font.getlength(LONG_CAPTION)

    assert wrap(LONG_CAPTION, font, one_line, 2) == [LONG_CAPTION]
    lines = wrap(LONG_CAPTION, font, one_line * 0.45, 2)
    assert lines[0] == "portrait · woman · red coat"
    assert lines[1].endswith("…") and not lines[1].startswith("·")
    assert all(font.getlength(line) <= one_line * 0.45 for line in lines)
    assert wrap("supercalifragilistic", font, 40, 2)[0].endswith("…")


@pytest.mark.parametrize(
    "size",
    [
        (MIN_SIDE, MIN_SIDE),
        (MIN_SIDE, MAX_SIDE),
        (MAX_SIDE, MIN_SIDE),
        (1360, 765),
        (MAX_SIDE, MAX_SIDE),
    ],
)
def test_labels_fit_inside_the_image_at_every_size(size: tuple[int, int]):
    width, height = size
    blank = Image.new("RGB", size, (128, 128, 128))
    image = add_labels(blank.copy(), LONG_CAPTION)

    assert image.size == size and image.mode == "RGB"
    changed = ImageChops.difference(image, blank)
    # Both labels are inset: no edge row or column is touched, so neither was cut off.
    left, top, right, bottom = changed.getbbox()
    assert left > 0 and top > 0 and right < width and bottom < height
    tag_corner = (0, 0, width // 2, height // 4)
    assert changed.crop(tag_corner).getbbox(), "no DRAFT tag in the top-left corner"
    bottom_middle = (width // 3, height - height // 3, width - width // 3, height)
    assert changed.crop(bottom_middle).getbbox(), "no caption along the bottom"


def test_labels_are_legible_on_a_transparent_image_and_leave_its_corners_clear():
    image = add_labels(Image.new("RGBA", (320, 240), (0, 0, 0, 0)), "ceramic mug · walnut desk")

    alpha = np.asarray(image.getchannel("A"))
    assert alpha[0, 0] == alpha[-1, -1] == alpha[0, -1] == alpha[-1, 0] == 0
    caption = np.asarray(image)[200:]
    box = caption[..., 3] > 0
    assert caption[..., 3][box].min() >= 150, "the caption's box is too faint to read on"
    text = caption[caption[..., 3] == 255]
    assert len(text) > 50 and text[..., :3].min(axis=1).max() >= 240, "no white text"


def test_an_empty_caption_leaves_only_the_tag():
    blank = Image.new("RGB", (256, 256), (128, 128, 128))
    changed = np.asarray(add_labels(blank.copy(), "")) != np.asarray(blank)

    assert changed[:64, :128].any()
    assert not changed[64:].any()
