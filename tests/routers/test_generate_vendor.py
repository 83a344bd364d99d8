"""POST /v1/generate with a vendor model: the job flow maps the requested aspect onto the
model's native size, crops to the exact request, and records vendor failures as problems."""

import io
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from app.config import Settings
from tests.fakes.openai_images import API_KEY, FakeOpenAIImages, moderation_blocked
from tests.support import serving, wait_for_final


@pytest.fixture
async def vendor_client(
    tmp_path,
) -> AsyncIterator[tuple[httpx.AsyncClient, dict, FakeOpenAIImages]]:
    """The embedded app configured with an OpenAI key and base URL pointing at a fake."""
    async with FakeOpenAIImages() as server:
        settings = Settings(
            data_dir=tmp_path / "var", openai_api_key=API_KEY, openai_base_url=server.base_url
        )
        async with serving(settings) as (_, client, auth):
            yield client, auth, server


async def test_vendor_model_output_has_the_exact_requested_aspect(vendor_client):
    client, auth, server = vendor_client
    body = {"prompt": "a teal kettle", "model": "openai/gpt-image-2", "aspect_ratio": "16:9"}

    response = await client.post("/v1/generate", json=body, headers=auth | {"Prefer": "wait=30"})

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded", job
    assert job["cost_usd"] is None, "gpt-image-2 has no verified price: cost is unknown, not 0"
    assert [request.body["size"] for request in server.received] == ["1536x1024"]
    assert server.received[0].body["model"] == "gpt-image-2"
    output = job["outputs"][0]
    content = await client.get(output["url"], headers=auth)
    image = Image.open(io.BytesIO(content.content))
    assert image.size == (output["width"], output["height"]) == (1360, 765)


async def test_vendor_refusal_fails_the_job_with_an_actionable_problem(vendor_client):
    client, auth, server = vendor_client
    server.script(moderation_blocked())
    body = {"prompt": "something refused", "model": "openai/gpt-image-2"}

    job = (await client.post("/v1/generate", json=body, headers=auth)).json()
    final, _ = await wait_for_final(client, auth, job["id"])

    assert final["status"] == "failed"
    assert final["error"]["type"].endswith("/moderation-blocked")
    assert final["error"]["status"] == 422
    assert final["outputs"] == []


async def test_vendor_without_a_key_is_listed_unavailable_and_refused(client, auth):
    models = {m["id"]: m for m in (await client.get("/v1/models", headers=auth)).json()["data"]}
    refused = await client.post(
        "/v1/generate", json={"prompt": "x", "model": "openai/gpt-image-2"}, headers=auth
    )

    assert models["openai/gpt-image-2"]["available"] is False
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/model-unavailable")
