"""GET /v1/jobs/{id}/events: live server-sent events, across processes on Postgres + arq (the
worker is another process, events travel over Redis) and in-process on the embedded default."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import update

from app.config import Settings
from app.models import Job
from app.runtime.progress import CHANNEL_PREFIX
from tests.factories import queued_job_row
from tests.support import (
    REDIS_URL,
    events_acting_on_the_first,
    insert_job,
    live_server,
    new_api_key,
    read_events,
    serving,
    tenant_of,
    wait_for_final,
    wait_until,
)

# A job that the sweeper leaves alone for a while, so only the test decides when it runs.
NOT_YET = -30


def parse_stream(text: str) -> list[dict[str, str]]:
    """The events of a whole SSE body."""
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line and not line.startswith(":")]
        if lines:
            events.append(dict(line.split(": ", 1) for line in lines))
    return events


async def test_stream_follows_a_job_live_from_queued_to_succeeded(app, auth):
    # Left alone by the sweepers: on a loaded machine subscribing can take longer than their
    # grace, and they would run the job before the stream saw it queued.
    tenant = await tenant_of(app, auth)
    job_id = await insert_job(app, queued_job_row(tenant, n=3, age_seconds=NOT_YET))
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

    async def cancel(http: httpx.AsyncClient) -> None:
        canceled = await http.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
        assert canceled.status_code == 200

    events = await events_acting_on_the_first(app, auth, job_id, cancel)

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
    async with serving(settings) as (app, _, auth):
        job_id = await insert_job(
            app, queued_job_row(await tenant_of(app, auth), age_seconds=NOT_YET)
        )
        lines: list[str] = []
        async with (
            asyncio.timeout(30),
            live_server(app) as http,
            http.stream("GET", f"/v1/jobs/{job_id}/events", headers=auth) as response,
        ):
            async for line in response.aiter_lines():
                lines.append(line)
                if lines.count(": heartbeat") == 3:
                    # Finished behind the broadcaster's back, as when an event is lost: the
                    # stream's next heartbeat reads the job again and still ends it.
                    await finish_unannounced(app, job_id)

    assert lines.count(": heartbeat") >= 3
    assert [e["event"] for e in parse_stream("\n".join(lines))] == ["queued", "failed"]


async def finish_unannounced(app: FastAPI, job_id: str) -> None:
    """Mark the job failed in the database alone, telling no listener."""
    async with app.state.sessionmaker() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(status="failed"))
        await session.commit()


@asynccontextmanager
async def redis_client() -> AsyncIterator[Redis]:
    """A Redis client of the test's own, as another process (a worker, an operator) would be."""
    redis = Redis.from_url(REDIS_URL)
    try:
        yield redis
    finally:
        await redis.aclose()


async def subscriber_connections(redis: Redis, name: str) -> list[int]:
    """The ids of the Redis connections named `name` (CLIENT LIST)."""
    return [int(client["id"]) for client in await redis.client_list() if client["name"] == name]


async def channel_subscribers(redis: Redis, *job_ids: str) -> list[int]:
    """How many connections subscribe to each job's channel (PUBSUB NUMSUB)."""
    counts = await redis.pubsub_numsub(*(CHANNEL_PREFIX + job_id for job_id in job_ids))
    return [int(count) for _, count in counts]


async def open_stream(
    streams: AsyncExitStack, http: httpx.AsyncClient, job_id: str, headers: dict[str, str]
) -> tuple[httpx.Response, AsyncIterator[dict[str, str]]]:
    """A job's event stream held open by `streams`, and its events as they come."""
    response = await streams.enter_async_context(
        http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers)
    )
    return response, read_events(response)


async def test_concurrent_streams_in_one_process_share_one_redis_connection(
    deployment_settings,
):
    settings = deployment_settings
    async with (
        asyncio.timeout(30),
        serving(settings) as (app, _, auth),
        live_server(app) as http,
        redis_client() as redis,
    ):
        broadcaster = app.state.context.broadcaster
        tenant = await tenant_of(app, auth)
        first = await insert_job(app, queued_job_row(tenant, age_seconds=NOT_YET))
        second = await insert_job(app, queued_job_row(tenant, age_seconds=NOT_YET))
        async with AsyncExitStack() as streams:
            watching_first = [await open_stream(streams, http, first, auth) for _ in range(3)]
            _, second_events = await open_stream(streams, http, second, auth)
            for _, events in [*watching_first, (None, second_events)]:
                assert (await anext(events))["event"] == "queued"

            assert len(await subscriber_connections(redis, broadcaster.connection_name)) == 1
            assert await channel_subscribers(redis, first, second) == [1, 1]
            assert await broadcaster.watchers(first) == 3
            # A worker elsewhere publishes once; every local stream of the job gets it.
            progress = {"event": "progress", "job_id": first, "completed": 1, "total": 2}
            await redis.publish(CHANNEL_PREFIX + first, json.dumps(progress))
            for _, events in watching_first:
                data = json.loads((await anext(events))["data"])
                assert (data["completed"], data["total"]) == (1, 2)

        async def all_left() -> bool:
            return await channel_subscribers(redis, first, second) == [0, 0]

        await wait_until(all_left, 10)
        assert await broadcaster.watchers(first) == await broadcaster.watchers(second) == 0
        # The process keeps its one connection for the streams to come.
        assert len(await subscriber_connections(redis, broadcaster.connection_name)) == 1


