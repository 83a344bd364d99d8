"""A fake Gemini API on 127.0.0.1: `POST /v1beta/models/{model}:generateContent` for the image
models, shaped as the google-genai SDK (3.3.0, `types.py` and the Gemini Developer API
converters in `models.py`) describes the request and response.

It checks the `x-goog-api-key` header (403 PERMISSION_DENIED without one, 400 INVALID_ARGUMENT
with reason API_KEY_INVALID for a wrong one, as the real API answers), the field names of the
request, the parts (text or inlineData with a supported mimeType and real base64), the number of
images per prompt, and the image config against each model's aspect ratios and size tiers. It
answers with a PNG of the documented size and `usageMetadata` in the documented shape (token
counts per the model pages), records every request, and can be scripted to misbehave.
"""

import base64
import binascii
import io
import json
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from tests.fakes.http_server import FakeHTTPServer, Received, Reply

API_KEY = "AIzaFakeGeminiKey-0123456789abcdefghij"

REQUEST_FIELDS = {
    "contents",
    "generationConfig",
    "safetySettings",
    "systemInstruction",
    "tools",
    "toolConfig",
    "cachedContent",
}
GENERATION_CONFIG_FIELDS = {
    "responseModalities",
    "imageConfig",
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "seed",
    "thinkingConfig",
}
IMAGE_CONFIG_FIELDS = {"aspectRatio", "imageSize"}
INLINE_MEDIA_TYPES = {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}

# The documented pixel sizes, "ratio": "1K 2K 4K", kept apart from the adapter's tables so the
# two check each other.
GEMINI_3_SIZES = {
    "1:1": "1024x1024 2048x2048 4096x4096",
    "2:3": "848x1264 1696x2528 3392x5056",
    "3:2": "1264x848 2528x1696 5056x3392",
    "3:4": "896x1200 1792x2400 3584x4800",
    "4:3": "1200x896 2400x1792 4800x3584",
    "4:5": "928x1152 1856x2304 3712x4608",
    "5:4": "1152x928 2304x1856 4608x3712",
    "9:16": "768x1376 1536x2752 3072x5504",
    "16:9": "1376x768 2752x1536 5504x3072",
    "21:9": "1584x672 3168x1344 6336x2688",
}
GEMINI_2_5_SIZES = {
    "1:1": "1024x1024",
    "2:3": "832x1248",
    "3:2": "1248x832",
    "3:4": "864x1184",
    "4:3": "1184x864",
    "4:5": "896x1152",
    "5:4": "1152x896",
    "9:16": "768x1344",
    "16:9": "1344x768",
    "21:9": "1536x672",
}


@dataclass(frozen=True)
class FakeModel:
    """What the fake knows of a model: size tiers with output tokens, sizes, images per prompt."""

    tokens: dict[str, int]
    sizes: dict[str, str]
    max_input_images: int

    def size(self, aspect: str, tier: str) -> tuple[int, int]:
        """The pixel size of an aspect ratio at a tier."""
        text = self.sizes[aspect].split()[list(self.tokens).index(tier)]
        width, height = text.split("x")
        return int(width), int(height)


MODELS = {
    "gemini-3.1-flash-image": FakeModel({"1K": 1120, "2K": 1680, "4K": 2520}, GEMINI_3_SIZES, 14),
    "gemini-3-pro-image": FakeModel({"1K": 1120, "2K": 1120, "4K": 2000}, GEMINI_3_SIZES, 14),
    "gemini-3.1-flash-lite-image": FakeModel({"1K": 1120}, GEMINI_3_SIZES, 14),
    "gemini-2.5-flash-image": FakeModel({"1K": 1290}, GEMINI_2_5_SIZES, 3),
}


def status_body(code: int, status: str, message: str, details: list | None = None) -> bytes:
    """A google.rpc.Status error body, as the Gemini API sends it."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return json.dumps({"error": error}).encode()


def error_reply(
    code: int,
    status: str,
    message: str,
    details: list | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """An error answer in the Gemini API's shape."""
    return Reply(code, status_body(code, status, message, details), headers or {})


def rate_limited(retry_after: str = "1") -> Reply:
    """429 RESOURCE_EXHAUSTED for a per-minute limit, with RetryInfo and a Retry-After header."""
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                }
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after}s"},
    ]
    message = "Resource has been exhausted (e.g. check quota)."
    return error_reply(429, "RESOURCE_EXHAUSTED", message, details, {"retry-after": retry_after})


