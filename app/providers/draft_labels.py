"""The labels on a generated ``local/draft``: a caption naming the brief's subject words, so a
draft says what it stands for, and a DRAFT tag, so nobody takes it for a model's output.

The caption is read from the head of the prompt: the optimizer gives the brief verbatim first
(weighted first, for tags), and a prompt it did not touch is the brief itself. Both labels are
sized from the image and drawn on boxes of their own, inset from the edges, so they read on any
palette and leave the corners of a transparent draft clear.
"""

import re
import unicodedata
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

# Words that join or introduce the brief's phrases: the caption breaks at them.
JOINING_WORDS = frozenset(
    {
        *("about", "above", "across", "against", "along", "among", "and", "around", "as", "at"),
        *("before", "behind", "below", "beneath", "beside", "between", "beyond", "by", "during"),
        *("featuring", "for", "from", "holding", "in", "inside", "into", "like", "near", "of"),
        *("off", "on", "onto", "or", "out", "outside", "over", "showing", "through", "to"),
        *("toward", "towards", "under", "while", "with", "within", "without", "wearing"),
    }
)
# Words that only point at a thing: left out of the caption.
POINTING_WORDS = frozenset(
    {
        *("a", "an", "the", "this", "that", "these", "those", "some", "any", "my", "your", "our"),
        *("their", "his", "her", "its"),
    }
)
DOT = "\u00b7"  # a middle dot, between the caption's phrases
ELLIPSIS = "\u2026"
# A weighted first tag, `(brief:1.3)`, as the optimizer writes for diffusion models.
WEIGHTED_TAG = re.compile(r"\((?P<text>[^()]*):\d+(?:\.\d+)?\)")
SENTENCE_END = re.compile(r"[.!?\u2026](?:\s|$)")
TOKEN = re.compile(r"[A-Za-z0-9]+(?:['&.+-][A-Za-z0-9]+)*|[^\sA-Za-z0-9]")

# The caption's text size as a share of the image's width or height, whichever gives less; the
# tag's as a share of the caption's; the smallest text that still reads; the labels' inset from
# the edges as a share of the caption's text size.
CAPTION_WIDTH_SHARE = 0.045
CAPTION_HEIGHT_SHARE = 0.08
TAG_SCALE = 0.6
MIN_FONT_PX = 10
MARGIN_SCALE = 0.4
# The caption's box takes at most this share of the height, and never more than two lines.
MAX_CAPTION_HEIGHT_SHARE = 0.3
MAX_CAPTION_LINES = 2
CAPTION_BOX = (0, 0, 0, 165)
CAPTION_INK = (255, 255, 255, 255)
TAG_BOX = (250, 190, 20, 240)
TAG_INK = (25, 25, 25, 255)


def caption_text(prompt: str) -> str:
    """The subject words of the brief at the head of a prompt, its phrases joined by middle dots
    (`a ceramic mug on a walnut desk` gives `ceramic mug · walnut desk`); empty when none are
    left. Letters the caption font lacks lose their accents, or are left out."""
    return f" {DOT} ".join(" ".join(words) for words in brief_phrases(prompt))


def brief_phrases(prompt: str) -> list[list[str]]:
    """The words of each phrase of the brief at the head of a prompt, in order, without the
    words that join or point (`a ceramic mug on a walnut desk` gives `[["ceramic", "mug"],
    ["walnut", "desk"]]`): the caller's own words, which the optimizer's additions follow."""
    weighted = WEIGHTED_TAG.match(prompt.strip())
    brief = weighted["text"] if weighted else prompt.strip()
    head = SENTENCE_END.split(brief, maxsplit=1)[0]
    phrases: list[list[str]] = [[]]
    for token in TOKEN.findall(_plain_letters(head)):
        lowered = token.lower()
        if lowered in JOINING_WORDS or not token[0].isalnum():
            phrases.append([])
        elif lowered not in POINTING_WORDS:
            phrases[-1].append(token)
    return [words for words in phrases if words]


