"""GET /v1/models, /healthz and /readyz."""

import httpx

from app.config import Settings
from app.main import create_app


async def test_models_lists_local_draft_honestly(client, auth):
    response = await client.get("/v1/models", headers=auth)

    assert response.status_code == 200
    models = {model["id"]: model for model in response.json()["data"]}
    draft = models["local/draft"]
    assert draft["available"] is True
    assert "not an AI model" in draft["description"]
    assert draft["capabilities"]["modes"] == ["generate"]
    assert draft["capabilities"]["seed"] is True
    assert draft["price_per_image_usd"] == 0.0


async def test_health_and_readiness(client):
    health = await client.get("/healthz")
    ready = await client.get("/readyz")

    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "queue": "ok"}


async def test_readiness_is_503_problem_when_the_database_is_unreachable(tmp_path):
    settings = Settings(
        data_dir=tmp_path, database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://darkroom.test"
        ) as client:
            ready = await client.get("/readyz")
            alive = await client.get("/healthz")

    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert "database" in ready.json()["detail"]
    assert alive.status_code == 200
