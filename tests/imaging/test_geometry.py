"""Size math: exact aspect ratios, generation sizes for a model, and the exact fit."""

from PIL import Image

from app.imaging.geometry import fit_exact, output_size
from app.providers.base import ModelCapabilities

AREA = 1024 * 1024


def test_aspect_ratios_are_exact_to_the_pixel_and_near_the_area():
    for ratio in [(1, 1), (16, 9), (9, 16), (4, 3), (3, 2), (21, 9), (1, 4), (4, 1), (7, 5)]:
        width, height = output_size(None, ratio, AREA)

        assert width * ratio[1] == height * ratio[0], ratio
        assert 0.8 * AREA <= width * height <= AREA, ratio


def test_size_wins_and_default_is_square():
    assert output_size((1200, 630), None, AREA) == (1200, 630)
    assert output_size(None, None, AREA) == (1024, 1024)


def test_ratio_too_fine_for_the_area_still_fits_exactly():
    assert output_size(None, (4000, 1001), AREA) == (4000, 1001)


def test_any_size_model_generates_at_the_output_size():
    assert ModelCapabilities().generation_size(1360, 765) == (1360, 765)


def test_fixed_size_model_gets_the_nearest_aspect_then_area():
    capabilities = ModelCapabilities(sizes=((1024, 1024), (1536, 1024), (1024, 1536)))

    assert capabilities.generation_size(1360, 765) == (1536, 1024)
    assert capabilities.generation_size(765, 1360) == (1024, 1536)
    assert capabilities.generation_size(300, 300) == (1024, 1024)


def test_fit_exact_crops_the_centre_to_the_exact_size():
    image = Image.new("RGB", (300, 100), "red")
    image.paste(Image.new("RGB", (100, 100), "blue"), (100, 0))

    fitted = fit_exact(image, 50, 50)

    assert fitted.size == (50, 50)
    assert fitted.getpixel((25, 25)) == (0, 0, 255)


def test_fit_exact_leaves_an_exact_image_alone():
    image = Image.new("RGB", (64, 48))

    assert fit_exact(image, 64, 48) is image


def test_out_of_range_sizes_are_scaled_into_the_models_range_keeping_aspect():
    capabilities = ModelCapabilities(min_side=256, max_side=2048)

    assert capabilities.generation_size(4096, 1024) == (2048, 512)
    assert capabilities.generation_size(100, 100) == (256, 256)
