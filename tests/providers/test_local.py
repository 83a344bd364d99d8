"""The offline `local` provider: generated drafts carry their labels unless turned off; edits and
variants are never stamped."""

import io

import numpy as np
from PIL import Image

from app.providers.base import EditCall, GenerateCall, InputImage, RenderOptions
from app.providers.draft_renderer import render_draft
from app.providers.local import LocalProvider

PROMPT = "a ceramic mug on a walnut desk. Lighting: soft natural light with gentle shadows."


def draft_call(width: int = 512, height: int = 384, background: str = "auto") -> GenerateCall:
    return GenerateCall(
        model="draft",
        prompt=PROMPT,
        width=width,
        height=height,
        seed=5,
        render=RenderOptions(background=background),
    )


def changed_pixels(first: Image.Image, second: Image.Image) -> np.ndarray:
    return (np.asarray(first) != np.asarray(second)).any(axis=2)


async def test_a_generated_draft_differs_from_the_bare_render_only_in_its_labels():
    labelled = (await LocalProvider().generate(draft_call())).image
    bare = render_draft(PROMPT, 5, 512, 384)

    changed = changed_pixels(labelled, bare)
    tag, caption = changed[:64, :128], changed[-64:, 96:-96]
    assert tag.any() and caption.any()
    changed[:64, :128] = changed[-64:, 96:-96] = False
    assert not changed.any(), "pixels outside the tag and the caption were changed"


async def test_without_labels_a_draft_is_the_bare_render():
    image = (await LocalProvider(labels=False).generate(draft_call())).image

    assert np.array_equal(np.asarray(image), np.asarray(render_draft(PROMPT, 5, 512, 384)))


async def test_the_same_call_gives_the_same_labelled_pixels():
    first = (await LocalProvider().generate(draft_call())).image
    second = (await LocalProvider().generate(draft_call())).image

    assert first.tobytes() == second.tobytes()


async def test_a_transparent_draft_keeps_its_clear_corners_and_opaque_labels():
    image = (await LocalProvider().generate(draft_call(background="transparent"))).image

    alpha = np.asarray(image.getchannel("A"))
    assert image.mode == "RGBA"
    assert alpha[0, 0] == alpha[-1, -1] == 0 and alpha[192, 256] == 255
    assert (alpha[-48:, :] == 255).any() and (alpha[:48, :128] == 255).any()


async def test_edits_and_variants_are_not_stamped():
    source = render_draft("mountain landscape", 2, 160, 120)
    buffer = io.BytesIO()
    source.save(buffer, "PNG")
    image = InputImage("ast_1", buffer.getvalue(), "png", 160, 120)
    calls = [
        EditCall("draft", "warm vintage look", image, 160, 120, seed=3, strength=0.8),
        EditCall("draft", "", image, 160, 120, seed=3, variation=0.6),
    ]

    for call in calls:
        labelled = (await LocalProvider().edit(call)).image
        bare = (await LocalProvider(labels=False).edit(call)).image
        assert labelled.tobytes() == bare.tobytes()
