"""The `google` provider against a fake Gemini API on 127.0.0.1: what it sends, what it makes
of good answers, and how it retries and reports bad ones."""

import base64
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
from app.providers.google import MODELS_BY_NAME, GoogleProvider
from tests.factories import image_bytes
from tests.fakes.google_gemini import (
    API_KEY,
    MODELS,
    FakeGemini,
    daily_quota_exhausted,
    error_reply,
    image_refused,
    malformed_json,
    not_an_image,
    prompt_blocked,
    rate_limited,
    server_error,
    slow,
    text_only,
)
from tests.fakes.http_server import Reply
from tests.providers.support import RecordedSleeps, checked_problem

PROMPT = "a teal kettle on a marble counter, soft window light"


@pytest.fixture
async def gemini() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as server:
        yield server


def provider_for(server: FakeGemini, **options: typing.Any) -> GoogleProvider:
    """A provider pointed at the fake with its key, retrying twice unless told otherwise, its
    waits recorded, not slept."""
    options = {
        "api_key": API_KEY,
        "base_url": server.base_url,
        "max_retries": 2,
        "sleep": RecordedSleeps(),
    } | options
    return GoogleProvider(**options)


def image_call(model: str = "gemini-3-pro-image", width: int = 1376, height: int = 768):
    return GenerateCall(model=model, prompt=PROMPT, width=width, height=height, seed=42)


def source_image(width: int = 320, height: int = 240, image_format: str = "PNG") -> InputImage:
    data = image_bytes(width, height, image_format)
    return InputImage("ast_source", data, image_format.lower(), width, height)


# Every problem is checked for never naming the key.
assert_problem = partial(checked_problem, secret=API_KEY)


async def test_generates_at_the_aspect_ratio_and_tier_of_the_size(gemini: FakeGemini) -> None:
    result = await provider_for(gemini).generate(image_call(width=2752, height=1536))

    assert result.image.size == (2752, 1536)
    [request] = gemini.received
    assert (request.method, request.path) == (
        "POST",
        "/v1beta/models/gemini-3-pro-image:generateContent",
    )
    assert request.headers["x-goog-api-key"] == API_KEY
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"},
        },
    }
    assert result.details["aspect_ratio"] == "16:9"
    assert result.details["usage"]["candidatesTokensDetails"][0]["tokenCount"] == 1120


async def test_cost_is_the_reported_usage_at_the_model_prices(gemini: FakeGemini) -> None:
    result = await provider_for(gemini).generate(image_call("gemini-3.1-flash-image", 5504, 3072))

    prices = MODELS_BY_NAME["gemini-3.1-flash-image"].prices
    expected = (12 * prices.input + 2520 * prices.image_output) / 1_000_000
    assert result.cost_usd == pytest.approx(expected)
    assert result.cost_usd == pytest.approx(0.151, abs=0.001)


async def test_a_one_tier_model_is_not_sent_an_image_size(gemini: FakeGemini) -> None:
    result = await provider_for(gemini).generate(image_call("gemini-2.5-flash-image", 832, 1248))

    assert result.image.size == (832, 1248)
    config = gemini.received[0].body["generationConfig"]
    assert config == {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "2:3"}}


def test_catalog_sizes_are_the_documented_ones_the_fake_makes() -> None:
    for spec in GoogleProvider(None).models():
        fake = MODELS[spec.name]
        documented = {fake.size(aspect, tier) for aspect in fake.sizes for tier in fake.tokens}
        assert set(spec.capabilities.sizes or ()) == documented, spec.name
        assert spec.capabilities.max_references == fake.max_input_images - 1
        assert spec.capabilities.mask is False
        assert spec.capabilities.seed is False
        assert spec.price_per_image_usd is not None and spec.price_per_image_usd > 0


async def test_a_size_the_model_does_not_make_is_refused_without_a_request(
    gemini: FakeGemini,
) -> None:
    with pytest.raises(InvalidForModel):
        await provider_for(gemini).generate(image_call("gemini-2.5-flash-image", 2048, 2048))
    assert gemini.received == []


async def test_edit_sends_the_instruction_then_source_and_references(gemini: FakeGemini) -> None:
    source = source_image(image_format="JPEG")
    style = Reference(source_image(64, 64), role="style", weight=0.5)
    call = EditCall(
        model="gemini-3.1-flash-lite-image",
        prompt="make the kettle red",
        image=source,
        references=(style,),
        keep=("framing",),
        width=1200,
        height=896,
        seed=3,
    )

    result = await provider_for(gemini).edit(call)

    assert result.image.size == (1200, 896)
    parts = gemini.received[0].body["contents"][0]["parts"]
    assert parts[0]["text"].startswith("make the kettle red")
    assert "Image 2 is a style reference" in parts[0]["text"]
    assert "Keep unchanged: framing." in parts[0]["text"]
    assert parts[1] == {
        "inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(source.data).decode()}
    }
    assert parts[2]["inlineData"]["mimeType"] == "image/png"
    config = gemini.received[0].body["generationConfig"]["imageConfig"]
    assert config == {"aspectRatio": "4:3"}


async def test_edit_with_a_mask_or_too_many_images_is_refused_unsent(gemini: FakeGemini) -> None:
    provider = provider_for(gemini)
    masked = EditCall("gemini-3-pro-image", "x", source_image(), 1024, 1024, 1, mask=source_image())
    crowded = EditCall(
        "gemini-2.5-flash-image",
        "x",
        source_image(),
        1024,
        1024,
        1,
        references=tuple(Reference(source_image(), "subject") for _ in range(3)),
    )

    with pytest.raises(InvalidForModel, match="no mask"):
        await provider.edit(masked)
    with pytest.raises(InvalidForModel, match="at most 3 images"):
        await provider.edit(crowded)
    assert gemini.received == []


