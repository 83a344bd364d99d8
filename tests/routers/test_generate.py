"""POST /v1/generate, end to end on both backends; refusals, the wait cap and seeded
rendering, which do not depend on the backend, on the embedded one."""

import asyncio
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from app.config import Settings
from app.providers.draft_renderer import render_draft
from tests.support import embedded_only, serving, wait_for_final


async def generate(client: httpx.AsyncClient, auth: dict, headers: dict | None = None, **body):
    return await client.post("/v1/generate", json=body, headers=auth | (headers or {}))


async def test_generate_poll_download_gives_exact_aspect(client, auth):
    response = await generate(
        client, auth, prompt="a red bicycle by a canal", aspect_ratio="16:9", n=2
    )

    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["object"] == "job" and job["status"] in {"queued", "running", "succeeded"}
    final, seen = await wait_for_final(client, auth, job["id"])
    assert final["status"] == "succeeded", final
    assert seen[-1] == "succeeded" and set(seen) <= {"queued", "running", "succeeded"}
    assert len(final["outputs"]) == 2
    for output in final["outputs"]:
        content = await client.get(output["url"], headers=auth)
        assert content.status_code == 200
        assert content.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(content.content))
        assert image.format == "PNG"
        assert image.size == (output["width"], output["height"])
        assert image.width * 9 == image.height * 16
    seeds = [output["seed"] for output in final["outputs"]]
    assert seeds[1] == seeds[0] + 1


async def test_size_gives_exact_pixels_and_format(client, auth):
    response = await generate(
        client, auth, {"Prefer": "wait=30"}, prompt="banner", size="1200x630", output_format="webp"
    )

    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    content = await client.get(output["url"], headers=auth)
    assert content.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(content.content)).size == (1200, 630)


async def test_prefer_wait_answers_200_with_finished_job(client, auth):
    response = await generate(client, auth, {"Prefer": "wait=30"}, prompt="a green field", n=1)

    assert response.status_code == 200, response.text
    assert response.headers["Preference-Applied"] == "wait=30"
    job = response.json()
    assert job["status"] == "succeeded"
    assert len(job["outputs"]) == 1
    assert job["timings"]["total_ms"] is not None
    assert job["cost_usd"] == 0.0


@embedded_only()
async def test_prefer_wait_is_capped_at_sixty_seconds(client, auth):
    response = await generate(client, auth, {"Prefer": "respond-async, wait=600"}, prompt="sky")
    enormous = await generate(client, auth, {"Prefer": "wait=" + "9" * 5000}, prompt="sky")

    assert response.status_code == 200
    assert response.headers["Preference-Applied"] == "wait=60"
    assert enormous.status_code == 200
    assert enormous.headers["Preference-Applied"] == "wait=60"


async def test_prefer_wait_that_runs_out_answers_202_with_the_current_job(client, auth):
    response = await generate(
        client, auth, {"Prefer": "wait=1"}, prompt="a vast city", size="4096x4096", n=4
    )

    assert response.status_code == 202
    assert response.headers["Preference-Applied"] == "wait=1"
    assert response.json()["status"] in {"queued", "running"}
    await client.post(f"/v1/jobs/{response.json()['id']}/cancel", headers=auth)


@embedded_only()
async def test_same_seed_gives_same_bytes_and_other_seed_another_image(client, auth):
    async def first_output_bytes(seed: int) -> bytes:
        response = await generate(
            client, auth, {"Prefer": "wait=30"}, prompt="a blue boat", size="256x160", seed=seed
        )
        assert response.status_code == 200, response.text
        return (await client.get(response.json()["outputs"][0]["url"], headers=auth)).content

    first, again, other = (
        await first_output_bytes(11),
        await first_output_bytes(11),
        await first_output_bytes(12),
    )

    assert first == again
    assert first != other


async def test_metadata_is_returned_as_sent(client, auth):
    metadata = {"campaign": "spring", "tags": ["a", "b"], "nested": {"n": 1}}
    response = await generate(client, auth, prompt="tulips", metadata=metadata)

    assert response.json()["metadata"] == metadata


