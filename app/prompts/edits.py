"""What an edit must keep from its source image, as instructions, what its reference images
set, and how it fills open slots."""

from collections.abc import Sequence
from dataclasses import dataclass

from app.prompts.slots import terms

# The value of a slot the edit leaves as the source image has it.
SOURCE = "as in the source image"
# What each role of reference image sets. A style reference brings its light, mood and colours
# with its look, so none of them may be left as in the source.
REFERENCE_SLOTS: dict[str, tuple[str, ...]] = {
    "style": ("style", "lighting", "mood", "palette"),
    "color": ("palette",),
    "composition": ("composition",),
    "subject": ("subject",),
}
REFERENCE_NAMES: dict[str, str] = {
    "style": "style",
    "color": "colour",
    "composition": "composition",
    "subject": "subject",
}
# A brief that asks for the reference's style has a style reference, named or not.
STYLE_REFERENCE = terms(
    r"(?:style|look) (?:of|from) the reference",
    r"reference(?: image| photo| picture)?'s (?:style|look)",
    r"style reference",
)


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


def from_reference(role: str) -> str:
    """The value of a slot a reference image sets: `from the style reference image`."""
    return f"from the {REFERENCE_NAMES[role]} reference image"


def reference_roles(references: Sequence[str], brief: str) -> tuple[str, ...]:
    """The roles of an edit's reference images, and `style` when the brief asks for the
    reference's style; ValueError for an unknown role."""
    unknown = [role for role in references if role not in REFERENCE_SLOTS]
    if unknown:
        valid = ", ".join(REFERENCE_SLOTS)
        raise ValueError(f"unknown reference role {unknown[0]!r}; valid roles: {valid}")
    named = ("style",) if STYLE_REFERENCE.search(brief) else ()
    return tuple(dict.fromkeys([*references, *named]))


def referenced_slots(roles: Sequence[str]) -> dict[str, str]:
    """Each slot the reference images set, with the value that says which image sets it."""
    slots: dict[str, str] = {}
    for role in roles:
        for slot in REFERENCE_SLOTS[role]:
            slots.setdefault(slot, from_reference(role))
    return slots


def keep_rules(keep: Sequence[str]) -> tuple[KeepRule, ...]:
    """The rules for the named keep items, in the order given; ValueError for an unknown one."""
    unknown = [item for item in keep if item not in KEEP_RULES]
    if unknown:
        valid = ", ".join(KEEP_RULES)
        raise ValueError(f"unknown keep item {unknown[0]!r}; valid items: {valid}")
    return tuple(KEEP_RULES[item] for item in dict.fromkeys(keep))
