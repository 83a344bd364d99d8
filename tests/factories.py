"""Factories for test data: images of a given size and format, and raw job rows."""

import io
import secrets
import struct
import zlib
from datetime import timedelta

from PIL import Image

from app.ids import new_id
from app.models import Job, utcnow


def image_bytes(width: int = 64, height: int = 48, image_format: str = "PNG", **options) -> bytes:
    """An encoded image with a gradient, so it is not trivially compressible."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def unique_png(width: int = 96, height: int = 64) -> bytes:
    """A PNG no other test stores: assets with identical bytes share one stored file, and the
    Postgres half of the suite shares one database, so a test that checks a file goes away
    needs bytes of its own."""
    image = Image.open(io.BytesIO(image_bytes(width, height)))
    image.putpixel((0, 0), tuple(secrets.token_bytes(3)))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height: a decompression bomb's calling card."""
    return png_of(width, height, 2, zlib.compress(b"\x00" * 1024))


def uniform_png(width: int, height: int, row: bytes | None = None) -> bytes:
    """A large RGBA PNG made cheaply: every row the same (transparent black unless `row`, the
    filter byte and 4 bytes a pixel, is given), compressed a row at a time."""
    row = row if row is not None else b"\x00" * (1 + 4 * width)
    compressor = zlib.compressobj()
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return png_of(width, height, 6, pixels)


def png_of(width: int, height: int, colour_type: int, compressed: bytes) -> bytes:
    """A PNG of 8-bit `colour_type` (2 RGB, 6 RGBA) with these compressed rows, every CRC
    right whatever the rows hold."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", compressed)
        + chunk(b"IEND", b"")
    )


def queued_job_row(tenant_id: str, *, n: int = 1, age_seconds: float = 120, **request) -> Job:
    """A committed-but-never-enqueued generate job, as an API that crashed after commit leaves."""
    created = utcnow() - timedelta(seconds=age_seconds)
    body = {
        "prompt": "a lighthouse at dusk",
        "model": "local/draft",
        "n": n,
        "width": 96,
        "height": 64,
        "aspect_ratio": None,
        "size": "96x64",
        "output_format": "png",
        "seed": 7,
        "negative_prompt": None,
    } | request
    return Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        kind="generate",
        status="queued",
        model="local/draft",
        request=body,
        created_at=created,
        dispatches=1,
        dispatched_at=created,
        attempts=0,
    )
