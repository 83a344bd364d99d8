"""The `bfl` provider against a fake BFL API on 127.0.0.1: what it submits, how it polls the
returned URL, what it makes of each final status, and how it retries and reports failures."""

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
from app.providers.base import EditCall, GenerateCall, InputImage, Reference
from app.providers.bfl import BFLProvider
from app.providers.transport import CircuitBreaker
from tests.factories import image_bytes
from tests.fakes.bfl import (
    API_KEY,
    FakeBFL,
    error_reply,
    malformed_json,
    out_of_credits,
    rate_limited,
    server_error,
    slow,
)
from tests.fakes.http_server import Reply
from tests.providers.support import RecordedSleeps, checked_problem

PROMPT = "a lighthouse at dusk, long exposure"


@pytest.fixture
async def bfl_server() -> AsyncIterator[FakeBFL]:
    """A fresh fake BFL API for one test."""
    async with FakeBFL() as server:
        yield server


def provider_for(server: FakeBFL, **options: typing.Any) -> BFLProvider:
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
    return BFLProvider(**options)


def image_call(model: str = "flux-pro-1.1", width: int = 1024, height: int = 768) -> GenerateCall:
    return GenerateCall(model=model, prompt=PROMPT, width=width, height=height, seed=42)


def input_image(width: int = 96, height: int = 64) -> InputImage:
    return InputImage("ast_source", image_bytes(width, height), "png", width, height)


# Every problem is checked for never naming the key.
assert_problem = partial(checked_problem, secret=API_KEY)


async def test_generate_submits_polls_the_returned_url_and_downloads_the_sample(bfl_server):
    bfl_server.pending_polls = 2

    result = await provider_for(bfl_server).generate(image_call(width=1000, height=700))

    submit, *polls = bfl_server.requests_to("submit") + bfl_server.requests_to("poll")
    assert submit.path == "/v1/flux-pro-1.1"
    assert submit.headers["x-key"] == API_KEY
    assert submit.body == {
        "prompt": PROMPT,
        "seed": 42,
        "output_format": "png",
        "width": 992,
        "height": 704,
    }
    assert len(polls) == 3 and all(p.headers["x-key"] == API_KEY for p in polls)
    (task_id,) = bfl_server.tasks
    assert polls[0].path == f"/v1/get_result?id={task_id}"
    (sample,) = bfl_server.requests_to("sample")
    assert "x-key" not in sample.headers, "the key must not go to the delivery host"
    assert result.image.size == (992, 704)
    assert result.cost_usd == pytest.approx(0.04)
    assert result.details == {"provider_request_id": task_id, "provider_seed": 42}


async def test_ratio_models_get_the_reduced_aspect_ratio_within_21_9(bfl_server):
    provider = provider_for(bfl_server)

    wide = await provider.generate(image_call("flux-kontext-pro", 1360, 765))
    banner = await provider.generate(image_call("flux-kontext-pro", 3000, 500))

    bodies = [request.body for request in bfl_server.requests_to("submit")]
    assert [body["aspect_ratio"] for body in bodies] == ["16:9", "21:9"]
    assert all("width" not in body for body in bodies)
    assert wide.image.width > wide.image.height
    assert banner.cost_usd == pytest.approx(0.04)


async def test_kontext_edit_sends_the_source_and_references_as_base64(bfl_server):
    source, reference = input_image(), input_image(40, 40)
    call = EditCall(
        model="flux-kontext-max",
        prompt="make the sky orange",
        image=source,
        width=96,
        height=64,
        seed=7,
        references=(Reference(reference, "style"),),
    )

    result = await provider_for(bfl_server).edit(call)

    (submit,) = bfl_server.requests_to("submit")
    assert submit.path == "/v1/flux-kontext-max"
    assert base64.b64decode(submit.body["input_image"]) == source.data
    assert base64.b64decode(submit.body["input_image_2"]) == reference.data
    assert submit.body["aspect_ratio"] == "3:2"
    assert result.cost_usd == pytest.approx(0.08)


async def test_edit_on_a_text_only_model_is_refused_before_any_request(bfl_server):
    call = EditCall(
        model="flux-pro-1.1", prompt="x", image=input_image(), width=64, height=64, seed=1
    )

    with pytest.raises(InvalidForModel):
        await provider_for(bfl_server).edit(call)

    assert bfl_server.received == []


@pytest.mark.parametrize(
    ("outcome", "error_type", "slug"),
    [
        ("request_moderated", ModerationBlocked, "moderation-blocked"),
        ("content_moderated", ModerationBlocked, "moderation-blocked"),
        ("error", ProviderError, "provider-error"),
    ],
)
async def test_final_statuses_other_than_ready_become_typed_errors(
    bfl_server, outcome, error_type, slug
):
    bfl_server.outcome = outcome

    with pytest.raises(error_type) as caught:
        await provider_for(bfl_server).generate(image_call())

    problem = assert_problem(caught.value, slug)
    assert problem["provider_request_id"] == next(iter(bfl_server.tasks))
    assert not caught.value.retryable
    assert bfl_server.requests_to("sample") == []


