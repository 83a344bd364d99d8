"""The `openai` provider against a fake OpenAI Images API on 127.0.0.1: what it sends, what it
makes of good answers, and how it retries and reports bad ones."""

import base64
import io
import json
import time
import typing
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial

import httpx
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
from app.providers.openai import TOKEN_PRICES, OpenAIProvider
from app.providers.transport import (
    MAX_RETRY_AFTER_SECONDS,
    CircuitBreaker,
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
    not_base64,
    quota_exhausted,
    rate_limited,
    server_error,
    slow,
    usage_for,
)
from tests.providers.support import RecordedSleeps, checked_problem

PROMPT = "a lighthouse at dusk, long exposure"


@pytest.fixture
async def openai_server() -> AsyncIterator[FakeOpenAIImages]:
    """A fresh fake OpenAI Images API for one test."""
    async with FakeOpenAIImages() as server:
        yield server


def provider_for(server: FakeOpenAIImages, **options: typing.Any) -> OpenAIProvider:
    """A provider pointed at the fake with its key, retrying twice unless told otherwise, its
    waits recorded, not slept."""
    options = {
        "api_key": API_KEY,
        "base_url": server.base_url,
        "max_retries": 2,
        "breaker": CircuitBreaker(),
        "sleep": RecordedSleeps(),
    } | options
    return OpenAIProvider(**options)


def image_call(model: str = "gpt-image-2", width: int = 1536, height: int = 1024) -> GenerateCall:
    """One image, as the task body asks for it."""
    return GenerateCall(model=model, prompt=PROMPT, width=width, height=height, seed=42)


# Every problem is checked for never naming the key.
assert_problem = partial(checked_problem, secret=API_KEY)


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
        "quality": "auto",
        "background": "auto",
        "output_format": "png",
        "moderation": "auto",
    }
    assert result.details["usage"] == usage_for(PROMPT, 1536, 1024)


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
        assert capabilities.modes == ("generate", "edit")
        assert capabilities.mask
        assert capabilities.max_references == 15  # 16 images: the source and 15 references


def test_every_model_id_is_one_the_openai_package_lists() -> None:
    image_model = pytest.importorskip("openai.types.image_model")
    listed = set(typing.get_args(image_model.ImageModel))

    assert {spec.name for spec in OpenAIProvider(None).models()} <= listed


async def test_rate_limit_waits_as_long_as_retry_after_then_succeeds(
    openai_server: FakeOpenAIImages,
) -> None:
    openai_server.script(rate_limited(retry_after="1"))
    sleeps = RecordedSleeps()

    result = await provider_for(openai_server, sleep=sleeps).generate(image_call())

    assert result.image.size == (1536, 1024)
    assert len(openai_server.received) == 2
    assert sleeps.waits == [1.0]


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
    provider = OpenAIProvider(API_KEY, base_url, max_retries=1, sleep=RecordedSleeps())

    with pytest.raises(ProviderOverloaded) as caught:
        await provider.generate(image_call())

    problem = assert_problem(caught.value, "provider-overloaded", 503)
    assert "could not reach 127.0.0.1" in problem["detail"]


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        (malformed_json(), "not JSON"),
        (missing_data(), "holds 0 of the 1 images"),
        (image_reply(b""), "neither b64_json nor url"),
        (not_an_image(), "not a PNG, JPEG or WebP"),
        (image_reply(png_declaring(8000, 8000)), "pixels"),
        (not_base64("iVBOR$w0KGgo="), "not valid base64"),
        (not_base64("iVBORw0KGgoé"), "not valid base64"),
    ],
    ids=[
        "malformed-json",
        "missing-data",
        "empty-image",
        "not-an-image",
        "too-many-pixels",
        "not-base64",
        "not-ascii",
    ],
)
async def test_an_unusable_answer_is_retried_then_provider_malformed_response(
    openai_server: FakeOpenAIImages, reply: typing.Any, says: str
) -> None:
    openai_server.script(reply, reply, reply)

    with pytest.raises(ProviderMalformedResponse) as caught:
        await provider_for(openai_server).generate(image_call())

    detail = assert_problem(caught.value, "provider-malformed-response", 502)["detail"]
    assert says in detail
    assert "tried 3 times" in detail
    assert len(openai_server.received) == 3


async def test_a_cut_off_answer_is_retried_and_the_next_image_is_the_result(
    openai_server: FakeOpenAIImages,
) -> None:
    openai_server.script(malformed_json())

    result = await provider_for(openai_server).generate(image_call())

    assert result.image.size == (1536, 1024)
    assert len(openai_server.received) == 2


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


def png_bytes(
    size: tuple[int, int], mode: str = "RGB", color: typing.Any = (90, 120, 150)
) -> bytes:
    """A plain image of the given size and mode, as PNG."""
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, "PNG")
    return buffer.getvalue()


