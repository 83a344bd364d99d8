"""Encoding outputs and checking untrusted image bytes before anything trusts them."""

import io
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from isal import isal_zlib
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
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Channels of each PNG colour type (grey, RGB, palette, grey+alpha, RGBA).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
# Adam7's passes: first column and row, then the step between columns and rows.
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
# A PNG's image data is checked this many inflated bytes at a time.
PNG_CHECK_STEP = 1024 * 1024
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


def inspect_header(data: bytes, max_pixels: int) -> ImageInfo:
    """The format and size the bytes declare, refused (4xx) unless a supported format of at most
    `max_pixels`; nothing is decoded."""
    image_format = sniff_format(data)
    if image_format is None:
        raise UnsupportedMediaType("The file is not a PNG, JPEG or WebP image.")
    width, height = _open_header(data, image_format, max_pixels).size
    _check_pixels(width, height, max_pixels)
    return ImageInfo(image_format, width, height)


def check_decodes(data: bytes, info: ImageInfo) -> None:
    """InvalidImage unless the bytes `inspect_header` passed decode to the end, holding no full
    decoded copy where the format allows: a PNG's compressed rows are inflated a piece at a time
    and dropped (every chunk's CRC checked too), a JPEG is decoded at an eighth of its size (all
    of its data is still read), and only a WebP is decoded whole, and dropped at once."""
    try:
        if info.format == "png":
            _check_png(data)
            return
        image = _open_header(data, info.format, (info.width or 0) * (info.height or 0))
        if info.format == "jpeg":
            image.draft(image.mode, (1, 1))
        image.load()
        image.close()
    except (OSError, SyntaxError, ValueError, EOFError, isal_zlib.error) as exc:
        raise InvalidImage(f"The {info.format.upper()} file is truncated or corrupt.") from exc


def check_memory(info: ImageInfo, data: bytes) -> int:
    """The bytes `check_decodes` holds at its peak for this image, beside `data` itself: a
    progressive JPEG keeps every DCT coefficient (up to 6 bytes a pixel), a WebP decodes to RGBA
    and is copied once."""
    pixels = (info.width or 0) * (info.height or 0)
    if info.format == "png":
        return PNG_CHECK_STEP * 4
    if info.format == "jpeg":
        header = Image.open(io.BytesIO(data))
        progressive = header.info.get("progressive") or header.info.get("progression")
        return pixels * 6 if progressive else pixels * 3 // 64 + PNG_CHECK_STEP
    return pixels * 8


def decode_checked(data: bytes, max_pixels: int) -> tuple[ImageInfo, Image.Image]:
    """`inspect_header`'s and `check_decodes`' checks, and the image they decoded, for a caller
    that needs the pixels: one decode, so one decoded copy."""
    image_format = sniff_format(data)
    if image_format is None:
        raise UnsupportedMediaType("The file is not a PNG, JPEG or WebP image.")
    image = _open_header(data, image_format, max_pixels)
    width, height = image.size
    _check_pixels(width, height, max_pixels)
    try:
        if image_format == "png":
            # verify() checks every chunk's CRC, which decoding alone does not.
            image.verify()
            image = _open_header(data, image_format, max_pixels)
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"The {image_format.upper()} file is truncated or corrupt.") from exc
    return ImageInfo(image_format, width, height), image


def open_checked(data: bytes, max_pixels: int) -> tuple[ImageInfo, Image.Image]:
    """`decode_checked`'s checks, and the image opened but, for a PNG or JPEG, not decoded: its
    pixels are decoded on first use, so a caller that ends up storing the bytes as they are
    never pays for a decode. A WebP's check is a decode, so it comes decoded."""
    info = inspect_header(data, max_pixels)
    if info.format == "webp":
        return decode_checked(data, max_pixels)
    check_decodes(data, info)
    return info, _open_header(data, info.format, max_pixels)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InvalidImage(
            f"The image is {width}x{height} ({width * height:,} pixels); "
            f"the limit is {max_pixels:,} pixels."
        )


