"""The `replicate` provider against a fake Replicate API on 127.0.0.1: the create request for
official models and pinned versions, polling `urls.get`, outputs as one URL or a list, and how
failures, retries and deadlines are reported."""

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
from app.providers.replicate import ReplicateProvider
from app.providers.transport import CircuitBreaker
from tests.factories import image_bytes
from tests.fakes.replicate import (
    API_KEY,
    FakeReplicate,
    insufficient_credit,
    malformed_json,
    problem,
    rate_limited,
    server_error,
    slow,
)
from tests.providers.support import RecordedSleeps, checked_problem

PROMPT = "a teal kettle on a marble counter"
VERSION = "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637"


@pytest.fixture
async def replicate_server() -> AsyncIterator[FakeReplicate]:
    """A fresh fake Replicate API for one test."""
    async with FakeReplicate() as server:
        yield server


def provider_for(server: FakeReplicate, **options: typing.Any) -> ReplicateProvider:
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
    return ReplicateProvider(**options)


def image_call(
    model: str = "black-forest-labs/flux-schnell", width: int = 1360, height: int = 765
) -> GenerateCall:
    return GenerateCall(model=model, prompt=PROMPT, width=width, height=height, seed=42)


# Every problem is checked for never naming the key.
assert_problem = partial(checked_problem, secret=API_KEY)


async def test_official_model_is_created_by_name_and_polled_until_it_succeeds(replicate_server):
    replicate_server.pending_polls = 2

    result = await provider_for(replicate_server).generate(image_call())

    (create,) = replicate_server.requests_to("create")
    assert create.path == "/v1/models/black-forest-labs/flux-schnell/predictions"
    assert create.headers["authorization"] == f"Bearer {API_KEY}"
    assert create.headers["prefer"] == "wait=5"
    assert create.body == {
        "input": {"prompt": PROMPT, "seed": 42, "output_format": "png", "aspect_ratio": "16:9"}
    }
    (prediction_id,) = replicate_server.predictions
    gets = replicate_server.requests_to("get")
    assert [request.path for request in gets] == [f"/v1/predictions/{prediction_id}"] * 3
    assert result.image.width > result.image.height
    assert result.cost_usd is None, "Replicate reports no price: cost is unknown, not 0"
    assert result.details == {
        "provider_request_id": prediction_id,
        "provider_predict_seconds": 1.25,
    }


async def test_a_prediction_finished_within_prefer_wait_is_not_polled(replicate_server):
    replicate_server.pending_polls = 0

    result = await provider_for(replicate_server).generate(
        image_call("black-forest-labs/flux-1.1-pro", 1000, 700)
    )

    assert replicate_server.requests_to("get") == []
    (create,) = replicate_server.requests_to("create")
    assert create.body["input"] == {
        "prompt": PROMPT,
        "seed": 42,
        "output_format": "png",
        "aspect_ratio": "custom",
        "width": 1008,
        "height": 704,
    }
    assert result.image.size == (1008, 704), "a single-URL output is downloaded too"


async def test_a_pinned_version_goes_to_predictions_with_its_version_id(replicate_server):
    provider = provider_for(replicate_server)
    spec = provider.model_spec(f"someone/custom-sdxl:{VERSION}")

    result = await provider.generate(image_call(spec.name, 768, 512))

    (create,) = replicate_server.requests_to("create")
    assert create.path == "/v1/predictions"
    assert create.body == {
        "version": VERSION,
        "input": {"prompt": PROMPT, "seed": 42, "width": 768, "height": 512},
    }
    assert result.image.size == (768, 512)


async def test_any_owner_name_id_resolves_with_unknown_capabilities():
    provider = ReplicateProvider(API_KEY)

    known = provider.model_spec("black-forest-labs/flux-schnell")
    generic = provider.model_spec("ideogram-ai/ideogram-v3-turbo")

    assert known in provider.models()
    assert generic is not None and generic.id == "replicate/ideogram-ai/ideogram-v3-turbo"
    assert "does not know" in generic.description
    assert generic.price_per_image_usd is None
    assert provider.model_spec("not a model id") is None
    assert provider.model_spec("owner/name:not-a-version") is None


