"""Idempotency-Key on creating POSTs (uploads and job routes): the first response replayed for
24 h, 422 for another request under the same key, 409 while the first is in flight, per tenant,
and a key released again when its request failed."""

import asyncio
import io
import json
import os
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
from PIL import Image
from sqlalchemy import delete, select, update

from app.config import Settings
from app.ids import new_id
from app.models import IdempotencyRecord, Job, utcnow
from tests.factories import image_bytes
from tests.support import embedded_only, serving, tenant_of, wait_for_final


def keyed(auth: dict, key: str) -> dict:
    return auth | {"Idempotency-Key": key}


async def upload(client: httpx.AsyncClient, headers: dict, data: bytes | None = None):
    files = {"file": ("photo.png", data or image_bytes(), "image/png")}
    return await client.post("/v1/assets", files=files, headers=headers)


async def generate(client: httpx.AsyncClient, headers: dict, **body):
    return await client.post("/v1/generate", json={"prompt": "a kite"} | body, headers=headers)


async def job_ids(app, auth: dict) -> list[str]:
    """The ids of the tenant's jobs, read from the database."""
    tenant_id = await tenant_of(app, auth)
    async with app.state.sessionmaker() as session:
        return list(await session.scalars(select(Job.id).where(Job.tenant_id == tenant_id)))


def noise_png(side: int) -> bytes:
    """A PNG of random pixels: it does not compress, so its size is about side * side * 3."""
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


class HeldBody:
    """A request body that sends its first bytes, then waits to be let go: the request it
    belongs to is in flight (its key claimed) from the moment `reading` is set."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.reading = asyncio.Event()
        self.released = asyncio.Event()

    async def chunks(self) -> AsyncIterator[bytes]:
        self.reading.set()
        yield self.body[:64]
        await self.released.wait()
        yield self.body[64:]


async def test_upload_retry_replays_the_first_response(client, auth):
    first = await upload(client, keyed(auth, "upload-1"))
    # httpx picks a new multipart boundary for each request: the retry is not byte-identical.
    again = await upload(client, keyed(auth, "upload-1"))

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers


async def test_generate_retry_replays_the_first_response_not_the_current_state(app, client, auth):
    first = await generate(client, keyed(auth, "gen-1"), seed=5)
    await wait_for_final(client, auth, first.json()["id"])

    again = await generate(client, keyed(auth, "gen-1"), seed=5)

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await job_ids(app, auth) == [first.json()["id"]]


async def test_same_key_with_another_request_is_422(app, client, auth):
    first = await upload(client, keyed(auth, "k"), image_bytes(64, 48))

    other_image = await upload(client, keyed(auth, "k"), image_bytes(80, 60))
    other_route = await generate(client, keyed(auth, "k"))

    assert first.status_code == 201
    for response in (other_image, other_route):
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/idempotency-key-reused")
    assert await job_ids(app, auth) == []


async def test_duplicate_upload_while_the_first_is_in_flight_is_409(client, auth):
    request = client.build_request(
        "POST", "/v1/assets", files={"file": ("photo.png", image_bytes(), "image/png")}
    )
    held = HeldBody(request.read())
    headers = keyed(auth, "slow-upload") | {"Content-Type": request.headers["Content-Type"]}
    first = asyncio.create_task(client.post("/v1/assets", content=held.chunks(), headers=headers))
    await asyncio.wait_for(held.reading.wait(), 10)

    duplicate = await upload(client, keyed(auth, "slow-upload"))
    held.released.set()
    first_response = await first
    retry = await upload(client, keyed(auth, "slow-upload"))

    assert duplicate.status_code == 409
    assert duplicate.json()["type"].endswith("/conflict")
    assert first_response.status_code == 201, first_response.text
    assert retry.status_code == 201
    assert retry.json() == first_response.json()


async def test_duplicate_generate_while_the_first_is_in_flight_is_409(app, client, auth):
    body = json.dumps({"prompt": "a slow kite", "seed": 9}).encode()
    held = HeldBody(body)
    headers = keyed(auth, "slow-gen") | {"Content-Type": "application/json"}
    first = asyncio.create_task(client.post("/v1/generate", content=held.chunks(), headers=headers))
    await asyncio.wait_for(held.reading.wait(), 10)

    duplicate = await client.post("/v1/generate", content=body, headers=headers)
    held.released.set()
    first_response = await first
    retry = await client.post("/v1/generate", content=body, headers=headers)

    assert duplicate.status_code == 409
    assert first_response.status_code == 202, first_response.text
    assert retry.json() == first_response.json()
    assert await job_ids(app, auth) == [first_response.json()["id"]]


async def test_keys_are_scoped_per_tenant(client, auth, other_auth):
    mine = await upload(client, keyed(auth, "shared"))
    theirs = await upload(client, keyed(other_auth, "shared"))

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert "Idempotent-Replayed" not in theirs.headers


async def test_client_errors_are_stored_and_replayed(client, auth):
    not_an_image = b"GIF89a not really"

    first = await upload(client, keyed(auth, "bad"), not_an_image)
    again = await upload(client, keyed(auth, "bad"), not_an_image)

    assert first.status_code == again.status_code == 415
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_a_key_expires_after_24_hours(app, client, auth):
    first = await upload(client, keyed(auth, "old"), image_bytes(64, 48))
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == "old")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()

    reused = await upload(client, keyed(auth, "old"), image_bytes(80, 60))

    assert first.status_code == reused.status_code == 201
    assert reused.json()["id"] != first.json()["id"]
    assert "Idempotent-Replayed" not in reused.headers


async def age_key(app, key: str, by: timedelta) -> None:
    """Move the key's record and the job it made `by` into the past, as if that time passed."""
    async with app.state.sessionmaker() as session:
        for record in await session.scalars(
            select(IdempotencyRecord).where(IdempotencyRecord.key == key)
        ):
            record.created_at -= by
            record.expires_at -= by
        for job in await session.scalars(select(Job).where(Job.idempotency_key == key)):
            job.created_at -= by
        await session.commit()