@embedded_only()
async def test_invalid_requests_answer_problem_json_listing_fields(client, auth):
    cases = [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 32001}, "prompt"),
        ({"prompt": "x", "n": 11}, "n"),
        ({"prompt": "x", "n": 0}, "n"),
        ({"prompt": "x", "aspect_ratio": "5:1"}, "aspect_ratio"),
        ({"prompt": "x", "aspect_ratio": "wide"}, "aspect_ratio"),
        ({"prompt": "x", "size": "32x32"}, "size"),
        ({"prompt": "x", "size": "5000x100"}, "size"),
        ({"prompt": "x", "output_format": "gif"}, "output_format"),
        ({"prompt": "x", "seed": -1}, "seed"),
        ({"prompt": "x", "unknown_field": 1}, "unknown_field"),
        ({"prompt": "x", "size": "512x512", "aspect_ratio": "1:1"}, ""),
    ]
    for body, field in cases:
        response = await client.post("/v1/generate", json=body, headers=auth)

        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 422 and problem["title"] and problem["detail"]
        assert any(error["field"].startswith(field) for error in problem["errors"]), problem
    jobs = await client.get("/v1/jobs", headers=auth)
    assert jobs.json()["data"] == []


async def test_unstorable_text_and_metadata_are_refused(client, auth):
    deep: dict = {}
    for _ in range(40):
        deep = {"d": deep}
    cases = [
        b'{"prompt": "a\\u0000b"}',
        b'{"prompt": "x", "negative_prompt": "\\u0000"}',
        b'{"prompt": "x", "metadata": {"a": NaN}}',
        b'{"prompt": "x", "metadata": {"a": [Infinity]}}',
        b'{"prompt": "x", "metadata": {"k\\u0000": 1}}',
        b'{"prompt": "x", "metadata": {"a": "\\udc00"}}',
        b'{"prompt": "x", "metadata": {"\\ud800": 1}}',
        json.dumps({"prompt": "x", "metadata": deep}).encode(),
        ('{"prompt": "x", "metadata": ' + '{"d": ' * 600 + "1" + "}" * 601).encode(),
    ]
    for body in cases:
        response = await client.post(
            "/v1/generate", content=body, headers=auth | {"Content-Type": "application/json"}
        )

        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/jobs", headers=auth)).json()["data"] == []


async def test_metadata_that_merely_looks_odd_is_kept_exactly(client, auth):
    metadata = {"regex": "\\u0000", "emoji": "🎨", "n": 1.5, "deep": {"a": {"b": [1, [2]]}}}

    response = await generate(client, auth, prompt="x", metadata=metadata)

    assert response.status_code == 202
    assert response.json()["metadata"] == metadata


@embedded_only()
async def test_aspect_ratio_too_fine_for_the_default_size_asks_for_a_size(client, auth):
    response = await generate(client, auth, prompt="x", aspect_ratio="4095:4096")

    assert response.status_code == 422
    assert "size" in response.json()["detail"]


async def test_concurrent_duplicates_make_one_job(client, auth):
    key = {"Idempotency-Key": "burst"}

    responses = await asyncio.gather(
        *(generate(client, auth, key, prompt="a burst", seed=1) for _ in range(6))
    )

    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {202, 409}, statuses
    assert len({r.json()["id"] for r in responses if r.status_code == 202}) == 1
    assert len((await client.get("/v1/jobs", headers=auth)).json()["data"]) == 1


@embedded_only()
async def test_unknown_model_is_a_clear_422(client, auth):
    response = await generate(client, auth, prompt="x", model="nobody/nothing")

    assert response.status_code == 422
    assert "nobody/nothing" in response.json()["detail"]


