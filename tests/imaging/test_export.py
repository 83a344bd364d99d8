"""The export pipeline: sizes and fits, budgets, metadata, colour and modes, provenance."""

import io
import struct
import xml.etree.ElementTree as ElementTree
from typing import Any

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, ImageDraw

from app.imaging.export import (
    PRESETS,
    ExportBudgetError,
    ExportOptions,
    ExportTarget,
    export_all,
    export_image,
    prepare_source,
    resolve_target,
)
from app.imaging.geometry import fit_exact
from app.imaging.saliency import smart_crop_box

ALL_PRESETS = [resolve_target(name) for name in PRESETS]
LOSSY_FORMATS = ["jpeg", "webp", "avif"]
ALL_FORMATS = ["png", *LOSSY_FORMATS]
PROVENANCE = {"model": "local/draft", "prompt": "a lighthouse at dusk, ünïcode", "job_id": "job_42"}


def photo(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A smooth gradient with a few coloured shapes: compresses and resizes like a photo."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    channels = [200 * x + 30 * y, 180 * y + 40 * x, 220 * (1 - x) * (1 - y) + 20]
    image = Image.fromarray(np.stack(channels, axis=2).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.2, height * 0.2, width * 0.5, height * 0.6), fill=(230, 60, 40))
    draw.rectangle((width * 0.6, height * 0.5, width * 0.9, height * 0.8), fill=(30, 90, 200))
    return image.convert(mode)


def noise(width: int, height: int) -> Image.Image:
    """Uniform random pixels: as incompressible as an image gets."""
    pixels = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def encoded(image: Image.Image, image_format: str = "PNG", **options: Any) -> bytes:
    """`image` saved in memory, as an upload would arrive."""
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    """An exported file opened and loaded, metadata and all."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def camera_exif(orientation: int = 1) -> Image.Exif:
    """EXIF as a phone writes it: make, model, orientation and a GPS position."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    exif[ExifTags.Base.Model] = "Pocket 9"
    exif[ExifTags.Base.Orientation] = orientation
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 12.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (4.0, 53.0, 30.0)
    return exif


def adobe_rgb_like_profile() -> bytes:
    """A minimal ICC v2 matrix/TRC profile with Adobe RGB (1998) primaries and gamma 563/256:
    a wide-gamut profile built by hand, as none ships with Pillow."""

    def s15_fixed16(value: float) -> bytes:
        return struct.pack(">i", round(value * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15_fixed16(x) + s15_fixed16(y) + s15_fixed16(z)

    name = b"Adobe RGB (1998) lookalike\0"
    description = b"desc\0\0\0\0" + struct.pack(">I", len(name)) + name + b"\0" * 79
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 563) + b"\0\0"
    tags = [
        (b"desc", description),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.60974, 0.31111, 0.01947)),
        (b"gXYZ", xyz(0.20528, 0.62567, 0.06087)),
        (b"bXYZ", xyz(0.14919, 0.06322, 0.74457)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    data_start = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", data_start + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    header = struct.pack(
        ">I4sI4s4s4s", data_start + len(body), b"none", 0x02100000, b"mntr", b"RGB ", b"XYZ "
    )
    header += b"\0" * 12 + b"acsp" + b"\0" * 24 + s15_fixed16(0.9642) + s15_fixed16(1.0)
    header = (header + s15_fixed16(0.8249)).ljust(128, b"\0")
    return header + struct.pack(">I", len(tags)) + table + body


def adobe_to_srgb(rgb: tuple[int, int, int]) -> np.ndarray:
    """The reference conversion: linearize, the Adobe RGB to sRGB matrix, the sRGB curve."""
    linear = (np.array(rgb) / 255) ** (563 / 256)
    matrix = np.array([[1.3982, -0.3982, 0], [0, 1, 0], [0, -0.0429, 1.0429]])
    srgb_linear = (matrix @ linear).clip(0, 1)
    curve = np.where(
        srgb_linear <= 0.0031308, 12.92 * srgb_linear, 1.055 * srgb_linear ** (1 / 2.4) - 0.055
    )
    return curve * 255


