"""The rules-mode prompt optimizer: properties over a table of briefs, then specific behaviours."""

import json
import re
from typing import get_args

import pytest

from app.prompts import STYLE_PRESETS, OptimizedPrompt, optimize_prompt
from app.schemas.prompts import KeepItem
from tests.prompts.briefs import CASES, Case
from tests.support import fresh_process_output

FILLABLE = ("subject", "setting", "composition", "lighting", "style", "mood", "palette", "quality")
LIMITS = (77 * 4, 1000, 4000)
# What a sentence-rendered prompt calls a slot it leaves as in an image.
SPOKEN_NAMES = {
    "subject": "main subject",
    "setting": "setting",
    "composition": "composition and viewpoint",
    "lighting": "lighting",
    "style": "style",
    "mood": "mood",
    "palette": "colour palette",
}
# What a sentence-rendered prompt calls each slot it fills.
LABELS = {
    "subject": "Main subject",
    "setting": "Setting",
    "composition": "Composition and viewpoint",
    "lighting": "Lighting",
    "style": "Style",
    "mood": "Mood",
    "palette": "Colour palette",
    "quality": "Quality",
}
RENDERINGS = ("sentences", "tags")

# The test's own vocabulary of contradictions, kept apart from the code's tables on purpose.
DAYLIGHT = re.compile(
    r"\b(?:daylight|daytime|sun\w*|golden[- ]hour|midday|noon|morning|afternoon|blue sky)\b", re.I
)
PHOTOGRAPHIC = re.compile(
    r"\b(?:photo\w*|camera|lens|\d+\s?mm|dslr|bokeh|depth of field|film grain|realistic)\b", re.I
)
# What each reference role sets, and what a keep item pins.
SET_BY_REFERENCE = {
    "style": ("style", "lighting", "mood", "palette"),
    "color": ("palette",),
    "composition": ("composition",),
    "subject": ("subject",),
}
PINNED_BY_KEEP = {
    "framing": "composition",
    "product_angle": "composition",
    "lighting": "lighting",
    "colors": "palette",
    "background": "setting",
}
# A backdrop named by its colour alone: `on white`, `against a pale teal wall`.
BACKDROP_COLOUR = re.compile(
    r"\b(?:on|against)\s+(?:an?\s+)?(?:(?:light|dark|pale|deep|hot|pure|sage|seamless)\s+)*"
    r"(?:white|black|gr[ae]y|red|pink|teal|yellow|green|orange|brown|beige|cream|lilac|navy)\b"
    r"(?:\s+(?:background|backdrop|wall|velvet))?",
    re.I,
)
BRIGHT = re.compile(
    r"\b(?:bright\w*|sunny|sunlit|sunshine|sunlight|daylight|high[- ]key|airy|white"
    r"|light[- ]gr[ae]y)\b",
    re.I,
)
TIME_OF_DAY = re.compile(
    r"\b(?:night\w*|midnight|moon\w*|star(?:ry|lit)|nocturnal|dawn|dusk|sunrise|sunset|twilight"
    r"|golden[- ]hour|blue[- ]hour|morning|afternoon|evening|midday|noon|daytime)\b",
    re.I,
)
COLOURFUL = re.compile(
    r"\b(?:red|orange|yellow|green|blue|purple|pink|teal|cyan|magenta|gold(?:en)?|amber"
    r"|colou?r\w*|vibrant|vivid|saturated|pastel|neon)\b",
    re.I,
)


def optimize(case: Case, **options: object) -> OptimizedPrompt:
    return optimize_prompt(
        case.brief,
        style=case.style,
        aspect_ratio=case.aspect_ratio,
        keep=case.keep,
        references=case.references,
        is_edit=case.is_edit,
        **options,  # type: ignore[arg-type]
    )


def brief_tag(brief: str) -> str:
    return f"({' '.join(brief.split())}:1.3)"


