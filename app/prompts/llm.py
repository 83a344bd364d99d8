"""LLM-backed optimization over any OpenAI-compatible chat endpoint, falling back to the rules.

The LLM only proposes slot values. The same reading of the brief, consistency rules and rendering
as the rules mode apply to its answer, so the brief survives verbatim and contradictions go.
"""

import asyncio
import json
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import httpx

from app.prompts.optimizer import (
    OptimizedPrompt,
    OptimizeRequest,
    Rendering,
    build_prompt,
    make_request,
)
from app.prompts.slots import FILLABLE_SLOTS, SLOT_NAMES, read_brief
from app.prompts.usecases import detect_use_case

SYSTEM_PROMPT = """\
You expand short image briefs into structured prompt slots.
Answer with one JSON object with exactly these keys: subject, setting, composition, lighting, \
style, mood, palette, quality, text, constraints. Each value is a short English phrase (details \
separated by commas) or null.
- For slots the brief already states (listed in "given"), copy the brief's own words.
- Fill the other slots with concrete choices that suit the use case, the style preset and the \
aspect ratio.
- Never contradict the brief: no daylight in a night scene, no photographic or camera terms for a \
drawn, painted or rendered style, no colours for a black-and-white image.
- composition: camera angle and framing only; the layout for the aspect ratio is added separately.
- text: only text the brief asks to render, else null. constraints: only what the brief requires \
or forbids, else null.
- For an edit, use null for everything that should stay as it is in the source image, and for \
what its reference images set ("references": a style reference sets style, lighting, mood and \
palette; a color reference the palette)."""


class LLMUnavailable(Exception):
    """The LLM's answer cannot be used; the message says why in one sentence."""


async def optimize_prompt_llm(
    brief: str,
    *,
    base_url: str,
    model: str,
    api_key: str | None,
    timeout_seconds: float = 8.0,
    client: httpx.AsyncClient | None = None,
    rendering: Rendering = "sentences",
    max_chars: int = 4000,
    aspect_ratio: tuple[int, int] | None = None,
    style: str | None = None,
    keep: Sequence[str] = (),
    references: Sequence[str] = (),
    negative_prompt: str | None = None,
    is_edit: bool = False,
) -> OptimizedPrompt:
    """Turn a brief into a prompt with an LLM's slot proposals, or the rules if the LLM fails."""
    request = make_request(
        brief,
        rendering=rendering,
        max_chars=max_chars,
        aspect_ratio=aspect_ratio,
        style=style,
        keep=keep,
        references=references,
        negative_prompt=negative_prompt,
        is_edit=is_edit,
    )
    task = describe_task(request, style=style, keep=keep)
    try:
        # One deadline for the whole exchange: httpx's own timeouts restart on every read.
        async with asyncio.timeout(timeout_seconds):
            proposals = await ask_for_slots(
                task,
                base_url=base_url,
                model=model,
                api_key=api_key,
                timeout_seconds=timeout_seconds,
                client=client,
            )
    except TimeoutError:
        reason = f"The LLM did not answer within {timeout_seconds:g} seconds (timeout)."
    except LLMUnavailable as error:
        reason = str(error)
    else:
        return build_prompt(request, proposals=proposals, mode="llm")
    return build_prompt(request, proposals={}, mode="rules", fallback_reason=reason)


def describe_task(
    request: OptimizeRequest, *, style: str | None, keep: Sequence[str]
) -> dict[str, Any]:
    """What the LLM is told about this brief, besides the system prompt."""
    ratio = request.aspect_ratio
    return {
        "brief": request.brief.strip(),
        "use_case": detect_use_case(request.brief).name,
        "given": list(read_brief(request.brief.strip()).given),
        "style_preset": style,
        "aspect_ratio": f"{ratio[0]}:{ratio[1]}" if ratio else None,
        "is_edit": request.is_edit,
        "keep": list(dict.fromkeys(keep)),
        "references": list(request.references),
    }


async def ask_for_slots(
    task: dict[str, Any],
    *,
    base_url: str,
    model: str,
    api_key: str | None,
    timeout_seconds: float,
    client: httpx.AsyncClient | None,
) -> dict[str, str]:
    """POST the chat completion and return the proposed slot values it carries."""
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": json.dumps(task, ensure_ascii=False)},
        ],
        "response_format": {"type": "json_object"},
        "temperature": 0,
    }
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    url = f"{base_url.rstrip('/')}/chat/completions"
    async with AsyncExitStack() as stack:
        http = client or await stack.enter_async_context(httpx.AsyncClient())
        try:
            response = await http.post(url, json=body, headers=headers, timeout=timeout_seconds)
        except httpx.TimeoutException as error:
            raise TimeoutError from error
        except httpx.HTTPError as error:
            raise LLMUnavailable(
                f"Could not reach the LLM endpoint ({type(error).__name__})."
            ) from error
    return slot_proposals(response)


def slot_proposals(response: httpx.Response) -> dict[str, str]:
    """The non-empty slot values in a chat completion's reply; LLMUnavailable if malformed."""
    if not response.is_success:
        raise LLMUnavailable(f"The LLM endpoint answered HTTP {response.status_code}.")
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, LookupError, TypeError) as error:
        raise LLMUnavailable("The LLM response had no choices[0].message.content.") from error
    if not isinstance(content, str):
        raise LLMUnavailable("The LLM reply had no text content.")
    try:
        answer = json.loads(content)
    except ValueError as error:
        raise LLMUnavailable("The LLM reply was not valid JSON.") from error
    if not isinstance(answer, dict) or not answer.keys() & set(SLOT_NAMES):
        raise LLMUnavailable("The LLM reply was not a JSON object of slots.")
    wrong = [slot for slot in SLOT_NAMES if not isinstance(answer.get(slot), str | None)]
    if wrong:
        raise LLMUnavailable(f"The LLM reply's {wrong[0]} slot was not a string or null.")
    return {
        slot: answer[slot].strip()
        for slot in FILLABLE_SLOTS
        if isinstance(answer.get(slot), str) and answer[slot].strip()
    }