def add_labels(image: Image.Image, caption: str) -> Image.Image:
    """The image with the DRAFT tag in its top-left corner and, when there is one, the caption
    centred along its bottom edge; drawn in place on an RGB or RGBA image."""
    width, height = image.size
    caption_px = max(
        MIN_FONT_PX, round(min(width * CAPTION_WIDTH_SHARE, height * CAPTION_HEIGHT_SHARE))
    )
    tag = _Label.fit(["DRAFT"], round(max(MIN_FONT_PX, caption_px * TAG_SCALE)))
    margin = max(2, round(caption_px * MARGIN_SCALE))
    _draw(image, tag, (margin, margin), TAG_BOX, TAG_INK)
    if not caption:
        return image
    font = _font(caption_px)
    line_height = sum(font.getmetrics())
    padding = _padding(caption_px)
    room = (height * MAX_CAPTION_HEIGHT_SHARE - 2 * padding[1]) // line_height
    max_lines = int(min(MAX_CAPTION_LINES, max(1, room)))
    lines = wrap(caption, font, width - 2 * (margin + padding[0]), max_lines)
    label = _Label.fit(lines, caption_px)
    corner = ((width - label.size[0]) // 2, height - margin - label.size[1])
    _draw(image, label, corner, CAPTION_BOX, CAPTION_INK)
    return image


def wrap(text: str, font: ImageFont.FreeTypeFont, max_width: float, max_lines: int) -> list[str]:
    """Lines of `text` no wider than `max_width`, broken between its phrases (between words
    only in a phrase too wide for a line), at most `max_lines` of them; the last ends in an
    ellipsis when the text goes on or a word is too wide for a line of its own."""
    units = _units(text, font, max_width)
    lines: list[str] = []
    while units and len(lines) < max_lines:
        line = units.pop(0)
        while units and font.getlength(f"{line} {units[0]}") <= max_width:
            line = f"{line} {units.pop(0)}"
        if font.getlength(line) > max_width:
            return [*lines, _shortened(line, font, max_width)]
        lines.append(line.removesuffix(DOT).rstrip())
    if units:
        lines[-1] = _shortened(lines[-1], font, max_width)
    return lines


def _units(text: str, font: ImageFont.FreeTypeFont, max_width: float) -> list[str]:
    """What a line may break between: the caption's phrases, or the words of one too wide for a
    line; each ends with the separator that follows it (dropped at the end of a line)."""
    phrases = text.split(f" {DOT} ")
    units: list[str] = []
    for index, phrase in enumerate(phrases):
        whole = font.getlength(phrase) <= max_width
        units.extend([phrase] if whole else phrase.split())
        if index < len(phrases) - 1:
            units[-1] = f"{units[-1]} {DOT}"
    return units


def _shortened(line: str, font: ImageFont.FreeTypeFont, max_width: float) -> str:
    """The line cut to fit with an ellipsis: after a word if one fits, else within the word."""
    words = line.split()
    while len(words) > 1 and font.getlength(" ".join(words) + ELLIPSIS) > max_width:
        words.pop()
    cut = " ".join(words).removesuffix(DOT).rstrip()
    while cut and font.getlength(cut + ELLIPSIS) > max_width:
        cut = cut[:-1]
    return cut.rstrip() + ELLIPSIS


def _plain_letters(text: str) -> str:
    """The text in the characters of the caption font (printable ASCII): accents dropped
    (`crème` gives `creme`), letters of other scripts left out."""
    decomposed = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    return decomposed.encode("ascii", "ignore").decode()


def _font(size: int) -> ImageFont.FreeTypeFont:
    font = ImageFont.load_default(size=size)
    assert isinstance(font, ImageFont.FreeTypeFont), "Pillow was built without FreeType"
    return font


def _padding(font_px: int) -> tuple[int, int]:
    """Space between a label's text and the sides, then the top and bottom, of its box."""
    return max(2, round(font_px * 0.5)), max(1, round(font_px * 0.25))


@dataclass(frozen=True)
class _Label:
    """Lines of text in one font with the box around them."""

    lines: list[str]
    font: ImageFont.FreeTypeFont
    padding: tuple[int, int]
    size: tuple[int, int]

    @classmethod
    def fit(cls, lines: list[str], font_px: int) -> "_Label":
        font = _font(font_px)
        pad_x, pad_y = _padding(font_px)
        text_width = max(font.getlength(line) for line in lines)
        line_height = sum(font.getmetrics())
        size = (round(text_width) + 2 * pad_x, line_height * len(lines) + 2 * pad_y)
        return cls(lines, font, (pad_x, pad_y), size)


def _draw(
    image: Image.Image,
    label: _Label,
    corner: tuple[int, int],
    box: tuple[int, ...],
    ink: tuple[int, ...],
) -> None:
    """Composite the label's box and lines over the image at `corner`; only that area is
    touched, so a large image is never copied whole."""
    x, y = corner
    area = (x, y, x + label.size[0], y + label.size[1])
    region = image.crop(area).convert("RGBA")
    overlay = Image.new("RGBA", region.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    radius = min(label.size) // 4
    draw.rounded_rectangle((0, 0, label.size[0] - 1, label.size[1] - 1), radius, fill=box)
    line_height = sum(label.font.getmetrics())
    pad_y = label.padding[1]
    for index, line in enumerate(label.lines):
        centre = (label.size[0] / 2, pad_y + (index + 0.5) * line_height)
        draw.text(centre, line, font=label.font, fill=ink, anchor="mm")
    region.alpha_composite(overlay)
    image.paste(region.convert(image.mode), area[:2])
