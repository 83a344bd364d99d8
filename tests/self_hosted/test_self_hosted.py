"""Self-hosted models, run for real on the CPU: a tiny Stable Diffusion pipeline with random
weights, saved with `save_pretrained` and loaded through the path users name in
DARKROOM_DIFFUSERS_MODELS, on the embedded default (the API process runs their jobs)."""

import base64
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.config import Settings
from tests.routers.test_edit import download, mask_png, photo, upload
from tests.self_hosted.tiny import NATIVE_SIDE
from tests.support import live_server, read_events, serving, wait_for_final

WAIT = {"Prefer": "wait=60"}
MODEL = "diffusers/tiny"


def self_hosted_settings(directory: Path, model: Path, **overrides: object) -> Settings:
    """Embedded settings serving the tiny model as `diffusers/tiny`, 4 steps an image."""
    directory.mkdir()
    # One torch thread: the suite's other processes keep the cores busy, and torch's threads
    # spin waiting for each other when they do not get one each.
    values = {"diffusers_models": f"tiny={model}", "diffusers_steps": 4, "cpu_threads": 1}
    return Settings(data_dir=directory, **(values | overrides))


@pytest.fixture
async def served(tmp_path: Path, tiny_model: Path) -> AsyncIterator[tuple]:
    async with serving(self_hosted_settings(tmp_path / "var", tiny_model)) as running:
        yield running


async def pipeline_idle(app) -> None:
    """Wait until the tiny model runs nothing: its call runs on a thread of its own, which a
    cancel or a timeout must stop, not just the job, and the model stays taken until it has."""
    provider = app.state.registry.describe(MODEL)[0]
    async with provider._models["tiny"].running:
        pass


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


async def test_the_catalog_and_readyz_show_the_loaded_model_and_its_memory(served):
    _, client, auth = served
    models = (await client.get("/v1/models", headers=auth)).json()["data"]
    [model] = [model for model in models if model["id"] == MODEL]

    assert model["available"] is True
    assert model["capabilities"]["sizes"][0] == f"{NATIVE_SIDE}x{NATIVE_SIDE}"
    assert model["capabilities"]["quality_levels"]["standard"] == "4 steps"
    assert model["price_per_image_usd"] == 0.0
    loaded = model["loaded"]
    assert (loaded["device"], loaded["precision"]) == ("cpu", "float32")
    # The UNet, VAE and text encoder of the tiny model: about 6.4 MiB of float32 weights.
    assert 4 * 2**20 < loaded["memory_bytes"] < 10 * 2**20
    checks = (await client.get("/readyz")).json()["checks"]
    assert checks[MODEL].startswith("loaded on cpu (float32), 6.")


async def outputs_of(client, auth, body: dict) -> list[np.ndarray]:
    response = await client.post("/v1/generate", json=body, headers=auth | WAIT)
    assert response.json()["status"] == "succeeded", response.text
    return [pixels(await download(client, auth, out)) for out in response.json()["outputs"]]


async def test_a_seed_makes_the_same_image_again_and_in_a_batch(served):
    _, client, auth = served
    brief = {"prompt": "a red mug on a desk", "model": MODEL, "size": "64x64"}

    batch = await client.post("/v1/generate", json=brief | {"n": 3, "seed": 5}, headers=auth | WAIT)
    again = await outputs_of(client, auth, brief | {"n": 3, "seed": 5})
    [alone] = await outputs_of(client, auth, brief | {"n": 1, "seed": 7})

    assert batch.json()["status"] == "succeeded", batch.text
    outputs = batch.json()["outputs"]
    assert [output["seed"] for output in outputs] == [5, 6, 7]
    assert outputs[0]["details"]["steps"] == 4
    assert outputs[0]["cost_usd"] == 0.0
    images = [pixels(await download(client, auth, output)) for output in outputs]
    assert all(np.array_equal(first, second) for first, second in zip(images, again, strict=True))
    assert not np.array_equal(images[0], images[1])
    # Alone, seed 7 makes the batch's third image, to within the rounding of a batch's sums.
    assert np.abs(alone - images[2]).max() <= 2


async def test_image_to_image_moves_the_source_by_its_strength(served):
    _, client, auth = served
    source = await upload(client, auth, photo(64, 64))
    body = {"image": {"asset_id": source}, "prompt": "a blue vase", "model": MODEL, "seed": 3}

    light = await client.post("/v1/edit", json=body | {"strength": 0.25}, headers=auth | WAIT)
    heavy = await client.post("/v1/edit", json=body | {"strength": 1.0}, headers=auth | WAIT)

    assert light.json()["status"] == "succeeded", light.text
    before = pixels(Image.open(io.BytesIO(photo(64, 64))))
    [light_output], [heavy_output] = light.json()["outputs"], heavy.json()["outputs"]
    assert light_output["details"]["steps"] == 4
    light_change = np.abs(pixels(await download(client, auth, light_output)) - before).mean()
    heavy_change = np.abs(pixels(await download(client, auth, heavy_output)) - before).mean()
    assert 0 < light_change < heavy_change


