"""POST /v1/generate and POST /v1/edit with `models`: the same brief and seeds on each model,
the prompt rendered for each, the outputs grouped by model, one model's failure kept to its own
group; and POST /v1/estimate of such a request, per model."""

import pytest

from app.config import Settings
from tests.fakes.chat_completions import FakeChatServer
from tests.fakes.openai_images import moderation_blocked
from tests.fakes.stability import API_KEY as STABILITY_KEY
from tests.fakes.stability import FakeStability
from tests.routers import test_generate_vendor as vendor_tests
from tests.routers.test_edit import photo, upload
from tests.routers.test_generate_vendor import Vendor
from tests.support import serving, wait_for_final

WAIT = {"Prefer": "wait=30"}
DRAFT, MINI, OTHER = "local/draft", "openai/gpt-image-1-mini", "openai/gpt-image-1.5"


# The app beside a fake OpenAI on both backends, so local/draft and an OpenAI model can be
# compared: the vendor tests' own fixture.
vendor = vendor_tests.vendor


async def submit(vendor: Vendor, path: str, **body: object) -> dict:
    """Submit a job and wait for it to finish."""
    response = await vendor.client.post(path, json=body, headers=vendor.auth | WAIT)
    assert response.status_code in (200, 202), response.text
    job, _ = await wait_for_final(vendor.client, vendor.auth, response.json()["id"])
    return job


def by_model(job: dict) -> dict[str, dict]:
    return {group["model"]: group for group in job["groups"]}


async def test_a_compare_job_runs_the_brief_on_each_model_with_the_same_seeds(
    vendor: Vendor,
) -> None:
    job = await submit(
        vendor,
        "/v1/generate",
        prompt="a teal kettle on a stove",
        models=[DRAFT, MINI],
        n=2,
        size="512x512",
        seed=40,
    )

    assert job["status"] == "succeeded", job
    assert [group["model"] for group in job["groups"]] == [DRAFT, MINI]
    for group in job["groups"]:
        assert [output["seed"] for output in group["outputs"]] == [40, 41]
        assert all(output["model"] == group["model"] for output in group["outputs"])
        assert all((o["width"], o["height"]) == (512, 512) for o in group["outputs"])
        assert group["latency_ms"] is not None and group["failures"] == []
    groups = by_model(job)
    assert groups[DRAFT]["cost_usd"] == 0.0
    assert groups[MINI]["cost_usd"] > 0
    assert job["cost_usd"] == pytest.approx(groups[MINI]["cost_usd"])
    assert len(job["outputs"]) == 4
    prompts = job["request"]["model_prompts"]
    assert set(prompts) == {DRAFT, MINI}
    sent = {request.body["prompt"] for request in vendor.server.received}
    assert sent == {prompts[MINI]["prompt"]}
    assert sum(request.body.get("n", 1) for request in vendor.server.received) == 2


async def test_one_model_failing_leaves_the_others_outputs(vendor: Vendor) -> None:
    vendor.server.script(moderation_blocked())

    job = await submit(
        vendor, "/v1/generate", prompt="a red kite", models=[DRAFT, MINI], size="512x512", seed=5
    )

    assert job["status"] == "succeeded", job
    groups = by_model(job)
    assert [output["seed"] for output in groups[DRAFT]["outputs"]] == [5]
    assert groups[DRAFT]["failures"] == []
    assert groups[MINI]["outputs"] == []
    [failure] = groups[MINI]["failures"]
    assert (failure["index"], failure["seed"]) == (1, 5)
    assert failure["error"]["type"].endswith("/moderation-blocked")
    assert [output["model"] for output in job["outputs"]] == [DRAFT]
    assert job["error"] is None


async def test_a_compare_job_where_every_model_failed_is_failed(vendor: Vendor) -> None:
    vendor.server.script(moderation_blocked(), moderation_blocked())

    job = await submit(vendor, "/v1/generate", prompt="a red kite", models=[MINI, OTHER])

    assert job["status"] == "failed", job
    assert job["error"]["type"].endswith("/every-model-failed")
    assert MINI in job["error"]["detail"] and OTHER in job["error"]["detail"]
    assert job["outputs"] == []
    for group in job["groups"]:
        [failure] = group["failures"]
        assert failure["error"]["type"].endswith("/moderation-blocked")