def luma_difference(first: Image.Image, second: Image.Image) -> float:
    """Mean absolute luma difference, 0 to 255."""
    first_luma = np.asarray(first.convert("L"), dtype=np.float64)
    second_luma = np.asarray(second.convert("L"), dtype=np.float64)
    return float(np.abs(first_luma - second_luma).mean())


def close_to(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 3) -> bool:
    """Each channel within `tolerance` of the expected one."""
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


# Sizes and fits


@pytest.mark.parametrize("fit", ["cover", "pad", "smart"])
def test_every_preset_comes_out_at_exactly_its_size(fit: str) -> None:
    results = export_all(
        encoded(photo(1600, 1200)), ALL_PRESETS, ExportOptions(fit=fit, format="jpeg")
    )

    assert [result.target for result in results] == ALL_PRESETS
    for result in results:
        target = result.target
        assert (result.width, result.height) == (target.width, target.height)
        assert decoded(result.data).size == (target.width, target.height)


def test_contain_fits_inside_every_preset_and_touches_one_side() -> None:
    results = export_all(
        encoded(photo(1600, 1200)), ALL_PRESETS, ExportOptions(fit="contain", format="jpeg")
    )

    for result in results:
        width, height = decoded(result.data).size
        target = result.target
        assert width <= target.width and height <= target.height
        assert width == target.width or height == target.height
        assert abs(width / height - 1600 / 1200) < 2 / min(width, height)


@pytest.mark.parametrize("fit", ["cover", "contain", "pad", "smart"])
@pytest.mark.parametrize("size", [(1, 1), (333, 777), (17, 4000), (8192, 3)])
def test_explicit_sizes_are_honoured_to_the_pixel(fit: str, size: tuple[int, int]) -> None:
    target = resolve_target(size)

    result = export_image(prepare_source(encoded(photo(600, 400))), target, ExportOptions(fit=fit))

    if fit == "contain":
        assert result.width == target.width or result.height == target.height
        assert result.width <= target.width and result.height <= target.height
    else:
        assert (result.width, result.height) == size
    assert decoded(result.data).size == (result.width, result.height)


def test_pad_fills_the_bars_with_the_background_colour() -> None:
    source = prepare_source(encoded(Image.new("RGB", (400, 200), (0, 0, 255))))

    result = export_image(
        source,
        resolve_target((400, 400)),
        ExportOptions(fit="pad", format="png", background="#f80"),
    )

    image = decoded(result.data).convert("RGB")
    assert image.getpixel((200, 10)) == (255, 136, 0)
    assert image.getpixel((200, 200)) == (0, 0, 255)


def test_pad_with_a_transparent_background_keeps_the_bars_transparent() -> None:
    source = prepare_source(encoded(Image.new("RGB", (400, 200), (0, 0, 255))))

    result = export_image(
        source,
        resolve_target((400, 400)),
        ExportOptions(fit="pad", format="png", background="#00000000"),
    )

    image = decoded(result.data)
    assert image.mode == "RGBA"
    assert image.getpixel((200, 10))[3] == 0
    assert image.getpixel((200, 200)) == (0, 0, 255, 255)


def test_smart_crop_keeps_a_small_object_that_a_centre_crop_loses() -> None:
    image = Image.new("RGB", (2000, 1000), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for row in range(6):
        for column in range(6):
            x, y = 1820 + column * 20, 440 + row * 20
            colour = (255, 0, 0) if (row + column) % 2 else (255, 230, 0)
            draw.rectangle((x, y, x + 19, y + 19), fill=colour)
    source = prepare_source(encoded(image))
    square = resolve_target("instagram-square")

    smart = decoded(export_image(source, square, ExportOptions(fit="smart", format="png")).data)
    centre = decoded(export_image(source, square, ExportOptions(fit="cover", format="png")).data)

    def saturated_pixels(output: Image.Image) -> int:
        rgb = np.asarray(output.convert("RGB"), dtype=np.int16)
        return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 150).sum())

    left, top, right, bottom = smart_crop_box(source, 1, 1)
    assert left <= 1820 and right >= 1940 and top <= 440 and bottom >= 560
    assert saturated_pixels(smart) > 100 * 100 * 0.9
    assert saturated_pixels(centre) == 0


