"""API keys on every route: a key's tenant is remembered for DARKROOM_KEY_CACHE_SECONDS, so a
key revoked behind the API's back stops working within that time; one revoked through the
operator API or the CLI stops on every API process sharing the Redis within seconds."""

import asyncio
import subprocess
import uuid

import httpx
from sqlalchemy import update

from app.config import Settings
from app.models import ApiKey, utcnow
from app.services.keys import KeyCache, hash_key
from tests.providers.support import ManualClock
from tests.support import (
    darkroom_command,
    darkroom_environment,
    free_port,
    serving,
    start_server,
    stop_worker,
    wait_until,
    wait_until_serving,
)

ADMIN_TOKEN = "admin-token-for-tests"
# What the task asks of a revocation: 401 on every API process within this many seconds.
REVOCATION_SECONDS = 5


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


async def answers(base_url: str, key: str) -> int:
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"})
    return response.status_code


async def stops_everywhere(base_urls: list[str], key: str) -> None:
    """Wait until every server answers 401 to the key; fail past REVOCATION_SECONDS."""

    async def refused_everywhere() -> bool:
        return all([await answers(url, key) == 401 for url in base_urls])

    await wait_until(refused_everywhere, seconds=REVOCATION_SECONDS)


async def test_a_key_revoked_through_one_api_process_stops_on_another(
    deployment_settings, tmp_path
):
    # Each process would remember a key for a minute: only the announced revocation can make
    # it stop within seconds.
    settings = [
        deployment_settings.model_copy(
            update={"port": free_port(), "key_cache_seconds": 60, "admin_token": ADMIN_TOKEN}
        )
        for _ in range(2)
    ]
    servers = [start_server(s, tmp_path / f"serve-{n}.log") for n, s in enumerate(settings)]
    base_urls = [f"http://127.0.0.1:{s.port}" for s in settings]
    try:
        for url, server in zip(base_urls, servers, strict=True):
            await wait_until_serving(url, server)
        async with httpx.AsyncClient(
            base_url=base_urls[0], headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as admin:
            tenant = f"two-processes-{uuid.uuid4().hex}"
            made = [
                (await admin.post("/v1/admin/keys", json={"tenant": tenant})).json()
                for _ in range(2)
            ]
            # Both processes now remember both keys.
            for key in made:
                assert [await answers(url, key["key"]) for url in base_urls] == [200, 200]

            revoked = await admin.post(f"/v1/admin/keys/{made[0]['id']}/revoke")
            assert revoked.status_code == 200
            await stops_everywhere(base_urls, made[0]["key"])

            # The CLI, another process again, announces on the same Redis.
            cli = await asyncio.to_thread(
                subprocess.run,
                darkroom_command("keys", "revoke", made[1]["id"]),
                env=darkroom_environment(settings[0]),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert cli.returncode == 0, cli.stderr
            await stops_everywhere(base_urls, made[1]["key"])
    finally:
        for server in servers:
            stop_worker(server)
