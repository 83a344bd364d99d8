"""Webhooks end to end: registered endpoints and per-request URLs receive signed job events, in
order, that `standardwebhooks` verifies, failures are retried under the same webhook-id until
delivered, 410 disables, refused addresses are never contacted, and every attempt is recorded."""

import asyncio
import io
import itertools
import json
import logging
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.config import Settings
from app.ids import new_id
from app.logs import JsonFormatter
from app.models import WebhookAttempt, WebhookDelivery
from app.schemas.webhooks import WEBHOOK_URL_PATTERN, check_webhook_url
from tests.factories import image_bytes
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.support import (
    embedded_only,
    metric_value,
    serving,
    tenant_of,
    wait_for_final,
    wait_until,
)

BRIEF = {"prompt": "a lighthouse at dusk", "size": "64x64", "seed": 7}


async def register(client, auth, url: str, **fields) -> dict:
    response = await client.post("/v1/webhooks", json={"url": url, **fields}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def deliveries_of(client, auth, endpoint_id: str) -> list[dict]:
    response = await client.get(f"/v1/webhooks/{endpoint_id}/deliveries", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def settled_deliveries(client, auth, endpoint_id: str, count: int) -> list[dict]:
    """The endpoint's deliveries once `count` exist and none is pending."""
    return await settled_list(client, auth, f"/v1/webhooks/{endpoint_id}/deliveries", count)


async def settled_list(client, auth, path: str, count: int) -> list[dict]:
    """The deliveries listed at `path` once `count` exist and none is pending."""
    found: list[dict] = []

    async def settled() -> bool:
        response = await client.get(path, headers=auth)
        assert response.status_code == 200, response.text
        found[:] = response.json()["data"]
        return len(found) >= count and all(item["status"] != "pending" for item in found)

    await wait_until(settled, seconds=30)
    return found


def body_of(delivery) -> dict:
    return json.loads(delivery.raw_body)


async def test_endpoint_crud_shows_the_secret_only_on_create(client, auth):
    async with WebhookReceiver() as receiver:
        created = await register(
            client, auth, receiver.url(), events=["job.succeeded"], description="pipeline"
        )
        endpoint_id = created["id"]

        assert created["secret"].startswith("whsec_")
        assert (created["events"], created["description"]) == (["job.succeeded"], "pipeline")
        assert created["disabled"] is False
        fetched = (await client.get(f"/v1/webhooks/{endpoint_id}", headers=auth)).json()
        assert "secret" not in fetched
        assert fetched == {key: value for key, value in created.items() if key != "secret"}
        listed = (await client.get("/v1/webhooks", headers=auth)).json()
        assert [item["id"] for item in listed["data"]] == [endpoint_id]

        patched = await client.patch(
            f"/v1/webhooks/{endpoint_id}",
            json={"events": ["job.failed", "job.canceled"], "disabled": True},
            headers=auth,
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["events"] == ["job.failed", "job.canceled"]
        assert patched.json()["disabled"] is True
        assert patched.json()["description"] == "pipeline"

        deleted = await client.delete(f"/v1/webhooks/{endpoint_id}", headers=auth)
        assert deleted.status_code == 204
        gone = await client.get(f"/v1/webhooks/{endpoint_id}", headers=auth)
        assert gone.status_code == 404


async def test_another_tenants_endpoint_is_not_found(client, auth, other_auth):
    async with WebhookReceiver() as receiver:
        endpoint = await register(client, auth, receiver.url())
        path = f"/v1/webhooks/{endpoint['id']}"

        answers = [
            await client.get(path, headers=other_auth),
            await client.patch(path, json={"description": "mine"}, headers=other_auth),
            await client.delete(path, headers=other_auth),
            await client.get(f"{path}/deliveries", headers=other_auth),
            await client.post(f"{path}/deliveries/{new_id('msg')}/retry", headers=other_auth),
        ]

        assert [answer.status_code for answer in answers] == [404] * 5
        assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
        assert (await client.get("/v1/webhooks", headers=other_auth)).json()["data"] == []
        assert (await client.get(path, headers=auth)).status_code == 200


async def test_registered_endpoint_gets_every_job_event_signed(client, auth):
    async with WebhookReceiver() as receiver:
        endpoint = await register(client, auth, receiver.url())
        receiver.secret = endpoint["secret"]

        job = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
        final, _ = await wait_for_final(client, auth, job["id"])
        deliveries = await receiver.wait_for(3)
        records = await settled_deliveries(client, auth, endpoint["id"], 3)

    assert final["status"] == "succeeded"
    assert all(delivery.verified for delivery in deliveries)
    # In the order they happened: each waits for the one before it.
    types = [body_of(delivery)["type"] for delivery in deliveries]
    assert types == ["job.queued", "job.started", "job.succeeded"]
    assert {body_of(delivery)["data"]["id"] for delivery in deliveries} == {job["id"]}
    assert len({delivery.headers["webhook-id"] for delivery in deliveries}) == 3
    assert {record["status"] for record in records} == {"delivered"}
    assert [[a["status_code"] for a in record["attempts"]] for record in records] == [[204]] * 3
    assert {record["id"] for record in records} == {d.headers["webhook-id"] for d in deliveries}
    succeeded = next(d for d in deliveries if body_of(d)["type"] == "job.succeeded")
    assert body_of(succeeded)["data"]["status"] == "succeeded"
    assert len(body_of(succeeded)["data"]["outputs"]) == 1


async def test_every_change_to_a_tenants_endpoints_reaches_its_next_jobs_events(client, auth):
    # Each process keeps a tenant's endpoints between events (here: none, after the first job);
    # registering, changing and deleting one are announced, so the next job's events follow.
    async def run_job() -> str:
        job = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
        await wait_for_final(client, auth, job["id"])
        return job["id"]

    async with WebhookReceiver() as receiver:
        before = await run_job()
        endpoint = await register(client, auth, receiver.url())
        path = f"/v1/webhooks/{endpoint['id']}"
        registered = await run_job()
        await settled_deliveries(client, auth, endpoint["id"], 3)
        await client.patch(path, json={"events": ["job.succeeded"]}, headers=auth)
        changed = await run_job()
        await settled_deliveries(client, auth, endpoint["id"], 4)
        await client.delete(path, headers=auth)
        deleted = await run_job()
        await asyncio.sleep(1)
        sent = [(body_of(d)["data"]["id"], body_of(d)["type"]) for d in receiver.deliveries]
        # A receiver kept after it changed would show here as a delivery made and then stopped.
        recorded = {
            job_id: [
                delivery["event"]
                for delivery in (
                    await client.get(job_deliveries_path(job_id), headers=auth)
                ).json()["data"]
            ]
            for job_id in (before, changed, deleted)
        }

    assert sent == [
        (registered, "job.queued"),
        (registered, "job.started"),
        (registered, "job.succeeded"),
        (changed, "job.succeeded"),
    ]
    assert recorded == {before: [], changed: ["job.succeeded"], deleted: []}


async def test_failing_receiver_is_retried_under_one_webhook_id_until_delivered(client, auth):
    async with WebhookReceiver(statuses=[500, 503, 500]) as receiver:
        endpoint = await register(client, auth, receiver.url(), events=["job.succeeded"])
        receiver.secret = endpoint["secret"]

        job = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
        await wait_for_final(client, auth, job["id"])
        deliveries = await receiver.wait_for(4)
        [record] = await settled_deliveries(client, auth, endpoint["id"], 1)
        await asyncio.sleep(1)
        extra = len(receiver.deliveries) - 4

    assert extra == 0
    assert all(delivery.verified for delivery in deliveries)
    assert {delivery.headers["webhook-id"] for delivery in deliveries} == {record["id"]}
    assert len({delivery.raw_body for delivery in deliveries}) == 1
    assert record["status"] == "delivered"
    assert [attempt["status_code"] for attempt in record["attempts"]] == [500, 503, 500, 204]
    assert all(attempt["latency_ms"] >= 0 for attempt in record["attempts"])
    assert all(attempt["error"] is None for attempt in record["attempts"])
    gaps = [later.arrived - earlier.arrived for earlier, later in itertools.pairwise(deliveries)]
    assert all(0.25 <= gap < 10 for gap in gaps), gaps


async def test_gone_disables_the_endpoint_and_stops_deliveries(client, auth):
    async with WebhookReceiver(statuses=[410]) as receiver:
        endpoint = await register(client, auth, receiver.url(), events=["job.succeeded"])
        path = f"/v1/webhooks/{endpoint['id']}"

        first = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
        await wait_for_final(client, auth, first["id"])
        [record] = await settled_deliveries(client, auth, endpoint["id"], 1)
        second = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
        await wait_for_final(client, auth, second["id"])
        await asyncio.sleep(1)
        retried = await client.post(f"{path}/deliveries/{record['id']}/retry", headers=auth)

        assert len(receiver.deliveries) == 1
    assert record["status"] == "disabled"
    assert [attempt["status_code"] for attempt in record["attempts"]] == [410]
    fetched = (await client.get(path, headers=auth)).json()
    assert fetched["disabled"] is True and fetched["disabled_at"] is not None
    assert len(await deliveries_of(client, auth, endpoint["id"])) == 1
    assert retried.status_code == 409


async def test_manual_retry_sends_the_same_message_again(client, auth):
    async with WebhookReceiver() as receiver:
        endpoint = await register(client, auth, receiver.url(), events=["job.succeeded"])
        receiver.secret = endpoint["secret"]
        job = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
        await wait_for_final(client, auth, job["id"])
        [record] = await settled_deliveries(client, auth, endpoint["id"], 1)

        retried = await client.post(
            f"/v1/webhooks/{endpoint['id']}/deliveries/{record['id']}/retry", headers=auth
        )
        first, second = await receiver.wait_for(2)
        [after] = await settled_deliveries(client, auth, endpoint["id"], 1)

    assert retried.status_code == 202
    assert retried.json()["status"] == "pending"
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == record["id"]
    assert first.raw_body == second.raw_body
    assert first.verified and second.verified
    assert (after["status"], len(after["attempts"])) == ("delivered", 2)


async def test_per_request_webhook_is_signed_with_the_default_secret_and_links_download(
    client, auth
):
    async with WebhookReceiver() as receiver:
        secret = (await client.get("/v1/webhooks/signing-secret", headers=auth)).json()["secret"]
        again = (await client.get("/v1/webhooks/signing-secret", headers=auth)).json()["secret"]
        receiver.secret = secret
        body = BRIEF | {"webhook_url": receiver.url(), "webhook_events": ["job.succeeded"]}

        job = (await client.post("/v1/generate", json=body, headers=auth)).json()
        final, _ = await wait_for_final(client, auth, job["id"])
        [delivery] = await receiver.wait_for(1)
        await asyncio.sleep(0.5)
        count = len(receiver.deliveries)

    assert secret == again and secret.startswith("whsec_")
    assert count == 1
    assert delivery.verified
    payload = body_of(delivery)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job["id"]
    assert payload["data"]["request"]["webhook_url"] == receiver.url()
    [output] = payload["data"]["outputs"]
    assert output["asset_id"] == final["outputs"][0]["asset_id"]
    assert "signature=" in output["url"] and "expires=" in output["url"]
    unsigned = await client.get(final["outputs"][0]["url"])
    signed = await client.get(output["url"])
    with_key = await client.get(final["outputs"][0]["url"], headers=auth)
    assert unsigned.status_code == 401
    assert signed.status_code == 200
    assert signed.content == with_key.content


async def test_endpoint_secret_does_not_verify_per_request_deliveries(client, auth):
    async with WebhookReceiver() as receiver:
        endpoint = await register(client, auth, receiver.url("/registered"), events=["job.failed"])
        receiver.secret = endpoint["secret"]
        body = BRIEF | {"webhook_url": receiver.url("/own"), "webhook_events": ["job.succeeded"]}
        job = (await client.post("/v1/generate", json=body, headers=auth)).json()
        await wait_for_final(client, auth, job["id"])
        [delivery] = await receiver.wait_for(1)

    assert receiver.received[0].path == "/own"
    assert not delivery.verified


async def test_loopback_webhook_urls_are_refused_without_the_allow_setting(tmp_path):
    settings = Settings(data_dir=tmp_path / "var")
    async with serving(settings) as (_, client, auth), WebhookReceiver() as receiver:
        job = await client.post(
            "/v1/generate", json=BRIEF | {"webhook_url": receiver.url()}, headers=auth
        )
        endpoint = await client.post("/v1/webhooks", json={"url": receiver.url()}, headers=auth)
        metadata = await client.post(
            "/v1/webhooks", json={"url": "http://169.254.169.254/latest"}, headers=auth
        )
        jobs = (await client.get("/v1/jobs", headers=auth)).json()["data"]

    assert job.status_code == 422, job.text
    assert job.json()["type"].endswith("/url-refused")
    assert "loopback" in job.json()["detail"]
    assert endpoint.status_code == 422
    assert "metadata" in metadata.json()["detail"]
    assert jobs == []
    assert receiver.deliveries == []


async def test_malformed_webhook_fields_are_validation_errors(client, auth):
    answers = [
        await client.post("/v1/generate", json=BRIEF | {"webhook_url": url}, headers=auth)
        for url in ("ftp://example.com/hook", "not a url", "https://" + "a" * 2050)
    ]
    events = await client.post(
        "/v1/generate",
        json=BRIEF | {"webhook_url": "https://example.com/h", "webhook_events": ["job.progress"]},
        headers=auth,
    )

    assert [answer.status_code for answer in [*answers, events]] == [422] * 4


async def test_delivery_time_check_refuses_an_address_outside_the_allow_list(app, client, auth):
    """A URL stored before the allow list changed is checked again when it is sent."""
    job = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
    await wait_for_final(client, auth, job["id"])
    delivery_id = await insert_delivery(app, auth, job["id"], "http://127.0.0.2:9/hooks")

    await app.state.webhooks.dispatcher.schedule(delivery_id, attempts=0, delay_seconds=0)
    attempts = await wait_for_attempts(app, delivery_id, 1)

    assert attempts[0].status_code is None
    assert "127.0.0.2" in attempts[0].error and "loopback" in attempts[0].error


async def test_a_delivery_whose_message_was_lost_is_sent_by_the_scan(app, client, auth):
    async with WebhookReceiver() as receiver:
        job = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
        await wait_for_final(client, auth, job["id"])
        overdue = datetime.now(UTC) - timedelta(minutes=5)
        delivery_id = await insert_delivery(app, auth, job["id"], receiver.url(), overdue)

        [delivery] = await receiver.wait_for(1, seconds=30)

    assert delivery.headers["webhook-id"] == delivery_id


async def insert_delivery(
    app, auth, job_id: str, url: str, due: datetime | None = None, endpoint_id: str | None = None
) -> str:
    """A pending delivery (per-request unless to `endpoint_id`) written straight to the
    database, never dispatched."""
    now = datetime.now(UTC)
    delivery = WebhookDelivery(
        id=new_id("msg"),
        tenant_id=await tenant_of(app, auth),
        endpoint_id=endpoint_id,
        job_id=job_id,
        event_key=f"{job_id}:test:{new_id('msg')}",
        url=url,
        event="job.succeeded",
        payload=json.dumps({"type": "job.succeeded", "data": {"id": job_id}}),
        status="pending",
        attempts=0,
        next_attempt_at=due or now,
        created_at=now,
    )
    async with app.state.sessionmaker() as session:
        session.add(delivery)
        await session.commit()
    return delivery.id


async def wait_for_attempts(app, delivery_id: str, count: int) -> list[WebhookAttempt]:
    found: list[WebhookAttempt] = []

    async def recorded() -> bool:
        async with app.state.sessionmaker() as session:
            found[:] = await session.scalars(
                select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
            )
        return len(found) >= count

    await wait_until(recorded, seconds=30)
    return found


async def test_edit_variants_and_export_jobs_take_a_per_request_webhook(client, auth):
    upload = await client.post(
        "/v1/assets",
        files={"file": ("a.png", image_bytes(96, 64), "image/png")},
        headers=auth,
    )
    asset_id = upload.json()["id"]
    bodies = {
        "/v1/edit": {"image": {"asset_id": asset_id}, "prompt": "warm"},
        "/v1/variants": {"source": {"asset_id": asset_id}},
        "/v1/export": {"asset_id": asset_id, "targets": ["og-image"]},
    }
    async with WebhookReceiver() as receiver:
        receiver.secret = (await client.get("/v1/webhooks/signing-secret", headers=auth)).json()[
            "secret"
        ]
        jobs = []
        for path, body in bodies.items():
            hook = {"webhook_url": receiver.url(path), "webhook_events": ["job.succeeded"]}
            response = await client.post(path, json=body | hook, headers=auth)
            assert response.status_code == 202, response.text
            jobs.append(response.json()["id"])
        deliveries = await receiver.wait_for(3)

    assert sorted(request.path for request in receiver.received) == sorted(bodies)
    assert all(delivery.verified for delivery in deliveries)
    assert {body_of(delivery)["data"]["id"] for delivery in deliveries} == set(jobs)


def job_deliveries_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}/webhook-deliveries"


async def test_job_deliveries_list_the_per_request_url_and_endpoints_with_attempts(client, auth):
    async with WebhookReceiver() as receiver:
        endpoint = await register(
            client, auth, receiver.url("/registered"), events=["job.succeeded"]
        )
        own_url = receiver.url("/own")
        body = BRIEF | {"webhook_url": own_url, "webhook_events": ["job.started", "job.succeeded"]}
        job = (await client.post("/v1/generate", json=body, headers=auth)).json()
        await wait_for_final(client, auth, job["id"])
        path = job_deliveries_path(job["id"])
        records = await settled_list(client, auth, path, 3)
        first = (await client.get(path, params={"limit": 2}, headers=auth)).json()
        rest = (
            await client.get(
                path, params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth
            )
        ).json()

    received = {
        d.headers["webhook-id"]: r.path
        for d, r in zip(receiver.deliveries, receiver.received, strict=True)
    }
    assert len(records) == 3
    assert {record["id"] for record in records} == set(received)
    assert [record["id"] for record in records] == sorted(received, reverse=True)
    by_receiver = {(record["endpoint_id"], record["event"]): record for record in records}
    assert set(by_receiver) == {
        (None, "job.started"),
        (None, "job.succeeded"),
        (endpoint["id"], "job.succeeded"),
    }
    own = by_receiver[(None, "job.succeeded")]
    assert own["object"] == "webhook_delivery"
    assert (own["url"], own["job_id"], own["status"]) == (own_url, job["id"], "delivered")
    assert received[own["id"]] == "/own"
    assert [attempt["status_code"] for attempt in own["attempts"]] == [204]
    assert own["attempts"][0]["latency_ms"] >= 0 and own["attempts"][0]["error"] is None
    assert own["payload"]["type"] == "job.succeeded"
    assert own["payload"]["data"]["id"] == job["id"]
    assert received[by_receiver[(endpoint["id"], "job.succeeded")]["id"]] == "/registered"
    assert first["has_more"] is True and len(first["data"]) == 2
    assert rest["has_more"] is False and rest["next_cursor"] is None
    assert [item["id"] for item in first["data"] + rest["data"]] == [r["id"] for r in records]
    assert [item["id"] for item in await deliveries_of(client, auth, endpoint["id"])] == [
        by_receiver[(endpoint["id"], "job.succeeded")]["id"]
    ]


async def test_failing_per_request_receiver_is_retried_through_the_job_route(client, auth):
    async with WebhookReceiver(statuses=[500] * 5) as receiver:
        receiver.secret = (await client.get("/v1/webhooks/signing-secret", headers=auth)).json()[
            "secret"
        ]
        body = BRIEF | {"webhook_url": receiver.url(), "webhook_events": ["job.succeeded"]}
        job = (await client.post("/v1/generate", json=body, headers=auth)).json()
        await wait_for_final(client, auth, job["id"])
        path = job_deliveries_path(job["id"])
        [failed] = await settled_list(client, auth, path, 1)
        sent_before = len(receiver.deliveries)

        retried = await client.post(f"{path}/{failed['id']}/retry", headers=auth)
        deliveries = await receiver.wait_for(6)
        [after] = await settled_list(client, auth, path, 1)

    assert sent_before == 5
    assert failed["endpoint_id"] is None
    assert failed["status"] == "failed"
    assert [attempt["status_code"] for attempt in failed["attempts"]] == [500] * 5
    assert retried.status_code == 202, retried.text
    assert (retried.json()["id"], retried.json()["status"]) == (failed["id"], "pending")
    assert after["status"] == "delivered"
    assert [attempt["status_code"] for attempt in after["attempts"]] == [500] * 5 + [204]
    assert {delivery.headers["webhook-id"] for delivery in deliveries} == {failed["id"]}
    assert len({delivery.raw_body for delivery in deliveries}) == 1
    assert all(delivery.verified for delivery in deliveries)


async def test_another_tenants_job_deliveries_are_not_found(client, auth, other_auth):
    async with WebhookReceiver() as receiver:
        body = BRIEF | {"webhook_url": receiver.url(), "webhook_events": ["job.succeeded"]}
        job = (await client.post("/v1/generate", json=body, headers=auth)).json()
        await wait_for_final(client, auth, job["id"])
        path = job_deliveries_path(job["id"])
        [record] = await settled_list(client, auth, path, 1)

        answers = [
            await client.get(path, headers=other_auth),
            await client.post(f"{path}/{record['id']}/retry", headers=other_auth),
        ]
        await asyncio.sleep(0.5)
        sent = len(receiver.deliveries)

    assert [answer.status_code for answer in answers] == [404, 404]
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    assert sent == 1
    assert [item["status"] for item in await settled_list(client, auth, path, 1)] == ["delivered"]


async def test_a_delivery_of_another_job_is_not_found_on_the_job_route(client, auth):
    async with WebhookReceiver() as receiver:
        body = BRIEF | {"webhook_url": receiver.url(), "webhook_events": ["job.succeeded"]}
        first = (await client.post("/v1/generate", json=body, headers=auth)).json()
        second = (await client.post("/v1/generate", json=body, headers=auth)).json()
        for job in (first, second):
            await wait_for_final(client, auth, job["id"])
        [of_second] = await settled_list(client, auth, job_deliveries_path(second["id"]), 1)
        first_path = job_deliveries_path(first["id"])

        answers = [
            await client.post(f"{first_path}/{of_second['id']}/retry", headers=auth),
            await client.post(f"{first_path}/{new_id('msg')}/retry", headers=auth),
            await client.post(f"{first_path}/not-an-id/retry", headers=auth),
            await client.get(job_deliveries_path(new_id("job")), headers=auth),
        ]
        await asyncio.sleep(0.5)
        sent = len(receiver.deliveries)

    assert [answer.status_code for answer in answers] == [404] * 4
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    assert sent == 2
    [unchanged] = await settled_list(client, auth, job_deliveries_path(second["id"]), 1)
    assert (unchanged["status"], len(unchanged["attempts"])) == ("delivered", 1)


async def test_a_retry_after_the_endpoint_moved_goes_to_the_new_url_and_says_so(client, auth):
    async with WebhookReceiver(statuses=[500] * 5) as old, WebhookReceiver() as new:
        endpoint = await register(client, auth, old.url(), events=["job.succeeded"])
        job = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
        await wait_for_final(client, auth, job["id"])
        [failed] = await settled_deliveries(client, auth, endpoint["id"], 1)

        moved = await client.patch(
            f"/v1/webhooks/{endpoint['id']}", json={"url": new.url()}, headers=auth
        )
        retried = await client.post(
            f"/v1/webhooks/{endpoint['id']}/deliveries/{failed['id']}/retry", headers=auth
        )
        [sent] = await new.wait_for(1)
        [after] = await settled_deliveries(client, auth, endpoint["id"], 1)
        [by_job] = await settled_list(client, auth, job_deliveries_path(job["id"]), 1)
        sent_to_old = len(old.deliveries)

    assert (failed["status"], failed["url"]) == ("failed", old.url())
    assert [attempt["url"] for attempt in failed["attempts"]] == [old.url()] * 5
    assert moved.status_code == 200, moved.text
    assert (retried.json()["status"], retried.json()["url"]) == ("pending", new.url())
    assert sent.headers["webhook-id"] == failed["id"]
    assert sent_to_old == 5
    assert (after["status"], after["url"]) == ("delivered", new.url())
    assert [attempt["url"] for attempt in after["attempts"]] == [old.url()] * 5 + [new.url()]
    assert [attempt["status_code"] for attempt in after["attempts"]] == [500] * 5 + [204]
    assert by_job["attempts"] == after["attempts"] and by_job["url"] == new.url()


async def test_a_pending_delivery_shows_the_url_its_endpoint_moved_to(app, client, auth):
    job = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
    await wait_for_final(client, auth, job["id"])
    endpoint = await register(client, auth, "http://127.0.0.1:9/old", events=["job.failed"])
    later = datetime.now(UTC) + timedelta(hours=1)
    delivery_id = await insert_delivery(
        app, auth, job["id"], endpoint["url"], later, endpoint_id=endpoint["id"]
    )

    await client.patch(
        f"/v1/webhooks/{endpoint['id']}", json={"url": "http://127.0.0.1:9/new"}, headers=auth
    )
    [pending] = await deliveries_of(client, auth, endpoint["id"])

    assert (pending["id"], pending["status"]) == (delivery_id, "pending")
    assert pending["url"] == "http://127.0.0.1:9/new"
    assert pending["attempts"] == []


async def test_deleting_an_endpoint_keeps_its_deliveries_and_sends_it_nothing_more(client, auth):
    async with WebhookReceiver() as receiver:
        endpoint = await register(client, auth, receiver.url(), events=["job.succeeded"])
        path = f"/v1/webhooks/{endpoint['id']}"
        first = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
        await wait_for_final(client, auth, first["id"])
        [delivered] = await settled_deliveries(client, auth, endpoint["id"], 1)

        deleted = await client.delete(path, headers=auth)
        second = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
        await wait_for_final(client, auth, second["id"])
        await asyncio.sleep(1)
        sent = len(receiver.deliveries)
        answers = [
            await client.get(path, headers=auth),
            await client.patch(path, json={"description": "back"}, headers=auth),
            await client.delete(path, headers=auth),
            await client.get(f"{path}/deliveries", headers=auth),
            await client.post(f"{path}/deliveries/{delivered['id']}/retry", headers=auth),
        ]
        listed = (await client.get("/v1/webhooks", headers=auth)).json()["data"]
        first_path = job_deliveries_path(first["id"])
        [kept] = (await client.get(first_path, headers=auth)).json()["data"]
        retried = await client.post(f"{first_path}/{delivered['id']}/retry", headers=auth)
        of_second = (await client.get(job_deliveries_path(second["id"]), headers=auth)).json()

    assert deleted.status_code == 204
    assert sent == 1
    assert [answer.status_code for answer in answers] == [404] * 5
    assert listed == []
    assert delivered["endpoint_deleted"] is False
    assert kept == delivered | {"endpoint_deleted": True}
    assert retried.status_code == 409
    assert of_second["data"] == []


async def test_deleting_an_endpoint_cancels_its_pending_deliveries(app, client, auth):
    async with WebhookReceiver() as receiver:
        job = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
        await wait_for_final(client, auth, job["id"])
        endpoint = await register(client, auth, receiver.url(), events=["job.failed"])
        later = datetime.now(UTC) + timedelta(hours=1)
        waiting = await insert_delivery(
            app, auth, job["id"], receiver.url(), later, endpoint_id=endpoint["id"]
        )

        await client.delete(f"/v1/webhooks/{endpoint['id']}", headers=auth)
        # Told after the delete, as a job event racing it would be.
        racing = await insert_delivery(
            app, auth, job["id"], receiver.url(), endpoint_id=endpoint["id"]
        )
        for delivery_id in (waiting, racing):
            await app.state.webhooks.dispatcher.schedule(delivery_id, attempts=0, delay_seconds=0)
        path = job_deliveries_path(job["id"])
        records = await settled_list(client, auth, path, 2)
        await asyncio.sleep(0.5)

    assert receiver.deliveries == []
    assert {record["id"] for record in records} == {waiting, racing}
    assert {record["status"] for record in records} == {"canceled"}
    assert all(record["next_attempt_at"] is None for record in records)
    assert all(record["attempts"] == [] for record in records)
    assert all(record["endpoint_deleted"] for record in records)


@embedded_only("hooked")
async def test_delivery_attempts_are_counted_by_outcome(client, auth):
    def attempts(scrape: str, outcome: str) -> float:
        return metric_value(scrape, "darkroom_webhook_delivery_attempts_total", outcome=outcome)

    before = (await client.get("/metrics")).text
    scrapes: list[str] = []

    async def delivered_counted() -> bool:
        scrapes.append((await client.get("/metrics")).text)
        return attempts(scrapes[-1], "delivered") > attempts(before, "delivered")

    async with WebhookReceiver(statuses=[500]) as receiver:
        await register(client, auth, receiver.url(), events=["job.succeeded"])
        job = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
        await wait_for_final(client, auth, job["id"])
        await receiver.wait_for(2)
        # An attempt is counted once it is recorded, just after the receiver answered.
        await wait_until(delivered_counted, seconds=30)

    # At least: retries left over from earlier tests on the module's app may land meanwhile.
    assert attempts(scrapes[-1], "pending") >= attempts(before, "pending") + 1
    assert attempts(scrapes[-1], "delivered") >= attempts(before, "delivered") + 1


@embedded_only("hooked")
async def test_each_delivery_attempt_is_logged_with_its_job(client, auth):
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("app.webhooks.delivery")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)

    def logged() -> list[dict]:
        records = [json.loads(line) for line in lines.getvalue().splitlines()]
        return [record for record in records if record.get("event") == "job.succeeded"]

    try:
        async with WebhookReceiver() as receiver:
            await register(client, auth, receiver.url(), events=["job.succeeded"])
            job = (await client.post("/v1/generate", json=BRIEF, headers=auth)).json()
            await wait_for_final(client, auth, job["id"])
            await receiver.wait_for(1)
            await wait_until(lambda: asyncio.sleep(0, bool(logged())), seconds=30)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)

    [line] = logged()
    assert line["message"].startswith("webhook job.succeeded (")
    assert ": 204 in " in line["message"]
    assert line["delivery_status"] == "delivered"
    assert line["job_id"] == job["id"]


def test_the_webhook_url_pattern_and_its_validator_take_the_same_shapes():
    shapes = {
        "https://example.com/hook": True,
        "https://xn--bcher-kva.example/hook": True,
        "https://bücher.example/hook": False,
        "http://10.0.0.7:8080/hook?x=1": True,
        "https://user:secret@example.com/hook": False,
        "https://[::1]/hook": False,
        "https://my_host.example.com/hook": False,
        "https://1.2.3.999/hook": False,
    }

    def validator_takes(url: str) -> bool:
        try:
            check_webhook_url(url)
        except ValueError:
            return False
        return True

    assert {url: validator_takes(url) for url in shapes} == shapes
    pattern = re.compile(WEBHOOK_URL_PATTERN)
    # The one shape the pattern cannot tell apart: an IPv4 address out of range.
    assert {url: bool(pattern.match(url)) for url in shapes} == shapes | {
        "https://1.2.3.999/hook": True
    }
