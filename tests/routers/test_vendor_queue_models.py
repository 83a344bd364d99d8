"""POST /v1/generate with the queue vendors' models (bfl, replicate, fal) against their fakes:
the job submits, polls, downloads the vendor's image, and finishes with it at the exact
requested size; a vendor's moderation refusal fails the job with an actionable problem."""

import io
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from PIL import Image

from app.config import Settings
from tests.fakes import bfl, fal, replicate
from tests.support import serving, wait_for_final


@pytest.fixture
async def queue_vendors(
    tmp_path,
) -> AsyncIterator[
    tuple[httpx.AsyncClient, dict, bfl.FakeBFL, replicate.FakeReplicate, fal.FakeFal]
]:
    """The embedded app with keys for all three vendors, their base URLs pointing at fakes, and
    downloads from 127.0.0.1 allowed (the fakes host the result images)."""
    async with AsyncExitStack() as stack:
        bfl_server = await stack.enter_async_context(bfl.FakeBFL())
        replicate_server = await stack.enter_async_context(replicate.FakeReplicate())
        fal_server = await stack.enter_async_context(fal.FakeFal())
        settings = Settings(
            data_dir=tmp_path / "var",
            url_allow="127.0.0.1",
            bfl_api_key=bfl.API_KEY,
            bfl_base_url=bfl_server.base_url,
            replicate_api_key=replicate.API_KEY,
            replicate_base_url=replicate_server.base_url,
            fal_api_key=fal.API_KEY,
            fal_base_url=fal_server.base_url,
        )
        _, client, auth = await stack.enter_async_context(serving(settings))
        yield client, auth, bfl_server, replicate_server, fal_server


async def generate_and_fetch(
    client: httpx.AsyncClient, auth: dict, model: str
) -> tuple[dict, Image.Image]:
    """Generate one 16:9 image with `model`, waiting for the result; the job and its image."""
    body = {"prompt": "a lighthouse at dusk", "model": model, "aspect_ratio": "16:9", "seed": 9}
    response = await client.post("/v1/generate", json=body, headers=auth | {"Prefer": "wait=30"})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded", job
    content = await client.get(job["outputs"][0]["url"], headers=auth)
    return job, Image.open(io.BytesIO(content.content)).convert("L")


def assert_vendor_gradient(image: Image.Image) -> None:
    """The fakes render a top-to-bottom gradient; Darkroom's offline draft does not."""
    assert image.getpixel((image.width // 2, 2)) < 60
    assert image.getpixel((image.width // 2, image.height - 3)) > 190


async def test_bfl_model_job_succeeds_with_the_flux_sample(queue_vendors):
    client, auth, server, _, _ = queue_vendors

    job, image = await generate_and_fetch(client, auth, "bfl/flux-pro-1.1")

    (submit,) = server.requests_to("submit")
    assert submit.path == "/v1/flux-pro-1.1"
    assert (submit.body["width"], submit.body["height"]) == (1376, 768)
    assert submit.body["seed"] == 9
    assert len(server.requests_to("sample")) == 1
    assert job["cost_usd"] == pytest.approx(0.04)
    assert image.size == (1360, 765)
    assert_vendor_gradient(image)


async def test_flux_quality_tiers_are_inference_steps(queue_vendors):
    client, auth, server, _, _ = queue_vendors

    for quality in ("draft", "high", "auto"):
        body = {"prompt": "a lighthouse", "model": "bfl/flux-2-flex", "quality": quality}
        response = await client.post(
            "/v1/generate", json=body, headers=auth | {"Prefer": "wait=30"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "succeeded", response.json()

    submitted = [request.body.get("steps") for request in server.requests_to("submit")]
    assert submitted == [20, 50, None], "auto leaves BFL's default"
    assert response.json()["request"]["native_quality"] == {"bfl/flux-2-flex": "BFL's default"}


async def test_replicate_model_job_succeeds_with_the_prediction_output(queue_vendors):
    client, auth, _, server, _ = queue_vendors

    job, image = await generate_and_fetch(client, auth, "replicate/black-forest-labs/flux-schnell")

    (create,) = server.requests_to("create")
    assert create.path == "/v1/models/black-forest-labs/flux-schnell/predictions"
    assert create.body["input"]["aspect_ratio"] == "16:9"
    assert len(server.requests_to("file")) == 1
    assert job["cost_usd"] is None
    assert image.size == (1360, 765)
    assert_vendor_gradient(image)


async def test_fal_model_job_succeeds_with_the_queued_output(queue_vendors):
    client, auth, _, _, server = queue_vendors

    job, image = await generate_and_fetch(client, auth, "fal/fal-ai/flux/dev")

    (submit,) = server.requests_to("submit")
    assert submit.path == "/fal-ai/flux/dev"
    assert submit.body["image_size"] == {"width": 1360, "height": 765}
    assert len(server.requests_to("result")) == 1
    assert job["cost_usd"] is None
    assert image.size == (1360, 765)
    assert_vendor_gradient(image)


async def test_a_vendor_moderation_refusal_fails_the_job(queue_vendors):
    client, auth, server, _, _ = queue_vendors
    server.outcome = "content_moderated"
    body = {"prompt": "something refused", "model": "bfl/flux-kontext-pro"}

    job = (await client.post("/v1/generate", json=body, headers=auth)).json()
    final, _ = await wait_for_final(client, auth, job["id"])

    assert final["status"] == "failed"
    assert final["error"]["type"].endswith("/moderation-blocked")
    assert final["error"]["provider"] == "bfl"
    assert bfl.API_KEY not in str(final)
    assert final["outputs"] == []


async def test_any_hosted_model_id_resolves_through_the_api(queue_vendors):
    client, auth, _, replicate_server, fal_server = queue_vendors

    replicate_job, _ = await generate_and_fetch(client, auth, "replicate/someone/new-image-model")
    fal_job, _ = await generate_and_fetch(client, auth, "fal/someone/new-endpoint")

    (create,) = replicate_server.requests_to("create")
    assert create.path == "/v1/models/someone/new-image-model/predictions"
    assert replicate_job["model"] == "replicate/someone/new-image-model"
    (submit,) = fal_server.requests_to("submit")
    assert submit.path == "/someone/new-endpoint"
    assert fal_job["outputs"][0]["model"] == "fal/someone/new-endpoint"