# Byte budgets


@pytest.mark.parametrize("image_format", LOSSY_FORMATS)
def test_max_bytes_lowers_quality_until_the_file_fits(image_format: str) -> None:
    source = prepare_source(encoded(photo(1000, 1000)))
    target = resolve_target("product-card")
    unconstrained = export_image(source, target, ExportOptions(format=image_format))
    budget = len(unconstrained.data) * 2 // 3

    result = export_image(source, target, ExportOptions(format=image_format, max_bytes=budget))

    assert len(result.data) <= budget
    assert result.quality is not None and unconstrained.quality is not None
    assert result.quality < unconstrained.quality
    assert decoded(result.data).size == (1000, 1000)


@pytest.mark.parametrize("image_format", LOSSY_FORMATS)
def test_a_generous_budget_keeps_the_requested_quality(image_format: str) -> None:
    source = prepare_source(encoded(photo(300, 300)))

    result = export_image(
        source,
        resolve_target((300, 300)),
        ExportOptions(format=image_format, quality=70, max_bytes=10_000_000),
    )

    assert result.quality == 70


@pytest.mark.parametrize("image_format", LOSSY_FORMATS)
def test_an_impossible_budget_names_the_smallest_size_reached(image_format: str) -> None:
    source = prepare_source(encoded(noise(1000, 1000)))

    with pytest.raises(ExportBudgetError) as raised:
        export_image(
            source, resolve_target((1000, 1000)), ExportOptions(format=image_format, max_bytes=200)
        )

    assert raised.value.max_bytes == 200
    assert raised.value.smallest_bytes > 200
    assert f"{raised.value.smallest_bytes:,} bytes" in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_png_over_budget_tries_harder_compression_then_says_to_use_a_lossy_format() -> None:
    source = prepare_source(encoded(photo(600, 600)))
    target = resolve_target((600, 600))
    everyday = export_image(source, target, ExportOptions(format="png"))

    squeezed = export_image(
        source, target, ExportOptions(format="png", max_bytes=len(everyday.data) - 1)
    )
    with pytest.raises(ExportBudgetError, match="lossy format") as raised:
        export_image(source, target, ExportOptions(format="png", max_bytes=len(everyday.data) // 2))

    assert len(squeezed.data) < len(everyday.data)
    assert squeezed.quality is None
    assert len(squeezed.data) >= raised.value.smallest_bytes > len(everyday.data) // 2
    assert "the smallest PNG at 600x600 is" in str(raised.value)


@pytest.mark.parametrize("source", [photo(1080, 1080), noise(1080, 1080)], ids=["photo", "noise"])
def test_a_png_budget_below_what_any_png_can_be_fails_naming_that_floor(
    source: Image.Image,
) -> None:
    with pytest.raises(ExportBudgetError, match="lossy format") as raised:
        export_image(
            prepare_source(encoded(source)),
            resolve_target((1080, 1080)),
            ExportOptions(format="png", max_bytes=1000),
        )

    # 1080 rows of a filter byte and 3,240 sample bytes at deflate's best, 1032:1, plus 63 bytes
    # of chunks: whatever the pixels, no encoding is tried.
    assert raised.value.smallest_bytes == 63 + -(-1080 * 3241 // 1032) == 3455
    assert "no PNG at 1080x1080 can be smaller than 3,455 bytes" in str(raised.value)


@pytest.mark.parametrize(
    ("mode", "colour"), [("RGB", (255, 255, 255)), ("RGBA", (0, 0, 0, 0))], ids=["white", "clear"]
)
def test_the_png_floor_lets_through_the_smallest_png_of_a_flat_image(
    mode: str, colour: tuple[int, ...]
) -> None:
    # A single colour is as compressible as an image gets, so its PNG comes closest to the floor.
    source = prepare_source(encoded(Image.new(mode, (1080, 1080), colour)))
    target = resolve_target((1080, 1080))
    with pytest.raises(ExportBudgetError) as below_floor:
        export_image(source, target, ExportOptions(format="png", max_bytes=1))
    floor = below_floor.value.smallest_bytes

    with pytest.raises(ExportBudgetError) as at_floor:
        export_image(source, target, ExportOptions(format="png", max_bytes=floor))
    smallest = at_floor.value.smallest_bytes
    met = export_image(source, target, ExportOptions(format="png", max_bytes=smallest))

    assert "the smallest PNG at 1080x1080 is" in str(at_floor.value)
    assert floor < smallest == len(met.data)


# Metadata


@pytest.mark.parametrize("image_format", ALL_FORMATS)
def test_exif_with_gps_xmp_and_comments_are_stripped_by_default(image_format: str) -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><secret>studio address</secret></x:xmpmeta>'
    data = encoded(photo(320, 240), "JPEG", exif=camera_exif(), xmp=xmp, comment=b"secret")
    assert decoded(data).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    result = export_all(data, [resolve_target((160, 120))], ExportOptions(format=image_format))[0]

    output = decoded(result.data)
    assert not output.getexif()
    assert {"exif", "xmp", "comment"}.isdisjoint(output.info)
    assert b"PhoneCo" not in result.data
    assert b"studio address" not in result.data


def test_metadata_is_kept_when_stripping_is_off() -> None:
    data = encoded(photo(320, 240), "JPEG", exif=camera_exif())

    result = export_all(
        data, [resolve_target((160, 120))], ExportOptions(format="jpeg", strip_metadata=False)
    )[0]

    exif = decoded(result.data).getexif()
    assert exif[ExifTags.Base.Make] == "PhoneCo"
    assert exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] == "N"


def test_provenance_goes_into_png_text_chunks() -> None:
    source = prepare_source(encoded(photo(64, 64)))

    result = export_image(
        source, resolve_target((32, 32)), ExportOptions(format="png", provenance=PROVENANCE)
    )

    text = decoded(result.data).text  # type: ignore[attr-defined]
    assert text["job_id"] == "job_42"
    assert text["prompt"] == PROVENANCE["prompt"]
    assert text["model"] == "local/draft"


@pytest.mark.parametrize("image_format", LOSSY_FORMATS)
def test_provenance_goes_into_an_xmp_packet(image_format: str) -> None:
    source = prepare_source(encoded(photo(64, 64)))

    result = export_image(
        source, resolve_target((32, 32)), ExportOptions(format=image_format, provenance=PROVENANCE)
    )

    xmp = decoded(result.data).info["xmp"]
    packet = xmp if isinstance(xmp, bytes) else xmp.encode()
    namespace = "{https://darkroom.dev/ns/provenance/1.0/}"
    tree = ElementTree.fromstring(
        packet[packet.index(b"<x:xmpmeta") : packet.index(b"<?xpacket e")]
    )
    values = {element.tag.removeprefix(namespace): element.text for element in tree.iter()}
    assert values["job_id"] == "job_42"
    assert values["prompt"] == PROVENANCE["prompt"]


@pytest.mark.parametrize("image_format", ALL_FORMATS)
def test_no_provenance_by_default(image_format: str) -> None:
    source = prepare_source(encoded(photo(64, 64)))

    result = export_image(source, resolve_target((32, 32)), ExportOptions(format=image_format))

    output = decoded(result.data)
    assert "xmp" not in output.info
    assert "job_id" not in output.info
    assert b"darkroom" not in result.data


# Orientation, colour and modes


def test_exif_orientation_is_applied_before_anything_else() -> None:
    stored = Image.new("RGB", (400, 200), (255, 255, 255))
    stored.paste((255, 0, 0), (0, 0, 40, 40))
    data = encoded(stored, "JPEG", quality=95, exif=camera_exif(orientation=6))

    source = prepare_source(data)
    result = export_image(source, resolve_target((100, 200)), ExportOptions(format="png"))

    # Orientation 6 is displayed turned a quarter clockwise: the stored top-left corner shows at
    # the top right.
    assert source.size == (200, 400)
    output = decoded(result.data).convert("RGB")
    assert output.size == (100, 200)
    assert close_to(output.getpixel((95, 5)), (255, 0, 0), tolerance=12)
    assert close_to(output.getpixel((5, 5)), (255, 255, 255), tolerance=12)
    assert not decoded(result.data).getexif().get(ExifTags.Base.Orientation)


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encoded(Image.new("CMYK", (120, 80), (0, 255, 255, 0)), "JPEG", quality=95)

    source = prepare_source(data)
    result = export_image(source, resolve_target((60, 40)), ExportOptions(format="jpeg"))

    assert source.mode == "RGB"
    assert close_to(decoded(result.data).getpixel((30, 20)), (255, 0, 0), tolerance=8)


def test_sixteen_bit_png_is_scaled_to_eight_bits_not_clipped() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (16, 1))
    data = encoded(Image.fromarray(ramp))
    assert decoded(data).mode == "I;16"

    source = prepare_source(data)

    assert source.mode == "RGB"
    assert source.getpixel((128, 8)) == (128, 128, 128)
    assert source.getpixel((255, 8)) == (255, 255, 255)


def test_sixteen_bit_png_with_a_transparent_grey_keeps_that_grey_transparent() -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    ramp[:, :8] = 1000
    data = encoded(Image.fromarray(ramp), transparency=1000)

    source = prepare_source(data)

    assert source.mode == "RGBA"
    assert source.getpixel((2, 2))[3] == 0
    assert source.getpixel((40, 2))[3] == 255


def test_palette_png_with_transparency_keeps_its_transparency() -> None:
    image = Image.new("P", (100, 100), 1)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.paste(0, (0, 0, 50, 100))
    data = encoded(image, transparency=0)

    results = export_all(data, [resolve_target((50, 50))], ExportOptions(format="png"))

    output = decoded(results[0].data)
    assert output.mode == "RGBA"
    assert output.getpixel((5, 25))[3] == 0
    assert output.getpixel((45, 25)) == (255, 0, 0, 255)


def test_palette_png_without_transparency_becomes_rgb() -> None:
    data = encoded(photo(64, 64).convert("P", palette=Image.Palette.ADAPTIVE))

    assert prepare_source(data).mode == "RGB"


@pytest.mark.parametrize("background", ["#00ff00", "#0f0"])
def test_transparent_png_to_jpeg_flattens_onto_the_background(background: str) -> None:
    image = Image.new("RGBA", (200, 100), (0, 0, 255, 255))
    image.paste((0, 0, 0, 0), (0, 0, 100, 100))

    result = export_all(
        encoded(image),
        [resolve_target((200, 100))],
        ExportOptions(format="jpeg", background=background),
    )[0]

    output = decoded(result.data)
    assert output.mode == "RGB"
    assert close_to(output.getpixel((30, 50)), (0, 255, 0), tolerance=4)
    assert close_to(output.getpixel((170, 50)), (0, 0, 255), tolerance=4)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("1", "RGB"), ("L", "RGB"), ("LA", "RGBA"), ("RGB", "RGB"), ("RGBA", "RGBA"), ("P", "RGB")],
)
def test_every_mode_is_normalized_to_rgb_or_rgba(mode: str, expected: str) -> None:
    image = photo(64, 64, mode)
    if "A" in mode:
        image.putalpha(Image.linear_gradient("L").resize((64, 64)))

    assert prepare_source(encoded(image)).mode == expected


