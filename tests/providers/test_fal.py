"""The `fal` provider against a fake fal queue on 127.0.0.1: queueing, polling the returned
status URL, reading the output from the response URL, and how model errors, safety refusals,
retries and deadlines are reported."""

import base64
import json
import time
import typing
from collections.abc import AsyncIterator
from functools import partial

import pytest

from app.errors import (
    InvalidForModel,
    ModerationBlocked,
    ProviderAuthFailed,
    ProviderError,
    ProviderMalformedResponse,
    ProviderOverloaded,
    ProviderQuotaExhausted,
)
from app.fetcher import UrlPolicy
from app.providers.base import EditCall, GenerateCall, InputImage
from app.providers.fal import FalProvider
from app.providers.transport import CircuitBreaker
from tests.factories import image_bytes
from tests.fakes.fal import (
    API_KEY,
    FakeFal,
    exhausted_balance,
    malformed_json,
    rate_limited,
    server_error,
    slow,
)
from tests.providers.support import RecordedSleeps, checked_problem

PROMPT = "a paper lantern festival over a river"


@pytest.fixture
async def fal_server() -> AsyncIterator[FakeFal]:
    """A fresh fake fal queue for one test."""
    async with FakeFal() as server:
        yield server


def provider_for(server: FakeFal, **options: typing.Any) -> FalProvider:
    """A provider pointed at the fake, allowed to download from it, retrying twice with its
    waits recorded, not slept."""
    options = {
        "api_key": API_KEY,
        "base_url": server.base_url,
        "max_retries": 2,
        "timeout_seconds": 10,
        "poll_interval_seconds": 0.05,
        "download_policy": UrlPolicy.from_setting("127.0.0.1"),
        "breaker": CircuitBreaker(),
        "sleep": RecordedSleeps(),
    } | options
    return FalProvider(**options)


def image_call(
    model: str = "fal-ai/flux/dev", width: int = 1024, height: int = 576
) -> GenerateCall:
    return GenerateCall(model=model, prompt=PROMPT, width=width, height=height, seed=42)


# Every problem is checked for never naming the key.
assert_problem = partial(checked_problem, secret=API_KEY)


async def test_generate_queues_polls_status_then_reads_the_output(fal_server):
    fal_server.pending_polls = 2

    result = await provider_for(fal_server).generate(image_call())

    (submit,) = fal_server.requests_to("submit")
    assert submit.path == "/fal-ai/flux/dev"
    assert submit.headers["authorization"] == f"Key {API_KEY}"
    assert submit.body == {
        "prompt": PROMPT,
        "seed": 42,
        "num_images": 1,
        "output_format": "png",
        "image_size": {"width": 1024, "height": 576},
    }
    (request_id,) = fal_server.requests
    statuses = fal_server.requests_to("status")
    assert [r.path for r in statuses] == [f"/fal-ai/flux/requests/{request_id}/status"] * 3
    (result_read,) = fal_server.requests_to("result")
    assert result_read.path == f"/fal-ai/flux/requests/{request_id}"
    (download,) = fal_server.requests_to("file")
    assert "authorization" not in download.headers, "the key must not go to the CDN"
    assert result.image.size == (1024, 576)
    assert result.cost_usd is None, "fal reports no price: cost is unknown, not 0"
    assert result.details == {"provider_request_id": request_id, "provider_seed": 42}


async def test_kontext_text_to_image_takes_the_nearest_listed_ratio(fal_server):
    await provider_for(fal_server).generate(
        image_call("fal-ai/flux-pro/kontext/text-to-image", 1360, 765)
    )

    (submit,) = fal_server.requests_to("submit")
    assert submit.body["aspect_ratio"] == "16:9"
    assert "image_size" not in submit.body


async def test_kontext_edit_sends_the_source_as_a_data_uri(fal_server):
    source = InputImage("ast_src", image_bytes(120, 80), "png", 120, 80)
    call = EditCall(
        model="fal-ai/flux-pro/kontext", prompt="snow", image=source, width=120, height=80, seed=5
    )

    result = await provider_for(fal_server).edit(call)

    (submit,) = fal_server.requests_to("submit")
    uri = submit.body["image_url"]
    assert base64.b64decode(uri.partition(",")[2]) == source.data
    assert result.image.size == (120, 80)


async def test_an_edit_only_endpoint_refuses_to_generate(fal_server):
    with pytest.raises(InvalidForModel):
        await provider_for(fal_server).generate(image_call("fal-ai/flux-pro/kontext"))

    assert fal_server.received == []


async def test_any_endpoint_id_resolves_with_the_generic_mapping(fal_server):
    provider = provider_for(fal_server)
    spec = provider.model_spec("fal-ai/recraft/v3/text-to-image")

    await provider.generate(image_call(spec.name, 800, 600))

    assert spec.id == "fal/fal-ai/recraft/v3/text-to-image"
    assert "does not know" in spec.description
    (submit,) = fal_server.requests_to("submit")
    assert submit.path == "/fal-ai/recraft/v3/text-to-image"
    assert submit.body == {
        "prompt": PROMPT,
        "seed": 42,
        "num_images": 1,
        "image_size": {"width": 800, "height": 600},
    }
    assert fal_server.requests_to("status")[0].path.startswith("/fal-ai/recraft/requests/")
    assert provider.model_spec("no-slash") is None


