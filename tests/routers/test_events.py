"""GET /v1/jobs/{id}/events: live server-sent events, across processes on Postgres + arq (the
worker is another process, events travel over Redis) and in-process on the embedded default."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import update

from app.config import Settings
from app.models import Job
from tests.factories import queued_job_row
from tests.support import insert_job, serving, tenant_of, wait_for_final, wait_until

# A job that the sweeper leaves alone for a while, so only the test decides when it runs.
NOT_YET = -30


@asynccontextmanager
async def live_server(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the (already started) app served by a real uvicorn on a free port, so that
    responses stream as they are written and a closed connection is a real disconnect."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    serve = asyncio.create_task(server.serve())
    await wait_until(lambda: _started(server), 10)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await serve


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def read_events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """The events of an SSE response as dicts of their fields, as they arrive."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


def parse_stream(text: str) -> list[dict[str, str]]:
    """The events of a whole SSE body."""
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if lines:
            events.append(dict(line.split(": ", 1) for line in lines))
    return events


async def test_stream_follows_a_job_live_from_queued_to_succeeded(app, auth):
    job_id = await insert_job(app, queued_job_row(await tenant_of(app, auth), n=3, age_seconds=0))
    events = []

    async with asyncio.timeout(60), live_server(app) as http:
        async with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for event in read_events(response):
                events.append(event)
                if len(events) == 1:
                    # Subscribed: only now may the job run (in a worker process on Postgres).
                    await app.state.queue.enqueue(job_id, 1)
        job = (await http.get(f"/v1/jobs/{job_id}", headers=auth)).json()

    assert [e["event"] for e in events] == [
        "queued",
        "started",
        "progress",
        "progress",
        "progress",
        "succeeded",
    ]
    assert [e["id"] for e in events] == ["1", "2", "3", "4", "5", "6"]
    data = [json.loads(e["data"]) for e in events]
    assert {d["job_id"] for d in data} == {job_id}
    assert [d["status"] for d in data] == ["queued"] + ["running"] * 4 + ["succeeded"]
    assert [(d["completed"], d["total"]) for d in data[2:5]] == [(1, 3), (2, 3), (3, 3)]
    assert data[-1]["job"] == job
    assert len(job["outputs"]) == 3


async def test_late_subscriber_to_a_finished_job_gets_its_final_event_at_once(client, auth):
    created = await client.post("/v1/generate", json={"prompt": "a late kite"}, headers=auth)
    job, _ = await wait_for_final(client, auth, created.json()["id"])

    async with asyncio.timeout(10):
        response = await client.get(f"/v1/jobs/{job['id']}/events", headers=auth)

    assert response.status_code == 200
    events = parse_stream(response.text)
    assert [e["event"] for e in events] == ["succeeded"]
    data = json.loads(events[0]["data"])
    assert data["status"] == "succeeded"
    assert data["job"] == (await client.get(f"/v1/jobs/{job['id']}", headers=auth)).json()


async def test_cancel_from_the_api_ends_a_live_stream(app, auth):
    job_id = await insert_job(app, queued_job_row(await tenant_of(app, auth), age_seconds=NOT_YET))
    events = []

    async with (
        asyncio.timeout(30),
        live_server(app) as http,
        http.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth) as response,
    ):
        async for event in read_events(response):
            events.append(event)
            if len(events) == 1:
                canceled = await http.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
                assert canceled.status_code == 200

    assert [e["event"] for e in events] == ["queued", "canceled"]
    assert json.loads(events[1]["data"])["job"]["status"] == "canceled"


async def test_another_tenants_job_has_no_stream(client, auth, other_auth, app):
    job_id = await insert_job(app, queued_job_row(await tenant_of(app, auth), age_seconds=NOT_YET))

    theirs = await client.get(f"/v1/jobs/{job_id}/events", headers=other_auth)
    missing = await client.get("/v1/jobs/job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P/events", headers=auth)
    anonymous = await client.get(f"/v1/jobs/{job_id}/events")

    assert theirs.status_code == missing.status_code == 404
    assert theirs.headers["content-type"] == "application/problem+json"
    assert theirs.json()["type"].endswith("/not-found")
    assert anonymous.status_code == 401
    assert await app.state.context.broadcaster.watchers(job_id) == 0


async def test_a_disconnected_client_leaves_no_subscription(app, auth):
    job_id = await insert_job(app, queued_job_row(await tenant_of(app, auth), age_seconds=NOT_YET))
    broadcaster = app.state.context.broadcaster

    async with asyncio.timeout(30), live_server(app) as http:
        async with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth) as response:
            async for event in read_events(response):
                assert event["event"] == "queued"
                assert await broadcaster.watchers(job_id) == 1
                break

        async def unsubscribed() -> bool:
            return await broadcaster.watchers(job_id) == 0

        await wait_until(unsubscribed, 10)


async def test_idle_stream_sends_heartbeats_and_ends_when_the_job_ends_unannounced(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", events_heartbeat_seconds=0.1)
    async with serving(settings) as (app, client, auth):
        job_id = await insert_job(
            app, queued_job_row(await tenant_of(app, auth), age_seconds=NOT_YET)
        )
        stream = asyncio.create_task(client.get(f"/v1/jobs/{job_id}/events", headers=auth))
        await asyncio.sleep(0.5)
        # Finished behind the broadcaster's back, as when an event is lost: the stream's
        # heartbeat reads the job again and still ends it.
        async with app.state.sessionmaker() as session:
            await session.execute(update(Job).where(Job.id == job_id).values(status="failed"))
            await session.commit()
        async with asyncio.timeout(10):
            response = await stream

    assert response.text.count(": heartbeat\n\n") >= 3
    assert [e["event"] for e in parse_stream(response.text)] == ["queued", "failed"]