def daily_quota_exhausted() -> Reply:
    """429 RESOURCE_EXHAUSTED for a per-day quota: waiting seconds will not help."""
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}],
        }
    ]
    message = "You exceeded your current quota, please check your plan and billing details."
    return error_reply(429, "RESOURCE_EXHAUSTED", message, details)


def server_error(code: int = 500) -> Reply:
    """A 5xx: INTERNAL (500) or UNAVAILABLE (503)."""
    if code == 503:
        return error_reply(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    return error_reply(code, "INTERNAL", "An internal error has occurred.")


def slow(seconds: float) -> Reply:
    """A good answer that takes `seconds` to start."""
    return Reply(delay_seconds=seconds)


def malformed_json() -> Reply:
    """200 whose body is cut off mid-JSON."""
    return Reply(200, b'{"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "ima')


def prompt_blocked(reason: str = "PROHIBITED_CONTENT") -> Reply:
    """200 with no candidates: the prompt itself was blocked."""
    body = {"promptFeedback": {"blockReason": reason}, "usageMetadata": {"promptTokenCount": 9}}
    return Reply(200, json.dumps(body).encode())


def image_refused(finish_reason: str = "IMAGE_SAFETY") -> Reply:
    """200 whose candidate stopped for safety, with no image."""
    body = {
        "candidates": [{"content": {"role": "model"}, "finishReason": finish_reason, "index": 0}],
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    return Reply(200, json.dumps(body).encode())


def text_only() -> Reply:
    """200 where the model talked instead of drawing (finishReason STOP, no image part)."""
    parts = [{"text": "I can describe that scene, but here is no image."}]
    body = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]}
    return Reply(200, json.dumps(body).encode())


def not_an_image() -> Reply:
    """200 whose inlineData decodes to bytes that are no image."""
    data = base64.b64encode(b"plain text, not a PNG").decode()
    parts = [{"inlineData": {"mimeType": "image/png", "data": data}}]
    body = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]}
    return Reply(200, json.dumps(body).encode())


class InvalidRequest(Exception):
    """A request the API refuses with 400 INVALID_ARGUMENT."""