async def test_a_task_bfl_no_longer_knows_is_a_provider_error(bfl_server):
    bfl_server.script(
        Reply(200, json.dumps({"id": "x", "status": "Task not found"}).encode()), on="poll"
    )

    with pytest.raises(ProviderError) as caught:
        await provider_for(bfl_server).generate(image_call())

    assert "Task not found" in caught.value.detail
    assert len(bfl_server.requests_to("poll")) == 1


async def test_rate_limit_waits_as_long_as_retry_after_then_succeeds(bfl_server):
    bfl_server.script(rate_limited(retry_after="1"))
    sleeps = RecordedSleeps()

    result = await provider_for(bfl_server, sleep=sleeps).generate(image_call())

    assert len(bfl_server.requests_to("submit")) == 2
    assert sleeps.waits == [1.0]
    assert result.image.size == (1024, 768)


async def test_rate_limited_polls_are_retried_too(bfl_server):
    bfl_server.script(rate_limited(retry_after="0"), server_error(503), on="poll")

    result = await provider_for(bfl_server).generate(image_call())

    assert len(bfl_server.requests_to("submit")) == 1
    assert len(bfl_server.requests_to("poll")) == 4
    assert result.image.size == (1024, 768)


async def test_server_errors_are_retried_within_the_budget_then_overloaded(bfl_server):
    bfl_server.script(*[server_error(500)] * 3)

    with pytest.raises(ProviderOverloaded) as caught:
        await provider_for(bfl_server, max_retries=2).generate(image_call())

    assert len(bfl_server.requests_to("submit")) == 3
    assert "tried 3 times" in caught.value.detail
    assert_problem(caught.value, "provider-overloaded")


async def test_invalid_request_is_not_retried(bfl_server):
    bfl_server.script(error_reply(422, [{"loc": ["body", "width"], "msg": "bad width"}]))

    with pytest.raises(InvalidForModel) as caught:
        await provider_for(bfl_server).generate(image_call())

    assert len(bfl_server.requests_to("submit")) == 1
    assert "width: bad width" in caught.value.detail


async def test_out_of_credits_is_quota_exhausted_and_not_retried(bfl_server):
    bfl_server.script(out_of_credits())

    with pytest.raises(ProviderQuotaExhausted) as caught:
        await provider_for(bfl_server).generate(image_call())

    assert len(bfl_server.requests_to("submit")) == 1
    assert_problem(caught.value, "provider-quota-exhausted")


async def test_a_wrong_key_is_auth_failed_and_never_echoed(bfl_server):
    wrong_key = "bfl-wrong-key-which-must-stay-secret"

    with pytest.raises(ProviderAuthFailed) as caught:
        await provider_for(bfl_server, api_key=wrong_key).generate(image_call())

    assert len(bfl_server.requests_to("submit")) == 1
    assert wrong_key not in json.dumps(caught.value.to_problem())


async def test_a_slow_answer_past_the_time_limit_is_retried_then_overloaded(bfl_server):
    bfl_server.script(slow(2), slow(2))

    with pytest.raises(ProviderOverloaded) as caught:
        await provider_for(bfl_server, timeout_seconds=0.3, max_retries=1).generate(image_call())

    assert "no answer within 0.3 s" in caught.value.detail
    assert len(bfl_server.requests_to("submit")) == 2


async def test_malformed_json_is_retried_then_a_malformed_response(bfl_server):
    bfl_server.script(*[malformed_json()] * 3)

    with pytest.raises(ProviderMalformedResponse) as caught:
        await provider_for(bfl_server, max_retries=2).generate(image_call())

    assert "tried 3 times" in caught.value.detail


async def test_a_poll_that_never_finishes_stops_at_the_deadline(bfl_server):
    bfl_server.outcome = "never"

    started = time.monotonic()
    with pytest.raises(ProviderOverloaded) as caught:
        await provider_for(bfl_server, timeout_seconds=0.6).generate(image_call())

    assert time.monotonic() - started < 2.0
    assert "within 0.6 s" in caught.value.detail
    assert caught.value.retryable, "a fallback model may still succeed"
    assert len(bfl_server.requests_to("poll")) >= 3
    assert bfl_server.requests_to("sample") == []


async def test_a_polling_url_off_the_vendor_site_is_refused_without_sending_the_key(bfl_server):
    answer = {"id": "task-1", "polling_url": "http://collector.example/v1/get_result?id=1"}
    bfl_server.script(Reply(200, json.dumps(answer).encode()))

    with pytest.raises(ProviderMalformedResponse):
        await provider_for(bfl_server).generate(image_call())

    assert bfl_server.requests_to("poll") == []


async def test_a_polling_url_on_another_port_of_the_same_host_gets_no_key(bfl_server):
    async with FakeBFL() as collector:
        polling_url = f"{collector.base_url}/v1/get_result?id=task-1"
        answer = {"id": "task-1", "polling_url": polling_url}
        bfl_server.script(Reply(200, json.dumps(answer).encode()))

        with pytest.raises(ProviderMalformedResponse, match="outside its own site"):
            await provider_for(bfl_server).generate(image_call())

    assert collector.received == []
    assert bfl_server.requests_to("poll") == []


async def test_without_a_key_it_is_unavailable_and_refuses(bfl_server):
    provider = provider_for(bfl_server, api_key=None)

    assert not provider.is_available()
    with pytest.raises(ProviderAuthFailed):
        await provider.generate(image_call())
    assert bfl_server.received == []