def _check_png(data: bytes) -> None:
    """Check a PNG as decoding it would, without keeping its pixels: every chunk whole with a
    right CRC, and the image data inflating to at least every row, each led by a known filter.
    Raises ValueError (or an ISA-L inflate error) where a decoder would fail. ISA-L inflates the
    same stream as zlib in about a third of the time."""
    header, inflater = None, isal_zlib.decompressobj()
    rows = None
    position = len(PNG_SIGNATURE)
    while True:
        if position + 12 > len(data):
            raise ValueError("truncated PNG: no IEND chunk")
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body_end = position + 8 + length
        if length > 2**31 - 1 or body_end + 4 > len(data):
            raise ValueError("truncated PNG chunk")
        body = data[position + 8 : body_end]
        (crc,) = struct.unpack(">I", data[body_end : body_end + 4])
        if isal_zlib.crc32(body, isal_zlib.crc32(kind)) != crc:
            raise ValueError(f"bad CRC in PNG chunk {kind!r}")
        position = body_end + 4
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            if header is None:
                raise ValueError("PNG image data before its header")
            rows = rows or _PngRows(header)
            rows.feed(inflater, body)
        elif kind == b"IEND":
            break
    if rows is None or not rows.complete():
        raise ValueError("truncated PNG image data")


class _PngRows:
    """Follows a PNG's inflated image data without keeping it: how much has come, and that each
    row (of every interlace pass) starts with a filter type a decoder knows (0 to 4)."""

    def __init__(self, header: bytes) -> None:
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header[:13])
        if colour not in _PNG_CHANNELS:
            raise ValueError(f"unknown PNG colour type {colour}")
        bits = depth * _PNG_CHANNELS[colour]
        self.passes: list[tuple[int, int, int]] = []  # (first byte, rows, bytes a row)
        start = 0
        for left, top, step_x, step_y in _ADAM7 if interlace else ((0, 0, 1, 1),):
            columns = -(-(width - left) // step_x) if width > left else 0
            lines = -(-(height - top) // step_y) if height > top else 0
            if columns and lines:
                row_bytes = 1 + (columns * bits + 7) // 8
                self.passes.append((start, lines, row_bytes))
                start += lines * row_bytes
        self.expected = start
        self.seen = 0

    def feed(self, inflater: "isal_zlib._Decompress", compressed: bytes) -> None:
        """Inflate a chunk's data a piece at a time, checking each piece's filter bytes. The
        inflater may take in all of `compressed` and still hold output back, so it is asked
        again, with nothing new, until it gives no more."""
        while self.seen < self.expected:
            piece = inflater.decompress(compressed, PNG_CHECK_STEP)
            compressed = inflater.unconsumed_tail
            if not piece:
                return
            self._check_filters(piece)
            self.seen += len(piece)

    def complete(self) -> bool:
        return self.seen >= self.expected

    def _check_filters(self, piece: bytes) -> None:
        end = self.seen + len(piece)
        values = np.frombuffer(piece, np.uint8)
        for start, lines, row_bytes in self.passes:
            first = max(start, start + -(-(self.seen - start) // row_bytes) * row_bytes)
            last = min(end, start + lines * row_bytes)
            if (
                first < last
                and (values[first - self.seen : last - self.seen : row_bytes] > 4).any()
            ):
                raise ValueError("unknown PNG filter type")


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


def encode(image: Image.Image, image_format: str, lossy_quality: int | None = None) -> bytes:
    """Encode an image as png, jpeg or webp (JPEG and WebP at `lossy_quality`, 0-100, if
    given); the same pixels always give the same bytes."""
    if image_format == "jpeg" and image.mode != "RGB":
        image = image.convert("RGB")
    options = _ENCODE_OPTIONS[image_format]
    if lossy_quality is not None and "quality" in options:
        options = options | {"quality": lossy_quality}
    buffer = io.BytesIO()
    image.save(buffer, _PILLOW_FORMATS[image_format], **options)
    return buffer.getvalue()
