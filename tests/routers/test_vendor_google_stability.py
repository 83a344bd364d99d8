"""POST /v1/generate with `google/...` and `stability/...` models against local fakes of their
APIs: the job runs through the real adapter and records the vendor's image, cost and seed; and
without a key, the models are listed unavailable and refused."""

import io
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from app.config import Settings
from tests.fakes.google_gemini import API_KEY as GOOGLE_KEY
from tests.fakes.google_gemini import FakeGemini
from tests.fakes.stability import API_KEY as STABILITY_KEY
from tests.fakes.stability import FakeStability, MultipartReceived, slow
from tests.support import embedded_only, serving


@pytest.fixture
async def vendors(
    tmp_path,
) -> AsyncIterator[tuple[httpx.AsyncClient, dict, FakeGemini, FakeStability]]:
    """The embedded app configured with both vendors' keys and base URLs pointing at fakes."""
    async with FakeGemini() as gemini, FakeStability() as stability:
        settings = Settings(
            data_dir=tmp_path / "var",
            google_api_key=GOOGLE_KEY,
            google_base_url=gemini.base_url,
            stability_api_key=STABILITY_KEY,
            stability_base_url=stability.base_url,
        )
        async with serving(settings) as (_, client, auth):
            yield client, auth, gemini, stability


async def output_image(client: httpx.AsyncClient, auth: dict, output: dict) -> Image.Image:
    content = await client.get(output["url"], headers=auth)
    assert content.status_code == 200, content.text
    return Image.open(io.BytesIO(content.content))


async def test_a_gemini_job_succeeds_with_the_vendor_image(vendors) -> None:
    client, auth, gemini, _ = vendors
    body = {
        "prompt": "a teal kettle",
        "model": "google/gemini-3.1-flash-image",
        "aspect_ratio": "16:9",
    }

    response = await client.post("/v1/generate", json=body, headers=auth | {"Prefer": "wait=30"})

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded", job
    [request] = gemini.received
    assert request.path == "/v1beta/models/gemini-3.1-flash-image:generateContent"
    assert request.body["generationConfig"]["imageConfig"] == {
        "aspectRatio": "16:9",
        "imageSize": "1K",
    }
    assert job["cost_usd"] == pytest.approx((12 * 0.50 + 1120 * 60.00) / 1_000_000)
    output = job["outputs"][0]
    image = await output_image(client, auth, output)
    assert image.size == (output["width"], output["height"])
    assert abs(image.width / image.height - 16 / 9) < 0.01


async def test_gemini_quality_picks_the_size_tier_and_the_output_keeps_its_size(vendors) -> None:
    client, auth, gemini, _ = vendors
    asked = [("draft", "2048x2048"), ("high", "1024x1024"), ("standard", "1024x1024")]

    jobs, estimates = [], []
    for quality, size in asked:
        body = {
            "prompt": "a teal kettle",
            "model": "google/gemini-3.1-flash-image",
            "size": size,
            "quality": quality,
        }
        estimate = await client.post("/v1/estimate", json=body | {"kind": "generate"}, headers=auth)
        estimates.append(estimate.json()["models"][0]["generation_size"])
        response = await client.post(
            "/v1/generate", json=body, headers=auth | {"Prefer": "wait=30"}
        )
        assert response.status_code == 200, response.text
        jobs.append(response.json())

    tiers = [r.body["generationConfig"]["imageConfig"]["imageSize"] for r in gemini.received]
    assert tiers == ["1K", "2K", "1K"]
    generated = [job["outputs"][0]["details"]["generated_size"] for job in jobs]
    assert generated == ["1024x1024", "2048x2048", "1024x1024"]
    assert estimates == generated, "the estimate knows the size tier the quality picks"
    assert [(job["outputs"][0]["width"], job["outputs"][0]["height"]) for job in jobs] == [
        (2048, 2048),
        (1024, 1024),
        (1024, 1024),
    ]
    assert jobs[1]["request"]["native_quality"] == {"google/gemini-3.1-flash-image": "2K or larger"}
    # The 2K image is billed at the 2K tier's tokens.
    assert jobs[1]["cost_usd"] > jobs[2]["cost_usd"]


