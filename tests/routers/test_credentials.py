"""Content Credentials through the public API: generate, edit and export with
`content_credentials: true` sign their outputs with C2PA manifests that the C2PA library reads
back, validates against the development chain's authority, and finds chained (each step's
source is its parent ingredient, with its own manifest); a job that does not ask signs nothing."""

import io
from pathlib import Path
from typing import Any

import c2pa
import httpx
import pytest
from fastapi import FastAPI
from PIL import ExifTags, Image

from app.imaging.credentials import (
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    DEVELOPMENT_FILE,
    SIGNER_ASSERTION,
    TRAINED_ALGORITHMIC_MEDIA,
    development_trust_anchor,
)
from tests.factories import image_bytes
from tests.support import embedded_only

WAIT = {"Prefer": "wait=60"}
MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "avif": "image/avif",
}


@pytest.fixture
def signer(app: FastAPI, worker_data_dir: Path) -> Path:
    """The data dir whose development chain signs the app's jobs: the suite's worker's, on
    Postgres (it runs them), else the app's own."""
    return worker_data_dir if app.state.settings.redis_url else app.state.settings.data_dir


def reader(signer: Path, data: bytes, image_format: str) -> c2pa.Reader:
    """The C2PA reader of `data`, trusting the development chain's authority alone."""
    anchor = development_trust_anchor(signer).decode()
    context = c2pa.Context.from_dict(
        {"verify": {"verify_trust": True}, "trust": {"trust_anchors": anchor}}
    )
    return c2pa.Reader(MEDIA_TYPES[image_format], io.BytesIO(data), context=context)


def actions_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    (actions,) = [
        assertion["data"]["actions"]
        for assertion in manifest["assertions"]
        if assertion["label"] == "c2pa.actions.v2"
    ]
    return actions


def signer_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    (facts,) = [
        assertion["data"]
        for assertion in manifest["assertions"]
        if assertion["label"] == SIGNER_ASSERTION
    ]
    return facts


async def finished(client: httpx.AsyncClient, auth: dict, route: str, **body: Any) -> dict:
    response = await client.post(route, json=body, headers=auth | WAIT)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded", job
    return job


async def signed_output(
    signer: Path, client: httpx.AsyncClient, auth: dict, output: dict
) -> tuple[dict[str, Any], str]:
    """The output's active manifest, checked valid and trusted, and its label; the asset says it
    carries credentials."""
    asset = (await client.get(f"/v1/assets/{output['asset_id']}", headers=auth)).json()
    assert asset["content_credentials"] is True
    assert output["details"]["content_credentials"] == "testing"
    data = (await client.get(output["url"], headers=auth)).content
    with reader(signer, data, output["format"]) as manifest_reader:
        assert manifest_reader.get_validation_state() == "Trusted"
        manifest = manifest_reader.get_active_manifest()
        assert manifest is not None
        assert signer_facts(manifest)["for_testing"] is True
        return manifest, manifest["label"]


def parent_of(manifest: dict[str, Any]) -> dict[str, Any]:
    (parent,) = [item for item in manifest["ingredients"] if item["relationship"] == "parentOf"]
    return parent


async def test_generate_edit_and_export_chain_their_signed_manifests(
    app: FastAPI, client: httpx.AsyncClient, auth: dict, signer: Path
) -> None:
    generated = await finished(
        client,
        auth,
        "/v1/generate",
        prompt="a ceramic mug on a walnut desk",
        size="320x240",
        seed=7,
        content_credentials=True,
    )
    created, created_label = await signed_output(signer, client, auth, generated["outputs"][0])
    (action,) = actions_of(created)
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert action["softwareAgent"]["name"] == "local/draft"
    assert not created.get("ingredients")

    edited_job = await finished(
        client,
        auth,
        "/v1/edit",
        image={"asset_id": generated["outputs"][0]["asset_id"]},
        prompt="warm sunset light",
        seed=3,
        content_credentials=True,
    )
    edited, edited_label = await signed_output(signer, client, auth, edited_job["outputs"][0])
    assert [action["action"] for action in actions_of(edited)] == ["c2pa.opened", "c2pa.edited"]
    assert actions_of(edited)[1]["digitalSourceType"] == COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    assert parent_of(edited)["active_manifest"] == created_label

    exported_job = await finished(
        client,
        auth,
        "/v1/export",
        asset_id=edited_job["outputs"][0]["asset_id"],
        targets=[{"width": 160, "height": 160}],
        format="jpeg",
        strip_metadata=True,
        content_credentials=True,
    )
    output = exported_job["outputs"][0]
    exported, _ = await signed_output(signer, client, auth, output)
    assert [action["action"] for action in actions_of(exported)] == [
        "c2pa.opened",
        "c2pa.resized",
        "c2pa.converted",
    ]
    assert parent_of(exported)["active_manifest"] == edited_label
    # The whole chain travels in the exported file: each step's manifest is in its store.
    data = (await client.get(output["url"], headers=auth)).content
    with reader(signer, data, "jpeg") as manifest_reader:
        manifests = manifest_reader.get_validation_results()
        store = manifest_reader.json()
    assert manifests is not None
    assert created_label in store and edited_label in store
    # strip_metadata dropped EXIF, not the manifest.
    assert not Image.open(io.BytesIO(data)).getexif()


