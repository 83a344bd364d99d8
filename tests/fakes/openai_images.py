"""A fake OpenAI Images API on 127.0.0.1: `POST /v1/images/generations` as the openai package
(3.57.0, `types/image_generate_params.py` and `types/images_response.py`) describes it.

It checks the bearer key and the body the way OpenAI does (401 and 400 `invalid_request_error`
answers in OpenAI's `{"error": {...}}` shape, with `param`), answers with real images of the
requested size, records every request, and can be scripted to misbehave: rate limits with
Retry-After, server errors, slow answers, malformed or image-less payloads, moderation blocks.
Token counts in `usage` are made up; only their shape is OpenAI's. No streaming, GIF or SVG.
"""

import base64
import io
import json
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from tests.fakes.http_server import FakeHTTPServer, Received, Reply

API_KEY = "sk-test-fake-openai-0123456789abcdef"

STANDARD_SIZES = {"1024x1024", "1536x1024", "1024x1536"}
# Models the types say take any WIDTHxHEIGHT (multiples of 16, 1:3 to 3:1, up to 3840x2160).
FLEXIBLE_SIZE_MODELS = {
    "gpt-image-2",
    "gpt-image-2-2026-04-21",
    "gpt-image-2.5-sunburst",
    "gpt-image-2.5-sunburst-2026-09-08",
    "gpt-image-2.5-flare",
    "gpt-image-2.5-flare-2026-09-08",
}
# The 2.5 family also takes the two extra quality levels.
EXTRA_QUALITY_MODELS = {name for name in FLEXIBLE_SIZE_MODELS if name.startswith("gpt-image-2.5")}
# Every model the API still serves (ImageModel minus gpt-image-1, dall-e-2 and dall-e-3).
MODELS = FLEXIBLE_SIZE_MODELS | {
    "gpt-image-2.6-sunburst",
    "gpt-image-2.6-flare",
    "gpt-image-1.5",
    "gpt-image-1-mini",
    "chatgpt-image-latest",
}
PARAMETERS = {
    "prompt",
    "background",
    "complexity",
    "frame_count",
    "frame_duration_ms",
    "model",
    "moderation",
    "n",
    "output_compression",
    "output_format",
    "partial_images",
    "quality",
    "response_format",
    "safety_identifier",
    "size",
    "stream",
    "style",
    "svg",
    "user",
}
# Parameters the types call legacy, unsupported for GPT image models.
LEGACY_PARAMETERS = {"response_format", "style"}
MAX_PROMPT_CHARACTERS = 32_000
PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def error_body(
    message: str, error_type: str, code: str | None = None, param: str | None = None
) -> bytes:
    """OpenAI's documented error shape, encoded."""
    error = {"message": message, "type": error_type, "param": param, "code": code}
    return json.dumps({"error": error}).encode()