def input_image(
    asset_id: str, size: tuple[int, int] = (512, 384), mode: str = "RGB", image_format: str = "png"
) -> InputImage:
    """An input image as the task body hands it to a provider."""
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 80, 40, 0) if mode == "RGBA" else (200, 80, 40)).save(
        buffer, {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[image_format]
    )
    return InputImage(asset_id, buffer.getvalue(), image_format, *size)


def edit_call(model: str = "gpt-image-2", references: int = 0, **options: typing.Any) -> EditCall:
    """An edit of a 512x384 source at 1536x1024, with `references` reference images."""
    refs = tuple(
        Reference(input_image(f"ast_ref{index}", (256, 256), image_format="jpeg"), "style")
        for index in range(references)
    )
    values = {
        "model": model,
        "prompt": "make the sky stormy; keep the lighthouse exactly as it is",
        "image": input_image("ast_source"),
        "width": 1536,
        "height": 1024,
        "seed": 7,
        "references": refs,
    } | options
    return EditCall(**values)


async def test_an_edit_sends_the_source_references_and_mask_as_openai_parts(
    openai_server: FakeOpenAIImages,
) -> None:
    mask = input_image("ast_mask", mode="RGBA")
    call = edit_call(references=2, mask=mask)

    result = await provider_for(openai_server).edit(call)

    assert result.image.size == (1536, 1024)
    assert result.details["usage"] == usage_for(call.prompt, 1536, 1024, input_images=3)
    [request] = openai_server.received
    [form] = openai_server.forms
    assert (request.method, request.path) == ("POST", "/v1/images/edits")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert form.content_type.startswith("multipart/form-data; boundary=")
    assert form.file_names == ["image[]", "image[]", "image[]", "mask"]
    assert [part.content_type for part in form.files] == [
        "image/png",
        "image/jpeg",
        "image/jpeg",
        "image/png",
    ]
    assert form.files[0].data == call.image.data
    assert form.files[1].data == call.references[0].image.data
    assert form.files[3].data == mask.data  # already a PNG with alpha at the source's size
    assert dict(form.fields) == {
        "model": "gpt-image-2",
        "prompt": call.prompt,
        "n": "1",
        "size": "1536x1024",
        "quality": "auto",
        "background": "auto",
        "output_format": "png",
    }


async def test_an_edit_of_one_image_sends_a_single_image_part(
    openai_server: FakeOpenAIImages,
) -> None:
    await provider_for(openai_server).edit(edit_call())

    assert openai_server.forms[0].file_names == ["image"]


async def test_an_edit_asks_for_the_stored_format_and_returns_the_file_sent(
    openai_server: FakeOpenAIImages,
) -> None:
    result = await provider_for(openai_server).edit(edit_call(output_format="jpeg"))

    fields = dict(openai_server.forms[0].fields)
    assert (fields["output_format"], fields["output_compression"]) == ("jpeg", "90")
    assert result.encoded == openai_server.sent[0]
    assert openai_server.sent[0].startswith(b"\xff\xd8\xff")


async def test_a_mask_without_alpha_or_at_another_size_is_sent_as_a_png_with_alpha(
    openai_server: FakeOpenAIImages,
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (256, 192), "white").save(buffer, "WEBP")
    mask = InputImage("ast_mask", buffer.getvalue(), "webp", 256, 192)

    await provider_for(openai_server).edit(edit_call(mask=mask))

    sent = openai_server.forms[0].files[-1]
    assert sent.name == "mask"
    with Image.open(io.BytesIO(sent.data)) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (512, 384))


@pytest.mark.parametrize(
    ("model", "keep", "fidelity"),
    [
        ("gpt-image-1.5", ("face",), "high"),
        ("gpt-image-1.5", (), None),
        ("gpt-image-1-mini", ("face",), None),  # takes only "low", its default
        ("gpt-image-2", ("face",), None),  # "For gpt-image-2, omit this parameter."
    ],
)
async def test_input_fidelity_is_high_only_where_the_model_takes_it_and_something_must_stay(
    openai_server: FakeOpenAIImages, model: str, keep: tuple[str, ...], fidelity: str | None
) -> None:
    await provider_for(openai_server).edit(edit_call(model, keep=keep))

    assert dict(openai_server.forms[0].fields).get("input_fidelity") == fidelity


async def test_the_fake_refuses_input_fidelity_for_gpt_image_2(
    openai_server: FakeOpenAIImages,
) -> None:
    openai = pytest.importorskip("openai")
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=openai_server.base_url, max_retries=0)
    source = ("source.png", png_bytes((64, 64)), "image/png")

    with pytest.raises(openai.BadRequestError) as refused:
        await client.images.edit(
            model="gpt-image-2", prompt=PROMPT, image=source, input_fidelity="high"
        )
    await client.close()

    assert refused.value.param == "input_fidelity"


async def test_sixteen_references_are_refused_before_anything_is_sent(
    openai_server: FakeOpenAIImages,
) -> None:
    with pytest.raises(InvalidForModel):
        await provider_for(openai_server).edit(edit_call(references=16))

    assert openai_server.received == []


