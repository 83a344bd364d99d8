"""The embedded default's in-process runner, through the API: tenants take turns for its job
slots, and each tenant's cap on running jobs holds there too."""

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import httpx

from app.config import Settings
from app.main import create_app
from tests.conftest import database_file
from tests.fakes.openai_images import API_KEY, FakeOpenAIImages, slow
from tests.support import most_at_once, new_api_key, wait_for_final

VENDOR_SECONDS = 0.2
# The first job runs long enough for every other job of a test to be sent meanwhile.
FIRST_SECONDS = 1.0
BODY = {"prompt": "a kite over dunes", "model": "openai/gpt-image-2"}


@asynccontextmanager
async def embedded(
    tmp_path: Path, embedded_database: Path, **overrides: object
) -> AsyncIterator[tuple[httpx.AsyncClient, list[dict[str, str]]]]:
    """The embedded app with these settings, on a vendor that takes FIRST_SECONDS for its first
    call and VENDOR_SECONDS for the next: a client and two tenants' headers."""
    async with FakeOpenAIImages() as vendor:
        vendor.script(slow(FIRST_SECONDS), *[slow(VENDOR_SECONDS)] * 20)
        settings = Settings(
            data_dir=tmp_path / "var",
            openai_api_key=API_KEY,
            openai_base_url=vendor.base_url,
            **overrides,
        )
        settings.data_dir.mkdir()
        shutil.copyfile(embedded_database, database_file(settings))
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            tenants = [await new_api_key(application) for _ in range(2)]
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client, tenants


async def run_all(
    client: httpx.AsyncClient, submissions: list[dict[str, str]]
) -> list[tuple[int, dict]]:
    """Submit a job for each tenant's headers in order; each finished job with the index of its
    tenant, in the order the jobs started."""
    tenants = list(dict.fromkeys(map(str, submissions)))
    sent = []
    for headers in submissions:
        response = await client.post("/v1/generate", json=BODY, headers=headers)
        assert response.status_code == 202, response.text
        sent.append((tenants.index(str(headers)), headers, response.json()["id"]))
    finished = [
        (tenant, (await wait_for_final(client, headers, job_id, 30))[0])
        for tenant, headers, job_id in sent
    ]
    assert {job["status"] for _, job in finished} == {"succeeded"}
    return sorted(finished, key=lambda pair: datetime.fromisoformat(pair[1]["started_at"]))


async def test_tenants_take_turns_for_the_embedded_runners_slot(tmp_path, embedded_database):
    async with embedded(tmp_path, embedded_database, runner_concurrency=1) as (client, tenants):
        first, second = tenants
        # The first tenant's burst is sent before the second tenant's jobs...
        finished = await run_all(client, [first] * 3 + [second] * 3)

    # ...yet once the first job runs, the slot goes to each tenant in turn.
    assert [tenant for tenant, _ in finished] == [0, 1, 0, 1, 0, 1]


async def test_the_embedded_runner_holds_each_tenant_to_its_cap(tmp_path, embedded_database):
    settings = {"runner_concurrency": 4, "tenant_max_running": 1}
    async with embedded(tmp_path, embedded_database, **settings) as (client, tenants):
        first, second = tenants
        finished = await run_all(client, [first] * 3 + [second] * 2)

    for tenant in (0, 1):
        assert most_at_once([job for owner, job in finished if owner == tenant]) == 1
    # The slots the capped tenant could not use went to the other tenant meanwhile.
    assert most_at_once([job for _, job in finished]) == 2
