"""POST /v1/estimate: the same checks and normalized request as the real route, the cost and
latency the real job then has, and nothing created."""

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from tests.factories import image_bytes
from tests.fakes.openai_images import API_KEY, FakeOpenAIImages
from tests.support import embedded_only, serving, wait_for_final

WAIT = {"Prefer": "wait=30"}


async def estimate(client: httpx.AsyncClient, auth: dict, kind: str, body: dict) -> dict:
    """The estimate of `body` for the `kind` route; it must answer 200."""
    response = await client.post("/v1/estimate", json={"kind": kind} | body, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def run(client: httpx.AsyncClient, auth: dict, kind: str, body: dict) -> dict:
    """The finished job the `kind` route makes of `body`."""
    response = await client.post(f"/v1/{kind}", json=body, headers=auth | WAIT)
    assert response.status_code in (200, 202), response.text
    job, _ = await wait_for_final(client, auth, response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


async def job_ids(client: httpx.AsyncClient, auth: dict) -> list[str]:
    page = (await client.get("/v1/jobs", headers=auth)).json()
    return [job["id"] for job in page["data"]]


async def draft_catalog_entry(client: httpx.AsyncClient, auth: dict) -> dict:
    """local/draft as GET /v1/models lists it."""
    models = (await client.get("/v1/models", headers=auth)).json()["data"]
    return next(model for model in models if model["id"] == "local/draft")


async def test_a_generate_estimate_is_the_job_the_route_then_makes(client, auth):
    body = {
        "prompt": "a ceramic mug on a walnut desk",
        "size": "640x480",
        "n": 2,
        "seed": 7,
        "quality": "draft",
        "background": "transparent",
    }

    catalog_before = await draft_catalog_entry(client, auth)
    estimated = await estimate(client, auth, "generate", body)
    assert await job_ids(client, auth) == [], "an estimate creates no job"
    job = await run(client, auth, "generate", body)

    assert estimated["accepted"] is True and estimated["refusal"] is None
    assert estimated["request"] == job["request"]
    assert "mug" in estimated["request"]["prompt"]
    (draft,) = estimated["models"]
    assert draft["model"] == "local/draft" and draft["images"] == 2
    assert draft["generation_size"] == "320x240", "a draft is rendered at half resolution"
    assert all(o["details"]["generated_size"] == "320x240" for o in job["outputs"])
    assert draft["native_quality"] == "half resolution"
    assert draft["cost_usd"] == {"min_usd": 0.0, "max_usd": 0.0}
    assert estimated["cost_usd"] == {"min_usd": 0.0, "max_usd": 0.0} and job["cost_usd"] == 0.0
    assert job["estimated_cost_usd"] == estimated["cost_usd"]
    # The installation's median where it has outputs of the model, else the catalog's typical
    # figure, marked as such; once this job's outputs are in, the median.
    if catalog_before["observed_latency_ms"] is None:
        assert (draft["latency_ms"], draft["latency_source"]) == (50, "catalog")
    else:
        expected = (catalog_before["observed_latency_ms"], "observed")
        assert (draft["latency_ms"], draft["latency_source"]) == expected
    again = await estimate(client, auth, "generate", body)
    observed = (await draft_catalog_entry(client, auth))["observed_latency_ms"]
    assert observed is not None
    assert (again["models"][0]["latency_ms"], again["models"][0]["latency_source"]) == (
        observed,
        "observed",
    )


async def test_a_refused_body_gets_the_problem_the_route_answers_and_creates_nothing(client, auth):
    cases = [
        ("generate", {"prompt": "a mug", "background": "transparent", "output_format": "jpeg"}),
        ("generate", {"prompt": "a mug", "model": "nobody/nothing"}),
        ("variants", {"source": {"asset_id": "ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"}}),
        ("export", {"asset_id": "ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P", "targets": ["og-image"]}),
    ]
    for kind, body in cases:
        estimated = await estimate(client, auth, kind, body)
        answered = await client.post(f"/v1/{kind}", json=body, headers=auth)

        assert estimated["accepted"] is False and estimated["request"] is None, estimated
        refusal = estimated["refusal"]
        problem = answered.json()
        assert refusal["status"] == answered.status_code >= 400
        assert (refusal["type"], refusal["detail"]) == (problem["type"], problem["detail"])
        assert refusal["instance"] == "/v1/estimate"
    assert await job_ids(client, auth) == []


async def test_a_body_the_route_schema_refuses_is_422_as_on_the_route(client, auth):
    cases = [
        {"kind": "generate", "prompt": "a mug", "n": 11},
        {"kind": "generate", "prompt": "a mug", "unknown": 1},
        {"kind": "paint", "prompt": "a mug"},
        {"prompt": "a mug"},
    ]
    for body in cases:
        response = await client.post("/v1/estimate", json=body, headers=auth)

        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"


@embedded_only()
async def test_an_edit_estimate_stores_none_of_its_inline_images(client, auth):
    source = base64.b64encode(image_bytes(320, 240)).decode()
    body = {"image": {"b64": source}, "prompt": "warmer light", "seed": 3, "size": "320x240"}

    estimated = await estimate(client, auth, "edit", body)

    assert estimated["accepted"] is True
    assert estimated["request"]["size"] == "320x240"
    stored = await client.get(f"/v1/assets/{estimated['request']['image']}", headers=auth)
    assert stored.status_code == 404, "the input checked for the estimate was not kept"
    assert await job_ids(client, auth) == []


async def test_variants_and_export_estimates_match_their_jobs(client, auth):
    source = await run(client, auth, "generate", {"prompt": "a kite", "size": "320x240"})
    asset_id = source["outputs"][0]["asset_id"]
    variants = {"source": {"asset_id": asset_id}, "n": 2, "seed": 5, "quality": "high"}
    export = {"asset_id": asset_id, "targets": ["og-image"], "format": "webp"}

    estimated_variants = await estimate(client, auth, "variants", variants)
    estimated_export = await estimate(client, auth, "export", export)
    variants_job = await run(client, auth, "variants", variants)
    export_job = await run(client, auth, "export", export)

    assert estimated_variants["request"] == variants_job["request"]
    assert [m["model"] for m in estimated_variants["models"]] == ["local/draft"]
    assert estimated_variants["models"][0]["native_quality"] == "full resolution"
    assert estimated_export["request"] == export_job["request"]
    assert estimated_export["models"] == []
    assert estimated_export["cost_usd"] == {"min_usd": 0.0, "max_usd": 0.0}
    assert export_job["cost_usd"] == 0.0


@pytest.fixture
async def openai_vendor(tmp_path) -> AsyncIterator[tuple[httpx.AsyncClient, dict]]:
    """The embedded app with OpenAI's models configured against a fake OpenAI."""
    async with FakeOpenAIImages() as server:
        settings = Settings(
            data_dir=tmp_path / "var", openai_api_key=API_KEY, openai_base_url=server.base_url
        )
        async with serving(settings) as (_, client, auth):
            yield client, auth


@pytest.mark.parametrize(("quality", "size"), [("draft", "1024x1024"), ("high", "1536x1024")])
async def test_a_per_token_estimate_is_a_range_the_real_cost_falls_in(openai_vendor, quality, size):
    client, auth = openai_vendor
    body = {"prompt": "a teal kettle", "model": "openai/gpt-image-1-mini", "n": 2}
    body |= {"quality": quality, "size": size}

    estimated = await estimate(client, auth, "generate", body)
    job = await run(client, auth, "generate", body)

    cost = estimated["cost_usd"]
    assert cost["min_usd"] < cost["max_usd"], "billed per token: a range"
    assert cost["min_usd"] <= job["cost_usd"] <= cost["max_usd"]
    assert job["estimated_cost_usd"] == pytest.approx(cost), "the job records its estimate"
    assert (
        estimated["models"][0]["generation_size"] == job["outputs"][0]["details"]["generated_size"]
    )
    # No output yet here, and OpenAI's models state no typical time.
    assert estimated["models"][0]["latency_ms"] is None
    assert estimated["models"][0]["latency_source"] is None
    unknown = await estimate(client, auth, "generate", body | {"model": "openai/gpt-image-2"})
    assert unknown["cost_usd"] is None and unknown["unpriced_models"] == ["openai/gpt-image-2"]


async def test_every_job_records_its_estimate_and_the_list_totals_both(openai_vendor):
    client, auth = openai_vendor
    priced = {"prompt": "a kite", "model": "openai/gpt-image-1-mini", "size": "1024x1024"}
    bodies = [
        priced | {"quality": "draft"},
        priced | {"quality": "high", "n": 2},
        {"prompt": "a kite", "model": "local/draft", "size": "256x256"},
        {"prompt": "a kite", "model": "openai/gpt-image-2", "size": "1024x1024"},
    ]

    jobs = [await run(client, auth, "generate", body) for body in bodies]
    page = (await client.get("/v1/jobs", headers=auth, params={"limit": 1})).json()

    estimates = [job["estimated_cost_usd"] for job in jobs]
    assert estimates[2] == {"min_usd": 0.0, "max_usd": 0.0}
    assert estimates[3] is None, "gpt-image-2 has no known price"
    for job, estimate in zip(jobs[:2], estimates[:2], strict=True):
        assert estimate["min_usd"] <= job["cost_usd"] <= estimate["max_usd"]
    assert estimates[0]["max_usd"] < estimates[1]["min_usd"]
    totals = page["total_estimated_cost_usd"]
    assert totals["min_usd"] == pytest.approx(sum(e["min_usd"] for e in estimates[:3]))
    assert totals["max_usd"] == pytest.approx(sum(e["max_usd"] for e in estimates[:3]))
    assert page["unestimated_jobs"] == 1
    assert page["total_cost_usd"] == pytest.approx(sum(job["cost_usd"] or 0 for job in jobs))
