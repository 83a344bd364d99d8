"""The LLM-backed optimizer against a fake OpenAI-compatible chat server on 127.0.0.1."""

import json
import re
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from app.prompts import OptimizedPrompt, optimize_prompt, optimize_prompt_llm
from tests.fakes.chat_completions import FakeChatServer, Reply

MODEL = "fake-model"
API_KEY = "sk-test-123"


@pytest.fixture
async def chat_server() -> AsyncIterator[FakeChatServer]:
    """A fresh fake chat server for one test."""
    async with FakeChatServer() as server:
        yield server


async def optimize_with(server: FakeChatServer, brief: str, **options: object) -> OptimizedPrompt:
    return await optimize_prompt_llm(
        brief,
        base_url=server.base_url,
        model=MODEL,
        api_key=API_KEY,
        **options,  # type: ignore[arg-type]
    )


async def test_good_answer_fills_the_open_slots(chat_server: FakeChatServer) -> None:
    chat_server.answer_slots(
        subject="a perfume bottle",
        setting="wet black slate scattered with rose petals",
        composition="low three-quarter view, bottle slightly off-centre",
        lighting="single hard key light from the left, deep falloff",
        style="luxury fragrance advertising photograph",
        mood="sensual and mysterious",
        palette=None,
        quality="razor-sharp glass edges, 8k detail",
        text=None,
        constraints=None,
    )

    result = await optimize_with(chat_server, "product shot of a perfume bottle")

    assert result.mode == "llm"
    assert result.fallback_reason is None
    assert result.slots.setting == "wet black slate scattered with rose petals"
    assert result.slots.lighting == "single hard key light from the left, deep falloff"
    assert result.slots.palette  # null from the LLM: the rules fill it
    assert "Setting: wet black slate scattered with rose petals." in result.prompt
    assert result.prompt.startswith("product shot of a perfume bottle. ")


async def test_request_is_an_openai_chat_completion(chat_server: FakeChatServer) -> None:
    chat_server.answer_slots(lighting="soft window light")

    await optimize_with(
        chat_server, "a cat at night", aspect_ratio=(9, 16), style="cinematic", is_edit=True
    )

    [request] = chat_server.received
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == MODEL
    assert request.body["response_format"] == {"type": "json_object"}
    assert request.body["temperature"] == 0
    system, user = request.body["messages"]
    assert system["role"] == "system"
    assert "JSON object" in system["content"]
    assert user["role"] == "user"
    task = json.loads(user["content"])
    assert task["brief"] == "a cat at night"
    assert task["aspect_ratio"] == "9:16"
    assert task["style_preset"] == "cinematic"
    assert task["is_edit"] is True


async def test_a_style_reference_is_not_the_llms_to_fill(chat_server: FakeChatServer) -> None:
    chat_server.answer_slots(style="oil painting", mood="calm", setting="a pier")

    result = await optimize_with(chat_server, "add a boat", is_edit=True, references=["style"])

    task = json.loads(chat_server.received[0].body["messages"][1]["content"])
    assert task["references"] == ["style"]
    assert result.slots.style == result.slots.mood == "from the style reference image"
    assert "Take the lighting, style, mood and colour palette from the style reference" in (
        result.prompt
    )


async def test_no_api_key_sends_no_authorization(chat_server: FakeChatServer) -> None:
    chat_server.answer_slots(mood="calm")

    result = await optimize_prompt_llm(
        "a cat", base_url=chat_server.base_url + "/", model=MODEL, api_key=None
    )

    assert result.mode == "llm"
    assert "authorization" not in chat_server.received[0].headers


async def test_slow_answer_falls_back_within_the_timeout(chat_server: FakeChatServer) -> None:
    chat_server.answer(json.dumps({"mood": "calm"}), delay_seconds=5)

    started = time.monotonic()
    result = await optimize_with(chat_server, "a lighthouse at dusk", timeout_seconds=0.3)
    elapsed = time.monotonic() - started

    assert elapsed < 1.5
    assert result.mode == "rules"
    assert result.fallback_reason is not None
    assert "timeout" in result.fallback_reason
    assert result.model_dump() == {
        **optimize_prompt("a lighthouse at dusk").model_dump(),
        "fallback_reason": result.fallback_reason,
    }


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(500, b'{"error": {"message": "boom"}}'), "HTTP 500"),
        (Reply(429, b"{}"), "HTTP 429"),
        (Reply(200, b"<html>not json</html>"), "choices"),
        (Reply(200, b'{"choices": []}'), "choices"),
    ],
    ids=["http-500", "http-429", "body-not-json", "no-choices"],
)
async def test_failed_response_falls_back_to_the_rules(
    chat_server: FakeChatServer, reply: Reply, reason: str
) -> None:
    chat_server.reply = reply

    result = await optimize_with(chat_server, "a lighthouse at dusk")

    assert result.mode == "rules"
    assert result.fallback_reason is not None
    assert reason in result.fallback_reason
    assert result.prompt == optimize_prompt("a lighthouse at dusk").prompt


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("Sure! Here are the slots: lighting is soft.", "not valid JSON"),
        ('["lighting", "soft"]', "not a JSON object of slots"),
        ('{"colour": "red"}', "not a JSON object of slots"),
        ('{"lighting": 3}', "lighting slot was not a string or null"),
        ('{"mood": ["calm", "quiet"]}', "mood slot was not a string or null"),
        (None, "no text content"),
    ],
    ids=["prose", "array", "unknown-keys", "number", "list", "null-content"],
)
async def test_malformed_content_falls_back_to_the_rules(
    chat_server: FakeChatServer, content: str | None, reason: str
) -> None:
    chat_server.answer(content)

    result = await optimize_with(chat_server, "a lighthouse at dusk")

    assert result.mode == "rules"
    assert result.fallback_reason is not None
    assert reason in result.fallback_reason


