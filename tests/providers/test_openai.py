"""The `openai` provider against a fake OpenAI Images API on 127.0.0.1: what it sends, what it
makes of good answers, and how it retries and reports bad ones."""

import base64
import io
import json
import time
import typing
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from PIL import Image

from app.errors import (
    DarkroomError,
    InvalidForModel,
    ModerationBlocked,
    ProviderAuthFailed,
    ProviderMalformedResponse,
    ProviderOverloaded,
    ProviderQuotaExhausted,
)
from app.providers.base import GenerateCall
from app.providers.openai import (
    MAX_RETRY_AFTER_SECONDS,
    TOKEN_PRICES,
    OpenAIProvider,
    backoff_delay,
    retry_after_seconds,
)
from tests.factories import png_declaring
from tests.fakes.openai_images import (
    API_KEY,
    FakeOpenAIImages,
    error_reply,
    image_reply,
    malformed_json,
    missing_data,
    moderation_blocked,
    not_an_image,
    quota_exhausted,
    rate_limited,
    server_error,
    slow,
    usage_for,
)

PROMPT = "a lighthouse at dusk, long exposure"


@pytest.fixture
async def openai_server() -> AsyncIterator[FakeOpenAIImages]:
    """A fresh fake OpenAI Images API for one test."""
    async with FakeOpenAIImages() as server:
        yield server


def provider_for(server: FakeOpenAIImages, **options: typing.Any) -> OpenAIProvider:
    """A provider pointed at the fake with its key, retrying twice unless told otherwise."""
    options = {"api_key": API_KEY, "base_url": server.base_url, "max_retries": 2} | options
    return OpenAIProvider(**options)


def image_call(model: str = "gpt-image-2", width: int = 1536, height: int = 1024) -> GenerateCall:
    """One image, as the task body asks for it."""
    return GenerateCall(model=model, prompt=PROMPT, width=width, height=height, seed=42)


def assert_problem(exc: DarkroomError, slug: str, status: int) -> dict[str, typing.Any]:
    """The error's problem object, checked for type and status, and for never naming the key."""
    problem = exc.to_problem()
    assert problem["type"].endswith(f"/{slug}")
    assert problem["status"] == status
    assert API_KEY not in json.dumps(problem)
    assert API_KEY not in str(exc)
    return problem


async def test_generates_an_image_of_the_requested_size(openai_server: FakeOpenAIImages) -> None:
    result = await provider_for(openai_server).generate(image_call(width=1536, height=1024))

    assert result.image.size == (1536, 1024)
    assert result.image.mode == "RGB"
    assert result.cost_usd is None  # no authoritative price for gpt-image-2
    [request] = openai_server.received
    assert (request.method, request.path) == ("POST", "/v1/images/generations")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "model": "gpt-image-2",
        "prompt": PROMPT,
        "n": 1,
        "size": "1536x1024",
        "output_format": "png",
        "quality": "auto",
    }


async def test_cost_is_the_reported_usage_at_the_model_token_prices(
    openai_server: FakeOpenAIImages,
) -> None:
    result = await provider_for(openai_server).generate(image_call("gpt-image-1-mini", 1024, 1024))

    usage = usage_for(PROMPT, 1024, 1024)
    prices = TOKEN_PRICES["gpt-image-1-mini"]
    expected = (
        usage["input_tokens_details"]["text_tokens"] * prices.text_input
        + usage["output_tokens"] * prices.image_output
    ) / 1_000_000
    assert result.cost_usd == pytest.approx(expected)
    assert result.cost_usd > 0


async def test_an_image_with_alpha_keeps_it(openai_server: FakeOpenAIImages) -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (1024, 1024), (10, 20, 30, 0)).save(buffer, "PNG")
    openai_server.script(image_reply(buffer.getvalue()))

    result = await provider_for(openai_server).generate(image_call(width=1024, height=1024))

    assert result.image.mode == "RGBA"
    assert result.image.getpixel((0, 0)) == (10, 20, 30, 0)


async def test_without_a_key_it_is_unavailable_and_sends_nothing(
    openai_server: FakeOpenAIImages,
) -> None:
    for key in (None, ""):
        provider = provider_for(openai_server, api_key=key)
        assert not provider.is_available()
        with pytest.raises(ProviderAuthFailed):
            await provider.generate(image_call())
    assert provider_for(openai_server).is_available()
    assert openai_server.received == []


def test_catalog_declares_what_the_api_takes() -> None:
    specs = OpenAIProvider(None).models()

    assert "openai/gpt-image-2" in {spec.id for spec in specs}
    for spec in specs:
        capabilities = spec.capabilities
        assert capabilities.sizes == ((1024, 1024), (1536, 1024), (1024, 1536))
        assert not capabilities.seed
        assert not capabilities.negative_prompt
        assert capabilities.max_n == 10
        assert capabilities.modes == ("generate",)


