"""GET /v1/models, /healthz and /readyz."""


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