def test_opaque_alpha_is_dropped() -> None:
    assert prepare_source(encoded(photo(64, 64, "RGBA"))).mode == "RGB"


def test_srgb_tagged_input_round_trips_and_stays_tagged() -> None:
    image = photo(200, 200)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()

    result = export_all(
        encoded(image, icc_profile=srgb), [resolve_target((200, 200))], ExportOptions(format="png")
    )[0]

    output = decoded(result.data)
    assert output.mode == "RGB"
    difference = np.abs(np.asarray(output, dtype=np.int16) - np.asarray(image, dtype=np.int16))
    assert difference.max() <= 2
    assert output.info["icc_profile"]


def test_wide_gamut_input_is_converted_to_srgb() -> None:
    colours = [(200, 150, 100), (60, 200, 60), (128, 128, 128)]
    image = Image.new("RGB", (300, 100))
    for index, colour in enumerate(colours):
        image.paste(colour, (index * 100, 0, index * 100 + 100, 100))

    source = prepare_source(encoded(image, icc_profile=adobe_rgb_like_profile()))

    for index, colour in enumerate(colours):
        expected = adobe_to_srgb(colour)
        assert np.abs(np.array(source.getpixel((index * 100 + 50, 50))) - expected).max() <= 2
    profile = ImageCms.ImageCmsProfile(io.BytesIO(source.info["icc_profile"]))
    assert "sRGB" in profile.profile.profile_description


