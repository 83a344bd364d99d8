"""Asset storage in an S3-compatible bucket (a real moto server the run starts), on Postgres,
Redis and a worker process that share nothing else: uploads, job outputs, downloads with
ETag, signed URLs and presigned redirects, exports, `darkroom gc`, the standard `AWS_*`
variables, and a store that does not answer. Here the bytes are also read straight from the
bucket, which also checks that the Postgres half of the HTTP suite (tests/conftest.py) keeps
its uploads and its session worker's outputs in the bucket, not on a local disk."""

import asyncio
import hashlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from app.cli import collect_garbage, migrate
from app.config import Settings
from app.models import Asset
from app.storage import ObjectStorage, content_key
from tests.conftest import S3_BUCKET
from tests.factories import image_bytes
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.support import (
    RUN_ID,
    bucket_settings,
    free_port,
    fresh_database,
    postgres_settings,
    serving,
    start_worker,
    stop_worker,
    wait_for_final,
)

WAIT = {"Prefer": "wait=30"}


@pytest.fixture(scope="module")
async def s3_settings(s3_endpoint: str, tmp_path_factory) -> AsyncIterator[Settings]:
    """Postgres + Redis settings whose assets live in the bucket, under a prefix of this run,
    with a database and queue of their own so that only the S3 worker runs their jobs (the
    session worker's sweeper would take stranded ones to another prefix). No data dir is
    shared: each process gets its own."""
    async with fresh_database("s3") as url:
        settings = postgres_settings(
            url,
            tmp_path_factory.mktemp("s3-api"),
            queue_name=f"darkroom:test:{RUN_ID}:s3",
            url_allow="127.0.0.1",
            **bucket_settings(s3_endpoint, S3_BUCKET, RUN_ID),
        )
        await asyncio.to_thread(migrate, settings)
        yield settings


