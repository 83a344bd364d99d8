"""POST /v1/edit: masked edits that leave the rest untouched, inputs by asset, URL or base64
stored as the tenant's assets, refused inputs that change nothing, and lineage."""

import asyncio
import base64
import io
import socket

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw
from sqlalchemy import func, select

from app.config import Settings
from app.models import Asset, Job
from tests.factories import image_bytes, uniform_png
from tests.fakes.image_host import ImageHost, Page
from tests.support import embedded_only, serving, wait_until

WAIT = {"Prefer": "wait=30"}


def photo(width: int = 96, height: int = 64, seed: int = 1) -> bytes:
    """A textured RGB PNG, so an edit has something to change."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(40, 220, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def mask_png(width: int, height: int, box: tuple[int, int, int, int]) -> bytes:
    """An opaque PNG whose `box` is fully transparent: the area to change."""
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    ImageDraw.Draw(mask).rectangle(box, fill=(0, 0, 0, 0))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()


async def upload(client, auth, data: bytes) -> str:
    response = await client.post(
        "/v1/assets", files={"file": ("x.png", data, "image/png")}, headers=auth
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def download(client, auth, output: dict) -> Image.Image:
    response = await client.get(output["url"], headers=auth)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


async def counts(app) -> tuple[int, int]:
    async with app.state.sessionmaker() as session:
        assets = await session.scalar(select(func.count()).select_from(Asset))
        jobs = await session.scalar(select(func.count()).select_from(Job))
    return assets, jobs


async def masked_tint(
    client: httpx.AsyncClient,
    auth: dict,
    source: bytes,
    mask: tuple[int, int, tuple[int, int, int, int]],
    **fields: object,
) -> httpx.Response:
    """`POST /v1/edit` (waiting) of `source` with a warm tint at full strength inside the mask
    (width, height, box), with these fields besides."""
    image_id = await upload(client, auth, source)
    mask_id = await upload(client, auth, mask_png(*mask))
    body = {
        "image": {"asset_id": image_id},
        "mask": {"asset_id": mask_id},
        "prompt": "warm golden sunset tint",
        "strength": 1.0,
    }
    return await client.post("/v1/edit", json=body | fields, headers=auth | WAIT)


async def test_masked_edit_changes_only_the_masked_area(client, auth):
    source = photo()
    response = await masked_tint(client, auth, source, (96, 64, (20, 10, 59, 39)), seed=5)

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["kind"] == "edit" and job["status"] == "succeeded"
    [output] = job["outputs"]
    assert (output["width"], output["height"]) == (96, 64)
    edited = await download(client, auth, output)
    assert_changed_only_inside(edited, source, (20, 10, 60, 40))


def assert_changed_only_inside(edited: Image.Image, source: bytes, box: tuple) -> None:
    """The edit left every pixel outside `box` (left, top, right, bottom) as the source had it,
    and changed some inside."""
    after = np.asarray(edited.convert("RGB"))
    before = np.asarray(Image.open(io.BytesIO(source)).convert("RGB"))
    left, top, right, bottom = box
    outside = np.ones(before.shape[:2], bool)
    outside[top:bottom, left:right] = False
    assert np.array_equal(after[outside], before[outside])
    assert not np.array_equal(after[~outside], before[~outside])


@embedded_only()
async def test_a_draft_masked_edit_also_leaves_unmasked_pixels_unchanged(client, auth):
    source = photo(320, 240)
    response = await masked_tint(
        client, auth, source, (320, 240, (40, 30, 199, 149)), seed=5, quality="draft"
    )

    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    assert output["details"]["generated_size"] == "320x240"
    edited = await download(client, auth, output)
    assert_changed_only_inside(edited, source, (40, 30, 200, 150))


async def test_edit_output_lists_its_inputs_and_lineage_runs_oldest_first(client, auth):
    image_id = await upload(client, auth, photo())
    mask_id = await upload(client, auth, mask_png(96, 64, (0, 0, 40, 40)))
    reference = image_bytes(32, 32)
    response = await client.post(
        "/v1/edit",
        json={
            "image": {"asset_id": image_id},
            "mask": {"asset_id": mask_id},
            "references": [
                {"image": {"b64": base64.b64encode(reference).decode()}, "role": "color"}
            ],
            "prompt": "cool blue evening",
        },
        headers=auth | WAIT,
    )
    assert response.status_code == 200, response.text
    output_id = response.json()["outputs"][0]["asset_id"]

    asset = (await client.get(f"/v1/assets/{output_id}", headers=auth)).json()
    roles = {parent["role"]: parent["asset_id"] for parent in asset["parents"]}
    assert roles["source"] == image_id and roles["mask"] == mask_id
    reference_asset = (await client.get(f"/v1/assets/{roles['reference']}", headers=auth)).json()
    assert reference_asset["source"] == "reference"
    assert (reference_asset["width"], reference_asset["height"]) == (32, 32)
    assert asset["job_id"] == response.json()["id"]

    lineage = (await client.get(f"/v1/assets/{output_id}/lineage", headers=auth)).json()["data"]
    ids = [item["id"] for item in lineage]
    assert ids[-1] == output_id
    assert set(ids) == {image_id, mask_id, roles["reference"], output_id}
    assert ids.index(image_id) < ids.index(output_id)


async def test_lineage_follows_an_edit_of_an_edit(client, auth):
    image_id = await upload(client, auth, photo())
    first = await client.post(
        "/v1/edit", json={"image": {"asset_id": image_id}, "prompt": "sepia"}, headers=auth | WAIT
    )
    first_output = first.json()["outputs"][0]["asset_id"]
    second = await client.post(
        "/v1/edit",
        json={"image": {"asset_id": first_output}, "prompt": "more contrast"},
        headers=auth | WAIT,
    )
    second_output = second.json()["outputs"][0]["asset_id"]

    lineage = (await client.get(f"/v1/assets/{second_output}/lineage", headers=auth)).json()
    assert [item["id"] for item in lineage["data"]] == [image_id, first_output, second_output]


@embedded_only()
async def test_mask_of_the_wrong_size_is_refused_and_changes_nothing(app, client, auth):
    image_id = await upload(client, auth, photo(96, 64))
    before = await counts(app)

    response = await client.post(
        "/v1/edit",
        json={
            "image": {"asset_id": image_id},
            "mask": {"b64": base64.b64encode(mask_png(64, 64, (0, 0, 9, 9))).decode()},
            "prompt": "x",
        },
        headers=auth,
    )

    assert response.status_code == 422
    problem = response.json()
    assert "mask is 64x64 but the image is 96x64" in problem["detail"]
    assert problem["field"] == "mask"
    assert await counts(app) == before


@embedded_only()
async def test_mask_without_alpha_is_refused(client, auth):
    image_id = await upload(client, auth, photo(96, 64))
    response = await client.post(
        "/v1/edit",
        json={
            "image": {"asset_id": image_id},
            "mask": {"b64": base64.b64encode(photo(96, 64)).decode()},
        },
        headers=auth,
    )
    assert response.status_code == 422
    assert "no alpha channel" in response.json()["detail"]


@embedded_only()
async def test_more_references_than_the_model_takes_is_refused(app, client, auth):
    image_id = await upload(client, auth, photo())
    reference = {"image": {"asset_id": image_id}, "role": "style"}
    before = await counts(app)

    response = await client.post(
        "/v1/edit",
        json={"image": {"asset_id": image_id}, "references": [reference] * 5},
        headers=auth,
    )

    assert response.status_code == 422
    assert "at most 4 reference images" in response.json()["detail"]
    assert await counts(app) == before


@embedded_only()
async def test_another_tenants_asset_is_not_found(client, auth, other_auth):
    theirs = await upload(client, other_auth, photo())

    as_image = await client.post("/v1/edit", json={"image": {"asset_id": theirs}}, headers=auth)
    mine = await upload(client, auth, photo())
    as_reference = await client.post(
        "/v1/edit",
        json={"image": {"asset_id": mine}, "references": [{"image": {"asset_id": theirs}}]},
        headers=auth,
    )

    assert as_image.status_code == 404
    assert as_reference.status_code == 404
    assert as_reference.json()["detail"].startswith("references[0].image:")


@pytest.mark.parametrize(
    "body",
    [
        {"image": {}},
        {"image": {"asset_id": "ast_x", "url": "https://example.com/a.png"}},
        {"image": {"b64": "not base64!"}},
        {"image": {"b64": base64.b64encode(b"GIF89a not an image").decode()}},
        {"image": {"asset_id": "ast_x"}, "strength": 1.5},
        {"image": {"asset_id": "ast_x"}, "keep": ["everything"]},
        {"image": {"asset_id": "ast_x"}, "size": "64x64", "aspect_ratio": "1:1"},
    ],
)
@embedded_only()
async def test_bad_bodies_are_problems(client, auth, body):
    response = await client.post("/v1/edit", json=body, headers=auth)
    assert response.status_code in (404, 415, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_edit_keeps_the_source_size_unless_asked(client, auth):
    image_id = await upload(client, auth, photo(120, 80))
    same = await client.post(
        "/v1/edit", json={"image": {"asset_id": image_id}, "prompt": "x"}, headers=auth | WAIT
    )
    wide = await client.post(
        "/v1/edit",
        json={"image": {"asset_id": image_id}, "aspect_ratio": "16:9", "prompt": "x"},
        headers=auth | WAIT,
    )
    sized = await client.post(
        "/v1/edit",
        json={"image": {"asset_id": image_id}, "size": "200x100", "prompt": "x"},
        headers=auth | WAIT,
    )
    assert (same.json()["request"]["width"], same.json()["request"]["height"]) == (120, 80)
    wide_output = wide.json()["outputs"][0]
    assert wide_output["width"] * 9 == wide_output["height"] * 16
    assert abs(wide_output["width"] * wide_output["height"] - 120 * 80) < 120 * 80 * 0.2
    assert (sized.json()["outputs"][0]["width"], sized.json()["outputs"][0]["height"]) == (200, 100)


@embedded_only()
async def test_keep_becomes_explicit_instructions_in_the_prompt(client, auth):
    image_id = await upload(client, auth, photo())
    response = await client.post(
        "/v1/edit",
        json={
            "image": {"asset_id": image_id},
            "prompt": "put the mug on a beach at noon",
            "keep": ["product_angle", "colors"],
        },
        headers=auth,
    )
    request = response.json()["request"]
    assert request["brief"] == "put the mug on a beach at noon"
    assert "put the mug on a beach at noon" in request["prompt"]
    assert "same angle" in request["prompt"]
    assert request["keep"] == ["product_angle", "colors"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/cat.png",
        "http://[::1]:{port}/cat.png",
        "http://10.0.0.1/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.100.100.200/cat.png",
        "http://2130706433:{port}/cat.png",
        "http://0x7f.1:{port}/cat.png",
        "http://017700000001:{port}/cat.png",
    ],
)
@embedded_only()
async def test_urls_to_internal_addresses_are_refused_before_any_fetch(app, client, auth, url):
    async with ImageHost(pages={"/cat.png": Page(image_bytes())}) as host:
        image_id = await upload(client, auth, photo())
        before = await counts(app)

        response = await client.post(
            "/v1/edit",
            json={
                "image": {"asset_id": image_id},
                "references": [{"image": {"url": url.format(port=host.port)}}],
            },
            headers=auth,
        )

        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"].endswith("/url-refused")
        assert problem["detail"].startswith("references[0].image:")
        assert host.paths == []
        assert await counts(app) == before


@pytest.fixture
def cdn_resolves_to_loopback(monkeypatch):
    """`cdn.example.test` resolves to 127.0.0.1, as a public name pointed inward would."""
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == "cdn.example.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


async def test_url_inputs_are_fetched_stored_and_redirects_rechecked(
    tmp_path, cdn_resolves_to_loopback
):
    # Only the name cdn.example.test is trusted, not the loopback address behind it.
    settings = Settings(data_dir=tmp_path / "var", url_allow="cdn.example.test")
    async with (
        ImageHost(pages={"/cat.png": Page(image_bytes(40, 30))}) as host,
        serving(settings) as (app, client, auth),
    ):
        host.pages["/go"] = Page(status=302, headers={"location": host.url("/cat.png")})
        fetched = await client.post(
            "/v1/edit",
            json={"image": {"url": host.url("/cat.png", "cdn.example.test")}, "prompt": "x"},
            headers=auth | WAIT,
        )
        before = await counts(app)
        redirected = await client.post(
            "/v1/edit",
            json={"image": {"url": host.url("/go", "cdn.example.test")}},
            headers=auth,
        )

        assert fetched.status_code == 200, fetched.text
        source_id = fetched.json()["request"]["image"]
        source = (await client.get(f"/v1/assets/{source_id}", headers=auth)).json()
        assert (source["source"], source["width"], source["height"]) == ("reference", 40, 30)
        assert redirected.status_code == 422
        assert "redirected to a refused URL" in redirected.json()["detail"]
        assert host.paths == ["/cat.png", "/go"]
        assert await counts(app) == before


async def test_a_host_port_allow_entry_opens_that_port_only_on_every_hop(tmp_path):
    async with (
        ImageHost(pages={"/cat.png": Page(image_bytes(40, 30))}) as trusted,
        ImageHost(pages={"/cat.png": Page(image_bytes())}) as other_port,
    ):
        settings = Settings(data_dir=tmp_path / "var", url_allow=f"127.0.0.1:{trusted.port}")
        trusted.pages["/go"] = Page(status=302, headers={"location": other_port.url("/cat.png")})
        async with serving(settings) as (app, client, auth):
            fetched = await client.post(
                "/v1/edit", json={"image": {"url": trusted.url("/cat.png")}}, headers=auth | WAIT
            )
            before = await counts(app)
            refused = await client.post(
                "/v1/edit", json={"image": {"url": other_port.url("/cat.png")}}, headers=auth
            )
            redirected = await client.post(
                "/v1/edit", json={"image": {"url": trusted.url("/go")}}, headers=auth
            )

            assert fetched.status_code == 200, fetched.text
            assert refused.status_code == redirected.status_code == 422
            assert "127.0.0.1, a loopback address" in refused.json()["detail"]
            assert "DARKROOM_URL_ALLOW" in refused.json()["detail"]
            assert "redirected to a refused URL" in redirected.json()["detail"]
            assert other_port.paths == []
            assert trusted.paths == ["/cat.png", "/go"]
            assert await counts(app) == before


@embedded_only()
async def test_same_edit_and_seed_give_the_same_bytes(client, auth):
    image_id = await upload(client, auth, photo())
    mask_id = await upload(client, auth, mask_png(96, 64, (10, 10, 50, 50)))
    body = {
        "image": {"asset_id": image_id},
        "mask": {"asset_id": mask_id},
        "prompt": "vintage",
        "seed": 99,
    }
    first = await client.post("/v1/edit", json=body, headers=auth | WAIT)
    second = await client.post("/v1/edit", json=body, headers=auth | WAIT)
    first_bytes = (await client.get(first.json()["outputs"][0]["url"], headers=auth)).content
    second_bytes = (await client.get(second.json()["outputs"][0]["url"], headers=auth)).content
    assert first_bytes == second_bytes


@embedded_only()
async def test_an_export_bundle_or_avif_is_not_an_edit_source(app, client, auth):
    image_id = await upload(client, auth, photo())
    export = await client.post(
        "/v1/export",
        json={"asset_id": image_id, "targets": ["og-image"], "format": "avif", "bundle": True},
        headers=auth | WAIT,
    )
    assert export.status_code == 200, export.text
    avif, bundle = export.json()["outputs"]
    before = await counts(app)

    for asset_id in (avif["asset_id"], bundle["asset_id"]):
        edit = await client.post("/v1/edit", json={"image": {"asset_id": asset_id}}, headers=auth)
        assert edit.status_code == 422, edit.text
        assert "use a PNG, JPEG or WebP image" in edit.json()["detail"]
    by_index = await client.post(
        "/v1/variants",
        json={"source": {"job_id": export.json()["id"], "index": 1}},
        headers=auth,
    )
    assert by_index.status_code == 422
    assert await counts(app) == before


@embedded_only()
async def test_a_refused_webhook_is_checked_before_any_input_is_fetched(app, client, auth):
    async with ImageHost(pages={"/cat.png": Page(image_bytes())}) as host:
        before = await counts(app)
        response = await client.post(
            "/v1/edit",
            json={
                "image": {"url": host.url("/cat.png")},
                "webhook_url": "http://169.254.169.254/hook",
            },
            headers=auth,
        )
        assert response.status_code == 422
        assert response.json()["type"].endswith("/url-refused")
        assert "169.254.169.254" in response.json()["detail"]
        assert host.paths == []
        assert await counts(app) == before


async def test_masked_edit_of_a_source_larger_than_its_output_changes_only_the_masked_area(
    client, auth
):
    source = image_bytes(1920, 1280)
    mask = (1920, 1280, (400, 200, 1199, 799))
    response = await masked_tint(client, auth, source, mask, size="960x640")

    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    edited = np.asarray((await download(client, auth, output)).convert("RGB"), np.int16)
    assert edited.shape == (640, 960, 3)
    scaled = Image.open(io.BytesIO(source)).resize((960, 640), Image.Resampling.LANCZOS)
    expected = np.asarray(scaled.convert("RGB"), np.int16)
    # The mask, scaled with the source, is (200, 100)-(599, 399); a pixel of slack at its edge.
    outside = np.ones((640, 960), bool)
    outside[99:401, 199:601] = False
    assert np.abs(edited[outside] - expected[outside]).max() <= 2
    assert np.abs(edited[110:390, 210:590] - expected[110:390, 210:590]).mean() > 5


def _banded_png(width: int, height: int) -> bytes:
    """A large RGBA PNG, cheap to make: every row a run of grey, red and clear pixels."""
    pixels = (b"\x80\x80\x80\xff" * (width // 3) + b"\xff\x20\x20\xff" * (width // 3)).ljust(
        4 * width, b"\x00"
    )
    return uniform_png(width, height, b"\x00" + pixels)


@embedded_only()
async def test_a_40_megapixel_image_is_edited_to_its_size_within_the_side_limits(client, auth):
    image_id = await upload(client, auth, _banded_png(6000, 6600))

    response = await client.post(
        "/v1/edit",
        json={"image": {"asset_id": image_id}, "prompt": "warm vintage look"},
        headers=auth | WAIT,
    )

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded", job
    assert job["request"]["size"] == "3724x4096"
    output = await download(client, auth, job["outputs"][0])
    assert output.size == (3724, 4096)
    # The grading reached the pixels: the grey third is no longer grey.
    red, _, blue, _ = output.getpixel((100, 2000))
    assert red > blue


async def test_edits_larger_than_the_memory_budget_each_run_alone_and_succeed(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", memory_budget_mb=1)
    async with serving(settings) as (_, client, auth):
        image_id = await upload(client, auth, _banded_png(4000, 3000))
        body = {"image": {"asset_id": image_id}, "prompt": "cool blue", "size": "1024x768"}

        responses = await asyncio.gather(
            *(client.post("/v1/edit", json=body, headers=auth | WAIT) for _ in range(2))
        )

        for response in responses:
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "succeeded"
            output = await download(client, auth, response.json()["outputs"][0])
            assert output.size == (1024, 768)


async def test_a_draft_edit_with_a_transparent_background_is_a_cut_out_at_half_resolution(
    client, auth
):
    image_id = await upload(client, auth, photo(320, 240))
    body = {
        "image": {"asset_id": image_id},
        "prompt": "warmer light",
        "quality": "draft",
        "background": "transparent",
    }

    response = await client.post("/v1/edit", json=body, headers=auth | WAIT)

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["request"]["native_quality"] == {"local/draft": "half resolution"}
    output = job["outputs"][0]
    assert output["details"]["generated_size"] == "160x120"
    image = await download(client, auth, output)
    assert image.size == (320, 240) and image.mode == "RGBA"
    alpha = image.getchannel("A")
    assert alpha.getpixel((0, 0)) == 0 and alpha.getpixel((160, 120)) == 255


async def test_an_edit_asking_for_transparency_in_jpeg_is_refused_before_storing_inputs(
    app, client, auth
):
    before = await counts(app)
    body = {
        "image": {"b64": base64.b64encode(photo()).decode()},
        "prompt": "warmer light",
        "background": "transparent",
        "output_format": "jpeg",
    }

    response = await client.post("/v1/edit", json=body, headers=auth)

    assert response.status_code == 422, response.text
    assert response.json()["field"] == "background"
    assert await counts(app) == before


@pytest.mark.parametrize("app", ["postgres"], indirect=True)
async def test_concurrent_edits_storing_the_same_images_in_swapped_order_both_go_through(
    client, auth, other_auth
):
    first, second = (base64.b64encode(photo(seed=seed)).decode() for seed in (71, 72))

    def edit(image: str, reference: str) -> dict:
        return {
            "image": {"b64": image},
            "references": [{"image": {"b64": reference}, "role": "color"}],
            "prompt": "warmer light",
        }

    responses = await asyncio.gather(
        *(
            client.post("/v1/edit", json=edit(image, reference), headers=headers)
            for _ in range(3)
            for image, reference, headers in (
                (first, second, auth),
                (second, first, other_auth),
            )
        )
    )

    assert [response.status_code for response in responses] == [202] * 6, [
        response.text for response in responses
    ]


async def test_other_requests_store_while_an_edit_waits_for_a_slow_reference_url(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", url_allow="127.0.0.1")
    # The reference is answered only once another request has stored its upload.
    stored_meanwhile = asyncio.Event()
    slow = Page(image_bytes(40, 30), held=stored_meanwhile)
    async with (
        ImageHost(pages={"/slow.png": slow}) as host,
        serving(settings) as (_, client, auth),
    ):
        body = {
            "image": {"b64": base64.b64encode(photo()).decode()},
            "references": [{"image": {"url": host.url("/slow.png")}}],
            "prompt": "warmer light",
        }

        async def upload_meanwhile() -> None:
            await wait_until(lambda: _requested(host), seconds=10)
            try:
                await upload(client, auth, photo(seed=9))
            finally:
                stored_meanwhile.set()

        edited, _ = await asyncio.gather(
            client.post("/v1/edit", json=body, headers=auth), upload_meanwhile()
        )

    assert edited.status_code == 202, edited.text


async def _requested(host: ImageHost) -> bool:
    return bool(host.paths)
