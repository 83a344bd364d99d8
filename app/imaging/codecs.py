"""Encoding outputs and checking untrusted image bytes before anything trusts them."""

import io
import warnings
from dataclasses import dataclass

from PIL import Image

from app.errors import InvalidImage, UnsupportedMediaType

MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "avif": "image/avif",
    "zip": "application/zip",
}
# The usual file name extension of each format, where it is not the format's own name.
_FILE_EXTENSIONS = {"jpeg": "jpg"}
_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# The quality outputs are encoded at in the lossy formats (jpeg, webp), and asked of vendors
# that encode them for us.
LOSSY_QUALITY = 90
# PNG level 3 encodes a 1360x765 draft about 3x faster than the default 6 for 1% more bytes.
_ENCODE_OPTIONS: dict[str, dict[str, object]] = {
    "png": {"compress_level": 3},
    "jpeg": {"quality": LOSSY_QUALITY, "optimize": True, "progressive": True},
    "webp": {"quality": LOSSY_QUALITY, "method": 4},
}


@dataclass(frozen=True)
class ImageInfo:
    """What a stored file is: its format and, for an image, its size in pixels (None for an
    export's zip bundle)."""

    format: str
    width: int | None
    height: int | None


def file_extension(file_format: str) -> str:
    """The extension a file of this format is named with (`jpg` for jpeg)."""
    return _FILE_EXTENSIONS.get(file_format, file_format)


def sniff_format(data: bytes) -> str | None:
    """The format named by the leading bytes (png, jpeg, webp), whatever the caller claims."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Check untrusted bytes: a supported format, at most `max_pixels` (checked from the header,
    before any pixel is allocated), and decodable to the end. Raises a 4xx DarkroomError."""
    return decode_checked(data, max_pixels)[0]


def decode_checked(data: bytes, max_pixels: int) -> tuple[ImageInfo, Image.Image]:
    """`inspect_image`'s checks, and the image they decoded, so a caller that needs the pixels
    does not decode the bytes a second time."""
    image_format = sniff_format(data)
    if image_format is None:
        raise UnsupportedMediaType("The file is not a PNG, JPEG or WebP image.")
    image = _open_header(data, image_format, max_pixels)
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImage(
            f"The image is {width}x{height} ({width * height:,} pixels); "
            f"the limit is {max_pixels:,} pixels."
        )
    try:
        if image_format == "png":
            # verify() checks every chunk's CRC, which decoding alone does not.
            image.verify()
            image = _open_header(data, image_format, max_pixels)
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"The {image_format.upper()} file is truncated or corrupt.") from exc
    return ImageInfo(image_format, width, height), image


def _open_header(data: bytes, image_format: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own limit, checked next, is the one that counts; Pillow's is only a backstop.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[image_format]])
    except Image.DecompressionBombError as exc:
        raise InvalidImage(f"The image declares more than {max_pixels:,} pixels.") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"The {image_format.upper()} file is truncated or corrupt.") from exc


def encode(image: Image.Image, image_format: str) -> bytes:
    """Encode an image as png, jpeg or webp; the same pixels always give the same bytes."""
    if image_format == "jpeg" and image.mode != "RGB":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, _PILLOW_FORMATS[image_format], **_ENCODE_OPTIONS[image_format])
    return buffer.getvalue()