def test_every_model_id_is_one_the_openai_package_lists() -> None:
    image_model = pytest.importorskip("openai.types.image_model")
    listed = set(typing.get_args(image_model.ImageModel))

    assert {spec.name for spec in OpenAIProvider(None).models()} <= listed


async def test_rate_limit_waits_as_long_as_retry_after_then_succeeds(
    openai_server: FakeOpenAIImages,
) -> None:
    openai_server.script(rate_limited(retry_after="1"))

    started = time.monotonic()
    result = await provider_for(openai_server).generate(image_call())
    waited = time.monotonic() - started

    assert result.image.size == (1536, 1024)
    assert len(openai_server.received) == 2
    assert 0.95 <= waited < 2.0


async def test_server_errors_are_retried_with_backoff_then_succeed(
    openai_server: FakeOpenAIImages,
) -> None:
    openai_server.script(server_error(500), server_error(503))

    result = await provider_for(openai_server).generate(image_call())

    assert result.image.size == (1536, 1024)
    assert len(openai_server.received) == 3


async def test_exhausted_retries_are_provider_overloaded(openai_server: FakeOpenAIImages) -> None:
    openai_server.script(*[server_error(503, retry_after="0")] * 3)

    with pytest.raises(ProviderOverloaded) as caught:
        await provider_for(openai_server, max_retries=2).generate(image_call())

    problem = assert_problem(caught.value, "provider-overloaded", 503)
    assert "HTTP 503" in problem["detail"]
    assert "Sorry about that!" in problem["detail"]
    assert "tried 3 times" in problem["detail"]
    assert problem["provider"] == "openai"
    assert problem["provider_status"] == 503
    assert problem["provider_request_id"].startswith("req_")
    assert len(openai_server.received) == 3


async def test_a_wrong_key_is_provider_auth_failed_and_not_retried(
    openai_server: FakeOpenAIImages,
) -> None:
    wrong_key = "sk-test-wrong-key-9876543210fedcba"

    with pytest.raises(ProviderAuthFailed) as caught:
        await provider_for(openai_server, api_key=wrong_key).generate(image_call())

    problem = assert_problem(caught.value, "provider-auth-failed", 502)
    assert problem["provider_code"] == "invalid_api_key"
    assert wrong_key[-4:] not in problem["detail"]
    assert wrong_key not in json.dumps(problem)
    assert len(openai_server.received) == 1


async def test_forbidden_is_provider_auth_failed_with_openai_reason(
    openai_server: FakeOpenAIImages,
) -> None:
    reason = "Your organization must be verified to use the model `gpt-image-2`."
    openai_server.script(error_reply(403, reason))

    with pytest.raises(ProviderAuthFailed) as caught:
        await provider_for(openai_server).generate(image_call())

    assert reason in assert_problem(caught.value, "provider-auth-failed", 502)["detail"]
    assert len(openai_server.received) == 1


@pytest.mark.parametrize(
    ("model", "width", "height", "param"),
    [
        ("gpt-image-1.5", 1000, 1000, "size"),
        ("gpt-image-3-imaginary", 1024, 1024, "model"),
    ],
)
async def test_a_bad_parameter_is_invalid_for_model_and_not_retried(
    openai_server: FakeOpenAIImages, model: str, width: int, height: int, param: str
) -> None:
    with pytest.raises(InvalidForModel) as caught:
        await provider_for(openai_server).generate(image_call(model, width, height))

    problem = assert_problem(caught.value, "invalid-for-model", 422)
    assert f"(parameter '{param}')" in problem["detail"]
    assert "Invalid value" in problem["detail"]
    assert len(openai_server.received) == 1


async def test_a_moderation_block_is_moderation_blocked(openai_server: FakeOpenAIImages) -> None:
    openai_server.script(moderation_blocked())

    with pytest.raises(ModerationBlocked) as caught:
        await provider_for(openai_server).generate(image_call())

    problem = assert_problem(caught.value, "moderation-blocked", 422)
    assert "rejected by the safety system" in problem["detail"]
    assert problem["provider_code"] == "moderation_blocked"
    assert len(openai_server.received) == 1


async def test_an_exhausted_quota_is_not_retried(openai_server: FakeOpenAIImages) -> None:
    openai_server.script(quota_exhausted())

    with pytest.raises(ProviderQuotaExhausted) as caught:
        await provider_for(openai_server).generate(image_call())

    problem = assert_problem(caught.value, "provider-quota-exhausted", 502)
    assert "exceeded your current quota" in problem["detail"]
    assert len(openai_server.received) == 1


