"""The prompt optimizer: a brief in, a structured, consistent, model-ready prompt out.

The brief is read into slots; every slot it leaves open is filled from, in order, the caller's
style preset, the LLM's proposal (in llm mode), the edit or use-case defaults, and a neutral
fallback, taking the first candidate with phrases left once contradictions are struck out.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from app.prompts.consistency import (
    NIGHT_LIGHTING,
    NIGHT_SCENE,
    consistent_phrases,
    contradicts_scene,
    forbidden_patterns,
    split_phrases,
    triggered_rules,
)
from app.prompts.edits import (
    EDIT_FILLS,
    EDIT_SCOPE,
    SOURCE,
    KeepRule,
    keep_rules,
    reference_roles,
    referenced_slots,
)
from app.prompts.presets import StylePreset, preset_named
from app.prompts.render import render_negative, render_sentences, render_tags
from app.prompts.slots import FILLABLE_SLOTS, SLOT_NAMES, BriefReading, PromptSlots, read_brief
from app.prompts.usecases import UseCase, aspect_layout, detect_use_case

Rendering = Literal["sentences", "tags"]
Mode = Literal["rules", "llm"]

# Last resort for a slot when every candidate contradicts the brief: says nothing that could.
FALLBACKS: dict[str, str] = {
    "subject": "a single clear main subject",
    "setting": "an uncluttered setting that suits the subject",
    "composition": "balanced composition with a clear focal point",
    "lighting": "soft even light that suits the scene",
    "style": "a clean coherent look that suits the subject",
    "mood": "a mood that suits the subject",
    "palette": "a harmonious palette that suits the subject",
    "quality": "clean detailed high-quality finish",
}


class OptimizedPrompt(BaseModel):
    """A brief turned into a model-ready prompt, with the breakdown that produced it.

    `slots` and `filled` describe the whole breakdown; to fit `max_chars` the prompt may leave
    out the lowest-priority filled phrases.
    """

    brief: str = Field(description="The brief as given.")
    use_case: str = Field(description="What the image is for, as detected.", examples=["product"])
    slots: PromptSlots = Field(description="The final value of every slot.")
    given: list[str] = Field(
        description="Slots the brief stated, and the style when a style preset was asked for."
    )
    filled: list[str] = Field(description="Slots the optimizer filled.")
    prompt: str = Field(description="The prompt to send to the model.")
    negative_prompt: str | None = Field(description="What the image should not show.")
    rendering: Rendering = Field(description="sentences or weighted tags.")
    mode: Mode = Field(description="What produced the slots: the rules or an LLM.")
    fallback_reason: str | None = Field(description="Why llm mode fell back to the rules.")


@dataclass(frozen=True)
class OptimizeRequest:
    """The checked options of one optimization."""

    brief: str
    rendering: Rendering
    max_chars: int
    aspect_ratio: tuple[int, int] | None
    preset: StylePreset | None
    keep: tuple[KeepRule, ...]
    references: tuple[str, ...]
    negative_prompt: str | None
    is_edit: bool


def make_request(
    brief: str,
    *,
    rendering: Rendering,
    max_chars: int,
    aspect_ratio: tuple[int, int] | None,
    style: str | None,
    keep: Sequence[str],
    references: Sequence[str],
    negative_prompt: str | None,
    is_edit: bool,
) -> OptimizeRequest:
    """Check the options (ValueError on a bad one) and resolve the preset, keep items and
    reference roles; only an edit has reference images."""
    if not brief.strip():
        raise ValueError("brief must not be empty")
    if rendering not in ("sentences", "tags"):
        raise ValueError(f"rendering must be 'sentences' or 'tags', not {rendering!r}")
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    if aspect_ratio is not None and min(aspect_ratio) < 1:
        raise ValueError("aspect_ratio must be two positive integers")
    return OptimizeRequest(
        brief=brief,
        rendering=rendering,
        max_chars=max_chars,
        aspect_ratio=aspect_ratio,
        preset=preset_named(style),
        keep=keep_rules(keep),
        references=reference_roles(references, brief) if is_edit else (),
        negative_prompt=negative_prompt,
        is_edit=is_edit,
    )


def optimize_prompt(
    brief: str,
    *,
    rendering: Rendering = "sentences",
    max_chars: int = 4000,
    aspect_ratio: tuple[int, int] | None = None,
    style: str | None = None,
    keep: Sequence[str] = (),
    references: Sequence[str] = (),
    negative_prompt: str | None = None,
    is_edit: bool = False,
) -> OptimizedPrompt:
    """Turn a brief into a prompt for the target model family using the rules alone;
    `references` are the roles of an edit's reference images (`style`, `color`...)."""
    request = make_request(
        brief,
        rendering=rendering,
        max_chars=max_chars,
        aspect_ratio=aspect_ratio,
        style=style,
        keep=keep,
        references=references,
        negative_prompt=negative_prompt,
        is_edit=is_edit,
    )
    return build_prompt(request, proposals={}, mode="rules")