def test_untagged_input_gives_untagged_output() -> None:
    result = export_all(encoded(photo(64, 64)), [resolve_target((32, 32))], ExportOptions())[0]

    assert "icc_profile" not in decoded(result.data).info


# Upscaling and the shared pyramid


def test_upscaled_is_reported_only_when_enlarging() -> None:
    targets = [
        resolve_target("product-card"),
        resolve_target("medium-rectangle"),
        resolve_target((500, 500)),
        resolve_target((600, 100)),
    ]

    results = export_all(encoded(photo(500, 500)), targets, ExportOptions(format="jpeg"))

    assert [result.upscaled for result in results] == [True, False, False, True]


def test_contain_upscales_only_when_the_box_is_larger() -> None:
    source = prepare_source(encoded(photo(500, 250)))
    options = ExportOptions(fit="contain", format="jpeg")

    assert export_image(source, resolve_target((1000, 1000)), options).upscaled
    assert not export_image(source, resolve_target((500, 500)), options).upscaled


def test_jpeg_is_reduced_on_decode_but_never_below_what_is_needed() -> None:
    data = encoded(photo(4000, 3000), "JPEG", quality=90)

    source = prepare_source(data, max_side_needed=600)

    assert 600 <= max(source.size) < 4000


def test_export_all_matches_exporting_each_target_alone() -> None:
    data = encoded(photo(3000, 2000), "JPEG", quality=95)
    targets = [resolve_target(name) for name in ("leaderboard", "email-header", "hero")]
    options = ExportOptions(format="png")

    together = export_all(data, targets, options)
    alone = [export_image(prepare_source(data), target, options) for target in targets]

    for shared, single in zip(together, alone, strict=True):
        assert luma_difference(decoded(shared.data), decoded(single.data)) < 1.0