async def test_kontext_edit_sends_the_source_as_a_data_uri(replicate_server):
    source = InputImage("ast_src", image_bytes(120, 80), "png", 120, 80)
    call = EditCall(
        model="black-forest-labs/flux-kontext-pro",
        prompt="make it night",
        image=source,
        width=120,
        height=80,
        seed=3,
    )

    result = await provider_for(replicate_server).edit(call)

    (create,) = replicate_server.requests_to("create")
    uri = create.body["input"]["input_image"]
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.partition(",")[2]) == source.data
    assert create.body["input"]["aspect_ratio"] == "match_input_image"
    assert result.image.size == (120, 80)


@pytest.mark.parametrize(
    ("outcome", "error_type", "slug"),
    [
        ("nsfw", ModerationBlocked, "moderation-blocked"),
        ("failed", ProviderError, "provider-error"),
        ("canceled", ProviderError, "provider-error"),
    ],
)
async def test_failed_and_canceled_predictions_become_typed_errors(
    replicate_server, outcome, error_type, slug
):
    replicate_server.outcome = outcome

    with pytest.raises(error_type) as caught:
        await provider_for(replicate_server).generate(image_call())

    problem_body = assert_problem(caught.value, slug)
    assert problem_body["provider_request_id"] == next(iter(replicate_server.predictions))
    assert replicate_server.requests_to("file") == []


async def test_rate_limit_waits_as_long_as_retry_after_then_succeeds(replicate_server):
    replicate_server.script(rate_limited(retry_after="1"))
    sleeps = RecordedSleeps()

    await provider_for(replicate_server, sleep=sleeps).generate(image_call())

    assert sleeps.waits == [1.0]
    assert len(replicate_server.requests_to("create")) == 2


async def test_server_errors_are_retried_within_the_budget_then_overloaded(replicate_server):
    replicate_server.script(*[server_error(502)] * 3)

    with pytest.raises(ProviderOverloaded) as caught:
        await provider_for(replicate_server, max_retries=2).generate(image_call())

    assert len(replicate_server.requests_to("create")) == 3
    assert_problem(caught.value, "provider-overloaded")


async def test_invalid_input_is_not_retried(replicate_server):
    replicate_server.script(
        problem(422, "Input validation failed", "- input.aspect_ratio: must be one of ...")
    )

    with pytest.raises(InvalidForModel) as caught:
        await provider_for(replicate_server).generate(image_call())

    assert len(replicate_server.requests_to("create")) == 1
    assert "input.aspect_ratio" in caught.value.detail


async def test_out_of_credit_is_quota_exhausted(replicate_server):
    replicate_server.script(insufficient_credit())

    with pytest.raises(ProviderQuotaExhausted) as caught:
        await provider_for(replicate_server).generate(image_call())

    assert len(replicate_server.requests_to("create")) == 1
    assert_problem(caught.value, "provider-quota-exhausted")


async def test_a_wrong_token_is_auth_failed_and_never_echoed(replicate_server):
    wrong = "r8_wrong_token_that_stays_secret"

    with pytest.raises(ProviderAuthFailed) as caught:
        await provider_for(replicate_server, api_key=wrong).generate(image_call())

    assert wrong not in json.dumps(caught.value.to_problem()) and wrong not in str(caught.value)


async def test_a_slow_answer_past_the_time_limit_is_retried_then_overloaded(replicate_server):
    replicate_server.script(slow(2), slow(2))

    with pytest.raises(ProviderOverloaded):
        await provider_for(replicate_server, timeout_seconds=0.3, max_retries=1).generate(
            image_call()
        )

    assert len(replicate_server.requests_to("create")) == 2


async def test_malformed_json_is_retried_then_a_malformed_response(replicate_server):
    replicate_server.script(*[malformed_json()] * 3)

    with pytest.raises(ProviderMalformedResponse) as caught:
        await provider_for(replicate_server, max_retries=2).generate(image_call())

    assert "tried 3 times" in caught.value.detail


async def test_a_prediction_that_never_finishes_is_canceled_at_the_deadline(replicate_server):
    replicate_server.outcome = "never"

    started = time.monotonic()
    with pytest.raises(ProviderOverloaded) as caught:
        await provider_for(replicate_server, timeout_seconds=0.6).generate(image_call())

    assert time.monotonic() - started < 2.5
    assert "within 0.6 s" in caught.value.detail
    (cancel,) = replicate_server.requests_to("cancel")
    assert cancel.headers["authorization"] == f"Bearer {API_KEY}"
    assert next(iter(replicate_server.predictions.values())).canceled
