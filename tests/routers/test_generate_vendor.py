"""POST /v1/generate with a vendor model: the job flow maps the requested aspect onto the
model's native size, crops to the exact request and says so, records cost from the vendor's
usage, records vendor failures as problems, and never lets the vendor key out."""

import io
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import c2pa
import httpx
import pytest
from fastapi import FastAPI
from PIL import Image
from sqlalchemy import inspect, select

from app.config import Settings
from app.imaging.credentials import Claim, development_credentials, sign
from app.models import Asset, Job
from app.providers.openai import TOKEN_PRICES
from tests.fakes.openai_images import (
    API_KEY,
    FakeOpenAIImages,
    error_reply,
    image_reply,
    moderation_blocked,
    render,
    slow,
)
from tests.support import (
    embedded_only,
    postgres_settings,
    serving,
    tenant_of,
    wait_for_final,
    wait_for_status,
)

WAIT = {"Prefer": "wait=30"}


@dataclass
class Vendor:
    """The app configured for a fake OpenAI, a client and a tenant, and the fake."""

    app: FastAPI
    client: httpx.AsyncClient
    auth: dict[str, str]
    server: FakeOpenAIImages


def vendor_settings(
    backend: str, tmp_path: Path, postgres_url: str, bucket: dict[str, object], **values: object
) -> Settings:
    """Settings on the embedded default, or on Postgres and the bucket with the in-process
    runner (so the test's fake and its logs are in this process)."""
    values = {"provider_max_retries": 1} | values
    if backend == "postgres":
        return postgres_settings(postgres_url, tmp_path, redis_url=None, **bucket, **values)
    return Settings(data_dir=tmp_path / "var", **values)


@pytest.fixture(params=["embedded", "postgres"])
async def vendor(request, tmp_path, postgres_url, bucket) -> AsyncIterator[Vendor]:
    """The app with an OpenAI key and base URL pointing at a fake, on both backends."""
    async with FakeOpenAIImages() as server:
        settings = vendor_settings(
            request.param,
            tmp_path,
            postgres_url,
            bucket,
            openai_api_key=API_KEY,
            openai_base_url=server.base_url,
        )
        async with serving(settings) as (app, client, auth):
            yield Vendor(app, client, auth, server)


async def generate(vendor: Vendor, **body: object) -> dict:
    """Submit a generate job and wait for it to finish."""
    response = await vendor.client.post("/v1/generate", json=body, headers=vendor.auth | WAIT)
    assert response.status_code in (200, 202), response.text
    job, _ = await wait_for_final(vendor.client, vendor.auth, response.json()["id"])
    return job


async def test_vendor_output_has_the_exact_requested_aspect_and_says_how(vendor: Vendor) -> None:
    job = await generate(
        vendor, prompt="a teal kettle", model="openai/gpt-image-2", aspect_ratio="16:9"
    )

    assert job["status"] == "succeeded", job
    assert job["cost_usd"] is None, "gpt-image-2 has no verified price: cost is unknown, not 0"
    assert [request.body["size"] for request in vendor.server.received] == ["1536x1024"]
    assert vendor.server.received[0].body["model"] == "gpt-image-2"
    output = job["outputs"][0]
    assert output["model"] == "openai/gpt-image-2"
    assert output["details"]["generated_size"] == "1536x1024"
    assert output["details"]["fit"] == "cropped"
    assert output["details"]["usage"]["output_tokens"] > 0
    content = await vendor.client.get(output["url"], headers=vendor.auth)
    with Image.open(io.BytesIO(content.content)) as image:
        assert image.size == (output["width"], output["height"]) == (1360, 765)


async def test_a_native_size_is_used_as_is(vendor: Vendor) -> None:
    job = await generate(
        vendor, prompt="a teal kettle", model="openai/gpt-image-2", size="1024x1536"
    )

    output = job["outputs"][0]
    assert (output["width"], output["height"]) == (1024, 1536)
    assert output["details"]["fit"] == "exact"


