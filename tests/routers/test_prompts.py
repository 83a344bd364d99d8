"""POST /v1/prompts/optimize and the `optimize` option of jobs: the brief survives, open slots
are filled for the target model, and the job records brief, plan and final prompt."""

import pytest

from app.config import Settings
from tests.factories import image_bytes
from tests.fakes.chat_completions import FakeChatServer
from tests.support import embedded_only, serving

WAIT = {"Prefer": "wait=30"}


@embedded_only()
async def test_optimize_reports_given_and_filled_slots(client, auth):
    response = await client.post(
        "/v1/prompts/optimize",
        json={"prompt": "ceramic mug on a walnut desk, product shot", "aspect_ratio": "16:9"},
        headers=auth,
    )

    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["model"] == "local/draft"
    assert plan["use_case"] == "product"
    assert "ceramic mug on a walnut desk" in plan["prompt"]
    assert "subject" in plan["given"]
    assert {"lighting", "quality"} <= set(plan["filled"])
    assert not set(plan["given"]) & set(plan["filled"])
    assert plan["mode"] == "rules" and plan["fallback_reason"] is None


async def test_optimize_reads_a_backdrop_colour_as_the_setting(client, auth):
    response = await client.post(
        "/v1/prompts/optimize", json={"prompt": "a red sneaker on white"}, headers=auth
    )

    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["slots"]["subject"] == "a red sneaker"
    assert plan["slots"]["setting"] == "on white"
    assert {"setting", "palette"} <= set(plan["given"])
    assert "Setting:" not in plan["prompt"]
    assert "backdrop" not in plan["prompt"]


async def test_optimize_renders_unquoted_text_and_counts_the_style_preset_as_given(client, auth):
    brief = "instagram ad for a vegan protein bar, bold text SAVE 20%"
    response = await client.post(
        "/v1/prompts/optimize", json={"prompt": brief, "style": "studio-product"}, headers=auth
    )

    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["slots"]["text"] == '"SAVE 20%"'
    assert 'correctly spelled and clearly legible: "SAVE 20%".' in plan["prompt"]
    assert {"subject", "style", "text"} <= set(plan["given"])
    assert "setting" in plan["filled"] and "style" not in plan["filled"]
    assert "protein bar" not in plan["slots"]["setting"]


@embedded_only()
async def test_optimize_is_deterministic_and_honours_the_style_preset(client, auth):
    body = {"prompt": "a fox in the snow", "style": "watercolor"}
    first = await client.post("/v1/prompts/optimize", json=body, headers=auth)
    second = await client.post("/v1/prompts/optimize", json=body, headers=auth)
    assert first.json() == second.json()
    assert "watercolor" in first.json()["prompt"].lower()
    assert "photorealistic" not in first.json()["prompt"].lower()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x", "style": "no-such-style"}, "style"),
        ({"prompt": "x", "keep": ["everything"]}, "keep.0"),
        ({"prompt": "x", "model": "nope/model"}, None),
        ({"prompt": ""}, None),
    ],
)
@embedded_only()
async def test_optimize_refuses_bad_options(client, auth, body, field):
    response = await client.post("/v1/prompts/optimize", json=body, headers=auth)
    assert response.status_code == 422, response.text
    if field:
        problem = response.json()
        # The optimizer names its field; schema validation lists each field it refused.
        assert (problem.get("field") or problem["errors"][0]["field"]) == field


async def test_generate_records_brief_plan_and_final_prompt(client, auth):
    response = await client.post(
        "/v1/generate",
        json={"prompt": "portrait of an old fisherman", "size": "64x64"},
        headers=auth | WAIT,
    )
    request = response.json()["request"]
    assert request["brief"] == "portrait of an old fisherman"
    assert request["optimize"] == "auto"
    assert request["prompt"] != request["brief"]
    assert "portrait of an old fisherman" in request["prompt"]
    assert request["prompt_plan"]["use_case"] == "portrait"
    assert response.json()["status"] == "succeeded"


async def test_optimize_off_sends_the_brief_as_written(client, auth):
    response = await client.post(
        "/v1/generate",
        json={"prompt": "a lighthouse", "optimize": "off", "size": "64x64"},
        headers=auth,
    )
    request = response.json()["request"]
    assert request["prompt"] == "a lighthouse"
    assert request["prompt_plan"] is None


