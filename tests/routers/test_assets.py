"""POST /v1/assets and GET /v1/assets/{id}[/content]: uploads are untrusted, results immutable."""

import io
import time
import zlib

import pytest
from PIL import Image
from sqlalchemy import func, select

from app.config import Settings
from app.models import Asset
from tests.factories import image_bytes, png_declaring, png_of, uniform_png
from tests.support import embedded_only, serving


async def upload(client, auth, data: bytes, filename: str = "photo.png", content_type="image/png"):
    return await client.post(
        "/v1/assets", files={"file": (filename, data, content_type)}, headers=auth
    )


async def stored_asset_count(app) -> int:
    async with app.state.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Asset))


def stored_files(app) -> set:
    return {path for path in app.state.storage.root.rglob("*") if path.is_file()}


async def test_upload_then_read_then_download(client, auth):
    data = image_bytes(120, 80, "JPEG", quality=90)

    created = await upload(client, auth, data, "wrongly-named.png", "image/png")

    assert created.status_code == 201, created.text
    asset = created.json()
    assert created.headers["Location"] == f"/v1/assets/{asset['id']}"
    assert (asset["source"], asset["format"], asset["media_type"]) == (
        "upload",
        "jpeg",
        "image/jpeg",
    )
    assert (asset["width"], asset["height"], asset["bytes"]) == (120, 80, len(data))
    fetched = await client.get(f"/v1/assets/{asset['id']}", headers=auth)
    assert fetched.json() == asset
    content = await client.get(asset["url"], headers=auth)
    assert content.content == data
    assert content.headers["content-type"] == "image/jpeg"
    assert content.headers["etag"] == f'"{asset["content_hash"]}"'
    assert "immutable" in content.headers["cache-control"]


@embedded_only()
async def test_content_answers_304_for_a_matching_etag(client, auth):
    asset = (await upload(client, auth, image_bytes())).json()
    first = await client.get(asset["url"], headers=auth)

    again = await client.get(asset["url"], headers=auth | {"If-None-Match": first.headers["etag"]})

    assert again.status_code == 304
    assert again.content == b""


async def test_head_of_content_answers_the_get_headers_without_a_body(client, auth):
    data = image_bytes(120, 80, "JPEG", quality=90)
    asset = (await upload(client, auth, data, "a.jpg", "image/jpeg")).json()
    got = await client.get(asset["url"], headers=auth)

    head = await client.head(asset["url"], headers=auth)
    cached = await client.head(asset["url"], headers=auth | {"If-None-Match": got.headers["etag"]})
    anonymous = await client.head(asset["url"])

    assert head.status_code == 200, head.text
    assert head.content == b""
    assert head.headers["content-length"] == str(len(data)) == got.headers["content-length"]
    for name in ("content-type", "etag", "cache-control", "content-disposition"):
        assert head.headers.get(name) == got.headers.get(name), name
    assert (cached.status_code, cached.content) == (304, b"")
    assert anonymous.status_code == 401


async def test_downloads_are_named_for_the_asset_and_open_in_place(client, auth):
    png = (await upload(client, auth, image_bytes(64, 48, "PNG"))).json()
    jpeg = (await upload(client, auth, image_bytes(64, 48, "JPEG"), "a.jpeg", "image/jpeg")).json()

    for asset, extension in ((png, "png"), (jpeg, "jpg")):
        response = await client.get(asset["url"], headers=auth)
        expected = f'inline; filename="{asset["id"]}.{extension}"'
        assert response.headers["content-disposition"] == expected


@embedded_only()
async def test_webp_upload_is_accepted(client, auth):
    response = await upload(client, auth, image_bytes(64, 64, "WEBP"), "a.webp", "image/webp")

    assert response.status_code == 201
    assert response.json()["format"] == "webp"