async def test_unreachable_endpoint_falls_back_to_the_rules() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = await optimize_prompt_llm(
        "a lighthouse", base_url=f"http://127.0.0.1:{port}/v1", model=MODEL, api_key=None
    )

    assert result.mode == "rules"
    assert result.fallback_reason is not None
    assert "Could not reach" in result.fallback_reason


async def test_contradicting_proposal_is_struck(chat_server: FakeChatServer) -> None:
    chat_server.answer_slots(
        lighting="golden hour sunlight, warm sun flare",
        mood="quiet and lonely",
        quality="crisp detail, sunlit highlights",
    )

    result = await optimize_with(chat_server, "a lighthouse on a cliff at night")

    assert result.mode == "llm"
    assert result.slots.lighting is not None
    assert not re.search(r"golden|sun", result.slots.lighting)
    assert result.slots.quality == "crisp detail"
    assert result.slots.mood == "quiet and lonely"
    assert not re.search(r"golden|sun", result.prompt)


async def test_photographic_proposal_for_a_drawn_brief_is_struck(
    chat_server: FakeChatServer,
) -> None:
    chat_server.answer_slots(
        style="photorealistic photograph",
        composition="shot on an 85mm lens, eye-level",
        quality="visible paper texture, sharp DSLR detail",
    )

    result = await optimize_with(chat_server, "watercolor of a fox in the snow")

    assert "style" in result.given
    assert result.slots.style == "watercolor of a fox"
    assert result.slots.composition == "eye-level"
    assert result.slots.quality == "visible paper texture"
    assert not re.search(r"photo|lens|85mm|dslr", result.prompt, re.IGNORECASE)


async def test_llm_cannot_override_the_brief_or_invent_text(
    chat_server: FakeChatServer,
) -> None:
    chat_server.answer_slots(
        subject="a dog", lighting="harsh noon sun", text="BUY NOW", constraints="no cats"
    )

    result = await optimize_with(chat_server, "a cat in candlelight")

    assert result.slots.subject == "a cat in candlelight"
    assert result.slots.lighting == "a cat in candlelight"
    assert result.slots.text is None
    assert result.slots.constraints is None
    assert "BUY NOW" not in result.prompt
    assert "a dog" not in result.prompt


async def test_aspect_layout_is_kept_with_the_llm_composition(
    chat_server: FakeChatServer,
) -> None:
    chat_server.answer_slots(composition="slightly low angle")

    result = await optimize_with(chat_server, "a sneaker", aspect_ratio=(21, 9))

    assert result.slots.composition is not None
    assert result.slots.composition.endswith("for copy, slightly low angle")


async def test_tags_rendering_in_llm_mode(chat_server: FakeChatServer) -> None:
    chat_server.answer_slots(setting="misty pine forest", lighting="blue hour glow")

    result = await optimize_with(
        chat_server, "一杯のコーヒー", rendering="tags", negative_prompt="text", max_chars=200
    )

    assert result.mode == "llm"
    assert result.prompt.startswith("(一杯のコーヒー:1.3), misty pine forest")
    assert len(result.prompt) <= 200
    assert result.negative_prompt is not None
    assert result.negative_prompt.startswith("text, ")


async def test_given_client_is_used_and_left_open(chat_server: FakeChatServer) -> None:
    chat_server.answer_slots(mood="calm")

    async with httpx.AsyncClient() as client:
        result = await optimize_prompt_llm(
            "a cat", base_url=chat_server.base_url, model=MODEL, api_key=None, client=client
        )
        assert not client.is_closed

    assert result.mode == "llm"
    assert result.slots.mood == "calm"


async def test_unknown_style_raises_before_calling_the_llm(chat_server: FakeChatServer) -> None:
    with pytest.raises(ValueError, match="valid presets"):
        await optimize_with(chat_server, "a cat", style="vaporwave")

    assert chat_server.received == []
