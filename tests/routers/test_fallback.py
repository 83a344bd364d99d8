"""`fallback_models` on POST /v1/generate: validated at submission, tried in order when the
model fails for a passing reason (server errors, an open circuit breaker), not after a refusal,
and recorded on each output."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from app.config import Settings
from tests.fakes.openai_images import (
    API_KEY,
    FakeOpenAIImages,
    moderation_blocked,
    server_error,
    slow,
)
from tests.support import embedded_only, metric_value, postgres_settings, serving, wait_for_final

PRIMARY = "openai/gpt-image-2"
FALLBACK = "openai_compatible/flux-schnell"
WAIT = {"Prefer": "wait=30"}


@dataclass
class Vendors:
    """The app, a client and a tenant, the fake OpenAI and the fake compatible server."""

    client: httpx.AsyncClient
    auth: dict[str, str]
    openai: FakeOpenAIImages
    compatible: FakeOpenAIImages


@pytest.fixture(params=["embedded", "postgres"])
async def vendors(request, tmp_path, postgres_url, bucket) -> AsyncIterator[Vendors]:
    """The app with OpenAI and a compatible server configured, each at a fake, on both
    backends (Postgres and the bucket with the in-process runner, so the fakes are in this
    process)."""
    async with (
        FakeOpenAIImages() as openai,
        FakeOpenAIImages(api_key=None, models={"flux-schnell"}, compatible=True) as compatible,
    ):
        values = {
            "openai_api_key": API_KEY,
            "openai_base_url": openai.base_url,
            "openai_compat_base_url": compatible.base_url,
            "openai_compat_models": "flux-schnell",
            "provider_max_retries": 2,
            "provider_breaker_threshold": 3,
            "provider_breaker_cooldown_seconds": 3,
        }
        if request.param == "postgres":
            settings = postgres_settings(postgres_url, tmp_path, redis_url=None, **bucket, **values)
        else:
            settings = Settings(data_dir=tmp_path / "var", **values)
        async with serving(settings) as (_, client, auth):
            yield Vendors(client, auth, openai, compatible)


async def run(vendors: Vendors, **body: object) -> dict:
    """Submit a generate job and wait for its final state."""
    body = {"prompt": "a paper lantern", "model": PRIMARY} | body
    response = await vendors.client.post("/v1/generate", json=body, headers=vendors.auth | WAIT)
    assert response.status_code in (200, 202), response.text
    job, _ = await wait_for_final(vendors.client, vendors.auth, response.json()["id"])
    return job


async def test_a_model_that_keeps_failing_falls_back_and_the_output_says_so(vendors) -> None:
    vendors.openai.script(*[server_error(500, retry_after="0")] * 3)

    job = await run(vendors, fallback_models=[FALLBACK])

    assert job["status"] == "succeeded", job
    assert job["request"]["fallback_models"] == [FALLBACK]
    [output] = job["outputs"]
    assert output["model"] == FALLBACK
    [failed] = output["details"]["fallbacks_failed"]
    assert failed["model"] == PRIMARY
    assert failed["error"] == "provider-overloaded"
    assert "tried 3 times" in failed["detail"]
    assert len(vendors.openai.received) == 3  # the retry budget, then the fallback
    assert len(vendors.compatible.received) == 1


async def test_an_open_breaker_falls_back_without_calling_the_vendor(vendors) -> None:
    # Three failed attempts of the first job open the breaker (its threshold is 3 here).
    vendors.openai.script(*[server_error(500, retry_after="0")] * 3)
    await run(vendors, fallback_models=[FALLBACK])

    job = await run(vendors, fallback_models=[FALLBACK], n=2)

    assert job["status"] == "succeeded", job
    assert [output["model"] for output in job["outputs"]] == [FALLBACK, FALLBACK]
    failure = job["outputs"][0]["details"]["fallbacks_failed"][0]
    assert "pause" in failure["detail"]
    assert len(vendors.openai.received) == 3  # nothing sent while open


async def test_without_a_fallback_an_open_breaker_delays_the_job_instead_of_failing_it(
    vendors,
) -> None:
    vendors.openai.script(*[server_error(500, retry_after="0")] * 3)
    await run(vendors, fallback_models=[FALLBACK])

    job = await run(vendors)

    assert job["status"] == "succeeded", job
    assert job["outputs"][0]["model"] == PRIMARY
    assert len(vendors.openai.received) == 4  # the trial call, once the pause was over


async def test_a_moderation_refusal_does_not_fall_back(vendors) -> None:
    vendors.openai.script(moderation_blocked())

    job = await run(vendors, fallback_models=[FALLBACK])

    assert job["status"] == "failed"
    assert job["error"]["type"].endswith("/moderation-blocked")
    assert vendors.compatible.received == []


async def test_when_every_model_fails_the_job_error_lists_the_fallbacks_tried(vendors) -> None:
    vendors.openai.script(*[server_error(503, retry_after="0")] * 3)
    vendors.compatible.script(*[server_error(502, retry_after="0")] * 3)

    job = await run(vendors, fallback_models=[FALLBACK])

    assert job["status"] == "failed"
    assert job["error"]["type"].endswith("/provider-overloaded")
    assert [failed["model"] for failed in job["error"]["fallbacks_failed"]] == [PRIMARY]


@pytest.mark.parametrize(
    ("fallbacks", "problem"),
    [
        (["openai/gpt-image-9"], "model-unavailable"),
        (["stability/no-such-model"], "model-unavailable"),
        ([PRIMARY], "invalid-input"),
        ([FALLBACK, FALLBACK], "invalid-input"),
        (
            [FALLBACK, "local/draft", "openai/gpt-image-1.5", "openai/gpt-image-1-mini"],
            "validation",
        ),
    ],
    ids=["unknown", "unknown-provider-model", "itself", "twice", "more-than-three"],
)
@embedded_only("vendors")
async def test_bad_fallbacks_are_refused_at_submission(vendors, fallbacks, problem) -> None:
    body = {"prompt": "x", "model": PRIMARY, "fallback_models": fallbacks}

    response = await vendors.client.post("/v1/generate", json=body, headers=vendors.auth)

    assert response.status_code == 422, response.text
    assert problem in response.json()["type"]
    assert vendors.openai.received == []


@embedded_only()
async def test_an_unconfigured_fallback_is_refused(client, auth) -> None:
    body = {"prompt": "x", "fallback_models": ["openai/gpt-image-2"]}

    response = await client.post("/v1/generate", json=body, headers=auth)

    assert response.status_code == 422
    assert response.json()["type"].endswith("/model-unavailable")


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return response.text


async def test_model_calls_are_counted_by_outcome_and_fallbacks_by_the_model_passed_over(
    vendors,
) -> None:
    primary = {"vendor": "openai", "model": PRIMARY}
    fallback = {"vendor": "openai_compatible", "model": FALLBACK}
    before = await scrape(vendors.client)

    # A refusal first: three server errors after it open the primary's breaker.
    vendors.openai.script(moderation_blocked())
    refused = await run(vendors, fallback_models=[FALLBACK])
    vendors.openai.script(*[server_error(500, retry_after="0")] * 3)
    fell_back = await run(vendors, fallback_models=[FALLBACK])
    after = await scrape(vendors.client)

    def moved(sample: str, **labels: str) -> float:
        return metric_value(after, sample, **labels) - metric_value(before, sample, **labels)

    assert refused["status"] == "failed" and fell_back["status"] == "succeeded"
    assert moved("darkroom_vendor_calls_total", **primary, outcome="refused") == 1
    assert moved("darkroom_vendor_calls_total", **primary, outcome="retryable_error") == 1
    assert moved("darkroom_vendor_calls_total", **fallback, outcome="ok") == 1
    assert moved("darkroom_vendor_call_duration_seconds_count", **primary) == 2
    assert moved("darkroom_fallbacks_total", model=PRIMARY) == 1
    assert moved("darkroom_fallbacks_total", model=FALLBACK) == 0
    assert moved("darkroom_cost_usd_total", model=PRIMARY) == 0


async def test_a_model_that_sends_no_answer_in_time_is_counted_as_a_timeout(tmp_path) -> None:
    async with FakeOpenAIImages() as openai:
        settings = Settings(
            data_dir=tmp_path / "var",
            openai_api_key=API_KEY,
            openai_base_url=openai.base_url,
            provider_timeout_seconds=0.2,
            provider_max_retries=0,
        )
        openai.script(slow(2))
        async with serving(settings) as (_, client, auth):
            before = await scrape(client)
            body = {"prompt": "a paper lantern", "model": PRIMARY}
            submitted = await client.post("/v1/generate", json=body, headers=auth)
            job, _ = await wait_for_final(client, auth, submitted.json()["id"])
            after = await scrape(client)

    timeout = {"vendor": "openai", "model": PRIMARY, "outcome": "timeout"}
    assert job["status"] == "failed", job
    assert job["error"]["type"].endswith("/provider-overloaded")
    assert metric_value(after, "darkroom_vendor_calls_total", **timeout) == (
        metric_value(before, "darkroom_vendor_calls_total", **timeout) + 1
    )


@embedded_only("vendors")
async def test_the_cost_of_stored_outputs_is_counted_by_model(vendors) -> None:
    priced = "openai/gpt-image-1-mini"
    before = await scrape(vendors.client)

    job = await run(vendors, model=priced, n=2)
    after = await scrape(vendors.client)

    assert job["status"] == "succeeded", job
    assert job["cost_usd"] > 0
    counted = metric_value(after, "darkroom_cost_usd_total", model=priced) - metric_value(
        before, "darkroom_cost_usd_total", model=priced
    )
    assert counted == pytest.approx(job["cost_usd"])