async def test_a_job_that_does_not_ask_has_no_manifest(
    app: FastAPI, client: httpx.AsyncClient, auth: dict, signer: Path
) -> None:
    job = await finished(client, auth, "/v1/generate", prompt="a red sneaker", size="256x256")
    output = job["outputs"][0]
    asset = (await client.get(f"/v1/assets/{output['asset_id']}", headers=auth)).json()
    assert asset["content_credentials"] is False
    assert "content_credentials" not in output["details"]
    data = (await client.get(output["url"], headers=auth)).content
    with pytest.raises(c2pa.C2paError):
        c2pa.Reader("image/png", io.BytesIO(data))
    if app.state.settings.redis_url is None:
        # The embedded app has a data dir of its own: no job asked, so no chain was made.
        assert not (app.state.settings.data_dir / DEVELOPMENT_FILE).exists()


@embedded_only()
async def test_an_uploaded_manifest_is_kept_as_the_edits_parent_ingredient(
    app: FastAPI, client: httpx.AsyncClient, auth: dict, signer: Path
) -> None:
    job = await finished(
        client,
        auth,
        "/v1/generate",
        prompt="a lighthouse",
        size="256x256",
        content_credentials=True,
    )
    _, label = await signed_output(signer, client, auth, job["outputs"][0])
    signed = (await client.get(job["outputs"][0]["url"], headers=auth)).content
    uploaded = await client.post("/v1/assets", files={"file": ("in", signed)}, headers=auth)
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["content_credentials"] is True

    edited_job = await finished(
        client,
        auth,
        "/v1/edit",
        image={"asset_id": uploaded.json()["id"]},
        prompt="stormy sky",
        content_credentials=True,
    )
    edited, _ = await signed_output(signer, client, auth, edited_job["outputs"][0])
    assert parent_of(edited)["active_manifest"] == label

    plain = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(plain, "PNG")
    unsigned = await client.post(
        "/v1/assets", files={"file": ("in", plain.getvalue())}, headers=auth
    )
    assert unsigned.json()["content_credentials"] is False


async def test_strip_metadata_drops_exif_and_gps_but_keeps_the_manifest(
    app: FastAPI, client: httpx.AsyncClient, auth: dict, signer: Path
) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 12.5)
    photo = io.BytesIO()
    Image.new("RGB", (400, 300), (90, 140, 60)).save(photo, "JPEG", exif=exif)
    uploaded = await client.post(
        "/v1/assets", files={"file": ("in", photo.getvalue())}, headers=auth
    )
    assert uploaded.json()["content_credentials"] is False

    job = await finished(
        client,
        auth,
        "/v1/export",
        asset_id=uploaded.json()["id"],
        targets=[{"width": 200, "height": 200}],
        format="jpeg",
        strip_metadata=True,
        content_credentials=True,
    )

    manifest, _ = await signed_output(signer, client, auth, job["outputs"][0])
    assert [action["action"] for action in actions_of(manifest)] == [
        "c2pa.opened",
        "c2pa.resized",
    ]
    parent = parent_of(manifest)
    assert parent["title"] == f"{uploaded.json()['id']}.jpg" and "active_manifest" not in parent
    data = (await client.get(job["outputs"][0]["url"], headers=auth)).content
    assert not Image.open(io.BytesIO(data)).getexif()


@embedded_only()
async def test_an_avif_export_is_signed_like_the_other_formats(
    app: FastAPI, client: httpx.AsyncClient, auth: dict, signer: Path
) -> None:
    uploaded = await client.post(
        "/v1/assets", files={"file": ("in", image_bytes(320, 240))}, headers=auth
    )

    job = await finished(
        client,
        auth,
        "/v1/export",
        asset_id=uploaded.json()["id"],
        targets=[{"width": 160, "height": 120}],
        format="avif",
        content_credentials=True,
    )

    output = job["outputs"][0]
    assert output["format"] == "avif"
    manifest, _ = await signed_output(signer, client, auth, output)
    assert [action["action"] for action in actions_of(manifest)] == [
        "c2pa.opened",
        "c2pa.resized",
        "c2pa.converted",
    ]
    data = (await client.get(output["url"], headers=auth)).content
    assert Image.open(io.BytesIO(data)).size == (160, 120)
