"""A webhook receiver down for a long while: once it is back, every event is delivered exactly
once, in order per job, signed. The outage is simulated on a shrunken retry schedule: it spans
the first six attempts of each delivery (as an hour spans the first four of the default
schedule) and leaves three more."""

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.fakes.webhook_receiver import WebhookReceiver
from tests.support import wait_for_final, wait_until
from tests.webhooks.conftest import serving_on

# Attempts at 0, 0.1, 0.3, 0.7, 1.5, 3.1, then 6.3, 12.7 and 25.5 s after an event.
SCHEDULE = "0.1,0.2,0.4,0.8,1.6,3.2,6.4,12.8"
OUTAGE_SECONDS = 4
OUTAGE_SETTINGS: dict[str, object] = {
    "url_allow": "127.0.0.1",
    "webhook_retry_schedule": SCHEDULE,
    "webhook_timeout_seconds": 2,
    # The scan would send an overdue delivery only after this: each event must be sent by the
    # settling of the one before it.
    "queued_grace_seconds": 300,
}
JOBS = 5
EVENTS = ["job.queued", "job.started", "job.succeeded"]


@pytest.fixture(params=["embedded", "postgres"])
async def hooked(
    request: pytest.FixtureRequest, tmp_path, bucket
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, dict]]:
    """The app, a client and a tenant, on the embedded default or on Postgres with a worker."""
    async with serving_on(request.param, tmp_path, "hookdown", OUTAGE_SETTINGS, bucket) as served:
        yield served


async def test_events_held_by_a_receiver_down_for_long_are_each_delivered_once_in_order(hooked):
    _, client, auth = hooked
    async with WebhookReceiver(down=True) as receiver:
        response = await client.post("/v1/webhooks", json={"url": receiver.url()}, headers=auth)
        assert response.status_code == 201, response.text
        endpoint = response.json()
        receiver.secret = endpoint["secret"]

        jobs = []
        for index in range(JOBS):
            body = {"prompt": f"harbour at dawn {index}", "size": "64x64", "seed": index}
            jobs.append((await client.post("/v1/generate", json=body, headers=auth)).json())
        for job in jobs:
            assert (await wait_for_final(client, auth, job["id"]))[0]["status"] == "succeeded"
        await asyncio.sleep(OUTAGE_SECONDS)
        refused = len(receiver.deliveries)
        receiver.down = False

        records = await _settled(client, auth, endpoint["id"], JOBS * len(EVENTS))
        await asyncio.sleep(1)
        received = list(receiver.deliveries)

    assert {record["status"] for record in records} == {"delivered"}
    assert refused >= JOBS * len(EVENTS), "every event was refused at least once"
    assert all(delivery.verified for delivery in received)
    accepted = [delivery for delivery in received if delivery.status == 204]
    accepted_ids = [delivery.headers["webhook-id"] for delivery in accepted]
    assert sorted(accepted_ids) == sorted(record["id"] for record in records)
    events_per_job: dict[str, list[str]] = defaultdict(list)
    for delivery in accepted:
        event = json.loads(delivery.raw_body)
        events_per_job[event["data"]["id"]].append(event["type"])
    assert events_per_job == {job["id"]: EVENTS for job in jobs}
    # An event waits behind the earlier ones of its job without being sent: only each job's
    # first event met the outage.
    refused_events = {json.loads(d.raw_body)["type"] for d in received if d.status == 503}
    assert refused_events == {"job.queued"}


async def _settled(client: httpx.AsyncClient, auth: dict, endpoint_id: str, count: int) -> list:
    found: list[dict] = []

    async def settled() -> bool:
        response = await client.get(
            f"/v1/webhooks/{endpoint_id}/deliveries", params={"limit": 100}, headers=auth
        )
        assert response.status_code == 200, response.text
        found[:] = response.json()["data"]
        return len(found) >= count and all(item["status"] != "pending" for item in found)

    await wait_until(settled, seconds=60)
    return found
