"""Per-API-key rate limits: RateLimit fields on every authenticated response, 429 with
Retry-After over the limit, recovery as the window moves on, one count for every API process
on a shared Redis, and the embedded in-process count."""

import asyncio
from pathlib import Path

import pytest

from app.config import Settings
from tests.support import new_api_key, serving


@pytest.fixture(params=["embedded", "redis"])
def limited(request, tmp_path: Path, deployment_settings: Settings):
    """Settings for 3 requests per 2 seconds per key, counted in-process or in Redis."""

    def settings(**overrides: object) -> Settings:
        limits: dict[str, object] = {"rate_limit_requests": 3, "rate_limit_window_seconds": 2}
        if request.param == "redis":
            return deployment_settings.model_copy(update=limits | overrides)
        return Settings(data_dir=tmp_path / "var", **(limits | overrides))

    return settings


async def test_over_the_limit_is_429_with_retry_after_then_recovers(limited):
    async with serving(limited()) as (_, client, auth):
        allowed = [await client.get("/v1/jobs/job_missing", headers=auth) for _ in range(3)]
        refused = await client.get("/v1/jobs/job_missing", headers=auth)
        await asyncio.sleep(int(refused.headers["Retry-After"]))
        recovered = await client.get("/v1/jobs/job_missing", headers=auth)

    # Every authenticated answer carries the fields, a 404 as much as a 200.
    assert [r.status_code for r in allowed] == [404, 404, 404]
    assert [r.headers["RateLimit-Remaining"] for r in allowed] == ["2", "1", "0"]
    for response in [*allowed, refused]:
        assert response.headers["RateLimit-Limit"] == "3"
        assert response.headers["RateLimit-Policy"] == "3;w=2"
        assert 1 <= int(response.headers["RateLimit-Reset"]) <= 2
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/rate-limited")
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert recovered.status_code == 404
    assert recovered.headers["RateLimit-Remaining"] == "0"


async def test_each_key_has_its_own_count_and_health_is_not_limited(limited):
    # A window the test's requests cannot outlast, however busy the machine.
    async with serving(limited(rate_limit_window_seconds=60)) as (app, client, auth):
        for _ in range(4):
            await client.get("/v1/models", headers=auth)
        other = await new_api_key(app)

        mine = await client.get("/v1/models", headers=auth)
        theirs = await client.get("/v1/models", headers=other)
        health = [await client.get("/healthz") for _ in range(5)]

    assert mine.status_code == 429
    assert theirs.status_code == 200
    assert theirs.headers["RateLimit-Remaining"] == "2"
    assert {r.status_code for r in health} == {200}
    assert all("RateLimit-Limit" not in r.headers for r in health)


async def test_idempotent_replays_and_conflicts_count_too(limited):
    async with serving(limited(rate_limit_window_seconds=60)) as (_, client, auth):
        keyed = auth | {"Idempotency-Key": "order-1"}
        responses = [
            await client.post("/v1/generate", json={"prompt": "a kite"}, headers=keyed)
            for _ in range(4)
        ]

    assert [r.status_code for r in responses] == [202, 202, 202, 429]
    assert [r.headers["RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert responses[1].headers["Idempotent-Replayed"] == "true"


async def test_two_api_processes_share_one_count_on_redis(deployment_settings: Settings):
    settings = deployment_settings.model_copy(
        update={"rate_limit_requests": 4, "rate_limit_window_seconds": 60}
    )
    async with serving(settings) as (_, first, auth), serving(settings) as (_, second, _):
        answers = []
        for client in (first, second, first, second, second):
            answers.append(await client.get("/v1/models", headers=auth))

    assert [r.status_code for r in answers] == [200, 200, 200, 200, 429]
    assert [r.headers["RateLimit-Remaining"] for r in answers] == ["3", "2", "1", "0", "0"]


async def test_a_limit_of_zero_turns_limits_off(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "var", rate_limit_requests=0)
    async with serving(settings) as (_, client, auth):
        responses = [await client.get("/v1/models", headers=auth) for _ in range(20)]

    assert {r.status_code for r in responses} == {200}
    assert all("RateLimit-Limit" not in r.headers for r in responses)
