"""The OpenAI-compatible Images API, driven by the official `openai` client exactly as a
product would use it: only `base_url` and `api_key` change."""

import base64
import io
import time
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from fastapi import FastAPI
from PIL import Image

from app.config import Settings
from app.imaging.geometry import parse_size
from tests.factories import image_bytes
from tests.fakes.openai_images import API_KEY, FakeOpenAIImages, moderation_blocked, usage_for
from tests.support import embedded_only, serving, wait_for_final


@pytest.fixture
async def openai_client(app: FastAPI, auth: dict) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official client pointed at Darkroom with the test tenant's key."""
    async with client_for(app, auth["Authorization"].removeprefix("Bearer ")) as client:
        yield client


def client_for(app: FastAPI, api_key: str) -> openai.AsyncOpenAI:
    transport = httpx.ASGITransport(app=app)
    return openai.AsyncOpenAI(
        base_url="http://darkroom.test/v1",
        api_key=api_key,
        http_client=httpx.AsyncClient(transport=transport, timeout=120),
        max_retries=0,
    )


def decode(b64: str | None) -> Image.Image:
    assert b64, "expected base64 image data"
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


async def job_of_latest(client: httpx.AsyncClient, auth: dict) -> dict:
    page = (await client.get("/v1/jobs", headers=auth, params={"limit": 1})).json()
    return page["data"][0]


async def test_generate_returns_images_of_the_requested_size(openai_client, client, auth):
    result = await openai_client.images.generate(
        model="local/draft", prompt="a lighthouse at dusk", n=2, size="640x384"
    )

    assert len(result.data) == 2
    for item in result.data:
        image = decode(item.b64_json)
        assert image.format == "PNG" and image.size == (640, 384)
    assert result.size == "640x384" and result.output_format == "png"
    assert result.background == "opaque"
    assert abs(result.created - time.time()) < 120
    # The call is recorded as an ordinary Darkroom job with its outputs as assets.
    job = await job_of_latest(client, auth)
    assert job["kind"] == "generate" and job["status"] == "succeeded"
    assert job["request"]["size"] == "640x384" and len(job["outputs"]) == 2
    # The optimizer's prompt, as the model was given it, is OpenAI's revised prompt.
    assert "lighthouse" in result.data[0].revised_prompt
    assert result.data[0].revised_prompt == job["request"]["prompt"] != job["request"]["brief"]
    stored = await client.get(job["outputs"][0]["url"], headers=auth)
    assert stored.content == base64.b64decode(result.data[0].b64_json)


async def test_generate_with_format_and_user(openai_client, client, auth):
    result = await openai_client.images.with_raw_response.generate(
        model="local/draft",
        prompt="a red bicycle by a canal",
        size="512x512",
        output_format="webp",
        quality="high",
        user="end-user-7",
    )

    answer = result.parse()
    image = decode(answer.data[0].b64_json)
    assert image.format == "WEBP" and image.size == (512, 512)
    assert answer.output_format == "webp" and answer.quality == "high"
    assert result.headers["Darkroom-Model"] == "local/draft"
    job = await job_of_latest(client, auth)
    assert job["model"] == "local/draft"
    assert job["metadata"] == {"user": "end-user-7"}


async def test_a_bare_openai_name_not_served_here_is_not_found_and_names_the_setting(
    openai_client, client, auth
):
    # No OpenAI key on this server: the caller asked for OpenAI's model and must not get
    # another one silently.
    with pytest.raises(openai.NotFoundError) as raised:
        await openai_client.images.generate(model="gpt-image-2", prompt="a red bicycle")

    assert raised.value.code == "model_not_found" and raised.value.param == "model"
    assert "DARKROOM_OPENAI_API_KEY" in raised.value.message
    jobs = (await client.get("/v1/jobs", headers=auth)).json()["data"]
    assert jobs == []


@pytest.mark.parametrize("model", ["midjourney-v7", "dall-e-3", "gpt-image-1"])
async def test_a_model_nobody_serves_is_not_found(openai_client, model):
    with pytest.raises(openai.NotFoundError) as raised:
        await openai_client.images.generate(model=model, prompt="a red bicycle")

    assert raised.value.code == "model_not_found"
    assert model in raised.value.message