async def test_without_a_key_it_is_unavailable_and_sends_nothing(gemini: FakeGemini) -> None:
    for key in (None, ""):
        provider = provider_for(gemini, api_key=key)
        assert not provider.is_available()
        with pytest.raises(ProviderAuthFailed):
            await provider.generate(image_call())
    assert gemini.received == []


async def test_a_wrong_key_is_auth_failed_not_retried(gemini: FakeGemini) -> None:
    with pytest.raises(ProviderAuthFailed) as caught:
        await provider_for(gemini, api_key="AIza-not-the-key").generate(image_call())

    assert_problem(caught.value, "provider-auth-failed", 502)
    assert "AIza-not-the-key" not in json.dumps(caught.value.to_problem())
    assert len(gemini.received) == 1


async def test_rate_limit_waits_as_long_as_retry_after_then_succeeds(gemini: FakeGemini) -> None:
    gemini.script(rate_limited(retry_after="1"))
    sleeps = RecordedSleeps()

    result = await provider_for(gemini, sleep=sleeps).generate(image_call())

    assert result.image.size == (1376, 768)
    assert len(gemini.received) == 2
    assert sleeps.waits == [1.0]


async def test_server_errors_are_retried_then_succeed(gemini: FakeGemini) -> None:
    gemini.script(server_error(500), server_error(503))

    result = await provider_for(gemini).generate(image_call())

    assert result.image.size == (1376, 768)
    assert len(gemini.received) == 3


async def test_exhausted_retries_are_provider_overloaded(gemini: FakeGemini) -> None:
    gemini.script(*[rate_limited(retry_after="0")] * 3)

    with pytest.raises(ProviderOverloaded) as caught:
        await provider_for(gemini, max_retries=2).generate(image_call())

    problem = assert_problem(caught.value, "provider-overloaded", 503)
    assert "tried 3 times" in problem["detail"]
    assert problem["provider_code"] == "RESOURCE_EXHAUSTED"
    assert len(gemini.received) == 3


async def test_a_slow_answer_past_the_timeout_is_retried_then_overloaded(
    gemini: FakeGemini,
) -> None:
    gemini.script(slow(2), slow(2))

    with pytest.raises(ProviderOverloaded) as caught:
        await provider_for(gemini, timeout_seconds=0.3, max_retries=1).generate(image_call())

    assert "no answer within 0.3 s" in caught.value.detail
    assert len(gemini.received) == 2


async def test_a_daily_quota_is_exhausted_not_retried(gemini: FakeGemini) -> None:
    gemini.script(daily_quota_exhausted())

    with pytest.raises(ProviderQuotaExhausted) as caught:
        await provider_for(gemini).generate(image_call())

    assert_problem(caught.value, "provider-quota-exhausted", 502)
    assert len(gemini.received) == 1


async def test_a_bad_request_is_invalid_for_model_and_not_retried(gemini: FakeGemini) -> None:
    gemini.script(error_reply(400, "INVALID_ARGUMENT", "Request contains an invalid argument."))

    with pytest.raises(InvalidForModel) as caught:
        await provider_for(gemini).generate(image_call())

    problem = assert_problem(caught.value, "invalid-for-model", 422)
    assert "invalid argument" in problem["detail"]
    assert len(gemini.received) == 1


@pytest.mark.parametrize("reply", [prompt_blocked(), image_refused("IMAGE_SAFETY")])
async def test_a_safety_refusal_is_moderation_blocked(gemini: FakeGemini, reply) -> None:
    gemini.script(reply)

    with pytest.raises(ModerationBlocked) as caught:
        await provider_for(gemini).generate(image_call())

    assert_problem(caught.value, "moderation-blocked", 422)
    assert len(gemini.received) == 1


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (malformed_json(), "not JSON"),
        (text_only(), "without an image"),
        (not_an_image(), "unusable"),
    ],
)
async def test_an_answer_without_a_usable_image_is_retried_then_malformed(
    gemini: FakeGemini, reply, message: str
) -> None:
    gemini.script(reply, reply)

    with pytest.raises(ProviderMalformedResponse, match=message):
        await provider_for(gemini, max_retries=1).generate(image_call())

    assert len(gemini.received) == 2


async def test_an_image_with_alpha_keeps_it_and_no_usage_costs_the_list_price(
    gemini: FakeGemini,
) -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (1376, 768), (10, 20, 30, 0)).save(buffer, "PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    parts = [{"inlineData": {"mimeType": "image/png", "data": data}}]
    gemini.script(Reply(200, json.dumps({"candidates": [{"content": {"parts": parts}}]}).encode()))

    result = await provider_for(gemini).generate(image_call())

    assert result.image.mode == "RGBA"
    assert result.cost_usd == pytest.approx(MODELS_BY_NAME["gemini-3-pro-image"].price_of("1K"))


async def test_an_input_image_in_an_unexpected_format_is_invalid_for_model(
    gemini: FakeGemini,
) -> None:
    source = replace(source_image(), format="avif")
    call = EditCall("gemini-3-pro-image", "warmer light", source, 1376, 768, 7)

    with pytest.raises(InvalidForModel, match="avif"):
        await provider_for(gemini).edit(call)

    assert gemini.received == []