async def stored_bytes(vendor: Vendor, output: dict) -> bytes:
    """The file stored for an output."""
    response = await vendor.client.get(output["url"], headers=vendor.auth)
    assert response.status_code == 200, response.text
    return response.content


async def test_an_image_of_the_requested_size_and_format_is_stored_as_the_vendor_sent_it(
    vendor: Vendor,
) -> None:
    job = await generate(
        vendor, prompt="a teal kettle", model="openai/gpt-image-2", size="1024x1024"
    )

    assert job["status"] == "succeeded", job
    assert vendor.server.received[0].body["output_format"] == "png"
    assert "output_compression" not in vendor.server.received[0].body
    output = job["outputs"][0]
    assert output["details"]["passed_through"] is True
    assert output["details"]["fit"] == "exact"
    assert await stored_bytes(vendor, output) == vendor.server.sent[0]


async def test_an_image_that_needs_fitting_is_re_encoded_and_says_so(vendor: Vendor) -> None:
    job = await generate(
        vendor, prompt="a teal kettle", model="openai/gpt-image-2", size="1360x765"
    )

    assert job["status"] == "succeeded", job
    output = job["outputs"][0]
    assert output["details"]["generated_size"] == "1536x1024"
    assert output["details"]["passed_through"] is False
    stored = await stored_bytes(vendor, output)
    assert stored != vendor.server.sent[0]
    with Image.open(io.BytesIO(stored)) as image:
        assert (image.format, image.size) == ("PNG", (1360, 765))


async def test_openai_is_asked_for_the_requested_format_and_its_file_is_kept(
    vendor: Vendor,
) -> None:
    job = await generate(
        vendor,
        prompt="a teal kettle",
        model="openai/gpt-image-2",
        size="1024x1024",
        output_format="webp",
    )

    assert job["status"] == "succeeded", job
    body = vendor.server.received[0].body
    assert (body["output_format"], body["output_compression"]) == ("webp", 90)
    output = job["outputs"][0]
    assert output["format"] == "webp"
    assert output["details"]["passed_through"] is True
    sent = vendor.server.sent[0]
    assert sent.startswith(b"RIFF") and sent[8:12] == b"WEBP"
    assert await stored_bytes(vendor, output) == sent


async def test_vendor_refusal_fails_the_job_with_an_actionable_problem(vendor: Vendor) -> None:
    vendor.server.script(moderation_blocked())

    job = await generate(vendor, prompt="something refused", model="openai/gpt-image-2")

    assert job["status"] == "failed"
    assert job["error"]["type"].endswith("/moderation-blocked")
    assert job["error"]["status"] == 422
    assert job["outputs"] == []


@embedded_only()
async def test_vendor_without_a_key_is_listed_unavailable_and_refused(client, auth):
    models = {m["id"]: m for m in (await client.get("/v1/models", headers=auth)).json()["data"]}
    refused = await client.post(
        "/v1/generate", json={"prompt": "x", "model": "openai/gpt-image-2"}, headers=auth
    )

    assert models["openai/gpt-image-2"]["available"] is False
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/model-unavailable")