def added_text(result: OptimizedPrompt) -> str:
    """What the optimizer put around the brief."""
    if result.rendering == "tags":
        return result.prompt.removeprefix(brief_tag(result.brief))
    return result.prompt.replace(result.brief.strip(), " ")


def test_table_is_broad() -> None:
    assert len(CASES) >= 40
    assert {case.use_case for case in CASES} >= {
        "product",
        "ecommerce",
        "portrait",
        "ad",
        "thumbnail",
        "social",
        "banner",
        "concept_art",
        "logo",
    }
    assert any(len(case.brief) >= 3000 for case in CASES)
    assert all(len(case.brief) < 4000 for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_brief_survives_verbatim_in_sentences(case: Case) -> None:
    result = optimize(case)

    assert case.brief.strip() in result.prompt
    assert all(word in result.prompt for word in case.brief.split())


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_tags_lead_with_the_brief_weighted_highest(case: Case) -> None:
    result = optimize(case, rendering="tags")

    assert result.prompt.startswith(brief_tag(case.brief))
    assert result.negative_prompt


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_every_open_slot_is_filled(case: Case) -> None:
    result = optimize(case)

    assert all(getattr(result.slots, slot) for slot in FILLABLE)
    assert set(result.given).isdisjoint(result.filled)
    assert set(result.given) | set(result.filled) >= set(FILLABLE)


@pytest.mark.parametrize("rendering", RENDERINGS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_additions_never_contradict_the_brief(case: Case, rendering: str) -> None:
    added = added_text(optimize(case, rendering=rendering))

    if case.night:
        assert not DAYLIGHT.search(added)
    if case.drawn:
        assert not PHOTOGRAPHIC.search(added)
    if case.monochrome:
        assert not COLOURFUL.search(added)
    if case.dark:
        assert not BRIGHT.search(added)


@pytest.mark.parametrize("rendering", RENDERINGS)
@pytest.mark.parametrize(
    "case", [case for case in CASES if not TIME_OF_DAY.search(case.brief)], ids=lambda case: case.id
)
def test_fills_name_no_time_of_day_the_brief_did_not(case: Case, rendering: str) -> None:
    assert not TIME_OF_DAY.search(added_text(optimize(case, rendering=rendering)))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_what_the_brief_states_is_kept_not_filled(case: Case) -> None:
    result = optimize(case)

    for slot in case.given:
        assert slot in result.given
        assert slot not in result.filled
        if slot in LABELS:
            assert f"{LABELS[slot]}:" not in result.prompt


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_what_the_brief_leaves_open_is_not_read_as_given(case: Case) -> None:
    result = optimize(case)

    for slot in case.left_open:
        assert slot not in result.given
        assert slot in result.filled or slot not in FILLABLE


@pytest.mark.parametrize("rendering", RENDERINGS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_the_text_slot_holds_only_the_words_to_render(case: Case, rendering: str) -> None:
    result = optimize(case, rendering=rendering)

    assert result.slots.text == case.text
    assert ("text" in result.given) == bool(case.text)
    if case.text and rendering == "sentences":
        assert f"correctly spelled and clearly legible: {case.text}." in result.prompt
    elif case.text:
        assert f"legible text {case.text}" in result.prompt


@pytest.mark.parametrize("case", [case for case in CASES if case.style], ids=lambda case: case.id)
def test_an_explicit_style_preset_is_given_not_filled(case: Case) -> None:
    result = optimize(case)

    assert "style" in result.given
    assert "style" not in result.filled


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_the_setting_is_the_subject_itself_or_apart_from_it(case: Case) -> None:
    slots = optimize(case).slots

    assert slots.subject and slots.setting
    for place in slots.setting.split(", "):
        assert place == slots.subject or slots.subject not in place


@pytest.mark.parametrize("case", [case for case in CASES if case.setting], ids=lambda case: case.id)
def test_setting_holds_the_brief_own_words_for_the_place(case: Case) -> None:
    result = optimize(case)

    assert "setting" in result.given
    assert case.setting in (result.slots.setting or "")


@pytest.mark.parametrize("case", [case for case in CASES if case.setting], ids=lambda case: case.id)
def test_a_stated_place_is_not_read_as_part_of_the_subject(case: Case) -> None:
    slots = optimize(case).slots

    assert case.setting not in (slots.subject or "")


@pytest.mark.parametrize("case", [case for case in CASES if case.palette], ids=lambda case: case.id)
def test_palette_holds_the_brief_colour_words_not_the_phrase_around_them(case: Case) -> None:
    result = optimize(case)

    assert "palette" in result.given
    assert result.slots.palette == case.palette


@pytest.mark.parametrize(
    "case", [case for case in CASES if BACKDROP_COLOUR.search(case.brief)], ids=lambda case: case.id
)
def test_a_backdrop_colour_is_the_setting_and_nothing_is_filled_against_it(case: Case) -> None:
    backdrop = BACKDROP_COLOUR.search(case.brief)
    result = optimize(case)

    assert backdrop and backdrop.group(0) in (result.slots.setting or "")
    assert "setting" in result.given
    assert "Setting:" not in result.prompt


@pytest.mark.parametrize(
    "case", [case for case in CASES if case.references], ids=lambda case: case.id
)
def test_what_a_reference_sets_is_never_left_as_in_the_source(case: Case) -> None:
    result = optimize(case)
    tags = optimize(case, rendering="tags").prompt
    pinned = {PINNED_BY_KEEP.get(item) for item in case.keep}
    left = re.search(r"Leave the ([^.]*) as in the source image", result.prompt)

    for role in case.references:
        for slot in SET_BY_REFERENCE[role]:
            name = SPOKEN_NAMES[slot]
            assert not left or name not in left.group(1)
            assert f"same {name} as the source image" not in tags
            if slot not in pinned and slot not in result.given:
                assert re.search(rf"Take the [^.]*{name}[^.]* reference image", result.prompt)


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("rendering", RENDERINGS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_prompt_fits_the_model_limit(case: Case, rendering: str, limit: int) -> None:
    result = optimize(case, rendering=rendering, max_chars=limit)

    assert len(result.prompt) <= limit
    assert result.negative_prompt is None or len(result.negative_prompt) <= limit
    if rendering == "sentences" and len(case.brief) <= limit:
        assert case.brief in result.prompt
    elif rendering == "sentences":
        assert case.brief.startswith(result.prompt)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_same_input_gives_the_same_output(case: Case) -> None:
    for rendering in RENDERINGS:
        first = optimize(case, rendering=rendering).model_dump()
        assert optimize(case, rendering=rendering).model_dump() == first


@pytest.mark.parametrize(
    "case", [case for case in CASES if case.use_case], ids=lambda case: case.id
)
def test_clear_use_cases_are_detected(case: Case) -> None:
    assert optimize(case).use_case == case.use_case


DUMP_TABLE = """
import json
from app.prompts import optimize_prompt
from tests.prompts.briefs import CASES
print(json.dumps([
    optimize_prompt(
        case.brief, rendering=rendering, style=case.style, aspect_ratio=case.aspect_ratio,
        keep=case.keep, references=case.references, is_edit=case.is_edit,
    ).model_dump()
    for case in CASES for rendering in ("sentences", "tags")
]))
"""


def test_output_does_not_depend_on_hash_seed() -> None:
    def run(seed: str) -> list[dict[str, object]]:
        return json.loads(fresh_process_output(DUMP_TABLE, hash_seed=seed))

    assert run("1") == run("2")


def test_slots_record_the_brief_own_words() -> None:
    result = optimize_prompt("a ceramic coffee mug on a walnut desk, morning light")

    assert result.slots.subject == "a ceramic coffee mug"
    assert result.slots.setting == "on a walnut desk"
    assert result.slots.lighting == "morning light"
    assert result.given == ["subject", "setting", "lighting"]


def test_a_material_describing_the_subject_is_not_its_place() -> None:
    slots = optimize_prompt("a marble bust on a plinth, on-camera flash").slots

    assert (slots.subject, slots.setting, slots.lighting) == (
        "a marble bust",
        "on a plinth",
        "on-camera flash",
    )


def test_studio_framing_is_the_setting_and_the_colour_is_the_palette() -> None:
    slots = optimize_prompt("studio shot of a red sneaker").slots

    assert (slots.subject, slots.setting, slots.palette) == ("a red sneaker", "studio shot", "red")


def test_dark_chocolate_is_a_colour_not_a_dark_scene() -> None:
    dark = optimize_prompt("a dark chocolate cake").slots
    milk = optimize_prompt("a milk chocolate cake").slots

    assert dark.lighting == milk.lighting
    assert dark.setting == milk.setting


def test_light_blue_is_a_colour_not_lighting() -> None:
    result = optimize_prompt("a light blue vase")

    assert "palette" in result.given
    assert "lighting" in result.filled


def test_framing_words_are_not_the_subject() -> None:
    assert optimize_prompt("a photo of a red sneaker").slots.subject == "a red sneaker"
    assert optimize_prompt("portrait of an elderly fisherman").slots.subject == (
        "an elderly fisherman"
    )


def test_wide_banner_leaves_space_for_copy() -> None:
    result = optimize_prompt("a yoga class by the sea", aspect_ratio=(21, 9))

    assert re.search(r"negative space on the left for copy", result.prompt)


def test_story_keeps_the_subject_centred_clear_of_the_bands() -> None:
    result = optimize_prompt("a skateboarder mid-air", aspect_ratio=(9, 16))

    assert "subject centred" in result.prompt
    assert "clear of the top and bottom bands" in result.prompt


def test_square_centres_the_subject() -> None:
    assert (
        "square frame with the subject centred"
        in optimize_prompt("a bowl of ramen", aspect_ratio=(1, 1)).prompt
    )


def test_ratio_two_is_already_a_banner() -> None:
    assert "for copy" in optimize_prompt("a desk", aspect_ratio=(2, 1)).prompt
    assert "for copy" not in optimize_prompt("a desk", aspect_ratio=(16, 9)).prompt


def test_stated_composition_is_not_overridden_by_the_aspect() -> None:
    result = optimize_prompt("close-up of a bee on a flower", aspect_ratio=(21, 9))

    assert "composition" in result.given
    assert "for copy" not in result.prompt


def test_the_required_presets_exist() -> None:
    assert set(STYLE_PRESETS) >= {
        "photoreal",
        "studio-product",
        "editorial",
        "cinematic",
        "flat-illustration",
        "3d-render",
        "watercolor",
        "anime",
        "line-art",
    }


@pytest.mark.parametrize("name", list(STYLE_PRESETS))
def test_preset_fills_style_lighting_palette_and_quality(name: str) -> None:
    preset = STYLE_PRESETS[name]

    result = optimize_prompt("a lighthouse", style=name)

    assert result.slots.style == ", ".join(preset.style)
    assert result.slots.lighting == ", ".join(preset.lighting)
    assert result.slots.palette == ", ".join(preset.palette)
    assert result.slots.quality == ", ".join(preset.quality)
    assert "style" in result.given
    assert {"lighting", "palette", "quality"} <= set(result.filled)


def test_preset_never_overrides_the_brief_style() -> None:
    result = optimize_prompt("watercolor of a lighthouse", style="anime")

    assert result.slots.style == "watercolor of a lighthouse"
    assert "anime" not in result.prompt.lower()


def test_preset_never_overrides_the_brief_lighting() -> None:
    result = optimize_prompt("a lighthouse in soft overcast light", style="cinematic")

    assert "lighting" in result.given
    assert "dramatic motivated lighting" not in result.prompt
    assert "cinematic film still" in result.prompt


def test_brief_colours_win_over_the_preset_palette() -> None:
    result = optimize_prompt("a teal and orange sports car", style="cinematic")

    assert "palette" in result.given
    assert "colour grade" not in result.prompt


def test_photo_brief_ignores_a_drawn_preset_entirely() -> None:
    result = optimize_prompt("a photo of a cat", style="watercolor", rendering="tags")

    assert "watercolor" not in added_text(result)
    assert "paper grain" not in result.prompt
    assert "photo" not in (result.negative_prompt or "")


def test_black_and_white_brief_gets_no_colour_from_a_preset() -> None:
    result = optimize_prompt("black and white photo of a jazz club", style="anime")

    assert not COLOURFUL.search(added_text(result))


def test_unknown_style_lists_the_valid_presets() -> None:
    with pytest.raises(ValueError, match="unknown style preset 'vaporwave'") as raised:
        optimize_prompt("a lighthouse", style="vaporwave")

    assert all(name in str(raised.value) for name in STYLE_PRESETS)


def test_keep_items_become_preservation_instructions() -> None:
    keep = list(get_args(KeepItem))

    result = optimize_prompt("add a party hat", keep=keep, is_edit=True)

    assert "Keep the person's face and identity exactly as in the source image." in result.prompt
    for phrase in (
        "person's identity",
        "same angle",
        "framing and crop",
        "composition",
        "layout",
        "lighting exactly",
        "background exactly",
        "colours exactly",
        "existing text",
    ):
        assert phrase in result.prompt
    assert result.slots.lighting == "as in the source image"
    assert result.slots.setting == "as in the source image"
    assert "constraints" in result.filled


def test_edit_leaves_unstated_slots_as_in_the_source() -> None:
    result = optimize_prompt("make the sky purple", is_edit=True)

    assert "Change only what this instruction asks for" in result.prompt
    assert "as in the source image" in result.prompt
    assert result.slots.lighting == "as in the source image"


def test_kept_slot_is_not_filled_from_the_preset() -> None:
    result = optimize_prompt("restyle this photo", style="cinematic", keep=["lighting"])

    assert result.slots.lighting == "as in the source image"
    assert "dramatic motivated lighting" not in result.prompt


def test_edit_tags_carry_weighted_keep_instructions() -> None:
    result = optimize_prompt("add snow", keep=["face"], is_edit=True, rendering="tags")

    assert "(same face and identity as the source image:1.2)" in result.prompt


def test_an_edit_brief_asking_for_the_reference_style_has_a_style_reference() -> None:
    result = optimize_prompt("redo it in the style of the reference image", is_edit=True)

    assert "Take the lighting, mood and colour palette from the style reference image." in (
        result.prompt
    )
    assert "as in the source image" not in (result.slots.mood or "")


def test_only_an_edit_takes_slots_from_a_reference() -> None:
    result = optimize_prompt("a cat in the style of the reference", references=["style"])

    assert "reference image" not in added_text(result)


def test_unknown_reference_role_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown reference role 'palette'"):
        optimize_prompt("add snow", references=["palette"], is_edit=True)


def test_unknown_keep_item_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown keep item 'pose'"):
        optimize_prompt("add snow", keep=["pose"], is_edit=True)


@pytest.mark.parametrize(
    ("brief", "text"),
    [
        ('a bakery window with text "SALE"', '"SALE"'),
        ("a poster that says “Grand Opening”", '"Grand Opening"'),
        ("a mug with the words 「おはよう」", '"おはよう"'),
        ("event banner, headline: Summer Nights", '"Summer Nights"'),
    ],
)
def test_text_to_render_is_found_and_asked_for(brief: str, text: str) -> None:
    sentences = optimize_prompt(brief)
    tags = optimize_prompt(brief, rendering="tags")

    assert sentences.slots.text == text
    assert f"exactly as written, correctly spelled and clearly legible: {text}" in sentences.prompt
    assert f"legible text {text}" in tags.prompt


def test_words_to_render_are_not_read_as_the_scene() -> None:
    result = optimize_prompt("a bakery window, text NO NIGHT SHIFTS", rendering="tags")

    assert result.slots.text == '"NO NIGHT SHIFTS"'
    assert "night" not in added_text(result).replace("NO NIGHT SHIFTS", "")
    assert "shifts" not in (result.negative_prompt or "")


def test_no_text_is_invented() -> None:
    assert optimize_prompt("a lighthouse at dusk").slots.text is None


def test_negated_things_go_to_the_negative_prompt_not_the_fills() -> None:
    result = optimize_prompt(
        "portrait of a bakery counter, no people", rendering="tags", negative_prompt="lowres"
    )

    assert result.negative_prompt is not None
    assert result.negative_prompt.startswith("lowres, people")
    assert "person" not in added_text(result)


def test_negative_prompt_never_negates_the_brief() -> None:
    result = optimize_prompt("a blurry background behind a photo of a cat", rendering="tags")

    terms = (result.negative_prompt or "").split(", ")
    assert "blurry" not in terms
    assert "photo" not in terms


def test_sentences_pass_the_caller_negative_prompt_through() -> None:
    assert optimize_prompt("a cat").negative_prompt is None
    assert optimize_prompt("a cat", negative_prompt="dogs").negative_prompt == "dogs"


def test_lowest_priority_fills_are_dropped_first() -> None:
    brief = "product shot of a perfume bottle"
    full = optimize_prompt(brief).prompt
    without_quality = full[: full.index(" Quality:")]

    trimmed = optimize_prompt(brief, max_chars=len(full) - 10).prompt
    result = optimize_prompt(brief, max_chars=len(without_quality) + 5).prompt

    assert trimmed.endswith("Quality: tack-sharp focus, accurate materials and reflections.")
    assert result == without_quality
    assert "Mood:" in result


def test_keep_instructions_outlast_the_fills() -> None:
    brief = "replace the background with a beach"
    keep = "Keep the person's face and identity exactly as in the source image."

    result = optimize_prompt(brief, keep=["face"], is_edit=True, max_chars=len(brief) + 80)

    assert result.prompt == f"{brief}. {keep}"


def test_brief_longer_than_the_limit_keeps_its_beginning() -> None:
    brief = "Schwarzwälder Kirschtorte on a marble table " * 20

    sentences = optimize_prompt(brief, max_chars=300)
    tags = optimize_prompt(brief, max_chars=300, rendering="tags")

    assert brief.startswith(sentences.prompt)
    assert 240 <= len(sentences.prompt) <= 300
    assert tags.prompt.startswith("(Schwarzwälder Kirschtorte on a marble table")
    assert tags.prompt.endswith(":1.3)")
    assert len(tags.prompt) <= 300


def test_brief_parentheses_do_not_break_tag_weights() -> None:
    result = optimize_prompt("a mug (blue) on a desk", rendering="tags")

    assert result.prompt.startswith(r"(a mug \(blue\) on a desk:1.3), ")


@pytest.mark.parametrize(
    "words", ["Schwarzwälder Kirschtorte", "一杯のコーヒー", "café con leche", "Smørrebrød"]
)
def test_non_english_words_survive_in_both_renderings(words: str) -> None:
    brief = f"{words}, close-up"

    assert words in optimize_prompt(brief).prompt
    assert optimize_prompt(brief, rendering="tags").prompt.startswith(f"({words}, close-up:1.3)")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"brief": "   "}, "brief must not be empty"),
        ({"brief": "a cat", "max_chars": 0}, "max_chars"),
        ({"brief": "a cat", "aspect_ratio": (0, 1)}, "aspect_ratio"),
        ({"brief": "a cat", "rendering": "markdown"}, "rendering"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        optimize_prompt(**options)  # type: ignore[arg-type]
