"""The `stability` provider against a fake Stability v2beta API on 127.0.0.1: what it sends,
what it makes of good answers, and how it retries and reports bad ones."""

import io
import json
import typing
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial

import pytest
from PIL import Image

from app.errors import (
    InvalidForModel,
    ModerationBlocked,
    ProviderAuthFailed,
    ProviderMalformedResponse,
    ProviderOverloaded,
    ProviderQuotaExhausted,
)
from app.providers.base import EditCall, GenerateCall, InputImage, Reference
from app.providers.stability import StabilityProvider
from tests.factories import image_bytes
from tests.fakes.stability import (
    API_KEY,
    ASPECT_RATIOS,
    FakeStability,
    MultipartReceived,
    content_filtered,
    error_reply,
    json_garbage,
    malformed_image,
    moderation_refusal,
    out_of_credits,
    rate_limited,
    server_error,
    slow,
)
from tests.providers.support import RecordedSleeps, checked_problem

PROMPT = "product shot of a ceramic mug, studio light"


@pytest.fixture
async def stability() -> AsyncIterator[FakeStability]:
    async with FakeStability() as server:
        yield server


def provider_for(server: FakeStability, **options: typing.Any) -> StabilityProvider:
    """A provider pointed at the fake with its key, retrying twice unless told otherwise, its
    waits recorded, not slept."""
    options = {
        "api_key": API_KEY,
        "base_url": server.base_url,
        "max_retries": 2,
        "sleep": RecordedSleeps(),
    } | options
    return StabilityProvider(**options)


def image_call(model: str = "ultra", width: int = 1344, height: int = 768, **extra):
    return GenerateCall(model=model, prompt=PROMPT, width=width, height=height, seed=42, **extra)


def source_image(width: int = 300, height: int = 200) -> InputImage:
    return InputImage("ast_source", image_bytes(width, height), "png", width, height)


def hole_mask(width: int = 300, height: int = 200) -> InputImage:
    """Darkroom's mask: opaque everywhere but a transparent rectangle to change."""
    mask = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (100, 50, 200, 150))
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return InputImage("ast_mask", buffer.getvalue(), "png", width, height)


def fields(request: typing.Any) -> dict[str, str]:
    """The text fields of a recorded multipart request."""
    assert isinstance(request, MultipartReceived) and request.form is not None
    return {name: part.text for name, part in request.form.items() if part.filename is None}


# Every problem is checked for never naming the key.
assert_problem = partial(checked_problem, secret=API_KEY)


async def test_generates_with_the_documented_multipart_form(stability: FakeStability) -> None:
    result = await provider_for(stability).generate(image_call(negative_prompt="blurry"))

    assert result.image.size == (1344, 768)
    assert result.cost_usd == pytest.approx(0.08)
    assert result.details["vendor_seed"] == 42
    assert result.details["finish_reason"] == "SUCCESS"
    [request] = stability.received
    assert (request.method, request.path) == ("POST", "/v2beta/stable-image/generate/ultra")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["accept"] == "image/*"
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert fields(request) == {
        "prompt": PROMPT,
        "negative_prompt": "blurry",
        "aspect_ratio": "16:9",
        "seed": "42",
        "output_format": "png",
    }


async def test_sd3_models_name_the_model_and_turbo_drops_the_negative_prompt(
    stability: FakeStability,
) -> None:
    provider = provider_for(stability)
    await provider.generate(image_call("sd3.5-large", 832, 1216, negative_prompt="text"))
    await provider.generate(image_call("sd3.5-large-turbo", 1024, 1024, negative_prompt="text"))

    large, turbo = (fields(request) for request in stability.received)
    assert {request.path for request in stability.received} == {"/v2beta/stable-image/generate/sd3"}
    assert large["model"] == "sd3.5-large" and large["mode"] == "text-to-image"
    assert large["aspect_ratio"] == "2:3" and large["negative_prompt"] == "text"
    assert turbo["model"] == "sd3.5-large-turbo" and "negative_prompt" not in turbo