async def test_generate_defaults_to_one_image_at_the_models_default_size(openai_client):
    result = await openai_client.images.generate(prompt="a quiet harbour", size="auto")

    assert len(result.data) == 1
    assert decode(result.data[0].b64_json).size == (1024, 1024)


async def test_response_format_url_is_a_signed_link_that_needs_no_key(openai_client, client):
    result = await openai_client.images.generate(
        model="local/draft", prompt="a field of tulips", size="256x256", response_format="url"
    )

    url = result.data[0].url
    assert url and result.data[0].b64_json is None
    assert url.startswith("http://darkroom.test/v1/assets/ast_") and "signature=" in url
    content = await client.get(url)
    assert content.status_code == 200
    assert Image.open(io.BytesIO(content.content)).size == (256, 256)
    tampered = await client.get(url.replace("signature=", "signature=x"))
    assert tampered.status_code == 403


async def test_a_retry_with_the_same_idempotency_key_returns_the_same_job(
    openai_client, client, auth
):
    retry = {"Idempotency-Key": "openai-retry-1"}

    first = await openai_client.images.generate(
        prompt="a harbour", size="128x128", extra_headers=retry
    )
    again = await openai_client.images.generate(
        prompt="a harbour", size="128x128", extra_headers=retry
    )

    assert again.data[0].b64_json == first.data[0].b64_json
    page = (await client.get("/v1/jobs", headers=auth)).json()
    assert len(page["data"]) == 1


@embedded_only()
async def test_a_bad_key_is_an_authentication_error(app):
    async with client_for(app, "dk_not_a_real_key") as bad_client:
        with pytest.raises(openai.AuthenticationError) as raised:
            await bad_client.images.generate(prompt="anything")

    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"
    assert raised.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("arguments", "param"),
    [
        ({"size": "5000x5000"}, "size"),
        ({"size": "big"}, "size"),
        ({"n": 11}, "n"),
        ({"output_format": "gif"}, "output_format"),
        ({"background": "transparent", "output_format": "jpeg"}, "background"),
        ({"quality": "max"}, "quality"),
        ({"prompt": ""}, "prompt"),
        ({"extra_body": {"style_preset": "noir"}}, "style_preset"),
    ],
)
@embedded_only()
async def test_bad_input_is_a_bad_request_error_naming_the_param(openai_client, arguments, param):
    call = {"prompt": "a cat"} | arguments

    with pytest.raises(openai.BadRequestError) as raised:
        await openai_client.images.generate(**call)

    assert raised.value.status_code == 400
    assert raised.value.type == "invalid_request_error"
    assert raised.value.param == param
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert raised.value.response.headers["content-type"] == "application/json"


@embedded_only()
async def test_missing_prompt_is_a_missing_required_parameter(client, auth):
    response = await client.post("/v1/images/generations", json={"n": 1}, headers=auth)

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Missing required parameter: 'prompt'.",
            "type": "invalid_request_error",
            "param": "prompt",
            "code": "missing_required_parameter",
        }
    }


async def test_bad_values_are_explained_in_words(client, auth):
    size = await client.post(
        "/v1/images/generations", json={"prompt": "x", "size": "1024*1024"}, headers=auth
    )
    blank = await client.post("/v1/images/generations", json={"prompt": "   "}, headers=auth)

    assert (size.status_code, blank.status_code) == (400, 400)
    assert size.json()["error"]["message"] == (
        "Invalid value for 'size': must be `auto` or `WxH` in pixels, e.g. 1024x1024, with "
        "each side from 64 to 4096"
    )
    assert blank.json()["error"]["message"] == "Invalid value for 'prompt': must not be blank"


@embedded_only()
async def test_an_unknown_darkroom_model_is_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as raised:
        await openai_client.images.generate(model="nowhere/nothing", prompt="a cat")

    assert raised.value.code == "model_not_found" and raised.value.param == "model"