def build_prompt(
    request: OptimizeRequest,
    *,
    proposals: Mapping[str, str],
    mode: Mode,
    fallback_reason: str | None = None,
) -> OptimizedPrompt:
    """Read, fill, check and render one brief; `proposals` are an LLM's slot suggestions."""
    brief = request.brief.strip()
    reading = read_brief(brief)
    use_case = detect_use_case(brief)
    pinned = [rule.pins for rule in request.keep if rule.pins]
    referenced = reference_fills(request.references, reading, pinned)
    preset = fitting_preset(request.preset, reading.description)
    fills, scene = choose_fills(
        request, reading, use_case, preset, proposals, [*pinned, *referenced]
    )
    instructions = (*request.keep, EDIT_SCOPE) if request.is_edit else request.keep
    additions = {
        **fills,
        **referenced,
        "text": (reading.given["text"],) if "text" in reading.given else (),
        "constraints": tuple(rule.sentence for rule in instructions),
    }
    slots = final_slots(reading, {**fills, **referenced}, pinned, instructions)
    # A style preset is the caller's explicit choice of style, as much as words in the brief.
    from_preset = ["style"] if preset and "style" in fills else []
    given = [slot for slot in SLOT_NAMES if slot in reading.given or slot in from_preset]
    if request.rendering == "tags":
        prompt = render_tags(brief, additions, request.max_chars)
        terms = negative_terms(reading, use_case, preset, scene)
        negative = render_negative(request.negative_prompt, terms, request.max_chars)
    else:
        prompt = render_sentences(brief, additions, request.max_chars)
        negative = request.negative_prompt
    return OptimizedPrompt(
        brief=request.brief,
        use_case=use_case.name,
        slots=slots,
        given=given,
        filled=[slot for slot in SLOT_NAMES if slot not in given and getattr(slots, slot)],
        prompt=prompt,
        negative_prompt=negative,
        rendering=request.rendering,
        mode=mode,
        fallback_reason=fallback_reason,
    )