async def test_the_job_list_totals_cost_over_every_page(vendor: Vendor) -> None:
    priced = [
        await generate(vendor, prompt="a mug", model="openai/gpt-image-1-mini", n=2),
        await generate(vendor, prompt="a lamp on a desk", model="openai/gpt-image-1-mini"),
    ]
    await generate(vendor, prompt="a chair", model="openai/gpt-image-2")
    vendor.server.script(moderation_blocked())
    await generate(vendor, prompt="refused", model="openai/gpt-image-1-mini")

    page = (await vendor.client.get("/v1/jobs?limit=1", headers=vendor.auth)).json()
    succeeded = (
        await vendor.client.get("/v1/jobs?status=succeeded&limit=1", headers=vendor.auth)
    ).json()
    failed = (await vendor.client.get("/v1/jobs?status=failed", headers=vendor.auth)).json()

    costs = [job["cost_usd"] for job in priced]
    assert all(cost > 0 for cost in costs)
    assert "gpt-image-1-mini" in TOKEN_PRICES
    assert len(page["data"]) == 1 and page["has_more"]
    assert page["total_cost_usd"] == pytest.approx(sum(costs))
    assert page["unpriced_jobs"] == 1  # the gpt-image-2 job: the total is a lower bound
    assert succeeded["total_cost_usd"] == pytest.approx(sum(costs))
    assert (failed["total_cost_usd"], failed["unpriced_jobs"]) == (0.0, 0)
    assert priced[0]["cost_usd"] == pytest.approx(
        sum(output["cost_usd"] for output in priced[0]["outputs"])
    )


CANARY_KEY = "sk-live-CANARY-DARKROOM-5b7e0c1d9a2f4e68"