async def test_inpainting_repaints_the_mask_and_keeps_every_pixel_outside_it(served):
    _, client, auth = served
    # Not the model's aspect ratio: made near its native area, laid over the source at 96x64.
    source = photo(96, 64, seed=4)
    body = {
        "image": {"b64": base64.b64encode(source).decode()},
        "mask": {"b64": base64.b64encode(mask_png(96, 64, (16, 16, 47, 39))).decode()},
        "prompt": "a small green plant",
        "model": MODEL,
        "seed": 9,
    }

    response = await client.post("/v1/edit", json=body, headers=auth | WAIT)

    assert response.json()["status"] == "succeeded", response.text
    [output] = response.json()["outputs"]
    assert (output["width"], output["height"]) == (96, 64)
    after = pixels(await download(client, auth, output))
    before = pixels(Image.open(io.BytesIO(source)))
    inside = np.zeros((64, 96), bool)
    inside[16:40, 16:48] = True
    assert np.array_equal(after[~inside], before[~inside])
    assert np.abs(after[inside] - before[inside]).mean() > 10


async def test_a_cancel_stops_the_pipeline_between_steps(tmp_path, tiny_model):
    # Enough steps and images that a run to the end would take many seconds (10 ms a step
    # of a 4-image batch at the very least).
    settings = self_hosted_settings(tmp_path / "var", tiny_model, diffusers_steps=500)
    async with serving(settings) as (app, client, auth), live_server(app) as live:
        body = {"prompt": "a red mug", "model": MODEL, "size": "64x64", "n": 4}
        job = (await live.post("/v1/generate", json=body, headers=auth)).json()
        steps_seen = []
        async with live.stream("GET", f"/v1/jobs/{job['id']}/events", headers=auth) as stream:
            async for event in read_events(stream):
                if event["event"] == "progress" and len(steps_seen) < 3:
                    data = json.loads(event["data"])
                    steps_seen.append((data["step"], data["steps"], data["total"]))
                    if len(steps_seen) == 3:
                        canceled_at = time.monotonic()
                        await live.post(f"/v1/jobs/{job['id']}/cancel", headers=auth)
                if event["event"] == "canceled":
                    break
        await pipeline_idle(app)
        stopped_after = time.monotonic() - canceled_at
        final, _ = await wait_for_final(client, auth, job["id"])

    # Steps that come faster than they are told are told as the latest one.
    seen = [step for step, _, _ in steps_seen]
    assert seen == sorted(set(seen)) and seen[-1] < 100
    assert all(steps == 500 and total == 4 for _, steps, total in steps_seen)
    assert final["status"] == "canceled" and final["outputs"] == []
    # A step of a 2-image batch takes a few milliseconds; the whole run, seconds.
    assert stopped_after < 2.0


async def test_a_job_timeout_stops_the_pipeline_between_steps(tmp_path, tiny_model):
    settings = self_hosted_settings(
        tmp_path / "var", tiny_model, diffusers_steps=500, job_timeout_seconds=0.5
    )
    async with serving(settings) as (app, client, auth):
        body = {"prompt": "a red mug", "model": MODEL, "size": "64x64", "n": 4}
        response = await client.post("/v1/generate", json=body, headers=auth | WAIT)
        failed_at = time.monotonic()
        await pipeline_idle(app)
        stopped_after = time.monotonic() - failed_at

    job = response.json()
    assert job["status"] == "failed" and job["error"]["type"].endswith("/job-timeout")
    assert stopped_after < 2.0


async def test_a_model_loaded_on_first_use_loads_with_its_first_job_and_is_priced_by_the_second(
    tmp_path, tiny_model
):
    settings = self_hosted_settings(
        tmp_path / "var", tiny_model, diffusers_load="first_use", diffusers_gpu_second_usd=2.0
    )
    async with serving(settings) as (_, client, auth):
        before = (await client.get("/readyz")).json()["checks"][MODEL]
        body = {"prompt": "a red mug", "model": MODEL, "size": "64x64"}
        job = (await client.post("/v1/generate", json=body, headers=auth | WAIT)).json()
        after = (await client.get("/readyz")).json()["checks"][MODEL]
        models = (await client.get("/v1/models", headers=auth)).json()["data"]

    assert before == "not loaded"
    assert job["status"] == "succeeded"
    assert after.startswith("loaded on cpu")
    [output] = job["outputs"]
    assert output["cost_usd"] == pytest.approx(output["details"]["gpu_seconds"] * 2.0, abs=0.01)
    assert output["cost_usd"] > 0 and job["cost_usd"] == output["cost_usd"]
    [model] = [model for model in models if model["id"] == MODEL]
    assert model["price_per_image_usd"] is None and "$2 per GPU-second" in model["pricing"]
    assert model["observed_latency_ms"] == output["latency_ms"]
