"""The gpu lane on Postgres + Redis: a self-hosted model's job waits in a lane of its own that
only `darkroom worker --queue gpu` takes; the API and the default worker never load a model."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis

from app.config import Settings
from app.errors import ProviderError
from app.providers.base import GenerateCall
from app.runtime import Role, Runtime, open_runtime
from app.runtime.queue import lane_queue
from tests.support import serving, start_darkroom, stop_worker, wait_for_final

MODEL = "diffusers/tiny"


@asynccontextmanager
async def worker_runtime(settings: Settings, lane: str) -> AsyncIterator[Runtime]:
    """What a worker of `lane` opens at start-up, in this process, on its own Redis connection."""
    redis = Redis.from_url(settings.redis_url)
    try:
        async with open_runtime(settings, Role.WORKER, redis=redis, lane=lane) as runtime:
            yield runtime
    finally:
        await redis.aclose()


async def test_only_a_gpu_worker_takes_and_loads_self_hosted_jobs(
    deployment_settings: Settings, worker, tiny_model: Path, tmp_path: Path
):
    settings = deployment_settings.model_copy(
        update={
            "diffusers_models": f"tiny={tiny_model}",
            "diffusers_steps": 4,
            "cpu_threads": 1,
            # Loaded by the job: the worker tells the API once it has.
            "diffusers_load": "first_use",
        }
    )
    async with serving(settings) as (application, client, auth):
        brief = {"prompt": "a red mug", "size": "64x64", "seed": 2}
        gpu_job = await client.post("/v1/generate", json=brief | {"model": MODEL}, headers=auth)
        draft_job = await client.post(
            "/v1/generate", json=brief | {"model": "local/draft"}, headers=auth
        )
        gpu_id, draft_id = gpu_job.json()["id"], draft_job.json()["id"]

        # The default worker runs the draft, and leaves the self-hosted job in its lane.
        draft, _ = await wait_for_final(client, auth, draft_id)
        redis = application.state.queue.redis
        gpu_lane = lane_queue(settings.queue_name, "gpu")
        waiting_in_lane = await redis.zscore(gpu_lane, gpu_id)
        waiting_by_default = await redis.zscore(settings.queue_name, gpu_id)
        still = (await client.get(f"/v1/jobs/{gpu_id}", headers=auth)).json()
        api_loaded = application.state.registry.loaded_models()
        ready_before = (await client.get("/readyz")).json()["checks"][MODEL]

        directory = tmp_path / "gpu-worker"
        directory.mkdir()
        gpu_settings = settings.model_copy(update={"data_dir": directory})
        process = start_darkroom("worker", gpu_settings, directory / "log", "--queue", "gpu")
        try:
            done, _ = await wait_for_final(client, auth, gpu_id, seconds=90)
        finally:
            stop_worker(process)
        models = (await client.get("/v1/models", headers=auth)).json()["data"]
        ready_after = (await client.get("/readyz")).json()["checks"][MODEL]

    assert draft["status"] == "succeeded"
    assert waiting_in_lane is not None and waiting_by_default is None
    assert still["status"] == "queued"
    assert api_loaded == {} and ready_before == "not loaded"
    assert done["status"] == "succeeded", (directory / "log").read_text()[-3000:]
    assert done["outputs"][0]["details"]["device"] == "cpu"
    [model] = [model for model in models if model["id"] == MODEL]
    assert model["loaded"]["device"] == "cpu" and model["loaded"]["memory_bytes"] > 0
    assert ready_after.startswith("loaded on cpu (float32)")


async def test_a_gpu_worker_that_cannot_load_its_model_fails_to_start_saying_why(
    deployment_settings: Settings, tmp_path: Path
):
    missing = tmp_path / "no-such-model"
    settings = deployment_settings.model_copy(update={"diffusers_models": f"gone={missing}"})
    with pytest.raises(ProviderError) as failure:
        async with worker_runtime(settings, "gpu"):
            pass

    assert f"diffusers/gone could not be loaded from '{missing}'" in failure.value.detail


async def test_a_default_worker_never_loads_a_model_even_when_it_is_configured(
    deployment_settings: Settings, tiny_model: Path
):
    settings = deployment_settings.model_copy(update={"diffusers_models": f"tiny={tiny_model}"})
    async with worker_runtime(settings, "") as runtime:
        registry = runtime.context.registry
        provider, _ = registry.describe(MODEL)
        call = GenerateCall(model="tiny", prompt="a mug", width=64, height=64, seed=1)
        with pytest.raises(ProviderError, match="runs only on GPU workers"):
            await provider.generate(call)
        loaded = registry.loaded_models()

    assert loaded == {}
