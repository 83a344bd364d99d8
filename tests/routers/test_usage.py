"""Monthly budgets: GET /v1/usage (app/routers/usage.py), the operator's
PUT /v1/admin/tenants/{tenant}/budget, and the submission check that refuses a job with 402
`budget-exceeded` when its estimated cost would take the month's spend past the budget; the
spend ledger that keeps what deleted, canceled and failed jobs cost, in shards that a busy
tenant's writes do not queue on."""

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import insert, text

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.ids import new_id
from app.models import Tenant
from app.services.budgets import count_output, ledger_shard, month_spend
from tests.factories import queued_job_row, unique_png
from tests.fakes import bfl
from tests.fakes.http_server import Reply
from tests.fakes.openai_images import FakeOpenAIImages
from tests.support import embedded_only, postgres_settings, serving, wait_for_final, wait_until

ADMIN = {"Authorization": "Bearer admin-token-for-tests"}
# bfl/flux-pro-1.1 costs 0.04 per image.
PRICED_MODEL = "bfl/flux-pro-1.1"
# A model of an OpenAI-compatible server: no price is known for it.
UNPRICED_MODEL = "openai_compatible/flux-schnell"


@pytest.fixture(params=["embedded", "postgres"])
async def budget_app(
    request, tmp_path, postgres_url, bucket
) -> AsyncIterator[tuple[httpx.AsyncClient, dict]]:
    """An app with a priced model and the operator API, and headers to wait for a job. Embedded,
    jobs run (against a fake BFL) and report their cost; on Postgres no worker serves the
    app's queue, so its jobs stay queued and count by their estimate."""
    async with bfl.FakeBFL() as vendor:
        common = {
            "admin_token": "admin-token-for-tests",
            "bfl_api_key": bfl.API_KEY,
            "bfl_base_url": vendor.base_url,
            "url_allow": "127.0.0.1",
        }
        if request.param == "postgres":
            settings = postgres_settings(
                postgres_url,
                tmp_path,
                queue_name=f"darkroom:test:unserved:{uuid.uuid4().hex}",
                **bucket,
                **common,
            )
            wait = {}
        else:
            settings = Settings(data_dir=tmp_path / "var", **common)
            wait = {"Prefer": "wait=30"}
        async with serving(settings) as (_, client, _auth):
            yield client, wait


