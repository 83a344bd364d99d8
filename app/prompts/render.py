"""Rendering a brief and its additions for a model family, within the model's length limit.

Instruction-following models get the brief verbatim followed by plain sentences; diffusion models
get weighted tags, the brief first. When the prompt is too long the lowest-priority additions go
first; the brief itself is only cut when it alone is over the limit.
"""

from collections.abc import Callable, Mapping, Sequence

from app.prompts.edits import EDIT_SCOPE, KEEP_RULES, REFERENCE_SLOTS, SOURCE, from_reference
from app.prompts.slots import FILLABLE_SLOTS

# What an instruction model reads before each slot's phrases.
SENTENCE_LABELS: dict[str, str] = {
    "subject": "Main subject",
    "setting": "Setting",
    "composition": "Composition and viewpoint",
    "lighting": "Lighting",
    "style": "Style",
    "mood": "Mood",
    "palette": "Colour palette",
    "quality": "Quality",
}
# Names of slots an edit takes from an image: the source, or a reference.
IMAGE_SLOT_NAMES: dict[str, str] = {
    "subject": "main subject",
    "setting": "setting",
    "composition": "composition and viewpoint",
    "lighting": "lighting",
    "style": "style",
    "mood": "mood",
    "palette": "colour palette",
    "quality": "finish",
}
# How a sentence and a tag say which image a slot comes from, by the slot's value.
FROM_IMAGE_SENTENCES: dict[str, str] = {
    **{from_reference(role): f"Take the {{}} {from_reference(role)}" for role in REFERENCE_SLOTS},
    SOURCE: "Leave the {} as in the source image",
}
FROM_IMAGE_TAGS: dict[str, str] = {
    **{from_reference(role): f"{{}} {from_reference(role)}" for role in REFERENCE_SLOTS},
    SOURCE: "same {} as the source image",
}
TAG_FOR_INSTRUCTION: dict[str, str] = {
    rule.sentence: rule.tag for rule in (*KEEP_RULES.values(), EDIT_SCOPE)
}
# First dropped first: finish and mood are nice to have, what an edit must keep is not.
DROP_ORDER: tuple[str, ...] = (
    "quality",
    "mood",
    "palette",
    "setting",
    "style",
    "lighting",
    "subject",
    "composition",
    "text",
    "constraints",
)
BRIEF_WEIGHT = 1.3
INSTRUCTION_WEIGHT = 1.2
# Latin, ideographic and full-width (U+FF01, U+FF1F) sentence ends, and the ellipsis.
SENTENCE_ENDS = ".!?\u3002\uff01\uff1f\u2026"
# Cutting at a space keeps whole words unless that would throw away more than this share.
WORD_CUT_SLACK = 0.2

Additions = Mapping[str, tuple[str, ...]]
Compose = Callable[[str, Additions], str]


def render_sentences(brief: str, additions: Additions, max_chars: int) -> str:
    """The brief verbatim, then one sentence per addition, within `max_chars`."""
    return fit(brief, additions, compose_sentences, max_chars) or shorten(brief, max_chars)


def render_tags(brief: str, additions: Additions, max_chars: int) -> str:
    """`(brief:1.3), tag, tag...` within `max_chars`, the brief first and weighted highest."""
    text = " ".join(brief.split())
    fitted = fit(text, additions, compose_tags, max_chars)
    if fitted:
        return fitted
    room = max_chars - len(weighted("", BRIEF_WEIGHT))
    while room > 0:
        tag = weighted(escape_tag(shorten(text, room)), BRIEF_WEIGHT)
        if len(tag) <= max_chars:
            return tag
        room -= 1
    return shorten(text, max_chars)


def render_negative(caller: str | None, terms: Sequence[str], max_chars: int) -> str | None:
    """The caller's negative prompt first, then `terms`, dropped from the end to fit."""
    own = [caller.strip()] if caller and caller.strip() else []
    already = {term.strip().lower() for term in own[0].split(",")} if own else set()
    kept = [term for term in terms if term.lower() not in already]
    while kept and len(", ".join([*own, *kept])) > max_chars:
        kept.pop()
    return shorten(", ".join([*own, *kept]), max_chars) or None


def fit(brief: str, additions: Additions, compose: Compose, max_chars: int) -> str | None:
    """The fullest composition within `max_chars`, or None when even the bare brief is over."""
    kept = dict(additions)
    for slot in DROP_ORDER:
        while True:
            prompt = compose(brief, kept)
            if len(prompt) <= max_chars:
                return prompt
            if not kept.get(slot):
                break
            kept[slot] = kept[slot][:-1]
    return None


def compose_sentences(brief: str, additions: Additions) -> str:
    """The brief, then what must be kept, the text to render, each slot, and what comes from
    a reference image or stays as in the source."""
    sentences = [f"{instruction}." for instruction in additions.get("constraints", ())]
    sentences += [
        f"Render this text exactly as written, correctly spelled and clearly legible: {text}."
        for text in additions.get("text", ())
    ]
    for slot in FILLABLE_SLOTS:
        phrases = [
            phrase for phrase in additions.get(slot, ()) if phrase not in FROM_IMAGE_SENTENCES
        ]
        if phrases:
            sentences.append(f"{SENTENCE_LABELS[slot]}: {', '.join(phrases)}.")
    for image, sentence in FROM_IMAGE_SENTENCES.items():
        names = [
            IMAGE_SLOT_NAMES[slot] for slot in FILLABLE_SLOTS if image in additions.get(slot, ())
        ]
        if names:
            sentences.append(sentence.format(spoken_list(names)) + ".")
    if not sentences:
        return brief
    separator = " " if brief.endswith(tuple(SENTENCE_ENDS)) else ". "
    return brief + separator + " ".join(sentences)


def compose_tags(brief: str, additions: Additions) -> str:
    """The weighted brief, weighted keep instructions, the text to render, then slot phrases."""
    tags = [weighted(escape_tag(brief), BRIEF_WEIGHT)]
    tags += [
        weighted(TAG_FOR_INSTRUCTION[instruction], INSTRUCTION_WEIGHT)
        for instruction in additions.get("constraints", ())
    ]
    tags += [f"legible text {text}" for text in additions.get("text", ())]
    for slot in FILLABLE_SLOTS:
        tags += [
            FROM_IMAGE_TAGS[phrase].format(IMAGE_SLOT_NAMES[slot])
            if phrase in FROM_IMAGE_TAGS
            else phrase
            for phrase in additions.get(slot, ())
        ]
    return ", ".join(tags)


def weighted(tag: str, weight: float) -> str:
    """`(tag:1.3)`, the emphasis syntax diffusion front ends share."""
    return f"({tag}:{weight})"


def escape_tag(text: str) -> str:
    """Brackets escaped so the brief's own parentheses are not read as emphasis."""
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def spoken_list(names: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def shorten(text: str, limit: int) -> str:
    """The beginning of `text` within `limit` characters, cut at a space where one is near."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space >= limit * (1 - WORD_CUT_SLACK):
        cut = cut[:space]
    return cut.rstrip(" ,;:")