@pytest.mark.parametrize("backend", ["embedded", "postgres"])
async def test_streams_over_the_tenant_cap_are_refused_until_one_closes(
    backend, tmp_path, deployment_settings
):
    if backend == "postgres":
        settings = deployment_settings.model_copy(update={"events_max_streams_per_tenant": 2})
    else:
        settings = Settings(data_dir=tmp_path / "var", events_max_streams_per_tenant=2)
    async with asyncio.timeout(30), serving(settings) as (app, _, auth), live_server(app) as http:
        broadcaster = app.state.context.broadcaster
        job_id = await insert_job(
            app, queued_job_row(await tenant_of(app, auth), age_seconds=NOT_YET)
        )
        other_auth = await new_api_key(app)
        other_job_id = await insert_job(
            app, queued_job_row(await tenant_of(app, other_auth), age_seconds=NOT_YET)
        )
        async with AsyncExitStack() as kept:
            async with AsyncExitStack() as closing:
                # Each stream's events are kept: a reader dropped would close its stream.
                opened = [
                    await open_stream(streams, http, job_id, auth) for streams in (kept, closing)
                ]
                for response, events in opened:
                    assert response.status_code == 200
                    assert (await anext(events))["event"] == "queued"

                refused = await http.get(f"/v1/jobs/{job_id}/events", headers=auth)

                assert refused.status_code == 429
                assert refused.headers["content-type"] == "application/problem+json"
                problem = refused.json()
                assert problem["type"].endswith("/too-many-streams")
                assert "already has 2 event streams open" in problem["detail"]
                assert problem["max_streams"] == 2
                assert await broadcaster.watchers(job_id) == 2
                # The cap is each tenant's own: another tenant still gets a stream.
                theirs, their_events = await open_stream(kept, http, other_job_id, other_auth)
                assert theirs.status_code == 200
                assert (await anext(their_events))["event"] == "queued"

            # One of the two closed: once the server sees it go, its slot is free again.
            async def reopened() -> bool:
                response, events = await open_stream(kept, http, job_id, auth)
                if response.status_code != 200:
                    await response.aclose()
                    return False
                opened.append((response, events))
                return (await anext(events))["event"] == "queued"

            await wait_until(reopened, 10)
            assert await broadcaster.watchers(job_id) == 2


async def test_a_dropped_redis_connection_is_reopened_and_events_arrive_again(
    deployment_settings,
):
    settings = deployment_settings
    async with (
        asyncio.timeout(30),
        serving(settings) as (app, _, auth),
        live_server(app) as http,
        redis_client() as redis,
    ):
        name = app.state.context.broadcaster.connection_name
        job_id = await insert_job(
            app, queued_job_row(await tenant_of(app, auth), age_seconds=NOT_YET)
        )
        async with AsyncExitStack() as streams:
            _, events = await open_stream(streams, http, job_id, auth)
            assert (await anext(events))["event"] == "queued"
            [killed] = await subscriber_connections(redis, name)

            await redis.client_kill_filter(_id=killed)

            async def resubscribed() -> bool:
                connections = await subscriber_connections(redis, name)
                subscribers = await channel_subscribers(redis, job_id)
                return len(connections) == 1 and killed not in connections and subscribers == [1]

            await wait_until(resubscribed, 10)
            # Progress is never read back from the database: only the new connection brings it.
            progress = {"event": "progress", "job_id": job_id, "completed": 1, "total": 2}
            await redis.publish(CHANNEL_PREFIX + job_id, json.dumps(progress))
            async with asyncio.timeout(5):
                event = await anext(events)
            assert event["event"] == "progress"
            assert json.loads(event["data"])["completed"] == 1

            canceled = await http.post(f"/v1/jobs/{job_id}/cancel", headers=auth)
            assert canceled.status_code == 200
            async with asyncio.timeout(5):
                assert [e["event"] async for e in events] == ["canceled"]