def test_one_worker_and_two_give_the_same_bytes() -> None:
    # A source large enough that the small targets are cut from reduced copies, which the two
    # workers make as they first need them.
    data = encoded(photo(2500, 2500), compress_level=1)
    targets = [resolve_target(size) for size in ((100, 100), (300, 200), (1000, 1000))]

    assert export_all(data, targets, ExportOptions(), workers=1) == export_all(
        data, targets, ExportOptions(), workers=2
    )


def test_a_small_region_is_resampled_from_the_full_source_as_a_full_resize_would() -> None:
    # Fine periodic detail, which a box reduction before the Lanczos pass would alias.
    y, x = np.indices((600, 4000))
    channels = [(x * 7 + y * 3) % 11 * 23, (x * 5 + y * 11) % 13 * 19, (x + 2 * y) % 7 * 36]
    source = Image.fromarray(np.stack(channels, axis=2).astype(np.uint8))

    result = export_all(
        encoded(source, compress_level=1),
        [resolve_target("leaderboard")],
        ExportOptions("cover", "png"),
    )[0]

    difference = np.abs(
        np.asarray(decoded(result.data), dtype=int)
        - np.asarray(fit_exact(source, 728, 90), dtype=int)
    )
    assert difference.max() <= 1 and difference.mean() < 0.01


def test_no_targets_gives_no_outputs() -> None:
    assert export_all(b"not even an image", [], ExportOptions()) == []


# Options


@pytest.mark.parametrize(
    "options",
    [
        {"quality": 0},
        {"quality": 101},
        {"max_bytes": 0},
        {"background": "white"},
        {"background": "#12345"},
        {"fit": "stretch"},
        {"format": "gif"},
        {"provenance": {"job id": "x"}},
    ],
)
def test_invalid_options_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ExportOptions(**options)


def test_export_image_rejects_an_unprepared_source() -> None:
    with pytest.raises(ValueError, match="prepare"):
        export_image(Image.new("CMYK", (8, 8)), ExportTarget("8x8", 8, 8), ExportOptions())