@pytest.fixture(scope="module")
def s3_worker(s3_settings: Settings, tmp_path_factory) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process on the S3 settings, in a data dir of its own."""
    directory = tmp_path_factory.mktemp("s3-worker")
    settings = s3_settings.model_copy(update={"data_dir": directory})
    process = start_worker(settings, directory / "worker.log")
    yield process
    stop_worker(process)


@pytest.fixture
async def s3_app(s3_settings: Settings, s3_worker) -> AsyncIterator[tuple]:
    async with serving(s3_settings) as served:
        yield served


async def fetch(url: str) -> httpx.Response:
    """A plain GET, as a browser or CDN would send it."""
    async with httpx.AsyncClient() as client:
        return await client.get(url)


async def bucket_object(settings: Settings, key: str) -> httpx.Response:
    """The object under `key` in the settings' bucket and prefix, read straight from the S3
    server (the bucket is private, so by a presigned URL)."""
    url = await ObjectStorage(settings).presigned_url(key, 60)
    assert url is not None
    return await fetch(url)


async def upload(client: httpx.AsyncClient, auth: dict, data: bytes) -> dict:
    response = await client.post("/v1/assets", files={"file": ("in", data)}, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def test_uploads_and_job_outputs_live_in_the_bucket_and_download_with_etag(
    s3_app, s3_settings
):
    _, client, auth = s3_app
    data = image_bytes(40, 30)
    asset = await upload(client, auth, data)
    key = content_key(hashlib.sha256(data).hexdigest(), "png")
    stored = await bucket_object(s3_settings, key)
    assert stored.status_code == 200 and stored.content == data
    assert stored.headers["content-type"] == "image/png"

    response = await client.post(
        "/v1/generate", json={"prompt": "a lighthouse at dusk", "n": 2}, headers=auth | WAIT
    )
    job = response.json()
    assert job["status"] == "succeeded", job
    for output in job["outputs"]:
        download = await client.get(output["url"], headers=auth)
        assert download.status_code == 200
        digest = hashlib.sha256(download.content).hexdigest()
        assert download.headers["ETag"] == f'"{digest}"'
        assert download.headers["Cache-Control"] == "private, max-age=31536000, immutable"
        in_bucket = await bucket_object(s3_settings, content_key(digest, "png"))
        assert in_bucket.content == download.content
        revalidated = await client.get(
            output["url"], headers=auth | {"If-None-Match": download.headers["ETag"]}
        )
        assert revalidated.status_code == 304 and revalidated.content == b""

    minted = await client.post(f"/v1/assets/{asset['id']}/url", headers=auth)
    signed = await client.get(minted.json()["url"])
    assert signed.status_code == 200 and signed.content == data


async def test_a_download_redirects_to_a_presigned_url_when_the_deployment_asks(
    s3_settings, s3_worker
):
    settings = s3_settings.model_copy(update={"storage_redirect_seconds": 60})
    async with serving(settings) as (_, client, auth):
        data = image_bytes(24, 24, "WEBP")
        asset = await upload(client, auth, data)

        redirect = await client.get(asset["url"], headers=auth)
        minted = await client.post(f"/v1/assets/{asset['id']}/url", headers=auth)
        signed = await client.get(minted.json()["url"])
        unchanged = await client.get(
            asset["url"], headers=auth | {"If-None-Match": f'"{asset["content_hash"]}"'}
        )

    assert redirect.status_code == 307 and redirect.headers["Cache-Control"] == "no-store"
    assert "X-Amz-Signature=" in redirect.headers["Location"]
    presigned = await fetch(redirect.headers["Location"])
    assert presigned.status_code == 200 and presigned.content == data
    assert presigned.headers["content-type"] == "image/webp"
    assert signed.status_code == 307
    assert (await fetch(signed.headers["Location"])).content == data
    assert unchanged.status_code == 304


async def test_readiness_checks_the_bucket(s3_app):
    _, client, _ = s3_app

    ready = await client.get("/readyz")

    assert ready.status_code == 200
    assert ready.json()["checks"]["storage"] == "ok"


async def test_edit_and_export_jobs_read_their_source_from_the_bucket(s3_app):
    _, client, auth = s3_app
    source = await upload(client, auth, image_bytes(120, 80))

    edited = await client.post(
        "/v1/edit",
        json={"image": {"asset_id": source["id"]}, "prompt": "warmer"},
        headers=auth | WAIT,
    )
    assert edited.json()["status"] == "succeeded", edited.json()
    assert edited.json()["outputs"][0]["width"] == 120
    response = await client.post(
        "/v1/export",
        json={
            "asset_id": source["id"],
            "targets": [{"width": 60, "height": 60}, {"width": 40, "height": 20}],
            "format": "png",
            "bundle": True,
        },
        headers=auth | WAIT,
    )

    job = response.json()
    assert job["status"] == "succeeded", job
    *files, bundle = job["outputs"]
    assert bundle["format"] == "zip" and len(files) == 2
    download = await client.get(bundle["url"], headers=auth)
    assert download.status_code == 200 and download.content.startswith(b"PK")
    assert download.headers["Content-Disposition"].startswith("attachment;")


async def test_gc_deletes_unreferenced_objects_and_keeps_referenced_ones(s3_app, s3_settings):
    _, client, auth = s3_app
    kept = image_bytes(33, 21)
    await upload(client, auth, kept)
    orphan = f"{uuid.uuid4().hex}.png"
    await ObjectStorage(s3_settings).put(orphan, b"refused after it was written")

    await asyncio.to_thread(collect_garbage, s3_settings, 3600)
    assert (await bucket_object(s3_settings, orphan)).status_code == 200
    await asyncio.to_thread(collect_garbage, s3_settings, 0)

    assert (await bucket_object(s3_settings, orphan)).status_code == 404
    kept_key = content_key(hashlib.sha256(kept).hexdigest(), "png")
    assert (await bucket_object(s3_settings, kept_key)).content == kept


async def test_the_standard_aws_variables_reach_the_store(s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-environment")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-environment")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    storage = ObjectStorage(Settings(storage_url=f"s3://{S3_BUCKET}/{RUN_ID}-environment"))

    await storage.put("ab/abc.png", b"bytes", "image/png")

    assert await storage.get("ab/abc.png") == b"bytes"
    url = await storage.presigned_url("ab/abc.png", 30)
    assert url is not None and url.startswith(s3_endpoint) and "eu-west-1" in url


async def test_webhook_links_download_from_the_bucket(s3_app):
    _, client, auth = s3_app
    async with WebhookReceiver() as receiver:
        body = {
            "prompt": "a paper boat",
            "webhook_url": receiver.url(),
            "webhook_events": ["job.succeeded"],
        }
        job = (await client.post("/v1/generate", json=body, headers=auth | WAIT)).json()
        [delivery] = await receiver.wait_for(1)

    [output] = json.loads(delivery.raw_body)["data"]["outputs"]
    linked = await client.get(output["url"])
    assert linked.status_code == 200
    assert hashlib.sha256(linked.content).hexdigest() == linked.headers["ETag"].strip('"')
    assert output["asset_id"] == job["outputs"][0]["asset_id"]


def unreachable(settings: Settings) -> Settings:
    """The same deployment with its store at a port nothing listens on."""
    return settings.model_copy(
        update={
            "storage_endpoint": f"http://127.0.0.1:{free_port()}",
            "storage_timeout_seconds": 2,
        }
    )


async def test_reads_from_an_unreachable_store_are_a_503_problem(s3_app, s3_settings):
    _, client, auth = s3_app
    asset = await upload(client, auth, image_bytes(20, 20))

    async with serving(unreachable(s3_settings)) as (_, broken, _):
        response = await broken.get(asset["url"], headers=auth)
        head = await broken.head(asset["url"], headers=auth)

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/service-unavailable") and "asset store" in problem["detail"]
    assert head.status_code == 200


async def test_writes_to_an_unreachable_store_fail_and_reference_nothing(tmp_path: Path, caplog):
    """The embedded deployment runs the same task body in-process, so a job there meets the
    unreachable store without a worker of its own."""
    settings = Settings(
        data_dir=tmp_path,
        storage_url=f"s3://{S3_BUCKET}/unreachable",
        storage_endpoint=f"http://127.0.0.1:{free_port()}",
        storage_access_key_id="test-key-id",
        storage_secret_access_key="test-secret",
        storage_timeout_seconds=2,
    )
    async with serving(settings) as (app, client, auth):
        refused = await client.post(
            "/v1/assets", files={"file": ("in", image_bytes(20, 20))}, headers=auth
        )
        submitted = await client.post("/v1/generate", json={"prompt": "a kite"}, headers=auth)
        job, _ = await wait_for_final(client, auth, submitted.json()["id"])
        async with app.state.sessionmaker() as session:
            stored = await session.scalar(select(func.count()).select_from(Asset))

    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert job["status"] == "failed" and job["outputs"] == []
    assert job["error"]["status"] == 503 and "asset store" in job["error"]["detail"]
    assert stored == 0
    # Each write was tried again before it failed (the count is the client's own report).
    assert "after 2 retries" in caplog.text


@pytest.mark.parametrize("app", ["postgres"], indirect=True)
async def test_the_postgres_half_of_the_suite_keeps_its_assets_in_the_bucket(
    client, auth, deployment_settings
):
    data = image_bytes(26, 19)
    asset = await upload(client, auth, data)
    body = {"prompt": "a red kite over dunes", "size": "64x64"}
    job = (await client.post("/v1/generate", json=body, headers=auth | WAIT)).json()
    assert job["status"] == "succeeded", job
    output = await client.get(job["outputs"][0]["url"], headers=auth)
    assert output.status_code == 200

    bucket = ObjectStorage(deployment_settings)
    keys = [
        content_key(asset["content_hash"], "png"),
        content_key(hashlib.sha256(output.content).hexdigest(), "png"),
    ]
    assert [await bucket.get(key) for key in keys] == [data, output.content]
    assert not [key for key in keys if (deployment_settings.asset_dir / key).exists()]
