"""Saliency and the smart crop window."""

from PIL import Image, ImageDraw

from app.imaging.saliency import MAP_SIDE, smart_crop_box

GREY = (128, 128, 128)


def checkered_square(
    image: Image.Image, left: int, top: int, side: int = 120, cell: int = 20
) -> Image.Image:
    """`image` with a bright, saturated red-and-yellow checkerboard square drawn at (left, top)."""
    draw = ImageDraw.Draw(image)
    for row in range(side // cell):
        for column in range(side // cell):
            colour = (255, 0, 0) if (row + column) % 2 else (255, 230, 0)
            x, y = left + column * cell, top + row * cell
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=colour)
    return image


def contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    left, top, right, bottom = outer
    return left <= inner[0] and top <= inner[1] and right >= inner[2] and bottom >= inner[3]


def test_crop_slides_sideways_to_keep_an_object_near_the_right_edge() -> None:
    image = checkered_square(Image.new("RGB", (2000, 1000), GREY), 1820, 440)

    box = smart_crop_box(image, 1, 1)

    assert box[2] - box[0] == box[3] - box[1] == 1000
    assert contains(box, (1820, 440, 1940, 560))
    assert not contains((500, 0, 1500, 1000), (1820, 440, 1940, 560))


def test_crop_slides_down_to_keep_an_object_near_the_bottom() -> None:
    image = checkered_square(Image.new("RGB", (800, 2400), GREY), 60, 2200)

    box = smart_crop_box(image, 16, 9)

    assert (box[0], box[2]) == (0, 800)
    assert box[3] - box[1] == 450
    assert contains(box, (60, 2200, 180, 2320))


def test_a_flat_image_crops_at_the_centre_to_within_a_map_pixel() -> None:
    left, top, right, bottom = smart_crop_box(Image.new("RGB", (2000, 1000), GREY), 1, 1)

    assert (top, right - left, bottom) == (0, 1000, 1000)
    assert abs(left - 500) <= 2000 / MAP_SIDE


def test_transparent_pixels_hold_no_interest() -> None:
    image = Image.new("RGBA", (2000, 1000), (128, 128, 128, 255))
    checkered_square(image, 100, 440)
    # A bigger, busier square that is there in the colour channels but fully transparent.
    checkered_square(image, 1600, 300, side=360)
    alpha = Image.new("L", image.size, 255)
    alpha.paste(0, (1600, 300, 1960, 660))
    image.putalpha(alpha)

    box = smart_crop_box(image, 1, 1)

    assert contains(box, (100, 440, 220, 560))


def test_crop_at_the_image_aspect_is_the_whole_image() -> None:
    image = checkered_square(Image.new("RGB", (1200, 600), GREY), 10, 10)

    assert smart_crop_box(image, 2, 1) == (0, 0, 1200, 600)
