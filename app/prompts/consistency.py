"""Consistency rules: what filled content may not say, given what the brief and its style say."""

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from app.prompts.slots import (
    CHROMATIC_TERMS,
    CHROMATIC_WORDS,
    DRAWN_STYLE_WORDS,
    PHOTO_STYLE_WORDS,
    SLOT_TERMS,
    terms,
)


@dataclass(frozen=True)
class ContradictionRule:
    """When the scene matches `trigger`, no filled phrase may match `forbidden`."""

    name: str
    trigger: re.Pattern[str]
    forbidden: re.Pattern[str]


PHOTO_STYLE = terms(*PHOTO_STYLE_WORDS)
DRAWN_STYLE = terms(*DRAWN_STYLE_WORDS)
# What fills may not say once a style is chosen: the other family's media and, for drawn styles,
# anything about cameras.
PHOTO_TERMS = terms(
    *PHOTO_STYLE_WORDS,
    "camera",
    "lens(?:es)?",
    "bokeh",
    "depth of field",
    "shutter",
    "aperture",
    r"f/\d+(?:\.\d+)?",
    "film grain",
)
DRAWN_TERMS = terms(
    *DRAWN_STYLE_WORDS,
    "brushwork",
    "brush ?strokes?",
    "line work",
    "ink",
    "pencil",
    "charcoal",
    "vector",
    "3d",
    "clay",
)
# Night is a time of day; `dark` alone is a mood or a tone, so it is not night.
NIGHT_SCENE = terms("night\\w*", "midnight", "moon\\w*", "starry", "starlit", "nocturnal")
# A dark or moody image, though not dark chocolate, dark wood or dark blue.
DARK_SCENE = terms(
    r"dark(?:ness)?(?![- ](?:"
    + "|".join((*CHROMATIC_WORDS, "black", "gr[ae]y", "chocolate", "wood", "roast", "hair", "skin"))
    + "))",
    "moody",
    "low[- ]key",
    "gloomy",
    "murky",
    "shadowy",
    "somb(?:er|re)",
)
DAY_SCENE = terms(
    "daylight",
    "daytime",
    "sunny",
    "sunlit",
    "sunshine",
    "midday",
    "noon",
    "morning",
    "afternoon",
    "golden[- ]hour",
    "sunrise",
    "sunset",
    "blue sky",
)
DAYLIGHT_TERMS = terms(
    "day\\w*",
    "sun\\w*",
    "golden[- ]hour",
    "midday",
    "noon",
    "morning",
    "afternoon",
    "blue sky",
    "natural light",
    "window light",
)
BRIGHT_TERMS = terms(
    "bright\\w*",
    "sunny",
    "sunlit",
    "sunshine",
    "sunlight",
    "daylight",
    "high[- ]key",
    "airy",
    "shadowless",
    "white",
    "light[- ]gr[ae]y",
)
NIGHT_TERMS = terms(
    "night\\w*", "midnight", "moon\\w*", "starry", "starlit", "nocturnal", "after dark"
)
MONOCHROME = terms("black[- ]and[- ]white", "b&w", "monochrom\\w*", "gr[ae]yscale", "noir", "sepia")
COLOUR_TERMS = re.compile(
    CHROMATIC_TERMS.pattern
    + "|"
    + terms(
        "colou?r\\w*",
        "vibrant",
        "vivid",
        "saturated",
        "pastels?",
        "neon",
        "rainbow",
        "golden[- ]hour",
        "warm tones",
        "cool tones",
    ).pattern,
    re.IGNORECASE,
)

CONTRADICTION_RULES: tuple[ContradictionRule, ...] = (
    ContradictionRule("night scene", NIGHT_SCENE, DAYLIGHT_TERMS),
    ContradictionRule("daytime scene", DAY_SCENE, NIGHT_TERMS),
    ContradictionRule("dark or moody scene", DARK_SCENE, BRIGHT_TERMS),
    ContradictionRule("drawn or rendered style", DRAWN_STYLE, PHOTO_TERMS),
    ContradictionRule("photographic style", PHOTO_STYLE, DRAWN_TERMS),
    ContradictionRule("black and white", MONOCHROME, COLOUR_TERMS),
)
# A slot the brief states owns its topic: no filled phrase elsewhere may speak to it.
TOPIC_TERMS: dict[str, re.Pattern[str]] = {
    "lighting": SLOT_TERMS["lighting"],
    "style": SLOT_TERMS["style"],
    "palette": CHROMATIC_TERMS,
}
# What lights a night scene once the fills' daylight is struck out.
NIGHT_LIGHTING = (
    "low-key night lighting",
    "deep shadows",
    "soft glow from the scene's own light sources",
)
PHRASE_BREAK = re.compile(r"\s*[,;]\s*")


def triggered_rules(scene: str) -> list[ContradictionRule]:
    """The rules whose trigger the scene (brief plus chosen style) matches."""
    return [rule for rule in CONTRADICTION_RULES if rule.trigger.search(scene)]


def forbidden_patterns(
    scene: str, given: Collection[str], negated: Sequence[str]
) -> list[re.Pattern[str]]:
    """Everything a filled phrase must not match for this scene, these given slots, and these
    negated items (`no people` forbids people)."""
    patterns = [rule.forbidden for rule in triggered_rules(scene)]
    patterns += [pattern for slot, pattern in TOPIC_TERMS.items() if slot in given]
    patterns += [negation_pattern(item) for item in negated]
    return patterns


def negation_pattern(item: str) -> re.Pattern[str]:
    """Matches the head noun of a negated item, singular or plural: `visible logos` -> logo(s)."""
    head = item.split()[-1]
    stem = head[:-1] if len(head) > 3 and head.endswith("s") else head
    return re.compile(rf"\b{re.escape(stem)}s?\b", re.IGNORECASE)


def split_phrases(value: str) -> tuple[str, ...]:
    """A free-text slot value as its comma- or semicolon-separated phrases."""
    return tuple(phrase for phrase in PHRASE_BREAK.split(value.strip()) if phrase)


def consistent_phrases(
    phrases: Iterable[str], forbidden: Sequence[re.Pattern[str]]
) -> tuple[str, ...]:
    """The phrases that match none of the forbidden patterns."""
    return tuple(
        phrase for phrase in phrases if not any(pattern.search(phrase) for pattern in forbidden)
    )


def contradicts_scene(term: str, scene: str) -> bool:
    """Whether a negative-prompt term would rule out what the scene is (`photo` for a photo)."""
    if re.search(rf"\b{re.escape(term)}\b", scene, re.IGNORECASE):
        return True
    return any(rule.trigger.search(term) for rule in triggered_rules(scene))