async def test_a_stability_job_succeeds_with_the_vendor_image_and_seed(vendors) -> None:
    client, auth, _, stability = vendors
    body = {
        "prompt": "a ceramic mug",
        "model": "stability/ultra",
        "aspect_ratio": "2:3",
        "seed": 1234,
    }

    response = await client.post("/v1/generate", json=body, headers=auth | {"Prefer": "wait=30"})

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded", job
    [request] = stability.received
    assert isinstance(request, MultipartReceived) and request.form is not None
    assert request.path == "/v2beta/stable-image/generate/ultra"
    assert request.form["aspect_ratio"].text == "2:3"
    assert request.form["seed"].text == "1234"
    assert job["cost_usd"] == pytest.approx(0.08)
    output = job["outputs"][0]
    assert output["details"]["vendor_seed"] == 1234
    image = await output_image(client, auth, output)
    assert image.size == (output["width"], output["height"])


async def test_a_draft_on_sd35_large_is_made_by_its_turbo_model_at_its_price(vendors) -> None:
    client, auth, _, stability = vendors
    body = {
        "prompt": "a ceramic mug",
        "model": "stability/sd3.5-large",
        "negative_prompt": "blurry",
        "quality": "draft",
        "seed": 5,
    }

    estimate = await client.post("/v1/estimate", json=body | {"kind": "generate"}, headers=auth)
    response = await client.post("/v1/generate", json=body, headers=auth | {"Prefer": "wait=30"})
    standard = await client.post(
        "/v1/generate", json=body | {"quality": "standard"}, headers=auth | {"Prefer": "wait=30"}
    )

    job = response.json()
    assert job["status"] == "succeeded", job
    draft_form, standard_form = [request.form for request in stability.received]
    assert draft_form["model"].text == "sd3.5-large-turbo"
    assert "negative_prompt" not in draft_form, "the turbo model takes none"
    assert standard_form["model"].text == "sd3.5-large"
    assert standard_form["negative_prompt"].text
    assert job["request"]["native_quality"] == {"stability/sd3.5-large": "sd3.5-large-turbo"}
    assert job["outputs"][0]["details"]["vendor_model"] == "sd3.5-large-turbo"
    assert job["cost_usd"] == pytest.approx(0.04)
    assert standard.json()["cost_usd"] == pytest.approx(0.065)
    assert estimate.json()["cost_usd"] == {"min_usd": 0.04, "max_usd": 0.04}
    assert job["estimated_cost_usd"] == {"min_usd": 0.04, "max_usd": 0.04}


async def test_a_model_making_one_image_a_call_makes_a_jobs_outputs_at_once(vendors) -> None:
    client, auth, _, stability = vendors
    stability.script(*[slow(0.5)] * 4)
    body = {"prompt": "a ceramic mug", "model": "stability/ultra", "n": 4, "seed": 7}

    response = await client.post("/v1/generate", json=body, headers=auth | {"Prefer": "wait=30"})

    job = response.json()
    assert job["status"] == "succeeded", job
    assert len(stability.received) == 4
    assert stability.peak_in_flight == 4
    assert sorted(request.form["seed"].text for request in stability.received) == [
        "10",
        "7",
        "8",
        "9",
    ]
    assert [output["seed"] for output in job["outputs"]] == [7, 8, 9, 10]


@embedded_only()
async def test_vendors_without_keys_are_listed_unavailable_and_refused(client, auth) -> None:
    listed = (await client.get("/v1/models", headers=auth)).json()["data"]
    models = {model["id"]: model for model in listed}

    for model_id in ("google/gemini-3-pro-image", "stability/sd3.5-large"):
        assert models[model_id]["available"] is False
        refused = await client.post(
            "/v1/generate", json={"prompt": "x", "model": model_id}, headers=auth
        )
        assert refused.status_code == 422
        assert refused.json()["type"].endswith("/model-unavailable")