def test_every_generate_size_is_an_aspect_ratio_the_api_takes() -> None:
    for spec in StabilityProvider(None).models():
        if "generate" in spec.capabilities.modes:
            assert set(spec.capabilities.sizes or ()) == set(ASPECT_RATIOS.values()), spec.name
            assert spec.capabilities.seed and spec.price_per_image_usd


async def test_edit_without_a_mask_is_image_to_image_with_strength(
    stability: FakeStability,
) -> None:
    call = EditCall("sd3.5-medium", "glaze it blue", source_image(), 1024, 1024, 7, strength=0.35)

    result = await provider_for(stability).edit(call)

    assert result.image.size == (300, 200)
    [request] = stability.received
    assert request.path == "/v2beta/stable-image/generate/sd3"
    assert fields(request) == {
        "prompt": "glaze it blue",
        "seed": "7",
        "output_format": "png",
        "model": "sd3.5-medium",
        "mode": "image-to-image",
        "strength": "0.35",
    }
    image = request.form["image"]
    assert (image.filename, image.content_type) == ("image.png", "image/png")
    assert image.value == call.image.data


async def test_edit_with_a_mask_inpaints_where_the_mask_is_transparent(
    stability: FakeStability,
) -> None:
    call = EditCall("core", "a gold rim", source_image(), 1024, 1024, 9, mask=hole_mask())

    result = await provider_for(stability).edit(call)

    assert result.details["operation"] == "inpaint"
    assert result.cost_usd is None  # the inpaint price is not confirmed
    [request] = stability.received
    assert request.path == "/v2beta/stable-image/edit/inpaint"
    mask = Image.open(io.BytesIO(request.form["mask"].value))
    assert mask.mode == "L" and mask.size == (300, 200)
    assert mask.getpixel((150, 100)) == 255  # transparent in Darkroom's mask: change
    assert mask.getpixel((10, 10)) == 0  # opaque: keep


@pytest.mark.parametrize(
    ("model", "path", "size", "mode"),
    [
        ("erase", "/v2beta/stable-image/edit/erase", (300, 200), "RGB"),
        ("outpaint", "/v2beta/stable-image/edit/outpaint", (400, 200), "RGB"),
        ("remove-background", "/v2beta/stable-image/edit/remove-background", (300, 200), "RGBA"),
        ("upscale-fast", "/v2beta/stable-image/upscale/fast", (1200, 800), "RGB"),
        ("upscale-conservative", "/v2beta/stable-image/upscale/conservative", (600, 400), "RGB"),
    ],
)
async def test_edit_only_models_call_their_own_endpoint(
    stability: FakeStability, model: str, path: str, size: tuple[int, int], mode: str
) -> None:
    call = EditCall(model, "a marble table", source_image(), 400, 200, 5, mask=hole_mask())

    result = await provider_for(stability).edit(call)

    assert stability.received[0].path == path
    assert result.image.size == size
    assert result.image.mode == mode
    if model == "outpaint":
        sides = fields(stability.received[0])
        assert [sides[s] for s in ("left", "right", "up", "down")] == ["50", "50", "0", "0"]


async def test_edits_the_model_cannot_do_are_refused_unsent(stability: FakeStability) -> None:
    provider = provider_for(stability)
    reference = (Reference(source_image(), "style"),)

    with pytest.raises(InvalidForModel, match="only with a mask"):
        await provider.edit(EditCall("core", "x", source_image(), 1024, 1024, 1))
    with pytest.raises(InvalidForModel, match="no reference"):
        await provider.edit(
            EditCall("ultra", "x", source_image(), 1024, 1024, 1, references=reference)
        )
    with pytest.raises(InvalidForModel, match="only edits"):
        await provider.generate(image_call("erase"))
    assert stability.received == []


async def test_without_a_key_it_is_unavailable_and_sends_nothing(stability: FakeStability) -> None:
    for key in (None, ""):
        provider = provider_for(stability, api_key=key)
        assert not provider.is_available()
        with pytest.raises(ProviderAuthFailed):
            await provider.generate(image_call())
    assert stability.received == []