def reference_fills(
    roles: Sequence[str], reading: BriefReading, pinned: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """The slots the edit's reference images set, saying which image sets each; what the brief
    states or a keep item pins is not theirs to set."""
    return {
        slot: (value,)
        for slot, value in referenced_slots(roles).items()
        if slot not in reading.given and slot not in pinned
    }


def choose_fills(
    request: OptimizeRequest,
    reading: BriefReading,
    use_case: UseCase,
    preset: StylePreset | None,
    proposals: Mapping[str, str],
    taken: Sequence[str],
) -> tuple[dict[str, tuple[str, ...]], str]:
    """Phrases for each slot the brief leaves open and no image (`taken`) sets, and the scene
    (brief plus chosen style) they agree with.

    The style is chosen first because it decides which other phrases contradict: a watercolor
    fill rules out lens talk just as a watercolor brief does.
    """
    description = reading.description
    open_slots = [
        slot for slot in FILLABLE_SLOTS if slot not in reading.given and slot not in taken
    ]
    fills: dict[str, tuple[str, ...]] = {}
    if "style" in open_slots:
        forbidden = forbidden_patterns(description, reading.given, reading.negated)
        fills["style"] = first_consistent(
            candidates("style", request, reading, use_case, preset, proposals), "style", forbidden
        )
    scene = " ".join([description, *fills.get("style", ())])
    forbidden = forbidden_patterns(scene, reading.given, reading.negated)
    for slot in open_slots:
        if slot != "style":
            fills[slot] = first_consistent(
                candidates(slot, request, reading, use_case, preset, proposals), slot, forbidden
            )
    return {slot: fills[slot] for slot in FILLABLE_SLOTS if slot in fills}, scene


def fitting_preset(preset: StylePreset | None, brief: str) -> StylePreset | None:
    """The preset, unless its style contradicts the brief's (a watercolor preset on a photo
    brief): then its lighting, palette and finish would not fit either."""
    if preset is None:
        return None
    forbidden = [rule.forbidden for rule in triggered_rules(brief)]
    return preset if len(consistent_phrases(preset.style, forbidden)) == len(preset.style) else None


def first_consistent(
    found: Sequence[tuple[str, ...]], slot: str, forbidden: Sequence[re.Pattern[str]]
) -> tuple[str, ...]:
    """The first candidate with phrases left after the forbidden ones are struck."""
    for candidate in found:
        phrases = consistent_phrases(candidate, forbidden)
        if phrases:
            return phrases
    return (FALLBACKS[slot],)


def candidates(
    slot: str,
    request: OptimizeRequest,
    reading: BriefReading,
    use_case: UseCase,
    preset: StylePreset | None,
    proposals: Mapping[str, str],
) -> list[tuple[str, ...]]:
    """What could fill `slot`, best first: preset, LLM proposal, night light, defaults."""
    layout = None if request.is_edit else aspect_layout(request.aspect_ratio)
    found: list[tuple[str, ...]] = []
    if preset:
        found.append(preset.slot_values().get(slot, ()))
    if proposals.get(slot):
        proposed = split_phrases(proposals[slot])
        found.append((layout, *proposed) if slot == "composition" and layout else proposed)
    if slot == "lighting" and NIGHT_SCENE.search(reading.description):
        found.append(NIGHT_LIGHTING)
    if request.is_edit:
        found.append(EDIT_FILLS[slot])
    elif slot == "composition":
        found.append((layout or use_case.layout, *use_case.slots["composition"]))
    else:
        found.append(use_case.slots[slot])
    return found


def final_slots(
    reading: BriefReading,
    fills: Mapping[str, tuple[str, ...]],
    pinned: Sequence[str],
    instructions: Sequence[KeepRule],
) -> PromptSlots:
    """Each slot's final value: the brief's words, the source image's, or the fill (which
    may name a reference image)."""
    values: dict[str, str | None] = {}
    for slot in SLOT_NAMES:
        parts: list[str] = []
        if slot in reading.given:
            parts.append(reading.given[slot])
        elif slot in pinned:
            parts.append(SOURCE)
        elif fills.get(slot):
            parts.append(", ".join(fills[slot]))
        if slot == "constraints":
            parts += [rule.sentence for rule in instructions]
        values[slot] = "; ".join(parts) or None
    return PromptSlots(**values)


def negative_terms(
    reading: BriefReading, use_case: UseCase, preset: StylePreset | None, scene: str
) -> list[str]:
    """What the negative prompt rules out: what the brief negates, then defaults that do not
    negate the scene itself (no `photo` in the negative of a photo)."""
    defaults = [*(preset.negative if preset else ()), *use_case.negative]
    kept = [term for term in defaults if not contradicts_scene(term, scene)]
    return list(dict.fromkeys([*reading.negated, *kept]))