async def test_llm_mode_without_an_llm_falls_back_and_says_so(client, auth):
    response = await client.post(
        "/v1/generate",
        json={"prompt": "a lighthouse", "optimize": "llm", "size": "64x64"},
        headers=auth | WAIT,
    )
    job = response.json()
    assert job["status"] == "succeeded"
    assert job["request"]["prompt_plan"]["mode"] == "rules"
    assert "No LLM is configured" in job["request"]["prompt_plan"]["fallback_reason"]


async def test_llm_mode_uses_the_llms_slots_in_the_job(tmp_path):
    async with FakeChatServer() as llm:
        llm.answer_slots(lighting="cold blue moonlight", mood="lonely and quiet")
        settings = Settings(data_dir=tmp_path / "var", prompt_llm_base_url=llm.base_url)
        async with serving(settings) as (_, client, auth):
            response = await client.post(
                "/v1/generate",
                json={"prompt": "a lighthouse on a cliff", "optimize": "llm", "size": "64x64"},
                headers=auth | WAIT,
            )
            optimized = await client.post(
                "/v1/prompts/optimize",
                json={"prompt": "a lighthouse on a cliff", "mode": "llm"},
                headers=auth,
            )
    job = response.json()
    assert job["status"] == "succeeded", job
    assert job["request"]["prompt_plan"]["mode"] == "llm"
    assert "cold blue moonlight" in job["request"]["prompt"]
    assert optimized.json()["mode"] == "llm"
    assert "cold blue moonlight" in optimized.json()["prompt"]


@embedded_only()
async def test_optimize_writes_tags_and_a_negative_prompt_for_diffusion_models(client, auth):
    # The plan depends only on the model's prompt style, so it works unconfigured too.
    diffusion = await client.post(
        "/v1/prompts/optimize",
        json={"prompt": "a red fox at night, cinematic", "model": "stability/sd3.5-large"},
        headers=auth,
    )
    instruction = await client.post(
        "/v1/prompts/optimize",
        json={"prompt": "a red fox at night, cinematic", "model": "openai/gpt-image-2"},
        headers=auth,
    )

    assert diffusion.status_code == 200, diffusion.text
    tags, sentences = diffusion.json(), instruction.json()
    assert tags["rendering"] == "tags" and sentences["rendering"] == "sentences"
    assert tags["negative_prompt"]
    assert "a red fox at night" in tags["prompt"] and "a red fox at night" in sentences["prompt"]
    assert "daylight" not in tags["prompt"] and "daylight" not in sentences["prompt"]
    assert len(tags["prompt"]) <= 10_000


@embedded_only()
async def test_blank_briefs_are_refused(client, auth):
    generate = await client.post("/v1/generate", json={"prompt": "  \n "}, headers=auth)
    optimize = await client.post(
        "/v1/prompts/optimize", json={"prompt": "   ", "mode": "llm"}, headers=auth
    )
    assert generate.status_code == 422
    assert optimize.status_code == 422
    assert "blank" in optimize.text


async def test_an_edit_with_a_style_reference_takes_its_style_from_the_reference(client, auth):
    upload = await client.post(
        "/v1/assets", files={"file": ("a.png", image_bytes(96, 64), "image/png")}, headers=auth
    )
    image = {"asset_id": upload.json()["id"]}
    response = await client.post(
        "/v1/edit",
        json={
            "image": image,
            "prompt": "change the background to a sunlit terrace with warm golden tones, close-up",
            "references": [{"image": image, "role": "style"}],
        },
        headers=auth,
    )

    assert response.status_code == 202, response.text
    prompt = response.json()["request"]["prompt"]
    assert "Take the style and mood from the style reference image." in prompt
    assert "Leave the style" not in prompt and "mood as in the source" not in prompt


async def test_a_blank_edit_prompt_is_not_optimized(client, auth):
    upload = await client.post(
        "/v1/assets", files={"file": ("a.png", image_bytes(96, 64), "image/png")}, headers=auth
    )
    response = await client.post(
        "/v1/edit",
        json={
            "image": {"asset_id": upload.json()["id"]},
            "prompt": "   ",
            "optimize": "llm",
            "keep": ["lighting"],
        },
        headers=auth | WAIT,
    )
    job = response.json()
    assert job["status"] == "succeeded", job
    assert job["request"]["optimize"] == "off"
    assert job["request"]["prompt"].startswith("Keep the lighting")