async def test_a_wrong_key_is_auth_failed_and_never_echoed(stability: FakeStability) -> None:
    wrong = "sk-wrong-key-9876543210"

    with pytest.raises(ProviderAuthFailed) as caught:
        await provider_for(stability, api_key=wrong).generate(image_call())

    assert_problem(caught.value, "provider-auth-failed", 502)
    assert wrong not in json.dumps(caught.value.to_problem())
    assert len(stability.received) == 1


async def test_rate_limit_waits_as_long_as_retry_after_then_succeeds(
    stability: FakeStability,
) -> None:
    stability.script(rate_limited(retry_after="1"))
    sleeps = RecordedSleeps()

    result = await provider_for(stability, sleep=sleeps).generate(image_call())

    assert result.image.size == (1344, 768)
    assert len(stability.received) == 2
    assert sleeps.waits == [1.0]


async def test_server_errors_are_retried_then_succeed(stability: FakeStability) -> None:
    stability.script(server_error(500), server_error(502))

    result = await provider_for(stability).generate(image_call())

    assert result.image.size == (1344, 768)
    assert len(stability.received) == 3


async def test_a_request_timeout_is_retried_then_succeeds(stability: FakeStability) -> None:
    stability.script(
        error_reply(
            408, "request_timeout", "The request took too long.", headers={"retry-after": "0"}
        )
    )

    result = await provider_for(stability).generate(image_call())

    assert result.image.size == (1344, 768)
    assert len(stability.received) == 2


async def test_exhausted_retries_are_provider_overloaded(stability: FakeStability) -> None:
    stability.script(*[rate_limited(retry_after="0")] * 3)

    with pytest.raises(ProviderOverloaded) as caught:
        await provider_for(stability, max_retries=2).generate(image_call())

    problem = assert_problem(caught.value, "provider-overloaded", 503)
    assert "tried 3 times" in problem["detail"]
    assert problem["provider_code"] == "rate_limit_exceeded"
    assert len(stability.received) == 3


async def test_a_slow_answer_past_the_timeout_is_retried_then_overloaded(
    stability: FakeStability,
) -> None:
    stability.script(slow(2), slow(2))

    with pytest.raises(ProviderOverloaded, match=r"no answer within 0\.3 s"):
        await provider_for(stability, timeout_seconds=0.3, max_retries=1).generate(image_call())
    assert len(stability.received) == 2


@pytest.mark.parametrize(
    ("reply", "error", "slug", "status"),
    [
        (moderation_refusal(), ModerationBlocked, "moderation-blocked", 422),
        (out_of_credits(), ProviderQuotaExhausted, "provider-quota-exhausted", 502),
        (
            error_reply(400, "bad_request", "prompt: too long"),
            InvalidForModel,
            "invalid-for-model",
            422,
        ),
    ],
)
async def test_refusals_are_typed_and_not_retried(
    stability: FakeStability, reply, error, slug: str, status: int
) -> None:
    stability.script(reply)

    with pytest.raises(error) as caught:
        await provider_for(stability).generate(image_call())

    assert_problem(caught.value, slug, status)
    assert len(stability.received) == 1


async def test_a_filtered_image_is_moderation_blocked(stability: FakeStability) -> None:
    stability.script(content_filtered())

    with pytest.raises(ModerationBlocked) as caught:
        await provider_for(stability).generate(image_call())

    assert caught.value.extensions["provider_code"] == "CONTENT_FILTERED"
    assert len(stability.received) == 1


@pytest.mark.parametrize(
    ("reply", "message"), [(malformed_image(), "unusable"), (json_garbage(), "not an image")]
)
async def test_an_answer_without_a_usable_image_is_retried_then_malformed(
    stability: FakeStability, reply, message: str
) -> None:
    stability.script(reply, reply)

    with pytest.raises(ProviderMalformedResponse, match=message):
        await provider_for(stability, max_retries=1).generate(image_call())

    assert len(stability.received) == 2


async def test_an_input_image_in_an_unexpected_format_is_invalid_for_model(
    stability: FakeStability,
) -> None:
    source = replace(source_image(), format="avif")
    call = EditCall("ultra", "glaze it blue", source, 1024, 1024, 7)

    with pytest.raises(InvalidForModel, match="avif"):
        await provider_for(stability).edit(call)

    assert stability.received == []