def render_png(width: int, height: int) -> bytes:
    """A gradient image of the given size, as PNG."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def check_parts(parts: object, max_images: int) -> tuple[int, int]:
    """The number of text characters and images in the parts; InvalidRequest if a part is not
    exactly one of text or inlineData, or an image is unsupported or not base64."""
    if not isinstance(parts, list) or not parts:
        raise InvalidRequest(
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty."
        )
    characters = images = 0
    for part in parts:
        if not isinstance(part, dict) or len(part) != 1 or not ({"text", "inlineData"} & set(part)):
            raise InvalidRequest(
                f"Invalid JSON payload received. Unknown part: {json.dumps(part)[:80]}"
            )
        if "text" in part:
            characters += len(str(part["text"]))
            continue
        inline = part["inlineData"]
        if not isinstance(inline, dict) or set(inline) != {"mimeType", "data"}:
            raise InvalidRequest("inlineData must have exactly mimeType and data.")
        if inline["mimeType"] not in INLINE_MEDIA_TYPES:
            raise InvalidRequest(f"Unsupported MIME type: {inline['mimeType']}")
        try:
            base64.b64decode(inline["data"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise InvalidRequest(
                "Invalid value at 'contents[0].parts[1].inline_data.data' (TYPE_BYTES), "
                "Base64 decoding failed"
            ) from exc
        images += 1
    if images > max_images:
        raise InvalidRequest(f"Too many images in the request: {images} > {max_images}.")
    return characters, images


def validate(model_name: str, body: dict[str, Any]) -> tuple[int, int, int]:
    """Check a request as the API does: the size of the image to make and its token count."""
    model = MODELS[model_name]
    for name in body:
        if name not in REQUEST_FIELDS:
            raise InvalidRequest(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
            )
    contents = body.get("contents")
    if not isinstance(contents, list) or len(contents) != 1:
        raise InvalidRequest("* GenerateContentRequest.contents: contents is not specified")
    content = contents[0]
    if not isinstance(content, dict) or content.get("role", "user") not in ("user", "model"):
        raise InvalidRequest("Please use a valid role: user, model.")
    characters, _ = check_parts(content.get("parts"), model.max_input_images)
    if not characters:
        raise InvalidRequest("A text part with the instruction is required.")
    config = body.get("generationConfig") or {}
    for name in config:
        if name not in GENERATION_CONFIG_FIELDS:
            raise InvalidRequest(
                f'Invalid JSON payload received. Unknown name "{name}" at '
                "'generation_config': Cannot find field."
            )
    modalities = [str(m).upper() for m in config.get("responseModalities") or ["TEXT", "IMAGE"]]
    if "IMAGE" not in modalities or not set(modalities) <= {"TEXT", "IMAGE"}:
        raise InvalidRequest("responseModalities must include IMAGE for this model.")
    image_config = config.get("imageConfig") or {}
    for name in image_config:
        if name not in IMAGE_CONFIG_FIELDS:
            raise InvalidRequest(
                f'Invalid JSON payload received. Unknown name "{name}" at '
                "'generation_config.image_config': Cannot find field."
            )
    tier = image_config.get("imageSize", "1K")
    if tier not in model.tokens:
        raise InvalidRequest(f"imageSize {tier!r} is not supported by {model_name}.")
    aspect = image_config.get("aspectRatio", "1:1")
    if aspect not in model.sizes:
        raise InvalidRequest(f"aspectRatio {aspect!r} is not supported by {model_name}.")
    width, height = model.size(aspect, tier)
    return width, height, model.tokens[tier]


@dataclass
class FakeGemini(FakeHTTPServer):
    """The server: use it as an async context manager, script misbehaviour with `script`, and
    read what it was sent in `received`."""

    api_key: str = API_KEY
    _script: deque[Reply] = field(default_factory=deque)

    @property
    def base_url(self) -> str:
        """The API base URL as the SDK takes it, `/v1beta` included."""
        return f"http://127.0.0.1:{self.port}/v1beta"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order; then behave normally. A reply
        whose body is None is answered as the real API would, once its delay is over."""
        self._script.extend(replies)

    def respond(self, request: Received) -> Reply:
        reply = self._script.popleft() if self._script else Reply()
        if reply.body is None:
            reply = replace(self._answer(request), delay_seconds=reply.delay_seconds)
        return reply

    def _answer(self, request: Received) -> Reply:
        """What the real API answers to this request."""
        prefix, _, model = request.path.partition("/v1beta/models/")
        model, _, method = model.partition(":")
        if request.method != "POST" or prefix or method != "generateContent":
            return error_reply(404, "NOT_FOUND", f"Invalid URL ({request.method} {request.path})")
        denied = self._check_key(request.headers.get("x-goog-api-key"))
        if denied is not None:
            return denied
        if model not in MODELS:
            message = (
                f"models/{model} is not found for API version v1beta, or is not supported for "
                "generateContent."
            )
            return error_reply(404, "NOT_FOUND", message)
        if not request.headers.get("content-type", "").startswith("application/json") or (
            request.body is None
        ):
            return error_reply(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        try:
            width, height, tokens = validate(model, request.body)
        except InvalidRequest as exc:
            return error_reply(400, "INVALID_ARGUMENT", str(exc))
        return Reply(200, generation(model, width, height, tokens))

    def _check_key(self, key: str | None) -> Reply | None:
        if not key:
            message = (
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API."
            )
            return error_reply(403, "PERMISSION_DENIED", message)
        if key == self.api_key:
            return None
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ]
        return error_reply(
            400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details
        )


def generation(model: str, width: int, height: int, image_tokens: int) -> bytes:
    """A GenerateContentResponse with one image."""
    data = base64.b64encode(render_png(width, height)).decode()
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"inlineData": {"mimeType": "image/png", "data": data}}],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": usage(image_tokens),
        "modelVersion": model,
        "responseId": uuid.uuid4().hex[:22],
    }
    return json.dumps(body).encode()


def usage(image_tokens: int, prompt_tokens: int = 12) -> dict[str, Any]:
    """The usageMetadata the fake reports (made-up prompt count, documented image tokens)."""
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": image_tokens,
        "totalTokenCount": prompt_tokens + image_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": image_tokens}],
    }