async def test_after_24_hours_a_job_key_may_name_another_request(app, client, auth):
    first = await generate(client, keyed(auth, "k1"), seed=1)
    await age_key(app, "k1", timedelta(hours=24, seconds=1))

    other = await generate(client, keyed(auth, "k1"), seed=2)

    assert first.status_code == other.status_code == 202
    assert other.json()["id"] != first.json()["id"]
    assert other.json()["request"]["seed"] == 2
    assert "Idempotent-Replayed" not in other.headers
    assert len(await job_ids(app, auth)) == 2


async def test_after_24_hours_the_same_request_makes_a_new_job(app, client, auth):
    first = await generate(client, keyed(auth, "k1"), seed=1)
    await age_key(app, "k1", timedelta(hours=24, seconds=1))

    again = await generate(client, keyed(auth, "k1"), seed=1)

    assert again.status_code == 202
    assert again.json()["id"] != first.json()["id"]
    assert "Idempotent-Replayed" not in again.headers
    replayed = await generate(client, keyed(auth, "k1"), seed=1)
    assert replayed.json()["id"] == again.json()["id"]
    assert replayed.headers["Idempotent-Replayed"] == "true"


async def test_within_24_hours_the_job_key_still_finds_the_first_job(app, client, auth):
    # The job-level backstop: the response record is gone (as when the response failed after
    # the commit), but the job the key made is still found, not made twice.
    first = await generate(client, keyed(auth, "k1"), seed=1)
    await age_key(app, "k1", timedelta(hours=23))
    async with app.state.sessionmaker() as session:
        await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.key == "k1"))
        await session.commit()

    again = await generate(client, keyed(auth, "k1"), seed=1)

    assert again.json()["id"] == first.json()["id"]
    assert len(await job_ids(app, auth)) == 1


async def test_a_claim_abandoned_by_a_dead_request_is_taken_over(app, client, auth):
    async with app.state.sessionmaker() as session:
        session.add(
            IdempotencyRecord(
                id=new_id("idem"),
                tenant_id=await tenant_of(app, auth),
                key="orphan",
                status="in_flight",
                created_at=utcnow() - timedelta(minutes=11),
                expires_at=utcnow() + timedelta(hours=23),
            )
        )
        await session.commit()

    response = await upload(client, keyed(auth, "orphan"))

    assert response.status_code == 201


async def test_a_request_that_failed_releases_its_key(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", max_body_bytes=4096)
    big = noise_png(64)
    assert len(big) > 4096
    async with serving(settings) as (_, client, auth):
        request = client.build_request(
            "POST", "/v1/assets", files={"file": ("big.png", big, "image/png")}
        )
        headers = keyed(auth, "too-big") | {"Content-Type": request.headers["Content-Type"]}
        held = HeldBody(request.read())
        held.released.set()

        # Streamed without a Content-Length, so the limit trips while the body is read.
        too_large = await client.post("/v1/assets", content=held.chunks(), headers=headers)
        retry = await upload(client, keyed(auth, "too-big"), image_bytes())

    assert too_large.status_code == 413
    assert too_large.headers["content-type"] == "application/problem+json"
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers


@embedded_only()
async def test_an_over_long_key_is_422(client, auth):
    response = await upload(client, keyed(auth, "k" * 256))

    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]
