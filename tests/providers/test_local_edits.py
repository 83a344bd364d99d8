"""Behaviour of the classical edits behind the offline ``local`` provider."""

import hashlib
import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.providers.draft_renderer import render_draft
from app.providers.local_edits import edit_image, mask_from_png, upscale, variant_image
from tests.support import fresh_process_output

SIZE = (96, 64)
HOLE = (30, 16, 61, 43)  # left, top, right, bottom, inclusive as Pillow draws rectangles
BLUE = (30, 80, 200)


# ---------------------------------------------------------------------------------------------
# Factories


def scene_image(size: tuple[int, int] = SIZE, mode: str = "RGB") -> Image.Image:
    """A warm-to-cool gradient under a few hard-edged shapes, so edits have structure to keep."""
    width, height = size
    x = np.linspace(0.0, 1.0, width)[None, :, None]
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    channels = np.broadcast_arrays(1 - x, 0.3 + 0.4 * y, x)
    pixels = 40 + 180 * np.concatenate(channels, axis=2)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.1, height * 0.2, width * 0.4, height * 0.7), fill=(240, 220, 60))
    draw.rectangle((width * 0.55, height * 0.5, width * 0.9, height * 0.9), fill=(30, 40, 70))
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize(size))
    return image.convert(mode)


def flat_image(colour: tuple[int, int, int], size: tuple[int, int] = SIZE) -> Image.Image:
    return Image.new("RGB", size, colour)


def hole_mask_png(size: tuple[int, int] = SIZE, box: tuple[int, ...] = HOLE) -> Image.Image:
    """An opaque RGBA mask with a fully transparent rectangle: the area to change."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    ImageDraw.Draw(mask).rectangle(box, fill=(0, 0, 0, 0))
    return mask


def hole_mask(size: tuple[int, int] = SIZE, box: tuple[int, ...] = HOLE) -> np.ndarray:
    return mask_from_png(hole_mask_png(size, box), size)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def edits_digest() -> str:
    """One hash over a masked edit with a reference and a strong variant of a rendered draft."""
    source = render_draft("mountain landscape at sunset", 9, 160, 120)
    reference = render_draft("teal ocean", 2, 64, 64)
    mask = hole_mask((160, 120), (40, 30, 110, 90))
    edited = edit_image(source, "vintage", 11, mask=mask, references=[(reference, "style", 0.6)])
    variant = variant_image(source, 11, 0.7)
    return hashlib.sha256(png_bytes(edited) + png_bytes(variant)).hexdigest()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def lab_means(image: Image.Image) -> np.ndarray:
    """Mean (L, a, b), on OpenCV's 8-bit scale."""
    lab = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2LAB)
    return lab.reshape(-1, 3).mean(axis=0)