async def test_timeouts_are_retried_then_provider_overloaded(
    openai_server: FakeOpenAIImages,
) -> None:
    openai_server.script(slow(3), slow(3))
    provider = provider_for(openai_server, timeout_seconds=0.3, max_retries=1)

    started = time.monotonic()
    with pytest.raises(ProviderOverloaded) as caught:
        await provider.generate(image_call())

    assert time.monotonic() - started < 2.0
    problem = assert_problem(caught.value, "provider-overloaded", 503)
    assert "no answer within 0.3 s" in problem["detail"]
    assert len(openai_server.received) == 2


async def test_a_timeout_then_a_prompt_answer_succeeds(openai_server: FakeOpenAIImages) -> None:
    openai_server.script(slow(3))
    provider = provider_for(openai_server, timeout_seconds=0.3)

    result = await provider.generate(image_call())

    assert result.image.size == (1536, 1024)
    assert len(openai_server.received) == 2


async def test_an_unreachable_server_is_retried_then_provider_overloaded() -> None:
    async with FakeOpenAIImages() as server:
        base_url = server.base_url  # a port nothing listens on once the server is gone
    provider = OpenAIProvider(API_KEY, base_url, max_retries=1)

    with pytest.raises(ProviderOverloaded) as caught:
        await provider.generate(image_call())

    problem = assert_problem(caught.value, "provider-overloaded", 503)
    assert "could not reach 127.0.0.1" in problem["detail"]


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (malformed_json(), "not JSON"),
        (missing_data(), "no data[0].b64_json"),
        (image_reply(b""), "no data[0].b64_json"),
        (not_an_image(), "not a PNG, JPEG or WebP"),
        (image_reply(png_declaring(8000, 8000)), "pixels"),
    ],
    ids=["malformed-json", "missing-data", "empty-image", "not-an-image", "too-many-pixels"],
)
async def test_an_unusable_answer_is_provider_malformed_response(
    openai_server: FakeOpenAIImages, reply: typing.Any, says: str
) -> None:
    openai_server.script(reply)

    with pytest.raises(ProviderMalformedResponse) as caught:
        await provider_for(openai_server).generate(image_call())

    assert says in assert_problem(caught.value, "provider-malformed-response", 502)["detail"]
    assert len(openai_server.received) == 1


async def test_a_vendor_message_that_echoes_the_key_is_redacted(
    openai_server: FakeOpenAIImages,
) -> None:
    openai_server.script(error_reply(400, f"Bad request from key {API_KEY}.", param="prompt"))

    with pytest.raises(InvalidForModel) as caught:
        await provider_for(openai_server).generate(image_call())

    assert "[redacted]" in assert_problem(caught.value, "invalid-for-model", 422)["detail"]


def test_retry_after_is_read_as_milliseconds_seconds_or_an_http_date() -> None:
    in_ten_seconds = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)

    assert retry_after_seconds(httpx.Headers({"retry-after": "2"})) == 2.0
    assert retry_after_seconds(httpx.Headers({"retry-after": "1.5"})) == 1.5
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    assert 8.0 < retry_after_seconds(httpx.Headers({"retry-after": in_ten_seconds})) <= 10.0
    assert retry_after_seconds(httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0
    assert retry_after_seconds(httpx.Headers({"retry-after": "soon"})) is None
    assert retry_after_seconds(httpx.Headers({"retry-after": "-3"})) is None
    assert retry_after_seconds(httpx.Headers()) is None


def test_backoff_is_jittered_exponential_and_retry_after_is_capped() -> None:
    first = [backoff_delay(1, None) for _ in range(200)]
    third = [backoff_delay(3, None) for _ in range(200)]

    assert min(first) >= 0.25 and max(first) <= 0.5
    assert min(third) >= 1.0 and max(third) <= 2.0
    assert len(set(first)) > 100
    assert backoff_delay(1, 7.0) == 7.0
    assert backoff_delay(1, 3600.0) == MAX_RETRY_AFTER_SECONDS


async def test_the_official_client_reads_the_fake_like_openai(
    openai_server: FakeOpenAIImages,
) -> None:
    openai = pytest.importorskip("openai")
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=openai_server.base_url, max_retries=0)

    response = await client.images.generate(
        model="gpt-image-2", prompt=PROMPT, size="1024x1536", output_format="webp"
    )
    with Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json))) as image:
        assert (image.format, image.size) == ("WEBP", (1024, 1536))
    assert response.usage.output_tokens == usage_for(PROMPT, 1024, 1536)["output_tokens"]

    with pytest.raises(openai.BadRequestError) as bad_size:
        await client.images.generate(model="gpt-image-1.5", prompt=PROMPT, size="2048x2048")
    assert bad_size.value.param == "size"

    wrong_key = openai.AsyncOpenAI(api_key="sk-wrong", base_url=openai_server.base_url)
    with pytest.raises(openai.AuthenticationError) as denied:
        await wrong_key.images.generate(model="gpt-image-2", prompt=PROMPT)
    assert denied.value.code == "invalid_api_key"
    await client.close()
    await wrong_key.close()