@pytest.mark.parametrize("backend", ["embedded", "postgres"])
async def test_the_vendor_key_never_reaches_errors_logs_or_the_database(
    backend: str, tmp_path, postgres_url, bucket, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeOpenAIImages(api_key=CANARY_KEY) as server:
        settings = vendor_settings(
            backend,
            tmp_path,
            postgres_url,
            bucket,
            openai_api_key=CANARY_KEY,
            openai_base_url=server.base_url,
        )
        async with serving(settings) as (app, client, auth):
            vendor = Vendor(app, client, auth, server)
            echo = f"Upstream trouble for key {CANARY_KEY}; try later."
            server.script(error_reply(500, echo, "server_error"), error_reply(503, echo))
            overloaded = await generate(vendor, prompt="a lamp", model="openai/gpt-image-2")
            server.script(error_reply(401, f"Incorrect API key provided: {CANARY_KEY}."))
            denied = await generate(vendor, prompt="a lamp", model="openai/gpt-image-2")
            server.script(
                error_reply(400, f"Key {CANARY_KEY} may not use this size.", param="size")
            )
            invalid = await generate(vendor, prompt="a lamp", model="openai/gpt-image-2")
            rows = await database_rows(app, auth)

    assert overloaded["error"]["type"].endswith("/provider-overloaded")
    assert "[redacted]" in overloaded["error"]["detail"]
    assert denied["error"]["type"].endswith("/provider-auth-failed")
    assert invalid["error"]["type"].endswith("/invalid-for-model")
    assert len(server.received) == 4  # the key was sent every time, and echoed back
    assert all(r.headers["authorization"] == f"Bearer {CANARY_KEY}" for r in server.received)
    secret_parts = [CANARY_KEY, CANARY_KEY[-12:]]
    for text in [json.dumps([overloaded, denied, invalid]), caplog.text, rows]:
        for part in secret_parts:
            assert part not in text
    assert "Upstream trouble" in caplog.text  # the logs did see the (redacted) message


async def database_rows(app: FastAPI, auth: dict[str, str]) -> str:
    """Every column of the tenant's job and asset rows, as text."""
    tenant_id = await tenant_of(app, auth)
    async with app.state.sessionmaker() as session:
        jobs = (await session.scalars(select(Job).where(Job.tenant_id == tenant_id))).all()
        assets = (await session.scalars(select(Asset).where(Asset.tenant_id == tenant_id))).all()
    return json.dumps(
        [
            {column.key: getattr(row, column.key) for column in inspect(row).mapper.column_attrs}
            for row in [*jobs, *assets]
        ],
        default=str,
    )


async def test_a_vendor_timeout_override_applies_to_that_vendor_only(tmp_path) -> None:
    async with FakeOpenAIImages() as server:
        settings = Settings(
            data_dir=tmp_path / "var",
            openai_api_key=API_KEY,
            openai_base_url=server.base_url,
            provider_max_retries=0,
            provider_timeouts="openai=0.3, bfl=600",
        )
        server.script(slow(1.5))
        async with serving(settings) as (_, client, auth):
            response = await client.post(
                "/v1/generate",
                json={"prompt": "a kettle", "model": "openai/gpt-image-2"},
                headers=auth,
            )
            job, _ = await wait_for_final(client, auth, response.json()["id"])

    # Failed at the override's 0.3 s, where the vendor would have answered at 1.5 s (the run's
    # wall time is not asked: on a loaded machine the job alone can take longer than that).
    assert job["status"] == "failed"
    assert job["error"]["type"].endswith("/provider-overloaded")
    assert "within 0.3 s" in job["error"]["detail"]
    assert settings.provider_timeout("bfl") == 600
    assert settings.provider_timeout("google") == settings.provider_timeout_seconds


@pytest.mark.parametrize("value", ["openai", "openai=", "openai=0", "=5", "openai=fast"])
def test_a_malformed_timeout_override_stops_start_up(value: str) -> None:
    with pytest.raises(ValueError, match="vendor=seconds"):
        Settings(provider_timeouts=value)


async def test_a_jobs_outputs_are_one_vendor_call_of_n_images(vendor):
    vendor.server.script(slow(0.5))

    job = await generate(vendor, model="openai/gpt-image-1-mini", prompt="a kite", n=4, seed=7)

    assert job["status"] == "succeeded"
    assert [call.body["n"] for call in vendor.server.received] == [4]
    assert [output["seed"] for output in job["outputs"]] == [7, 8, 9, 10]
    assert len({output["asset_id"] for output in job["outputs"]}) == 4
    assert {output["details"]["images_in_call"] for output in job["outputs"]} == {4}
    # The call's cost is shared between its images, so the job's total is the call's.
    costs = [output["cost_usd"] for output in job["outputs"]]
    assert job["cost_usd"] > 0
    assert job["cost_usd"] == pytest.approx(sum(costs))
    assert costs == [pytest.approx(costs[0])] * 4


@pytest.mark.parametrize("backend", ["embedded", "postgres"])
async def test_outputs_past_the_jobs_bound_are_asked_for_in_further_calls_each_once(
    backend, tmp_path, postgres_url, bucket
):
    async with FakeOpenAIImages() as server:
        settings = vendor_settings(
            backend,
            tmp_path,
            postgres_url,
            bucket,
            openai_api_key=API_KEY,
            openai_base_url=server.base_url,
            job_output_concurrency=3,
        )
        async with serving(settings) as (app, client, auth):
            job = await generate(
                Vendor(app, client, auth, server), model="openai/gpt-image-2", prompt="a kite", n=8
            )

    assert job["status"] == "succeeded"
    assert len({output["asset_id"] for output in job["outputs"]}) == 8
    # At most 3 at once, and each of the 8 asked for once: no image bought twice.
    asked = [call.body["n"] for call in server.received]
    assert sum(asked) == 8
    assert max(asked) <= 3


async def test_pixel_work_of_one_job_does_not_hold_back_anothers_vendor_call(vendor):
    heavy = await vendor.client.post(
        "/v1/generate",
        json={"prompt": "a long one", "size": "4096x4096", "n": 2},
        headers=vendor.auth,
    )
    await wait_for_status(vendor.client, vendor.auth, heavy.json()["id"], {"running"})
    quick = await vendor.client.post(
        "/v1/generate",
        json={"model": "openai/gpt-image-2", "prompt": "a kite"},
        headers=vendor.auth,
    )

    quick_job, _ = await wait_for_final(vendor.client, vendor.auth, quick.json()["id"])
    heavy_job = (
        await vendor.client.get(f"/v1/jobs/{heavy.json()['id']}", headers=vendor.auth)
    ).json()

    assert quick_job["status"] == "succeeded"
    # The vendor job was called and finished while the renders were still running.
    assert heavy_job["status"] == "running"
    assert len(vendor.server.received) == 1


async def test_quality_and_background_reach_openai_as_its_own_levels(vendor: Vendor) -> None:
    job = await generate(
        vendor,
        prompt="a teal kettle",
        model="openai/gpt-image-2.5-flare",
        size="1024x1024",
        quality="high",
        background="transparent",
        output_format="webp",
        output_compression=70,
        moderation="low",
    )

    assert job["status"] == "succeeded", job
    (sent,) = [request.body for request in vendor.server.received]
    assert (sent["quality"], sent["background"]) == ("high", "transparent")
    assert (sent["output_format"], sent["output_compression"]) == ("webp", 70)
    assert sent["moderation"] == "low"
    assert job["request"]["native_quality"] == {"openai/gpt-image-2.5-flare": "high"}
    with Image.open(io.BytesIO(await stored_bytes(vendor, job["outputs"][0]))) as image:
        assert image.mode == "RGBA" and image.getchannel("A").getpixel((0, 0)) == 0


async def test_each_quality_tier_is_sent_as_openais_level(vendor: Vendor) -> None:
    for tier in ("draft", "standard", "auto"):
        await generate(
            vendor, prompt="a kite", model="openai/gpt-image-2", size="1024x1024", quality=tier
        )

    sent = [
        (request.body["quality"], request.body["background"]) for request in vendor.server.received
    ]
    assert sent == [("low", "auto"), ("medium", "auto"), ("auto", "auto")]


async def test_a_transparent_background_on_a_model_without_one_names_those_that_can(
    vendor: Vendor,
) -> None:
    response = await vendor.client.post(
        "/v1/generate",
        json={
            "prompt": "a kite",
            "model": "openai/gpt-image-2",
            "fallback_models": ["local/draft"],
            "background": "transparent",
        },
        headers=vendor.auth,
    )

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == "background"
    assert "openai/gpt-image-2 cannot" in problem["detail"]
    assert "local/draft" in problem["transparent_models"]
    assert "openai/gpt-image-2.5-flare" in problem["transparent_models"]
    assert "openai/gpt-image-2" not in problem["transparent_models"]
    assert vendor.server.received == []
    jobs = await vendor.client.get("/v1/jobs", headers=vendor.auth)
    assert jobs.json()["data"] == []


@pytest.mark.parametrize(
    ("size", "actions"),
    [("1024x1024", ["c2pa.opened"]), ("800x800", ["c2pa.opened", "c2pa.resized"])],
)
async def test_a_vendors_signed_image_is_the_parent_of_the_signed_output(
    vendor: Vendor, tmp_path: Path, size: str, actions: list[str]
) -> None:
    vendor_credentials = development_credentials(tmp_path / "vendor")
    claim = Claim("vendor.png", [{"action": "c2pa.created", "digitalSourceType": "vendor"}])
    signed = sign(render(1024, 1024, "png"), "png", claim, vendor_credentials)
    vendor.server.script(image_reply(signed))

    job = await generate(
        vendor,
        prompt="a teal kettle",
        model="openai/gpt-image-2",
        size=size,
        content_credentials=True,
    )

    assert job["status"] == "succeeded", job
    data = (await vendor.client.get(job["outputs"][0]["url"], headers=vendor.auth)).content
    with c2pa.Reader("image/png", io.BytesIO(data)) as reader:
        store = json.loads(reader.json())
    manifest = store["manifests"][store["active_manifest"]]
    (recorded,) = [
        a["data"]["actions"] for a in manifest["assertions"] if a["label"] == "c2pa.actions.v2"
    ]
    assert [action["action"] for action in recorded] == actions
    (parent,) = manifest["ingredients"]
    assert parent["relationship"] == "parentOf"
    vendor_manifest = store["manifests"][parent["active_manifest"]]
    assert vendor_manifest["title"] == "vendor.png"