async def test_invalid_input_reported_on_the_output_is_invalid_for_model(fal_server):
    provider = provider_for(fal_server)
    spec = provider.model_spec("fal-ai/flux/schnell")

    call = GenerateCall(model=spec.name, prompt="", width=512, height=512, seed=1)
    with pytest.raises(InvalidForModel) as caught:
        await provider.generate(call)

    assert "prompt: field required" in caught.value.detail
    assert len(fal_server.requests_to("result")) == 1, "422 is not retried"


@pytest.mark.parametrize(
    ("outcome", "error_type", "slug"),
    [
        ("nsfw", ModerationBlocked, "moderation-blocked"),
        ("policy", ModerationBlocked, "moderation-blocked"),
        ("error", ProviderError, "provider-error"),
    ],
)
async def test_refusals_and_runner_errors_become_typed_errors(
    fal_server, outcome, error_type, slug
):
    fal_server.outcome = outcome

    with pytest.raises(error_type) as caught:
        await provider_for(fal_server).generate(image_call())

    assert_problem(caught.value, slug)
    assert not caught.value.retryable
    assert len(fal_server.requests_to("result")) == 1, "X-Fal-Retryable: false is not retried"
    assert fal_server.requests_to("file") == []


async def test_rate_limit_waits_as_long_as_retry_after_then_succeeds(fal_server):
    fal_server.script(rate_limited(retry_after="1"))
    sleeps = RecordedSleeps()

    await provider_for(fal_server, sleep=sleeps).generate(image_call())

    assert sleeps.waits == [1.0]
    assert len(fal_server.requests_to("submit")) == 2


async def test_server_errors_are_retried_within_the_budget_then_overloaded(fal_server):
    fal_server.script(*[server_error(500)] * 3)

    with pytest.raises(ProviderOverloaded) as caught:
        await provider_for(fal_server, max_retries=2).generate(image_call())

    assert len(fal_server.requests_to("submit")) == 3
    assert_problem(caught.value, "provider-overloaded")


async def test_a_failing_status_poll_is_retried(fal_server):
    fal_server.script(server_error(503), rate_limited("0"), on="status")

    result = await provider_for(fal_server).generate(image_call())

    assert len(fal_server.requests_to("submit")) == 1
    assert result.image.size == (1024, 576)


async def test_exhausted_balance_is_quota_exhausted(fal_server):
    fal_server.script(exhausted_balance())

    with pytest.raises(ProviderQuotaExhausted) as caught:
        await provider_for(fal_server).generate(image_call())

    assert len(fal_server.requests_to("submit")) == 1
    assert_problem(caught.value, "provider-quota-exhausted")


async def test_a_wrong_key_is_auth_failed_and_never_echoed(fal_server):
    wrong = "fal-wrong-id:fal-wrong-secret-stays-secret"

    with pytest.raises(ProviderAuthFailed) as caught:
        await provider_for(fal_server, api_key=wrong).generate(image_call())

    assert len(fal_server.requests_to("submit")) == 1
    assert wrong not in json.dumps(caught.value.to_problem()) and wrong not in str(caught.value)


async def test_a_slow_answer_past_the_time_limit_is_retried_then_overloaded(fal_server):
    fal_server.script(slow(2), slow(2))

    with pytest.raises(ProviderOverloaded):
        await provider_for(fal_server, timeout_seconds=0.3, max_retries=1).generate(image_call())

    assert len(fal_server.requests_to("submit")) == 2


async def test_malformed_json_is_retried_then_a_malformed_response(fal_server):
    fal_server.script(*[malformed_json()] * 3)

    with pytest.raises(ProviderMalformedResponse) as caught:
        await provider_for(fal_server, max_retries=2).generate(image_call())

    assert "tried 3 times" in caught.value.detail


async def test_a_request_that_never_completes_is_canceled_at_the_deadline(fal_server):
    fal_server.outcome = "never"

    started = time.monotonic()
    with pytest.raises(ProviderOverloaded) as caught:
        await provider_for(fal_server, timeout_seconds=0.6).generate(image_call())

    assert time.monotonic() - started < 2.5
    assert "within 0.6 s" in caught.value.detail
    assert len(fal_server.requests_to("cancel")) == 1
    assert next(iter(fal_server.requests.values())).canceled
    assert fal_server.requests_to("result") == []


async def test_an_input_image_in_an_unexpected_format_is_invalid_for_model(fal_server):
    source = InputImage("ast_src", image_bytes(120, 80), "avif", 120, 80)
    call = EditCall(
        model="fal-ai/flux-pro/kontext", prompt="snow", image=source, width=120, height=80, seed=5
    )

    with pytest.raises(InvalidForModel, match="avif"):
        await provider_for(fal_server).edit(call)

    assert fal_server.received == []
