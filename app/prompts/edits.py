"""What an edit must keep from its source image, as instructions, and how it fills open slots."""

from collections.abc import Sequence
from dataclasses import dataclass

# The value of a slot the edit leaves as the source image has it.
SOURCE = "as in the source image"


@dataclass(frozen=True)
class KeepRule:
    """One thing an edit preserves: the sentence and tag that say so, and the slot it pins."""

    sentence: str
    tag: str
    pins: str | None


KEEP_RULES: dict[str, KeepRule] = {
    "identity": KeepRule(
        "Keep the person's identity exactly as in the source image: same features, build and "
        "hairstyle",
        "same person as the source image",
        "subject",
    ),
    "face": KeepRule(
        "Keep the person's face and identity exactly as in the source image",
        "same face and identity as the source image",
        "subject",
    ),
    "product_angle": KeepRule(
        "Keep the product at exactly the same angle, perspective and scale as in the source image",
        "same product angle as the source image",
        "composition",
    ),
    "framing": KeepRule(
        "Keep the framing and crop exactly as in the source image",
        "same framing as the source image",
        "composition",
    ),
    "composition": KeepRule(
        "Keep the composition: every element stays where it is in the source image",
        "same composition as the source image",
        "composition",
    ),
    "layout": KeepRule(
        "Keep the layout exactly as in the source image: same elements, positions and proportions",
        "same layout as the source image",
        "composition",
    ),
    "lighting": KeepRule(
        "Keep the lighting exactly as in the source image: same direction, softness and colour "
        "temperature",
        "same lighting as the source image",
        "lighting",
    ),
    "background": KeepRule(
        "Keep the background exactly as in the source image",
        "same background as the source image",
        "setting",
    ),
    "colors": KeepRule(
        "Keep the colours exactly as in the source image",
        "same colours as the source image",
        "palette",
    ),
    "text": KeepRule(
        "Keep all existing text exactly as it is: same words, spelling, font and position",
        "same text as the source image",
        None,
    ),
}
EDIT_SCOPE = KeepRule(
    "Change only what this instruction asks for and leave everything else as it is",
    "unchanged outside the requested edit",
    None,
)
# An edit changes what it names; everything else it leaves as the source image has it.
EDIT_FILLS: dict[str, tuple[str, ...]] = {
    "subject": (SOURCE,),
    "setting": (SOURCE,),
    "composition": (SOURCE,),
    "lighting": (SOURCE,),
    "style": (SOURCE,),
    "mood": (SOURCE,),
    "palette": (SOURCE,),
    "quality": ("seamless natural-looking result", "no visible seams or artifacts"),
}


def keep_rules(keep: Sequence[str]) -> tuple[KeepRule, ...]:
    """The rules for the named keep items, in the order given; ValueError for an unknown one."""
    unknown = [item for item in keep if item not in KEEP_RULES]
    if unknown:
        valid = ", ".join(KEEP_RULES)
        raise ValueError(f"unknown keep item {unknown[0]!r}; valid items: {valid}")
    return tuple(KEEP_RULES[item] for item in dict.fromkeys(keep))