def error_reply(
    status: int,
    message: str,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """An error answer in OpenAI's shape."""
    return Reply(status, error_body(message, error_type, code, param), headers or {})


def rate_limited(retry_after: str = "1") -> Reply:
    """429 with Retry-After, as OpenAI answers past a rate limit."""
    message = (
        "Rate limit reached for images per minute (IPM): Limit 5, Used 5, Requested 1. "
        f"Please try again in {retry_after}s."
    )
    return error_reply(
        429, message, "requests", "rate_limit_exceeded", headers={"retry-after": retry_after}
    )


def quota_exhausted() -> Reply:
    """429 for an account out of credit: OpenAI's answer that retrying will not fix."""
    message = "You exceeded your current quota, please check your plan and billing details."
    return error_reply(429, message, "insufficient_quota", "insufficient_quota")


def server_error(status: int = 500, retry_after: str | None = None) -> Reply:
    """A 5xx in OpenAI's shape, optionally naming a wait."""
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    message = "The server had an error while processing your request. Sorry about that!"
    return error_reply(status, message, "server_error", headers=headers)


def moderation_blocked() -> Reply:
    """400 from OpenAI's safety system."""
    message = (
        "Your request was rejected by the safety system. If you believe this is an error, "
        "contact us at help.openai.com and include the request ID req_fake."
    )
    return error_reply(400, message, "image_generation_user_error", "moderation_blocked")


def slow(seconds: float) -> Reply:
    """A good answer that takes `seconds` to start."""
    return Reply(delay_seconds=seconds)


def malformed_json() -> Reply:
    """200 whose body is cut off mid-JSON."""
    return Reply(200, b'{"created": 1700000000, "data": [{"b64_json": "iVBOR')


def missing_data() -> Reply:
    """200 that is valid JSON but carries no images."""
    return Reply(200, json.dumps({"created": 1_700_000_000}).encode())


def not_an_image() -> Reply:
    """200 whose b64_json decodes to bytes that are no image."""
    return image_reply(b"this is plain text, not a PNG")


def image_reply(data: bytes) -> Reply:
    """200 carrying `data` as the first image, whatever it is."""
    body = {"created": 1_700_000_000, "data": [{"b64_json": base64.b64encode(data).decode()}]}
    return Reply(200, json.dumps(body).encode())


def usage_for(prompt: str, width: int, height: int, n: int = 1) -> dict[str, Any]:
    """The `usage` the fake reports for `n` images (made-up counts, OpenAI's shape)."""
    text_tokens = len(prompt.split())
    image_tokens = (width // 16) * (height // 16) // 4 * n
    return {
        "input_tokens": text_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": 0},
        "output_tokens": image_tokens,
        "output_tokens_details": {"image_tokens": image_tokens, "text_tokens": 0},
        "total_tokens": text_tokens + image_tokens,
    }


def render(width: int, height: int, image_format: str) -> bytes:
    """A gradient image of the given size, encoded."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, PILLOW_FORMATS[image_format])
    return buffer.getvalue()


class InvalidRequest(Exception):
    """A body OpenAI would refuse with 400: the message, code and parameter."""

    def __init__(self, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


def parse_size(model: str, size: str) -> tuple[int, int]:
    """The pixel size `size` asks of `model`; InvalidRequest if the model does not take it."""
    if size == "auto":
        return 1024, 1024
    match = re.fullmatch(r"(\d+)x(\d+)", size)
    if match:
        width, height = int(match[1]), int(match[2])
        flexible = model in FLEXIBLE_SIZE_MODELS and flexible_size_allowed(width, height)
        if size in STANDARD_SIZES or flexible:
            return width, height
    supported = ", ".join(f"'{s}'" for s in ["auto", *sorted(STANDARD_SIZES)])
    if model in FLEXIBLE_SIZE_MODELS:
        supported += " or WIDTHxHEIGHT in multiples of 16 up to 3840x2160"
    raise InvalidRequest(
        f"Invalid value: '{size}'. Supported values are: {supported}.", "invalid_value", "size"
    )


def flexible_size_allowed(width: int, height: int) -> bool:
    """The limits the types give for any-size models: multiples of 16, 1:3 to 3:1, 3840x2160."""
    long_side, short_side = max(width, height), min(width, height)
    return (
        width % 16 == 0
        and height % 16 == 0
        and long_side <= 3 * short_side
        and long_side <= 3840
        and width * height <= 3840 * 2160
    )


def check_choice(body: dict[str, Any], name: str, allowed: set[Any]) -> None:
    """InvalidRequest unless `body[name]` is absent, null or one of `allowed`."""
    value = body.get(name)
    if value is not None and value not in allowed:
        choices = ", ".join(f"'{v}'" for v in sorted(allowed, key=str))
        raise InvalidRequest(
            f"Invalid value: '{value}'. Supported values are: {choices}.", "invalid_value", name
        )


def validate(body: dict[str, Any]) -> tuple[int, int, str, int]:
    """Check a generation body as OpenAI does: the size, format and count of images to make."""
    check_parameter_names(body)
    check_prompt(body.get("prompt"))
    model = body.get("model")
    if model is None:
        message = "Missing required parameter: 'model'."
        raise InvalidRequest(message, "missing_required_parameter", "model")
    check_choice(body, "model", MODELS)
    n = body.get("n") or 1
    if not isinstance(n, int) or not 1 <= n <= 10:
        raise InvalidRequest(f"Invalid 'n': {n}; expected 1 to 10.", "invalid_value", "n")
    qualities = {"low", "medium", "high", "auto"}
    if model in EXTRA_QUALITY_MODELS:
        qualities |= {"xhigh", "max"}
    check_choice(body, "quality", qualities)
    check_choice(body, "output_format", set(PILLOW_FORMATS))
    check_choice(body, "background", {"transparent", "opaque", "auto"})
    check_choice(body, "moderation", {"low", "auto"})
    check_choice(body, "stream", {False})
    output_format = body.get("output_format") or "png"
    if body.get("background") == "transparent" and output_format == "jpeg":
        message = "Transparent backgrounds need output_format 'png' or 'webp'."
        raise InvalidRequest(message, "invalid_value", "background")
    width, height = parse_size(model, body.get("size") or "auto")
    return width, height, output_format, n


def check_parameter_names(body: dict[str, Any]) -> None:
    """InvalidRequest for a parameter the API does not know, or a legacy one it refuses."""
    for name, value in body.items():
        if name not in PARAMETERS:
            raise InvalidRequest(f"Unknown parameter: '{name}'.", "unknown_parameter", name)
        if name in LEGACY_PARAMETERS and value is not None:
            message = f"The '{name}' parameter is not supported for GPT image models."
            raise InvalidRequest(message, "unsupported_parameter", name)


def check_prompt(prompt: object) -> None:
    """InvalidRequest unless the prompt is a non-empty string within the length limit."""
    if not isinstance(prompt, str) or not prompt:
        message = "Missing required parameter: 'prompt'."
        raise InvalidRequest(message, "missing_required_parameter", "prompt")
    if len(prompt) > MAX_PROMPT_CHARACTERS:
        message = f"Expected a string with maximum length {MAX_PROMPT_CHARACTERS}."
        raise InvalidRequest(message, "string_above_max_length", "prompt")


@dataclass
class FakeOpenAIImages(FakeHTTPServer):
    """The server: use it as an async context manager, script misbehaviour with `script`,
    and read what it was sent in `received`."""

    api_key: str = API_KEY
    _script: deque[Reply] = field(default_factory=deque)

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order; then behave normally. A reply
        whose body is None is answered as the real API would, once its delay is over."""
        self._script.extend(replies)

    def respond(self, request: Received) -> Reply:
        """The next scripted reply, or else what the real API answers; with a request id."""
        reply = self._script.popleft() if self._script else Reply()
        if reply.body is None:
            reply = replace(self._answer(request), delay_seconds=reply.delay_seconds)
        return replace(reply, headers={"x-request-id": f"req_{uuid.uuid4().hex}"} | reply.headers)

    def _answer(self, request: Received) -> Reply:
        """What the real API answers to this request."""
        if (request.method, request.path) != ("POST", "/v1/images/generations"):
            return error_reply(404, f"Invalid URL ({request.method} {request.path})")
        denied = self._check_key(request.headers.get("authorization"))
        if denied is not None:
            return denied
        if request.body is None:
            message = "We could not parse the JSON body of your request."
            return error_reply(400, message)
        try:
            width, height, output_format, n = validate(request.body)
        except InvalidRequest as exc:
            return error_reply(400, exc.message, code=exc.code, param=exc.param)
        return Reply(200, generation(request.body["prompt"], width, height, output_format, n))

    def _check_key(self, authorization: str | None) -> Reply | None:
        if authorization is None or not authorization.startswith("Bearer "):
            message = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return error_reply(401, message)
        key = authorization.removeprefix("Bearer ")
        if key == self.api_key:
            return None
        # OpenAI echoes a masked key: the first characters and the last four.
        masked = f"{key[:8]}{'*' * max(len(key) - 12, 3)}{key[-4:]}"
        message = (
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return error_reply(401, message, code="invalid_api_key")


def generation(prompt: str, width: int, height: int, output_format: str, n: int) -> bytes:
    """An ImagesResponse body with `n` images."""
    encoded = base64.b64encode(render(width, height, output_format)).decode()
    body = {
        "created": int(time.time()),
        "background": "opaque",
        "data": [{"b64_json": encoded} for _ in range(n)],
        "output_format": output_format,
        "quality": "medium",
        "size": f"{width}x{height}",
        "usage": usage_for(prompt, width, height, n),
    }
    return json.dumps(body).encode()
