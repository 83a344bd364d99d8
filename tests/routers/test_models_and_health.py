"""GET /v1/models, /healthz and /readyz."""

import asyncio
import statistics
import uuid

import httpx

from app.cli import migrate
from app.config import Settings
from app.ids import new_id
from app.main import create_app
from app.models import Asset, Job, utcnow
from tests.support import embedded_only, tenant_of


@embedded_only()
async def test_models_lists_local_draft_honestly(client, auth):
    response = await client.get("/v1/models", headers=auth)

    assert response.status_code == 200
    models = {model["id"]: model for model in response.json()["data"]}
    draft = models["local/draft"]
    assert draft["available"] is True
    assert "not an AI model" in draft["description"]
    assert "generate" in draft["capabilities"]["modes"]
    assert draft["capabilities"]["seed"] is True
    assert draft["price_per_image_usd"] == 0.0


async def test_health_and_readiness(client):
    health = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "queue": "ok", "storage": "ok"}


async def readiness_of(settings: Settings) -> tuple[httpx.Response, httpx.Response]:
    """/readyz and /healthz of an app on these settings."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://darkroom.test"
        ) as client:
            return await client.get("/readyz"), await client.get("/healthz")


async def test_readiness_is_503_problem_when_the_database_is_unreachable(tmp_path):
    settings = Settings(
        data_dir=tmp_path, database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    )

    ready, alive = await readiness_of(settings)

    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert "database" in ready.json()["detail"]
    assert alive.status_code == 200


async def test_readiness_is_503_problem_when_the_asset_store_is_unreachable(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        storage_url="s3://assets/darkroom",
        storage_endpoint="http://127.0.0.1:1",
        storage_region="us-east-1",
        storage_access_key_id="id",
        storage_secret_access_key="secret",
        storage_retries=0,
        storage_timeout_seconds=1,
    )
    await asyncio.to_thread(migrate, settings)

    ready, alive = await readiness_of(settings)

    assert ready.status_code == 503
    assert ready.json()["detail"] == "The asset store is not reachable."
    assert alive.status_code == 200


@embedded_only()
async def test_every_model_says_what_it_can_do_and_how_it_is_priced(client, auth):
    response = await client.get("/v1/models", headers=auth)

    models = {model["id"]: model for model in response.json()["data"]}
    gpt = models["openai/gpt-image-2"]
    assert gpt["available"] is False  # no key in these settings
    assert gpt["provider"] == "openai"
    assert gpt["capabilities"]["modes"] == ["generate", "edit"]
    assert gpt["capabilities"]["mask"] is True
    assert gpt["capabilities"]["max_references"] == 15
    assert gpt["capabilities"]["sizes"] == ["1024x1024", "1536x1024", "1024x1536"]
    assert gpt["capabilities"]["aspect_ratios"] == ["1:1", "3:2", "2:3"]
    assert gpt["price_per_image_usd"] is None
    assert "per token" in gpt["pricing"]
    assert models["local/draft"]["capabilities"]["aspect_ratios"] is None
    for model in models.values():
        assert set(model) >= {"pricing", "observed_latency_ms", "price_per_image_usd"}
        capabilities = model["capabilities"]
        assert {"transparent_background", "seed", "negative_prompt"} <= set(capabilities)


@embedded_only()
async def test_the_catalog_says_what_each_quality_tier_becomes_and_costs(client, auth):
    response = await client.get("/v1/models", headers=auth)

    models = {model["id"]: model for model in response.json()["data"]}
    mini = models["openai/gpt-image-1-mini"]
    assert mini["capabilities"]["quality_levels"] == {
        "draft": "low",
        "standard": "medium",
        "high": "high",
        "auto": "auto",
    }
    prices = mini["prices_by_quality"]
    # OpenAI's output tokens per image at each quality, at $8 per million image tokens.
    assert prices["draft"] == {"min_usd": 0.002176, "max_usd": 0.003264}
    assert prices["high"] == {"min_usd": 0.03328, "max_usd": 0.04992}
    assert prices["auto"] == {"min_usd": 0.002176, "max_usd": 0.04992}
    assert prices["draft"]["max_usd"] < prices["standard"]["min_usd"] < prices["high"]["min_usd"]
    assert models["openai/gpt-image-2"]["prices_by_quality"] is None, "no token prices known"
    draft = models["local/draft"]
    assert draft["capabilities"]["transparent_background"] is True
    assert draft["capabilities"]["quality_levels"]["draft"] == "half resolution"
    assert draft["prices_by_quality"]["high"] == {"min_usd": 0.0, "max_usd": 0.0}


async def test_observed_latency_is_the_median_of_the_models_last_50_outputs(app, client, auth):
    # Sixty slow outputs, then fifty fast ones: only the fifty newest count.
    model = "openai/gpt-image-1-mini"
    slow = [5000] * 60
    fast = [100 + 2 * index for index in range(50)]
    await insert_outputs(app, auth, model, slow + fast)

    models = {m["id"]: m for m in (await client.get("/v1/models", headers=auth)).json()["data"]}

    assert models[model]["observed_latency_ms"] == round(statistics.median(fast)) == 149
    assert models["openai/gpt-image-2.6-flare"]["observed_latency_ms"] is None


async def insert_outputs(app, auth: dict[str, str], model: str, latencies: list[int]) -> None:
    """A finished job of the tenant with one output per latency, oldest first, as a worker
    records them (the model and latency_ms in each output's details)."""
    tenant_id = await tenant_of(app, auth)
    job = Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        kind="generate",
        status="succeeded",
        model=model,
        request={"prompt": "x", "model": model, "n": len(latencies)},
        created_at=utcnow(),
    )
    assets = [
        Asset(
            id=new_id("ast"),
            tenant_id=tenant_id,
            source="generated",
            content_hash=uuid.uuid4().hex,
            storage_key=f"test/{uuid.uuid4().hex}",
            format="png",
            width=64,
            height=64,
            bytes=1,
            job_id=job.id,
            output_index=index,
            details={"model": model, "latency_ms": latency, "cost_usd": None},
        )
        for index, latency in enumerate(latencies)
    ]
    async with app.state.sessionmaker() as session:
        session.add(job)
        await session.flush()
        session.add_all(assets)
        await session.commit()
