"""POST /v1/variants: distinct seeded variants of an asset or a job's output, reproducible one
at a time by seed, grouped by model."""

import io

import numpy as np
import pytest
from PIL import Image

from app.config import Settings
from tests.fakes.google_gemini import API_KEY as GOOGLE_KEY
from tests.fakes.google_gemini import FakeGemini
from tests.routers.test_edit import photo, upload
from tests.support import embedded_only, serving

WAIT = {"Prefer": "wait=30"}


async def content(client, auth, output: dict) -> bytes:
    response = await client.get(output["url"], headers=auth)
    assert response.status_code == 200
    return response.content


async def test_variants_are_distinct_and_a_seed_reproduces_one_exactly(client, auth):
    image_id = await upload(client, auth, photo(96, 64))

    response = await client.post(
        "/v1/variants",
        json={"source": {"asset_id": image_id}, "n": 3, "variation": "strong", "seed": 40},
        headers=auth | WAIT,
    )

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["kind"] == "variants" and job["status"] == "succeeded"
    images = [await content(client, auth, output) for output in job["outputs"]]
    assert len(set(images)) == 3
    assert [output["seed"] for output in job["outputs"]] == [40, 41, 42]
    assert all((o["width"], o["height"]) == (96, 64) for o in job["outputs"])

    again = await client.post(
        "/v1/variants",
        json={"source": {"asset_id": image_id}, "n": 1, "variation": "strong", "seed": 41},
        headers=auth | WAIT,
    )
    assert await content(client, auth, again.json()["outputs"][0]) == images[1]


async def test_subtle_variants_stray_less_than_strong_ones(client, auth):
    source = photo(96, 64)
    image_id = await upload(client, auth, source)
    original = np.asarray(Image.open(io.BytesIO(source)).convert("RGB"), np.float32)

    async def distance(variation) -> float:
        response = await client.post(
            "/v1/variants",
            json={"source": {"asset_id": image_id}, "variation": variation, "seed": 3},
            headers=auth | WAIT,
        )
        data = await content(client, auth, response.json()["outputs"][0])
        varied = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32)
        return float(np.abs(varied - original).mean())

    assert 0 < await distance("subtle") < await distance("strong")


async def test_variants_of_a_job_output_keep_its_brief_and_lineage(client, auth):
    generated = await client.post(
        "/v1/generate",
        json={"prompt": "a red kite over green hills", "n": 2, "size": "96x64", "seed": 1},
        headers=auth | WAIT,
    )
    assert generated.status_code == 200, generated.text
    source_output = generated.json()["outputs"][1]

    response = await client.post(
        "/v1/variants",
        json={"source": {"job_id": generated.json()["id"], "index": 1}, "n": 2},
        headers=auth | WAIT,
    )

    job = response.json()
    assert job["status"] == "succeeded", job
    assert job["request"]["brief"] == "a red kite over green hills"
    assert job["request"]["image"] == source_output["asset_id"]
    [group] = job["groups"]
    assert group["model"] == "local/draft"
    assert [o["asset_id"] for o in group["outputs"]] == [o["asset_id"] for o in job["outputs"]]
    assert group["cost_usd"] == 0.0 and group["latency_ms"] is not None
    variant = (await client.get(f"/v1/assets/{job['outputs'][0]['asset_id']}", headers=auth)).json()
    assert variant["parents"] == [{"asset_id": source_output["asset_id"], "role": "source"}]


@embedded_only()
async def test_bad_sources_are_problems(client, auth, other_auth):
    theirs = await upload(client, other_auth, photo())
    queued = await client.post("/v1/generate", json={"prompt": "x"}, headers=auth)
    cases = [
        ({"source": {"asset_id": theirs}}, 404),
        ({"source": {"job_id": "job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"}}, 404),
        ({"source": {"asset_id": theirs, "job_id": queued.json()["id"]}}, 422),
        ({"source": {"asset_id": theirs}, "variation": 1.5}, 422),
        ({"source": {"asset_id": theirs}, "variation": "0.5"}, 422),
        ({"source": {"asset_id": theirs}, "models": ["local/draft", "local/draft"]}, 422),
        ({"source": {"asset_id": theirs}, "models": ["nope/model"]}, 422),
    ]
    for body, status in cases:
        response = await client.post("/v1/variants", json=body, headers=auth)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"


@embedded_only()
async def test_an_output_index_past_the_job_is_refused(client, auth):
    generated = await client.post(
        "/v1/generate", json={"prompt": "x", "size": "64x64"}, headers=auth | WAIT
    )
    response = await client.post(
        "/v1/variants",
        json={"source": {"job_id": generated.json()["id"], "index": 3}},
        headers=auth,
    )
    assert response.status_code == 422
    assert "has 1 outputs; index 3" in response.json()["detail"]


async def test_a_multi_model_job_has_one_group_per_model(tmp_path):
    async with FakeGemini() as gemini:
        settings = Settings(
            data_dir=tmp_path / "var", google_api_key=GOOGLE_KEY, google_base_url=gemini.base_url
        )
        async with serving(settings) as (_, client, auth):
            image_id = await upload(client, auth, photo(96, 64))
            models = ["local/draft", "google/gemini-2.5-flash-image"]

            response = await client.post(
                "/v1/variants",
                json={
                    "source": {"asset_id": image_id},
                    "n": 2,
                    "models": models,
                    "prompt": "the same mug, evening light",
                    "seed": 10,
                },
                headers=auth | WAIT,
            )

    job = response.json()
    assert job["status"] == "succeeded", job
    assert [group["model"] for group in job["groups"]] == models
    for group in job["groups"]:
        assert len(group["outputs"]) == 2
        assert [output["seed"] for output in group["outputs"]] == [10, 11]
        assert all(output["model"] == group["model"] for output in group["outputs"])
        assert all((o["width"], o["height"]) == (96, 64) for o in group["outputs"])
        assert group["latency_ms"] is not None
    draft, gemini_group = job["groups"]
    assert draft["cost_usd"] == 0.0
    assert gemini_group["cost_usd"] is not None and gemini_group["cost_usd"] > 0
    assert len(gemini.received) == 2
    assert job["cost_usd"] == pytest.approx(gemini_group["cost_usd"])