async def test_each_compared_model_gets_the_brief_rendered_for_it(tmp_path) -> None:
    # local/draft takes sentences; Stability's diffusion model takes weighted tags and a
    # negative prompt.
    async with FakeStability() as stability:
        settings = Settings(
            data_dir=tmp_path / "var",
            stability_api_key=STABILITY_KEY,
            stability_base_url=stability.base_url,
        )
        async with serving(settings) as (_, client, auth):
            response = await client.post(
                "/v1/generate",
                json={
                    "prompt": "a red fox at night, cinematic",
                    "models": [DRAFT, "stability/sd3.5-large"],
                    "seed": 3,
                },
                headers=auth | WAIT,
            )

    job = response.json()
    assert job["status"] == "succeeded", job
    prompts = job["request"]["model_prompts"]
    draft, diffusion = prompts[DRAFT], prompts["stability/sd3.5-large"]
    assert (draft["prompt_plan"]["rendering"], diffusion["prompt_plan"]["rendering"]) == (
        "sentences",
        "tags",
    )
    assert draft["prompt"] != diffusion["prompt"]
    [sent] = stability.received
    assert sent.form["prompt"].text == diffusion["prompt"]
    assert sent.form["negative_prompt"].text == diffusion["negative_prompt"]
    assert sent.form["seed"].text == "3"
    assert [group["outputs"][0]["seed"] for group in job["groups"]] == [3, 3]


async def test_the_llm_plans_the_brief_for_each_compared_model(tmp_path) -> None:
    async with FakeChatServer() as llm, FakeStability() as stability:
        llm.answer_slots(lighting="cold blue moonlight")
        settings = Settings(
            data_dir=tmp_path / "var",
            prompt_llm_base_url=llm.base_url,
            stability_api_key=STABILITY_KEY,
            stability_base_url=stability.base_url,
        )
        async with serving(settings) as (_, client, auth):
            response = await client.post(
                "/v1/generate",
                json={
                    "prompt": "a lighthouse on a cliff",
                    "optimize": "llm",
                    "models": [DRAFT, "stability/sd3.5-large"],
                },
                headers=auth | WAIT,
            )

    job = response.json()
    assert job["status"] == "succeeded", job
    plans = job["request"]["model_prompts"].values()
    assert [plan["prompt_plan"]["mode"] for plan in plans] == ["llm", "llm"]
    assert [plan["prompt_plan"]["rendering"] for plan in plans] == ["sentences", "tags"]
    assert all("cold blue moonlight" in plan["prompt"] for plan in plans)
    [sent] = stability.received
    assert (
        sent.form["prompt"].text
        == job["request"]["model_prompts"]["stability/sd3.5-large"]["prompt"]
    )


async def test_variants_on_several_models_keep_the_outputs_of_the_one_that_succeeded(
    vendor: Vendor,
) -> None:
    image_id = await upload(vendor.client, vendor.auth, photo(96, 64))
    vendor.server.script(moderation_blocked())

    job = await submit(
        vendor, "/v1/variants", source={"asset_id": image_id}, models=[DRAFT, MINI], seed=2
    )

    assert job["status"] == "succeeded", job
    groups = by_model(job)
    assert [output["seed"] for output in groups[DRAFT]["outputs"]] == [2]
    assert groups[MINI]["outputs"] == []
    assert groups[MINI]["failures"][0]["error"]["type"].endswith("/moderation-blocked")


async def test_a_compare_edit_groups_each_models_edits(vendor: Vendor) -> None:
    image_id = await upload(vendor.client, vendor.auth, photo(96, 64))

    job = await submit(
        vendor,
        "/v1/edit",
        image={"asset_id": image_id},
        prompt="warmer evening light",
        models=[DRAFT, MINI],
        seed=9,
    )

    assert job["status"] == "succeeded", job
    assert [group["model"] for group in job["groups"]] == [DRAFT, MINI]
    for group in job["groups"]:
        [output] = group["outputs"]
        assert output["seed"] == 9 and (output["width"], output["height"]) == (96, 64)
    [form] = vendor.server.forms
    assert dict(form.fields)["prompt"] == job["request"]["model_prompts"][MINI]["prompt"]
    asset = await vendor.client.get(
        f"/v1/assets/{by_model(job)[MINI]['outputs'][0]['asset_id']}", headers=vendor.auth
    )
    assert asset.json()["parents"] == [{"asset_id": image_id, "role": "source"}]