def ssim(first: Image.Image, second: Image.Image) -> float:
    """Mean structural similarity of the luminance, with the usual 11-tap Gaussian window."""
    a, b = (np.asarray(i.convert("L"), np.float64) for i in (first, second))

    def local(values: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(values, (11, 11), 1.5)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mean_a, mean_b = local(a), local(b)
    var_a, var_b = local(a * a) - mean_a**2, local(b * b) - mean_b**2
    covariance = local(a * b) - mean_a * mean_b
    score = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(score.mean())


# ---------------------------------------------------------------------------------------------
# Masks


def test_mask_from_png_marks_fully_transparent_pixels():
    mask = hole_mask()

    assert mask.dtype == bool
    assert mask.shape == (SIZE[1], SIZE[0])
    assert mask.sum() == 32 * 28
    assert mask[20, 40]
    assert not mask[0, 0]


def test_mask_from_png_ignores_partly_transparent_pixels():
    png = hole_mask_png()
    ImageDraw.Draw(png).rectangle((0, 0, 9, 9), fill=(0, 0, 0, 1))

    assert not mask_from_png(png, SIZE)[:10, :10].any()


@pytest.mark.parametrize("mode", ["LA", "PA", "P"])
def test_mask_from_png_accepts_any_image_with_transparency(mode: str):
    png = hole_mask_png()
    if mode == "P":
        png = png.convert("P")  # keeps the hole as a transparent palette entry

    mask = mask_from_png(png.convert(mode) if mode != "P" else png, SIZE)

    assert np.array_equal(mask, hole_mask())


def test_mask_of_another_size_is_rejected():
    with pytest.raises(ValueError, match=r"mask is 95x64 but the image is 96x64.*same dimensions"):
        mask_from_png(hole_mask_png((95, 64)), SIZE)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_mask_without_alpha_is_rejected(mode: str):
    with pytest.raises(ValueError, match=r"no alpha channel.*transparent pixels \(alpha 0\)"):
        mask_from_png(hole_mask_png().convert(mode), SIZE)


def test_edit_rejects_a_mask_array_of_another_shape():
    with pytest.raises(ValueError, match="same dimensions"):
        edit_image(scene_image(), "warm", 1, mask=np.ones((SIZE[0], SIZE[1]), bool))


# ---------------------------------------------------------------------------------------------
# Masked edits


@pytest.mark.parametrize(
    ("prompt", "strength"),
    [
        ("", 1.0),
        ("warm night", 0.6),
        ("black and white vintage photo", 0.3),
        ("bright blurry pastel pink", 1.0),
        ("cool dark teal", 0.05),
    ],
)
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_masked_edit_leaves_unmasked_pixels_unchanged(prompt: str, strength: float, mode: str):
    source, mask = scene_image(mode=mode), hole_mask()
    reference = flat_image((20, 140, 130))

    edited = edit_image(
        source, prompt, 3, mask=mask, strength=strength, references=[(reference, "style", 0.8)]
    )

    assert edited.mode == mode
    assert edited.size == source.size
    assert np.array_equal(np.asarray(edited)[~mask], np.asarray(source)[~mask])


def test_masked_edit_changes_the_masked_area():
    source, mask = scene_image(), hole_mask()

    edited = edit_image(source, "warm night", 3, mask=mask)

    difference = np.abs(pixels(edited) - pixels(source))
    assert difference[mask].mean() > 15


def test_masked_edit_keeps_alpha_of_an_rgba_source():
    source = scene_image(mode="RGBA")

    edited = edit_image(source, "vintage", 3, mask=hole_mask(), strength=1.0)

    assert np.array_equal(np.asarray(edited)[..., 3], np.asarray(source)[..., 3])


def test_large_masked_edit_leaves_unmasked_pixels_unchanged():
    # Big enough that the hole is inpainted and the blur runs at reduced resolution.
    size = (1400, 500)
    source, mask = scene_image(size), hole_mask(size, (200, 50, 1100, 449))

    edited = edit_image(source, "blurry warm", 3, mask=mask, strength=0.8)

    assert np.array_equal(np.asarray(edited)[~mask], np.asarray(source)[~mask])
    assert np.abs(pixels(edited) - pixels(source))[mask].mean() > 10


@pytest.mark.parametrize(
    ("size", "square", "box"),
    [
        ((128, 96), (40, 30, 79, 65), (38, 28, 81, 67)),
        ((600, 400), (150, 100, 449, 299), (145, 95, 454, 304)),  # filled at reduced resolution
    ],
)
def test_inpainting_fills_a_hole_from_its_surroundings(
    size: tuple[int, int], square: tuple[int, ...], box: tuple[int, ...]
):
    source = flat_image(BLUE, size)
    ImageDraw.Draw(source).rectangle(square, fill=(0, 0, 0))
    mask = hole_mask(size, box)

    edited = pixels(edit_image(source, "a plain photo", 3, mask=mask, strength=1.0))

    # Mean and spread: the black square is gone and the seeded texture stays light.
    assert np.abs(edited[mask].mean(axis=0) - BLUE).max() < 5
    assert np.abs(edited[mask] - BLUE).mean() < 8


def test_masked_texture_depends_on_the_seed():
    source, mask = scene_image(), hole_mask()

    first = pixels(edit_image(source, "warm", 1, mask=mask, strength=1.0))
    second = pixels(edit_image(source, "warm", 2, mask=mask, strength=1.0))

    assert np.abs(first - second)[mask].mean() > 1


def test_masked_strength_blends_from_the_source():
    source, mask = scene_image(), hole_mask()

    def change(strength: float) -> float:
        edited = edit_image(source, "night", 1, mask=mask, strength=strength)
        return float(np.abs(pixels(edited) - pixels(source))[mask].mean())

    assert change(0.0) == 0
    assert 0 < change(0.3) < change(0.6) < change(1.0)


def test_a_mask_over_the_whole_image_treats_its_content():
    source = scene_image()
    mask = np.ones((SIZE[1], SIZE[0]), bool)

    edited = edit_image(source, "black and white", 1, mask=mask, strength=1.0)

    assert ssim(edited, source) > 0.5  # nothing to inpaint from, so the shapes stay
    assert np.ptp(pixels(edited), axis=2).max() <= 1


def test_an_all_opaque_mask_changes_nothing():
    source = scene_image()
    mask = np.zeros((SIZE[1], SIZE[0]), bool)

    assert png_bytes(edit_image(source, "night", 1, mask=mask)) == png_bytes(source)


# ---------------------------------------------------------------------------------------------
# Whole-image edits: the prompt's look and strength


@pytest.mark.parametrize("prompt", ["warm night", "black and white", "vintage", "blur"])
def test_strength_zero_returns_the_source_unchanged(prompt: str):
    source = scene_image()

    assert png_bytes(edit_image(source, prompt, 1, strength=0.0)) == png_bytes(source)


def test_strength_one_gives_the_full_treatment():
    source = scene_image()

    full = pixels(edit_image(source, "black and white", 1, strength=1.0))
    half = pixels(edit_image(source, "black and white", 1, strength=0.5))

    assert np.ptp(full, axis=2).max() <= 1  # every pixel grey
    assert np.ptp(half, axis=2).mean() > 20
    # Half the strength goes half the way.
    assert np.allclose(half, (pixels(source) + full) / 2, atol=1.01)


def test_a_prompt_without_look_words_leaves_an_unmasked_image_as_it_was():
    source = scene_image()

    assert png_bytes(edit_image(source, "add a hat", 1, strength=1.0)) == png_bytes(source)


@pytest.mark.parametrize(
    ("prompt", "channel", "direction"),
    [
        ("a night scene", 0, -1),
        ("dark and moody", 0, -1),
        ("bright sunny day", 0, 1),
        ("warm light", 2, 1),  # Lab b: towards yellow
        ("Cool Tones", 2, -1),
        ("red", 1, 1),  # Lab a: towards red
        ("green forest", 1, -1),
    ],
)
def test_look_words_grade_the_image(prompt: str, channel: int, direction: int):
    source = scene_image()

    shift = lab_means(edit_image(source, prompt, 1, strength=1.0)) - lab_means(source)

    assert shift[channel] * direction > 5


def test_vintage_fades_the_blacks_towards_sepia():
    source = flat_image((0, 0, 0))

    r, g, b = pixels(edit_image(source, "vintage", 1, strength=1.0))[0, 0]

    assert r > g > b
    assert r > 25


def test_blur_softens_edges():
    source = scene_image((256, 192))

    def edge_energy(image: Image.Image) -> float:
        # Squared, because blurring a step spreads its total rise without lowering it.
        return float((np.diff(pixels(image.convert("L")), axis=1) ** 2).mean())

    assert edge_energy(edit_image(source, "blurry", 1, strength=1.0)) < edge_energy(source) * 0.8


def test_edit_keeps_the_mode_of_a_greyscale_source():
    source = scene_image().convert("L")

    edited = edit_image(source, "dark", 1)

    assert edited.mode == "L"
    assert edited.size == source.size


@pytest.mark.parametrize(("name", "value"), [("strength", -0.1), ("strength", 1.5)])
def test_strength_outside_zero_to_one_is_rejected(name: str, value: float):
    with pytest.raises(ValueError, match=rf"{name} must be within 0\.\.1"):
        edit_image(scene_image(), "warm", 1, strength=value)


# ---------------------------------------------------------------------------------------------
# References


def test_colour_reference_moves_the_palette_towards_the_reference():
    source, reference = scene_image(), flat_image((20, 140, 130), (40, 40))

    edited = edit_image(source, "", 1, strength=1.0, references=[(reference, "color", 0.8)])

    target = lab_means(reference)[1:]
    before = np.linalg.norm(lab_means(source)[1:] - target)
    after = np.linalg.norm(lab_means(edited)[1:] - target)
    assert after < before * 0.4


def test_colour_reference_keeps_the_lightness_and_style_reference_moves_it():
    source, dark = scene_image(), flat_image((30, 20, 60))

    colour = edit_image(source, "", 1, strength=1.0, references=[(dark, "color", 1.0)])
    style = edit_image(source, "", 1, strength=1.0, references=[(dark, "style", 1.0)])

    assert abs(lab_means(colour)[0] - lab_means(source)[0]) < 3
    assert lab_means(style)[0] < lab_means(source)[0] - 40


def test_reference_weight_scales_the_pull():
    source, reference = scene_image(), flat_image((20, 140, 130))

    def distance(weight: float) -> float:
        edited = edit_image(source, "", 1, strength=1.0, references=[(reference, "color", weight)])
        return float(np.linalg.norm(lab_means(edited)[1:] - lab_means(reference)[1:]))

    assert distance(1.0) < distance(0.5) < distance(0.1)


def test_reference_of_weight_zero_changes_nothing():
    source, reference = scene_image(), flat_image((20, 140, 130))
    ignored = [(reference, "color", 0.0), (reference, "style", 0.0)]

    for prompt in ("", "warm night"):
        plain = edit_image(source, prompt, 1, strength=1.0)
        weighted = edit_image(source, prompt, 1, strength=1.0, references=ignored)
        assert png_bytes(weighted) == png_bytes(plain)
    assert png_bytes(edit_image(source, "", 1, references=ignored)) == png_bytes(source)


@pytest.mark.parametrize("role", ["subject", "composition"])
def test_subject_and_composition_references_are_ignored(role: str):
    source, reference = scene_image(), flat_image((20, 140, 130))

    edited = edit_image(source, "warm", 1, references=[(reference, role, 1.0)])

    assert png_bytes(edited) == png_bytes(edit_image(source, "warm", 1))


def test_reference_transfer_ignores_transparent_pixels():
    source = scene_image()
    teal = flat_image((20, 140, 130), (40, 40)).convert("RGBA")
    padded = Image.new("RGBA", (80, 80), (0, 0, 0, 0))
    padded.paste(teal, (20, 20))

    def edit(reference: Image.Image) -> Image.Image:
        return edit_image(source, "", 1, strength=1.0, references=[(reference, "style", 1.0)])

    assert np.abs(lab_means(edit(padded)) - lab_means(edit(teal))).max() < 1


@pytest.mark.parametrize(
    ("role", "weight", "message"),
    [("mood", 0.5, "role must be one of"), ("color", 1.5, r"weight must be within 0\.\.1")],
)
def test_invalid_references_are_rejected(role: str, weight: float, message: str):
    with pytest.raises(ValueError, match=message):
        edit_image(scene_image(), "warm", 1, references=[(flat_image(BLUE), role, weight)])


# ---------------------------------------------------------------------------------------------
# Determinism


def test_edits_are_deterministic():
    source, mask, reference = scene_image(), hole_mask(), flat_image(BLUE)

    def edit() -> bytes:
        image = edit_image(
            source, "warm vintage", 5, mask=mask, references=[(reference, "style", 0.5)]
        )
        return png_bytes(image)

    assert edit() == edit()


def test_edits_are_identical_in_a_fresh_process():
    code = "from tests.providers.test_local_edits import edits_digest\nprint(edits_digest())\n"
    assert fresh_process_output(code) == edits_digest()


def test_variants_are_deterministic_and_depend_on_the_seed():
    source = scene_image()

    first, again = variant_image(source, 1, 0.5), variant_image(source, 1, 0.5)
    other = variant_image(source, 2, 0.5)

    assert png_bytes(first) == png_bytes(again)
    assert np.abs(pixels(first) - pixels(other)).mean() > 1


# ---------------------------------------------------------------------------------------------
# Variants


def test_subtle_variant_keeps_the_structure():
    source = scene_image((256, 192))

    assert ssim(variant_image(source, 7, 0.25), source) > 0.75


def test_strong_variant_differs_more_than_subtle():
    source = scene_image((256, 192))

    for seed in range(4):
        subtle, strong = variant_image(source, seed, 0.25), variant_image(source, seed, 0.7)
        assert ssim(strong, source) < ssim(subtle, source)
        assert ssim(strong, source) > 0.4  # still the same picture


@pytest.mark.parametrize(("size", "mode"), [((96, 64), "RGB"), ((65, 97), "RGBA"), ((64, 64), "L")])
@pytest.mark.parametrize("variation", [0.0, 0.25, 0.7, 1.0])
def test_variants_keep_size_and_mode(size: tuple[int, int], mode: str, variation: float):
    source = scene_image(size, mode)

    variant = variant_image(source, 3, variation)

    assert variant.size == size
    assert variant.mode == mode


def test_variation_zero_returns_the_source_unchanged():
    source = scene_image()

    assert png_bytes(variant_image(source, 3, 0.0)) == png_bytes(source)


def test_variation_outside_zero_to_one_is_rejected():
    with pytest.raises(ValueError, match=r"variation must be within 0\.\.1"):
        variant_image(scene_image(), 3, 1.2)


# ---------------------------------------------------------------------------------------------
# Upscale


@pytest.mark.parametrize(("width", "height"), [(192, 128), (97, 65), (1000, 333)])
def test_upscale_gives_exactly_the_requested_size(width: int, height: int):
    upscaled = upscale(scene_image(), width, height)

    assert upscaled.size == (width, height)
    assert upscaled.mode == "RGB"


def test_upscale_keeps_alpha_and_converts_palette_images():
    assert upscale(scene_image(mode="RGBA"), 192, 128).mode == "RGBA"
    assert upscale(scene_image().convert("P"), 192, 128).mode == "RGB"


def test_upscale_keeps_the_picture():
    source = scene_image()

    round_trip = upscale(source, 384, 256).resize(source.size, Image.Resampling.BOX)

    assert np.abs(pixels(round_trip) - pixels(source)).mean() < 3


def test_upscale_rejects_empty_sizes():
    with pytest.raises(ValueError, match="must be positive"):
        upscale(scene_image(), 0, 10)