@embedded_only()
async def test_malformed_json_is_a_bad_request_in_openais_shape(client, auth):
    response = await client.post(
        "/v1/images/generations",
        content=b"{not json",
        headers=auth | {"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "The request body is not valid JSON.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_json",
    }


async def test_a_body_that_is_not_json_is_a_bad_request_naming_application_json(client, auth):
    response = await client.post(
        "/v1/images/generations",
        content=b'{"prompt": "a cat"}',
        headers=auth | {"Content-Type": "text/plain"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "The body must be application/json; this one was sent as text/plain.",
        "type": "invalid_request_error",
        "param": None,
        "code": "unsupported_content_type",
    }


async def test_a_job_that_outlasts_the_wait_is_a_gateway_timeout_naming_the_job(
    app, openai_client, client, auth
):
    app.state.settings.openai_compat_wait_seconds = 0.01
    try:
        with pytest.raises(openai.APIStatusError) as raised:
            await openai_client.images.generate(prompt="a vast city", size="2048x2048", n=2)
    finally:
        app.state.settings.openai_compat_wait_seconds = 900

    assert raised.value.status_code == 504
    assert raised.value.code == "job_still_running"
    assert raised.value.response.headers["x-should-retry"] == "false"
    job = await job_of_latest(client, auth)
    assert job["id"] in raised.value.message
    finished, _ = await wait_for_final(client, auth, job["id"])
    assert finished["status"] == "succeeded" and len(finished["outputs"]) == 2


async def test_the_wait_outlasts_the_prefer_wait_cap(app, openai_client):
    # The JSON routes hold a request at most DARKROOM_MAX_WAIT_SECONDS; these routes answer
    # only with images, so they wait for the job.
    app.state.settings.max_wait_seconds = 0
    try:
        result = await openai_client.images.generate(prompt="a quiet harbour", n=1)
    finally:
        app.state.settings.max_wait_seconds = 60

    assert len(result.data) == 1


def png_file(name: str, width: int = 96, height: int = 64, **options) -> tuple[str, bytes, str]:
    return (name, image_bytes(width, height, **options), "image/png")


def mask_png(width: int, height: int) -> bytes:
    """A mask whose left half is transparent: the area to change."""
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, width // 2, height))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()


async def assets_of(client: httpx.AsyncClient, auth: dict, job: dict) -> dict:
    """The input assets of an edit or variants job, with their roles, from the first output."""
    asset = (await client.get(f"/v1/assets/{job['outputs'][0]['asset_id']}", headers=auth)).json()
    return {parent["asset_id"]: parent["role"] for parent in asset["parents"]}


async def test_edit_one_image_keeps_its_size_and_records_the_job(openai_client, client, auth):
    result = await openai_client.images.edit(
        image=png_file("photo.png"), prompt="warmer, golden hour", model="local/draft"
    )

    image = decode(result.data[0].b64_json)
    assert image.size == (96, 64) and result.size == "96x64"
    job = await job_of_latest(client, auth)
    assert job["kind"] == "edit" and job["status"] == "succeeded"
    source = job["request"]["image"]
    uploaded = (await client.get(f"/v1/assets/{source}", headers=auth)).json()
    assert uploaded["source"] == "upload" and (uploaded["width"], uploaded["height"]) == (96, 64)
    assert (await assets_of(client, auth, job)).get(source) == "source"


async def test_edit_with_several_images_uses_the_rest_as_references(openai_client, client, auth):
    result = await openai_client.images.edit(
        image=[png_file("a.png"), png_file("b.png", 80, 80), png_file("c.png", 64, 96)],
        prompt="put the three together on one shelf",
        n=2,
        size="128x128",
        output_format="jpeg",
    )

    assert len(result.data) == 2
    assert {decode(item.b64_json).size for item in result.data} == {(128, 128)}
    assert decode(result.data[0].b64_json).format == "JPEG"
    job = await job_of_latest(client, auth)
    assert job["kind"] == "edit" and len(job["request"]["references"]) == 2
    first = job["request"]["image"]
    assert (await client.get(f"/v1/assets/{first}", headers=auth)).json()["width"] == 96


async def test_edit_with_a_mask_changes_only_the_transparent_area(openai_client, client, auth):
    source = image_bytes(96, 64)
    result = await openai_client.images.edit(
        image=("photo.png", source, "image/png"),
        mask=("mask.png", mask_png(96, 64), "image/png"),
        prompt="a bright red patch",
        model="local/draft",
    )

    edited = decode(result.data[0].b64_json).convert("RGB")
    original = Image.open(io.BytesIO(source)).convert("RGB")
    right, left = (48, 0, 96, 64), (0, 0, 48, 64)
    assert edited.crop(right).tobytes() == original.crop(right).tobytes()
    assert edited.crop(left).tobytes() != original.crop(left).tobytes()
    job = await job_of_latest(client, auth)
    assert job["request"]["mask"] is not None
    assert "mask" in (await assets_of(client, auth, job)).values()


@embedded_only()
async def test_edit_with_a_mask_of_another_size_is_a_bad_request(openai_client):
    with pytest.raises(openai.BadRequestError) as raised:
        await openai_client.images.edit(
            image=png_file("photo.png"),
            mask=("mask.png", mask_png(32, 32), "image/png"),
            prompt="anything",
        )

    assert raised.value.param == "mask"


@embedded_only()
async def test_edit_of_something_that_is_not_an_image_is_a_bad_request(openai_client):
    with pytest.raises(openai.BadRequestError) as raised:
        await openai_client.images.edit(
            image=("notes.png", b"these are not pixels", "image/png"), prompt="anything"
        )

    assert raised.value.param == "image"


@embedded_only()
async def test_edit_without_an_image_is_a_missing_parameter(client, auth):
    mask = {"mask": ("mask.png", mask_png(96, 64), "image/png")}

    response = await client.post(
        "/v1/images/edits", data={"prompt": "anything"}, files=mask, headers=auth
    )

    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "Missing required parameter: 'image'.",
        "type": "invalid_request_error",
        "param": "image",
        "code": "missing_required_parameter",
    }


async def test_json_sent_to_a_multipart_route_is_told_to_send_multipart(client, auth):
    for path in ("/v1/images/edits", "/v1/images/variations"):
        response = await client.post(
            path, json={"prompt": "a red kite", "model": "local/draft"}, headers=auth
        )

        assert response.status_code == 400, path
        assert response.json()["error"] == {
            "message": "The body must be multipart/form-data, with the images as file parts and "
            "the other parameters as text fields; this one was sent as application/json.",
            "type": "invalid_request_error",
            "param": None,
            "code": "unsupported_content_type",
        }, path


@embedded_only()
async def test_edit_with_an_unknown_file_part_is_a_bad_request(client, auth):
    files = {"image": png_file("a.png"), "sketch": png_file("b.png")}

    response = await client.post(
        "/v1/images/edits", data={"prompt": "anything"}, files=files, headers=auth
    )

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "sketch"


async def test_edit_takes_repeated_image_brackets_parts(client, auth):
    files = [("image[]", png_file("a.png")), ("image[]", png_file("b.png", 64, 64))]

    response = await client.post(
        "/v1/images/edits", data={"prompt": "together", "n": "1"}, files=files, headers=auth
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert decode(body["data"][0]["b64_json"]).size == (96, 64)
    assert set(body) <= {"created", "data", "background", "output_format", "size", "quality"}


@embedded_only()
async def test_edit_with_a_bad_key_is_an_authentication_error(app):
    async with client_for(app, "dk_wrong") as bad_client:
        with pytest.raises(openai.AuthenticationError):
            await bad_client.images.edit(image=png_file("photo.png"), prompt="anything")


# OpenAI's client marks variations deprecated (its own models no longer make them).
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_variations_of_an_image_differ_and_keep_its_size(openai_client, client, auth):
    result = await openai_client.images.create_variation(
        image=png_file("photo.png", 80, 80), n=2, size="80x80"
    )

    first, second = (decode(item.b64_json) for item in result.data)
    assert first.size == second.size == (80, 80)
    assert first.tobytes() != second.tobytes()
    job = await job_of_latest(client, auth)
    assert job["kind"] == "variants" and job["status"] == "succeeded"
    assert len(job["outputs"]) == 2


# OpenAI's client marks variations deprecated (its own models no longer make them).
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@embedded_only()
async def test_variation_at_another_size_is_a_bad_request(openai_client):
    with pytest.raises(openai.BadRequestError) as raised:
        await openai_client.images.create_variation(image=png_file("photo.png"), size="256x256")

    assert raised.value.param == "size"


@pytest.fixture
async def vendor(tmp_path) -> AsyncIterator[tuple[openai.AsyncOpenAI, FakeOpenAIImages, dict]]:
    """The embedded app with OpenAI's models configured against a fake OpenAI, the official
    client pointed at the app, and the tenant's headers."""
    async with FakeOpenAIImages() as server:
        settings = Settings(
            data_dir=tmp_path / "var", openai_api_key=API_KEY, openai_base_url=server.base_url
        )
        async with serving(settings) as (application, _, auth):
            key = auth["Authorization"].removeprefix("Bearer ")
            async with client_for(application, key) as client:
                yield client, server, auth


async def test_a_bare_openai_name_runs_on_openai_and_reports_summed_usage(vendor):
    openai_client, server, _ = vendor

    raw = await openai_client.images.with_raw_response.generate(
        model="gpt-image-2", prompt="a teal kettle", n=2, size="1024x1024"
    )
    result = raw.parse()

    assert raw.headers["Darkroom-Model"] == "openai/gpt-image-2"
    # Both images from one call (n=2), whose usage covers them both.
    assert [(request.body["model"], request.body["n"]) for request in server.received] == [
        ("gpt-image-2", 2)
    ]
    assert [decode(item.b64_json).size for item in result.data] == [(1024, 1024)] * 2
    reported = [
        usage_for(request.body["prompt"], *parse_size(request.body["size"]), request.body["n"])
        for request in server.received
    ]
    assert result.usage is not None
    assert result.usage.total_tokens == sum(usage["total_tokens"] for usage in reported)
    assert result.usage.output_tokens_details.image_tokens == sum(
        usage["output_tokens_details"]["image_tokens"] for usage in reported
    )


async def test_a_vendor_refusal_is_a_bad_request_error(vendor):
    openai_client, server, _ = vendor
    server.script(moderation_blocked())

    with pytest.raises(openai.BadRequestError) as raised:
        await openai_client.images.generate(model="openai/gpt-image-2", prompt="refused")

    assert raised.value.code == "moderation_blocked"
    assert "failed" in raised.value.message


async def test_over_the_rate_limit_is_a_rate_limit_error_with_retry_after(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", rate_limit_requests=1)
    async with serving(settings) as (application, _, auth):
        key = auth["Authorization"].removeprefix("Bearer ")
        async with client_for(application, key) as openai_client:
            await openai_client.images.generate(prompt="a kite", size="64x64")
            with pytest.raises(openai.RateLimitError) as raised:
                await openai_client.images.generate(prompt="a kite", size="64x64")

    assert raised.value.status_code == 429
    assert raised.value.type == "rate_limit_error" and raised.value.code == "rate_limited"
    assert int(raised.value.response.headers["Retry-After"]) >= 1
    assert "x-should-retry" not in raised.value.response.headers


async def test_quality_background_format_compression_and_moderation_reach_openai(vendor):
    openai_client, server, _ = vendor

    result = await openai_client.images.generate(
        model="gpt-image-2.5-flare",
        prompt="a teal kettle",
        size="1024x1024",
        quality="low",
        background="transparent",
        output_format="webp",
        output_compression=60,
        moderation="low",
    )

    (sent,) = [request.body for request in server.received]
    assert (sent["quality"], sent["background"], sent["moderation"]) == (
        "low",
        "transparent",
        "low",
    )
    assert (sent["output_format"], sent["output_compression"]) == ("webp", 60)
    assert result.background == "transparent" and result.quality == "low"
    image = decode(result.data[0].b64_json)
    assert image.format == "WEBP" and image.getchannel("A").getpixel((0, 0)) == 0


async def test_edit_quality_and_background_reach_openai(vendor):
    openai_client, server, _ = vendor

    await openai_client.images.edit(
        model="gpt-image-2.5-sunburst",
        image=png_file("photo.png"),
        prompt="make it dusk",
        quality="high",
        background="opaque",
    )

    (form,) = server.forms
    fields = dict(form.fields)
    assert (fields["quality"], fields["background"]) == ("high", "opaque")


async def test_transparent_on_a_model_without_it_is_refused_naming_those_that_can(vendor):
    openai_client, server, _ = vendor

    with pytest.raises(openai.BadRequestError) as raised:
        await openai_client.images.generate(
            model="gpt-image-2.6-flare", prompt="a kite", background="transparent"
        )

    assert raised.value.param == "background"
    assert "openai/gpt-image-2.5-flare" in raised.value.message
    assert "local/draft" in raised.value.message
    assert server.received == []