REFUSED = [
    ({"model": DRAFT, "models": [DRAFT]}, "give either model"),
    ({"models": [DRAFT, DRAFT]}, "models must not repeat"),
    ({"models": [DRAFT, MINI, OTHER, "openai/gpt-image-2", "google/imagen-4"]}, "at most 4"),
    ({"models": []}, "at least 1"),
    ({"models": ["nope/model"]}, "nope/model"),
]


@pytest.mark.parametrize(("fields", "said"), REFUSED)
async def test_bad_model_lists_are_refused_and_create_no_job(client, auth, fields, said):
    image_id = await upload(client, auth, photo())
    bodies = {
        "/v1/generate": {"prompt": "a red kite"} | fields,
        "/v1/edit": {"image": {"asset_id": image_id}, "prompt": "warmer"} | fields,
    }
    for path, body in bodies.items():
        response = await client.post(path, json=body, headers=auth)

        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert said in response.text, response.text
    listed = await client.get("/v1/jobs", headers=auth)
    assert listed.json()["data"] == []


async def test_fallback_models_are_refused_beside_models(client, auth):
    response = await client.post(
        "/v1/generate",
        json={"prompt": "a red kite", "models": [DRAFT], "fallback_models": [DRAFT]},
        headers=auth,
    )

    assert response.status_code == 422
    assert "fallback_models apply to one model" in response.json()["detail"]


async def test_the_estimate_of_a_compare_request_is_per_model(vendor: Vendor) -> None:
    body = {"prompt": "a teal kettle", "models": [DRAFT, MINI], "n": 2, "size": "1024x1024"}

    response = await vendor.client.post(
        "/v1/estimate", json={"kind": "generate"} | body, headers=vendor.auth
    )

    assert response.status_code == 200, response.text
    estimate = response.json()
    assert estimate["accepted"] is True
    assert [model["model"] for model in estimate["models"]] == [DRAFT, MINI]
    assert all(model["images"] == 2 for model in estimate["models"])
    draft, mini = estimate["models"]
    assert draft["cost_usd"] == {"min_usd": 0.0, "max_usd": 0.0}
    assert 0 < mini["cost_usd"]["min_usd"] <= mini["cost_usd"]["max_usd"]
    assert estimate["cost_usd"] == mini["cost_usd"]
    assert set(estimate["request"]["model_prompts"]) == {DRAFT, MINI}
    job = await submit(vendor, "/v1/generate", **body)
    assert job["estimated_cost_usd"] == estimate["cost_usd"]
    assert job["request"]["model_prompts"] == estimate["request"]["model_prompts"]


async def test_the_estimate_of_a_compare_edit_is_per_model(vendor: Vendor) -> None:
    image_id = await upload(vendor.client, vendor.auth, photo(96, 64))

    response = await vendor.client.post(
        "/v1/estimate",
        json={
            "kind": "edit",
            "image": {"asset_id": image_id},
            "prompt": "warmer evening light",
            "models": [DRAFT, MINI],
            "n": 3,
        },
        headers=vendor.auth,
    )

    estimate = response.json()
    assert estimate["accepted"] is True, estimate
    assert [(model["model"], model["images"]) for model in estimate["models"]] == [
        (DRAFT, 3),
        (MINI, 3),
    ]
    assert estimate["cost_usd"] == estimate["models"][1]["cost_usd"]
    listed = await vendor.client.get("/v1/jobs", headers=vendor.auth)
    assert listed.json()["data"] == []


async def test_the_estimate_refuses_what_the_route_refuses(client, auth):
    response = await client.post(
        "/v1/estimate",
        json={"kind": "edit", "image": {"asset_id": "ast_x"}, "model": DRAFT, "models": [DRAFT]},
        headers=auth,
    )

    assert response.status_code == 422
    assert "give either model" in response.text