def _truncated_jpeg() -> bytes:
    data = image_bytes(400, 300, "JPEG", quality=95)
    return data[: len(data) // 2]


def _corrupt_png() -> bytes:
    data = bytearray(image_bytes(200, 200, "PNG"))
    data[100:400] = b"\x00" * 300
    return bytes(data)


def _png_cut_short() -> bytes:
    """Every chunk whole with a right CRC, but its rows stop halfway down the image."""
    return png_of(64, 48, 2, zlib.compress(b"\x00" * (1 + 64 * 3) * 24))


def _png_with_unknown_filter() -> bytes:
    """Every row there, but one begins with filter type 9, which no decoder knows."""
    row = b"\x00" * (1 + 64 * 3)
    return png_of(64, 48, 2, zlib.compress(row * 20 + b"\x09" + row[1:] + row * 27))


def _png_with_broken_stream() -> bytes:
    """Rows whose compressed stream is damaged, under a CRC recomputed to match."""
    stream = bytearray(zlib.compress(bytes(range(256)) * 200))
    stream[40:60] = b"\xff" * 20
    return png_of(64, 48, 2, bytes(stream))


BAD_UPLOADS = [
    ("not an image", b"hello, I am plain text" * 10, 415, "unsupported-media-type"),
    ("gif", b"GIF89a" + b"\x00" * 100, 415, "unsupported-media-type"),
    ("truncated jpeg", _truncated_jpeg(), 422, "invalid-image"),
    ("corrupt png", _corrupt_png(), 422, "invalid-image"),
    ("png header only", image_bytes()[:40], 422, "invalid-image"),
    ("png cut short", _png_cut_short(), 422, "invalid-image"),
    ("png with an unknown filter", _png_with_unknown_filter(), 422, "invalid-image"),
    ("png with a broken stream", _png_with_broken_stream(), 422, "invalid-image"),
    ("40000x40000 bomb", png_declaring(40000, 40000), 422, "invalid-image"),
    ("over the pixel limit", png_declaring(8000, 6000), 422, "invalid-image"),
]


@pytest.mark.parametrize(
    ("data", "status", "slug"),
    [case[1:] for case in BAD_UPLOADS],
    ids=[case[0] for case in BAD_UPLOADS],
)
@embedded_only()
async def test_bad_upload_is_refused_and_leaves_nothing(app, client, auth, data, status, slug):
    before, files_before = await stored_asset_count(app), stored_files(app)
    started = time.perf_counter()

    response = await upload(client, auth, data)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(f"/{slug}")
    assert time.perf_counter() - started < 5
    assert await stored_asset_count(app) == before
    assert stored_files(app) == files_before


@embedded_only()
async def test_a_40_megapixel_upload_is_accepted_at_its_size(client, auth):
    response = await upload(client, auth, uniform_png(6000, 6600))

    assert response.status_code == 201, response.text
    assert (response.json()["width"], response.json()["height"]) == (6000, 6600)


@embedded_only()
async def test_pixel_limit_is_named_in_the_refusal(client, auth):
    response = await upload(client, auth, png_declaring(8000, 6000))

    assert "8000x6000" in response.json()["detail"]
    assert "40,000,000 pixels" in response.json()["detail"]


async def test_body_over_the_limit_is_413_and_the_app_keeps_serving(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", max_body_bytes=256 * 1024)
    async with serving(settings) as (application, client, auth):
        large = image_bytes(1200, 1200, "PNG", compress_level=0)
        assert len(large) > 256 * 1024

        declared = await upload(client, auth, large)
        streamed = await client.post(
            "/v1/assets",
            content=_chunks(_multipart(large)),
            headers=auth | {"Content-Type": "multipart/form-data; boundary=xyzzy"},
        )
        small = await upload(client, auth, image_bytes())

        assert declared.status_code == 413
        assert declared.headers["content-type"] == "application/problem+json"
        assert streamed.status_code == 413
        assert small.status_code == 201
        assert await stored_asset_count(application) == 1


@embedded_only()
async def test_unauthenticated_upload_is_refused_before_its_body_is_read(app, client):
    before = stored_files(app)

    response = await client.post(
        "/v1/assets",
        content=_chunks(_multipart(image_bytes(800, 800, "PNG"))),
        headers={"Content-Type": "multipart/form-data; boundary=xyzzy"},
    )

    assert response.status_code == 401
    assert stored_files(app) == before


@embedded_only()
async def test_weak_and_wildcard_etags_match(client, auth):
    asset = (await upload(client, auth, image_bytes())).json()
    tag = f'"{asset["content_hash"]}"'

    for header in (f"W/{tag}", f'"other", {tag}', "*"):
        response = await client.get(asset["url"], headers=auth | {"If-None-Match": header})
        assert response.status_code == 304, header
    assert (
        await client.get(asset["url"], headers=auth | {"If-None-Match": '"x"'})
    ).status_code == 200


def _multipart(data: bytes) -> bytes:
    head = (
        b'--xyzzy\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    return head + data + b"\r\n--xyzzy--\r\n"


async def _chunks(data: bytes):
    # No Content-Length: the limit must hold while the body streams in.
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]


async def test_generated_asset_shows_its_job_and_seed(client, auth):
    job = (
        await client.post(
            "/v1/generate",
            json={"prompt": "pears", "size": "128x128", "seed": 5},
            headers=auth | {"Prefer": "wait=30"},
        )
    ).json()
    asset_id = job["outputs"][0]["asset_id"]

    asset = (await client.get(f"/v1/assets/{asset_id}", headers=auth)).json()

    assert (asset["source"], asset["job_id"], asset["seed"]) == ("generated", job["id"], 5)
    assert (asset["width"], asset["height"]) == (128, 128)
    content = await client.get(asset["url"], headers=auth)
    assert Image.open(io.BytesIO(content.content)).size == (128, 128)