async def new_tenant(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    tenant = f"budgeted-{uuid.uuid4().hex}"
    created = await client.post("/v1/admin/keys", json={"tenant": tenant}, headers=ADMIN)
    return tenant, {"Authorization": f"Bearer {created.json()['key']}"}


async def set_budget(client: httpx.AsyncClient, tenant: str, usd: float | None) -> httpx.Response:
    return await client.put(
        f"/v1/admin/tenants/{tenant}/budget", json={"monthly_budget_usd": usd}, headers=ADMIN
    )


def generate(model: str, n: int) -> dict:
    return {"prompt": "a lighthouse at dusk", "model": model, "n": n, "size": "1024x1024"}


async def test_a_job_that_would_pass_the_monthly_budget_is_refused_with_402(budget_app):
    client, wait = budget_app
    tenant, auth = await new_tenant(client)
    before = (await client.get("/v1/usage", headers=auth)).json()
    assert (await set_budget(client, tenant, 0.10)).status_code == 200

    first = await client.post("/v1/generate", json=generate(PRICED_MODEL, 2), headers=auth | wait)
    over = await client.post("/v1/generate", json=generate(PRICED_MODEL, 1), headers=auth)
    free = await client.post("/v1/generate", json=generate("local/draft", 1), headers=auth)
    usage = (await client.get("/v1/usage", headers=auth)).json()

    assert before["spent_usd"] == 0 and before["jobs"] == 0
    assert before["monthly_budget_usd"] is None and before["remaining_usd"] is None
    assert first.status_code in (200, 202), first.text
    assert over.status_code == 402
    assert over.headers["content-type"] == "application/problem+json"
    problem = over.json()
    assert problem["type"].endswith("/budget-exceeded")
    assert problem["monthly_budget_usd"] == 0.10
    assert problem["spent_usd"] == pytest.approx(0.08)
    assert problem["estimated_cost_usd"] == pytest.approx(0.04)
    assert free.status_code in (200, 202), free.text
    assert usage["spent_usd"] == pytest.approx(0.08) and usage["jobs"] == 2
    assert usage["monthly_budget_usd"] == 0.10
    assert usage["remaining_usd"] == pytest.approx(0.02)
    assert usage["period_start"] < usage["period_end"]


async def test_removing_the_budget_lets_the_job_through(budget_app):
    client, _ = budget_app
    tenant, auth = await new_tenant(client)
    await set_budget(client, tenant, 0.0)
    refused = await client.post("/v1/generate", json=generate(PRICED_MODEL, 1), headers=auth)

    removed = await set_budget(client, tenant, None)
    accepted = await client.post("/v1/generate", json=generate(PRICED_MODEL, 1), headers=auth)

    assert refused.status_code == 402
    assert removed.json() == {
        "object": "tenant_budget",
        "tenant": tenant,
        "monthly_budget_usd": None,
    }
    assert accepted.status_code in (200, 202), accepted.text


async def test_a_bad_budget_is_refused_and_changes_nothing(budget_app):
    client, _ = budget_app
    tenant, auth = await new_tenant(client)

    negative = await set_budget(client, tenant, -1)
    not_a_number = await client.put(
        f"/v1/admin/tenants/{tenant}/budget", json={"monthly_budget_usd": "lots"}, headers=ADMIN
    )
    as_text = await client.put(
        f"/v1/admin/tenants/{tenant}/budget", json={"monthly_budget_usd": "50"}, headers=ADMIN
    )
    unknown = await set_budget(client, f"nobody-{uuid.uuid4().hex}", 5)
    usage = (await client.get("/v1/usage", headers=auth)).json()

    assert negative.status_code == not_a_number.status_code == as_text.status_code == 422
    assert unknown.status_code == 404
    assert usage["monthly_budget_usd"] is None


@pytest.mark.parametrize("budget_app", ["postgres"], indirect=True)
async def test_concurrent_submissions_cannot_both_take_the_last_of_the_budget(budget_app):
    client, _ = budget_app
    tenant, auth = await new_tenant(client)
    await set_budget(client, tenant, 0.04)

    answers = await asyncio.gather(
        *(
            client.post("/v1/generate", json=generate(PRICED_MODEL, 1), headers=auth)
            for _ in range(20)
        )
    )

    assert sorted(answer.status_code for answer in answers) == [202] + [402] * 19
    usage = (await client.get("/v1/usage", headers=auth)).json()
    assert usage["spent_usd"] == pytest.approx(0.04) and usage["jobs"] == 1


@pytest.mark.parametrize("rule", ["allow", "refuse"])
async def test_a_model_without_a_known_price_follows_the_unpriced_setting(tmp_path, rule):
    async with FakeOpenAIImages(api_key=None, models={"flux-schnell"}, compatible=True) as server:
        settings = Settings(
            data_dir=tmp_path / "var",
            admin_token="admin-token-for-tests",
            openai_compat_base_url=server.base_url,
            openai_compat_models="flux-schnell",
            url_allow="127.0.0.1",
            budget_unpriced_models=rule,
        )
        async with serving(settings) as (_, client, _auth):
            tenant, auth = await new_tenant(client)
            await set_budget(client, tenant, 100.0)
            unpriced = await client.post(
                "/v1/generate", json=generate(UNPRICED_MODEL, 1), headers=auth
            )

    if rule == "allow":
        assert unpriced.status_code == 202, unpriced.text
    else:
        assert unpriced.status_code == 402
        assert unpriced.json()["type"].endswith("/budget-exceeded")
        assert "cannot be estimated" in unpriced.json()["detail"]


async def test_usage_counts_jobs_images_and_spend_by_day_and_model(budget_app):
    client, wait = budget_app
    _, auth = await new_tenant(client)
    for model, n in ((PRICED_MODEL, 2), (PRICED_MODEL, 1), ("local/draft", 3)):
        response = await client.post("/v1/generate", json=generate(model, n), headers=auth | wait)
        assert response.status_code in (200, 202), response.text

    usage = (await client.get("/v1/usage", headers=auth)).json()
    earlier = await client.get("/v1/usage?from=2020-01-01&to=2020-01-31", headers=auth)

    days = {(day["date"], day["model"]): day for day in usage["by_day"]}
    assert len({day for day, _ in days}) == 1  # all made today (UTC)
    priced = next(entry for (_, model), entry in days.items() if model == PRICED_MODEL)
    draft = next(entry for (_, model), entry in days.items() if model == "local/draft")
    assert priced["jobs"] == 2 and priced["spent_usd"] == pytest.approx(0.12)
    assert draft["jobs"] == 1 and draft["spent_usd"] == 0
    # Embedded, the jobs ran and stored their images; on Postgres no worker serves them yet.
    ran = bool(wait)
    assert (priced["images"], draft["images"]) == ((3, 3) if ran else (0, 0))
    assert usage["jobs"] == 3 and usage["images"] == (6 if ran else 0)
    assert usage["spent_usd"] == pytest.approx(0.12) == usage["month_spent_usd"]
    assert earlier.status_code == 200
    assert earlier.json()["jobs"] == 0 and earlier.json()["by_day"] == []
    assert earlier.json()["period_start"].startswith("2020-01-01")
    assert earlier.json()["period_end"].startswith("2020-02-01")
    assert earlier.json()["month_spent_usd"] == pytest.approx(0.12)


async def test_a_usage_period_that_ends_before_it_starts_holds_nothing(budget_app):
    client, wait = budget_app
    _, auth = await new_tenant(client)
    await client.post("/v1/generate", json=generate("local/draft", 1), headers=auth | wait)

    response = await client.get("/v1/usage?from=2026-02-01&to=2026-01-01", headers=auth)

    assert response.status_code == 200
    assert response.json()["jobs"] == 0 and response.json()["by_day"] == []


@pytest.mark.parametrize("budget_app", ["postgres"], indirect=True)
async def test_concurrent_budgeted_edits_with_inline_inputs_all_go_through(budget_app):
    # Each edit stores its input as an asset before the budget check locks the tenant: the
    # lock must not wait on the other requests' inserts while they wait on it.
    client, _ = budget_app
    tenant, auth = await new_tenant(client)
    await set_budget(client, tenant, 100.0)

    answers = await asyncio.gather(
        *(
            client.post(
                "/v1/edit",
                json={
                    "image": {"b64": base64.b64encode(unique_png()).decode()},
                    "prompt": "warmer",
                },
                headers=auth,
            )
            for _ in range(12)
        )
    )

    assert [answer.status_code for answer in answers] == [202] * 12, answers[0].text


@pytest.fixture(scope="module", params=["embedded", "postgres"])
async def ledger_app(
    request, tmp_path_factory, postgres_url, bucket
) -> AsyncIterator[tuple[httpx.AsyncClient, bfl.FakeBFL]]:
    """An app whose jobs run in this process (on Postgres too) one output at a time, against a
    fake BFL (priced) and an OpenAI-compatible server (unpriced), with the operator API."""
    async with (
        bfl.FakeBFL(pending_polls=0) as vendor,
        FakeOpenAIImages(api_key=None, models={"flux-schnell"}, compatible=True) as compatible,
    ):
        common = {
            "admin_token": "admin-token-for-tests",
            "bfl_api_key": bfl.API_KEY,
            "bfl_base_url": vendor.base_url,
            "openai_compat_base_url": compatible.base_url,
            "openai_compat_models": "flux-schnell",
            "url_allow": "127.0.0.1",
            "job_output_concurrency": 1,
            "provider_max_retries": 0,
        }
        data_dir = tmp_path_factory.mktemp("ledger")
        if request.param == "postgres":
            settings = postgres_settings(postgres_url, data_dir, redis_url=None, **bucket, **common)
        else:
            settings = Settings(data_dir=data_dir / "var", **common)
        async with serving(settings) as (_, client, _auth):
            yield client, vendor


async def run_to_the_end(client: httpx.AsyncClient, auth: dict, body: dict) -> dict:
    submitted = await client.post("/v1/generate", json=body, headers=auth)
    assert submitted.status_code == 202, submitted.text
    job, _ = await wait_for_final(client, auth, submitted.json()["id"])
    return job


async def test_deleting_a_job_gives_back_none_of_what_it_cost(ledger_app):
    client, _ = ledger_app
    tenant, auth = await new_tenant(client)
    await set_budget(client, tenant, 0.10)
    job = await run_to_the_end(client, auth, generate(PRICED_MODEL, 2))

    deleted = await client.delete(f"/v1/jobs/{job['id']}", headers=auth)
    usage = (await client.get("/v1/usage", headers=auth)).json()
    over = await client.post("/v1/generate", json=generate(PRICED_MODEL, 1), headers=auth)

    assert job["status"] == "succeeded" and job["cost_usd"] == pytest.approx(0.08)
    assert deleted.status_code == 204
    assert (await client.get(f"/v1/jobs/{job['id']}", headers=auth)).status_code == 404
    assert usage["spent_usd"] == pytest.approx(0.08) == usage["month_spent_usd"]
    assert (usage["jobs"], usage["images"]) == (1, 2)
    assert usage["remaining_usd"] == pytest.approx(0.02)
    assert over.status_code == 402
    assert over.json()["spent_usd"] == pytest.approx(0.08)


async def test_a_job_that_fails_part_way_counts_the_outputs_it_stored(ledger_app):
    client, vendor = ledger_app
    _, auth = await new_tenant(client)
    refused = bfl.error_reply(422, [bfl.validation("prompt", "Not allowed")])
    vendor.script(Reply(), Reply(), refused)

    job = await run_to_the_end(client, auth, generate(PRICED_MODEL, 3))
    usage = (await client.get("/v1/usage", headers=auth)).json()

    assert job["status"] == "failed", job
    assert job["cost_usd"] == pytest.approx(0.08)
    assert usage["spent_usd"] == pytest.approx(0.08) and usage["images"] == 2


async def test_a_job_canceled_part_way_counts_the_outputs_it_stored(ledger_app):
    client, vendor = ledger_app
    _, auth = await new_tenant(client)
    # The first two outputs are ready at their first poll; the third stays pending until the
    # test has canceled the job.
    vendor.script(Reply(), Reply(), *[bfl.status_reply("held", "Pending")] * 100, on="poll")
    submitted = await client.post("/v1/generate", json=generate(PRICED_MODEL, 3), headers=auth)
    job_id = submitted.json()["id"]

    async def two_stored() -> bool:
        page = await client.get(f"/v1/assets?job_id={job_id}", headers=auth)
        return len(page.json()["data"]) == 2

    try:
        await wait_until(two_stored, seconds=30)
        canceled = await client.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
    finally:
        vendor.unscript(on="poll")
    job, _ = await wait_for_final(client, auth, job_id)
    usage = (await client.get("/v1/usage", headers=auth)).json()

    assert canceled.status_code == 200, canceled.text
    assert job["status"] == "canceled" and job["cost_usd"] == pytest.approx(0.08)
    assert usage["spent_usd"] == pytest.approx(0.08) and usage["images"] == 2


async def test_a_comparison_with_an_unpriced_model_counts_what_the_priced_one_cost(ledger_app):
    client, _ = ledger_app
    _, auth = await new_tenant(client)
    body = {"prompt": "a lighthouse at dusk", "models": [PRICED_MODEL, UNPRICED_MODEL]}

    job = await run_to_the_end(client, auth, body | {"n": 1, "size": "1024x1024"})
    usage = (await client.get("/v1/usage", headers=auth)).json()

    assert job["status"] == "succeeded", job
    costs = {group["model"]: group["cost_usd"] for group in job["groups"]}
    assert costs == {PRICED_MODEL: pytest.approx(0.04), UNPRICED_MODEL: None}
    assert job["cost_usd"] == pytest.approx(0.04)
    assert usage["spent_usd"] == pytest.approx(0.04) and usage["images"] == 2


async def test_the_estimate_refuses_a_job_over_the_budget_as_the_route_would(ledger_app):
    client, _ = ledger_app
    tenant, auth = await new_tenant(client)
    await set_budget(client, tenant, 0.05)
    body = {"kind": "generate", **generate(PRICED_MODEL, 2)}

    estimate = await client.post("/v1/estimate", json=body, headers=auth)
    submitted = await client.post("/v1/generate", json=generate(PRICED_MODEL, 2), headers=auth)
    within = await client.post("/v1/estimate", json={**body, "n": 1}, headers=auth)

    assert estimate.status_code == 200, estimate.text
    assert estimate.json()["accepted"] is False
    refusal = estimate.json()["refusal"]
    assert refusal["type"].endswith("/budget-exceeded") and refusal["status"] == 402
    assert refusal["estimated_cost_usd"] == pytest.approx(0.08)
    assert submitted.status_code == 402
    assert within.json()["accepted"] is True, within.text


async def test_jobs_in_different_ledger_shards_all_count_in_usage_and_the_budget(ledger_app):
    client, _ = ledger_app
    tenant, auth = await new_tenant(client)
    jobs: list[dict] = []
    # Jobs until two land in different shards of the day and model (two share one 1 time in 16).
    for _ in range(12):
        jobs.append(await run_to_the_end(client, auth, generate(PRICED_MODEL, 1)))
        if len({ledger_shard(job["id"]) for job in jobs}) > 1:
            break
    spent = 0.04 * len(jobs)
    await set_budget(client, tenant, spent + 0.03)

    usage = (await client.get("/v1/usage", headers=auth)).json()
    over = await client.post("/v1/generate", json=generate(PRICED_MODEL, 1), headers=auth)

    assert len({ledger_shard(job["id"]) for job in jobs}) > 1
    assert all(job["status"] == "succeeded" for job in jobs), jobs
    (day,) = usage["by_day"]
    assert (day["model"], day["jobs"], day["images"]) == (PRICED_MODEL, len(jobs), len(jobs))
    assert day["spent_usd"] == pytest.approx(spent) == usage["month_spent_usd"]
    assert over.status_code == 402
    assert over.json()["spent_usd"] == pytest.approx(spent)


async def test_outputs_of_jobs_in_different_shards_are_counted_without_waiting(postgres_url):
    engine = create_engine(postgres_url)
    sessions = create_sessionmaker(engine)
    tenant_id = f"ten_{uuid.uuid4().hex[:26]}"
    # Dispatched "later", so that no sweeper runs them meanwhile.
    first, second = (queued_job_row(tenant_id, age_seconds=-600) for _ in range(2))
    for _ in range(100):
        if ledger_shard(second.id) != ledger_shard(first.id):
            break
        second.id = new_id("job")
    assert ledger_shard(second.id) != ledger_shard(first.id)
    try:
        async with sessions() as session:
            await session.execute(insert(Tenant).values(id=tenant_id, name=tenant_id))
            session.add_all([first, second])
            await session.commit()

        async with sessions() as holding, sessions() as other:
            # The first output's transaction holds its ledger row until it commits; one row
            # per day and model would keep the second waiting until the lock timeout.
            await count_output(holding, first, 0.04)
            await other.execute(text("SET LOCAL lock_timeout = '2s'"))
            await count_output(other, second, 0.04)
            await other.commit()
            await holding.commit()
        async with sessions() as session:
            spent = await month_spend(session, tenant_id, first.created_at)
    finally:
        await engine.dispose()

    assert spent == pytest.approx(0.08)


@embedded_only()
async def test_usage_days_outside_1970_to_9998_are_422_problems_naming_the_parameter(client, auth):
    for query, parameter in (("to=9999-12-31", "to"), ("from=1969-12-31", "from")):
        response = await client.get(f"/v1/usage?{query}", headers=auth)

        assert response.status_code == 422, (query, response.text)
        assert response.json()["errors"][0]["field"] == f"query.{parameter}"
    widest = await client.get("/v1/usage?from=1970-01-01&to=9998-12-31", headers=auth)
    assert widest.status_code == 200, widest.text
    assert widest.json()["period_end"].startswith("9999-01-01")
