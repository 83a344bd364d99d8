"""API keys on every route: a key's tenant is remembered for DARKROOM_KEY_CACHE_SECONDS, so a
revoked key stops working within that time."""

from sqlalchemy import update

from app.config import Settings
from app.models import ApiKey, utcnow
from app.services.keys import KeyCache, hash_key
from tests.providers.support import ManualClock
from tests.support import serving


async def revoke(app, headers: dict[str, str]) -> None:
    key = headers["Authorization"].removeprefix("Bearer ")
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(ApiKey).where(ApiKey.key_hash == hash_key(key)).values(revoked_at=utcnow())
        )
        await session.commit()


async def test_a_revoked_key_stops_working_once_its_cached_tenant_expires(app, client, auth):
    clock = ManualClock()
    app.state.key_cache = KeyCache(5, clock=clock)
    assert (await client.get("/v1/jobs", headers=auth)).status_code == 200

    await revoke(app, auth)
    remembered = await client.get("/v1/jobs", headers=auth)
    clock.advance(5.01)
    expired = await client.get("/v1/jobs", headers=auth)
    generate = await client.post("/v1/generate", json={"prompt": "a kite"}, headers=auth)

    assert remembered.status_code == 200
    assert expired.status_code == generate.status_code == 401


async def test_without_the_cache_a_revoked_key_stops_at_once(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", key_cache_seconds=0)
    async with serving(settings) as (app, client, auth):
        assert (await client.get("/v1/jobs", headers=auth)).status_code == 200
        await revoke(app, auth)

        assert (await client.get("/v1/jobs", headers=auth)).status_code == 401