async def test_fifteen_references_are_sent(openai_server: FakeOpenAIImages) -> None:
    await provider_for(openai_server).edit(edit_call(references=15))

    assert openai_server.forms[0].file_names == ["image[]"] * 16


async def test_an_edit_is_retried_after_a_rate_limit_and_reports_failures_like_generate(
    openai_server: FakeOpenAIImages,
) -> None:
    openai_server.script(rate_limited(retry_after="0"), moderation_blocked())

    with pytest.raises(ModerationBlocked):
        await provider_for(openai_server).edit(edit_call())

    assert len(openai_server.forms) == 2
    assert [request.path for request in openai_server.received] == ["/v1/images/edits"] * 2


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (server_error(500, retry_after="0"), ProviderOverloaded),
        (malformed_json(), ProviderMalformedResponse),
    ],
    ids=["500", "malformed-json"],
)
async def test_an_edit_that_fails_at_the_vendor_is_a_typed_error(
    openai_server: FakeOpenAIImages, reply: typing.Any, error: type[Exception]
) -> None:
    openai_server.script(reply, reply, reply)

    with pytest.raises(error):
        await provider_for(openai_server).edit(edit_call())


async def test_a_slow_edit_times_out_and_is_retried(openai_server: FakeOpenAIImages) -> None:
    openai_server.script(slow(3))

    result = await provider_for(openai_server, timeout_seconds=0.3).edit(edit_call())

    assert result.image.size == (1536, 1024)
    assert len(openai_server.forms) == 2


def request_shape(server: FakeOpenAIImages) -> list[dict[str, typing.Any]]:
    """What the fake was sent, reduced to what must agree between two clients: method, path,
    content type, auth scheme, and the names of the JSON fields or of the multipart parts."""
    shapes = []
    forms = iter(server.forms)
    for request in server.received:
        content_type = request.headers["content-type"].partition(";")[0]
        shape = {
            "route": (request.method, request.path),
            "content_type": content_type,
            "auth": request.headers["authorization"].partition(" ")[0],
        }
        if content_type == "multipart/form-data":
            form = next(forms)
            shape |= {"fields": sorted(form.field_names), "files": form.file_names}
            shape |= {"file_types": [part.content_type for part in form.files]}
        else:
            shape |= {"fields": sorted(request.body or {})}
        shapes.append(shape)
    return shapes


async def test_the_adapter_sends_what_the_official_client_sends_for_the_same_calls() -> None:
    """Each call is made once by the installed `openai` client and once by the adapter, against
    two fakes; the fakes must accept both and have received the same shape of request."""
    openai = pytest.importorskip("openai")
    call = edit_call("gpt-image-1.5", references=2, keep=("face",))
    call = replace(call, mask=input_image("ast_mask", mode="RGBA"))
    generate = image_call("gpt-image-2", 1024, 1536)

    async with FakeOpenAIImages() as official, FakeOpenAIImages() as ours:
        client = openai.AsyncOpenAI(api_key=API_KEY, base_url=official.base_url, max_retries=0)
        await client.images.generate(
            model=generate.model,
            prompt=generate.prompt,
            n=1,
            size="1024x1536",
            quality="auto",
            background="auto",
            output_format="png",
            moderation="auto",
        )
        await client.images.edit(
            model=call.model,
            prompt=call.prompt,
            image=[
                ("image-0.png", call.image.data, "image/png"),
                *[
                    (f"image-{index}.jpg", reference.image.data, "image/jpeg")
                    for index, reference in enumerate(call.references, start=1)
                ],
            ],
            mask=("mask.png", call.mask.data, "image/png"),
            n=1,
            size="1536x1024",
            quality="auto",
            background="auto",
            output_format="png",
            input_fidelity="high",
        )
        await client.images.edit(
            model="gpt-image-2",
            prompt=call.prompt,
            image=("image-0.png", call.image.data, "image/png"),
            n=1,
            size="1536x1024",
            quality="auto",
            background="auto",
            output_format="png",
        )
        await client.close()
        provider = provider_for(ours)
        await provider.generate(generate)
        await provider.edit(call)
        await provider.edit(edit_call("gpt-image-2"))

        statuses = {"official": len(official.forms), "ours": len(ours.forms)}
        assert request_shape(ours) == request_shape(official)
    assert statuses == {"official": 2, "ours": 2}
    assert request_shape(ours)[1]["files"] == ["image[]", "image[]", "image[]", "mask"]


async def test_an_input_image_in_an_unexpected_format_is_invalid_for_model(
    openai_server: FakeOpenAIImages,
) -> None:
    call = edit_call(image=replace(input_image("ast_source"), format="avif"))

    with pytest.raises(InvalidForModel, match="avif"):
        await provider_for(openai_server).edit(call)

    assert openai_server.received == []