@embedded_only()
async def test_malformed_json_is_a_422_problem(client, auth):
    response = await client.post(
        "/v1/generate", content=b'{"prompt": ', headers=auth | {"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_idempotency_key_replays_first_job_and_rejects_other_body(client, auth):
    key = {"Idempotency-Key": "order-1234"}
    first = await generate(client, auth, key, prompt="a cat", seed=3)
    again = await generate(client, auth, key, prompt="a cat", seed=3)
    other = await generate(client, auth, key, prompt="a dog", seed=3)

    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")
    listed = (await client.get("/v1/jobs", headers=auth)).json()["data"]
    assert [job["id"] for job in listed] == [first.json()["id"]]


async def test_idempotency_keys_are_scoped_per_tenant(client, auth, other_auth):
    key = {"Idempotency-Key": "shared-key"}
    mine = await generate(client, auth, key, prompt="a cat")
    theirs = await generate(client, other_auth, key, prompt="a cat")

    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]


async def download(client: httpx.AsyncClient, auth: dict, output: dict) -> Image.Image:
    """An output's stored image, decoded."""
    content = await client.get(output["url"], headers=auth)
    assert content.status_code == 200, content.text
    image = Image.open(io.BytesIO(content.content))
    image.load()
    return image


async def test_a_transparent_draft_has_a_clear_backdrop_and_an_opaque_subject(client, auth):
    response = await generate(
        client,
        auth,
        {"Prefer": "wait=30"},
        prompt="a ceramic mug",
        size="640x480",
        background="transparent",
        output_format="webp",
    )

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["request"]["background"] == "transparent"
    image = await download(client, auth, job["outputs"][0])
    assert image.format == "WEBP" and image.mode == "RGBA" and image.size == (640, 480)
    alpha = image.getchannel("A")
    assert alpha.getpixel((0, 0)) == 0 and alpha.getpixel((639, 479)) == 0
    assert alpha.getpixel((320, 240)) == 255


async def test_a_draft_quality_job_renders_at_half_resolution_and_records_the_mapping(client, auth):
    response = await generate(
        client, auth, {"Prefer": "wait=30"}, prompt="a harbour", size="800x600", quality="draft"
    )

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["request"]["quality"] == "draft"
    assert job["request"]["native_quality"] == {"local/draft": "half resolution"}
    output = job["outputs"][0]
    assert output["details"]["generated_size"] == "400x300"
    assert (await download(client, auth, output)).size == (800, 600)
    default = await generate(client, auth, {"Prefer": "wait=30"}, prompt="a harbour")
    assert default.json()["request"]["quality"] == "auto"
    assert default.json()["request"]["background"] == "auto"


async def test_a_transparent_background_without_alpha_in_the_format_is_refused(client, auth):
    response = await generate(
        client, auth, prompt="a mug", background="transparent", output_format="jpeg"
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == "background" and "png or webp" in problem["detail"]
    assert (await client.get("/v1/jobs", headers=auth)).json()["data"] == []


async def test_unknown_quality_and_background_values_are_refused(client, auth):
    response = await generate(client, auth, prompt="a mug", quality="ultra", background="green")

    assert response.status_code == 422, response.text
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"quality", "background"} <= fields


@embedded_only()
async def test_draft_labels_change_only_the_caption_and_tag_and_the_setting_turns_them_off(
    client, auth, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    body = {"prompt": "a ceramic mug on a walnut desk", "size": "512x384", "seed": 5}
    labelled = (await generate(client, auth, {"Prefer": "wait=30"}, **body)).json()
    monkeypatch.setenv("DARKROOM_DRAFT_LABELS", "false")
    async with serving(Settings(data_dir=tmp_path / "plain")) as (_, plain_client, plain_auth):
        plain = (await generate(plain_client, plain_auth, {"Prefer": "wait=30"}, **body)).json()
        bare = await download(plain_client, plain_auth, plain["outputs"][0])

    assert labelled["request"]["prompt"] == plain["request"]["prompt"]
    rendered = render_draft(plain["request"]["prompt"], 5, 512, 384)
    assert np.array_equal(np.asarray(bare), np.asarray(rendered))
    captioned = await download(client, auth, labelled["outputs"][0])
    changed = (np.asarray(captioned) != np.asarray(bare)).any(axis=2)
    assert changed[:64, :128].any(), "no DRAFT tag in the top-left corner"
    assert changed[-64:, 96:-96].any(), "no caption along the bottom"
    changed[:64, :128] = changed[-64:, 96:-96] = False
    assert not changed.any(), "pixels outside the tag and the caption were changed"
