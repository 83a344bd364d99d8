"""A fake OpenAI Images API on 127.0.0.1: `POST /v1/images/generations` (JSON) and
`POST /v1/images/edits` (multipart) as the openai package (3.57.0, `types/image_generate_params.py`,
`types/image_edit_params.py`, `types/images_response.py`, and `resources/images.py` for how the
client encodes the multipart form) describes them.

It checks the bearer key and the body the way OpenAI does (401 and 400 `invalid_request_error`
answers in OpenAI's `{"error": {...}}` shape, with `param`), answers with real images of the
requested size, records every request (an edit's parsed form in `forms`), and can be scripted to
misbehave: rate limits with Retry-After, server errors, slow answers, malformed or image-less
payloads, moderation blocks; or, with a `FaultMix`, misbehave at random in set proportions.
Token counts in `usage` are made up; only their shape is OpenAI's.
No streaming, GIF or SVG.

With `compatible=True` it plays an OpenAI-compatible self-hosted server instead (LocalAI and
similar): its own model names, the legacy `response_format` taken, and with `links=True` images
answered as `url`s it serves itself, whatever `response_format` asked for.
"""

import asyncio
import base64
import contextvars
import io
import json
import random
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from app.imaging.codecs import sniff_format
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
# image_generate_params.py: the 2.5 family makes transparent backgrounds; gpt-image-2 and its
# snapshot in preview. Other models are refused here, as the fake's stricter reading.
TRANSPARENT_MODELS = EXTRA_QUALITY_MODELS | {"gpt-image-2", "gpt-image-2-2026-04-21"}
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
# ImageEditParams's text fields (files go in `image`, `image[]`, `mask` and `markup` parts);
# nested `svg` travels as `svg[model]` and `svg[reasoning][effort]`.
EDIT_PARAMETERS = {
    "prompt",
    "background",
    "complexity",
    "frame_count",
    "frame_duration_ms",
    "input_fidelity",
    "model",
    "n",
    "output_compression",
    "output_format",
    "partial_images",
    "quality",
    "response_format",
    "safety_identifier",
    "size",
    "stream",
    "svg[model]",
    "svg[reasoning][effort]",
    "user",
}
EDIT_FILE_PARTS = {"image", "image[]", "mask", "markup"}
MAX_EDIT_IMAGES = 16
MAX_MASK_BYTES = 4 * 1024 * 1024
# image_edit_params.py: input_fidelity "Supports high and low on gpt-image-1.5; gpt-image-1-mini
# supports only low. For gpt-image-2, omit this parameter."
INPUT_FIDELITY = {"gpt-image-1.5": {"high", "low"}, "gpt-image-1-mini": {"low"}}
# Parameters the types call legacy, unsupported for GPT image models.
LEGACY_PARAMETERS = {"response_format", "style"}
MAX_PROMPT_CHARACTERS = 32_000
PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
# Output image tokens per image by quality at the standard sizes, from the table in OpenAI's
# image generation guide (GPT Image).
IMAGE_TOKENS = {
    level: {"1024x1024": square, "1536x1024": wide, "1024x1536": wide}
    for level, square, wide in (("low", 272, 408), ("medium", 1056, 1584), ("high", 4160, 6240))
}


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


def not_base64(text: str) -> Reply:
    """200 whose b64_json is `text`, which is not base64."""
    body = {"created": 1_700_000_000, "data": [{"b64_json": text}]}
    return Reply(200, json.dumps(body).encode())


def not_an_image() -> Reply:
    """200 whose b64_json decodes to bytes that are no image."""
    return image_reply(b"this is plain text, not a PNG")


def image_reply(data: bytes) -> Reply:
    """200 carrying `data` as the first image, whatever it is."""
    body = {"created": 1_700_000_000, "data": [{"b64_json": base64.b64encode(data).decode()}]}
    return Reply(200, json.dumps(body).encode())


@dataclass
class FaultMix:
    """Faults drawn at random (from `seed`) for each request: these shares of 500s, 429s with
    Retry-After `retry_after`, answers held `slow_seconds` (past the caller's time limit), and
    cut-off JSON; the rest are answered normally. `served` counts each kind sent."""

    server_errors: float = 0.2
    rate_limits: float = 0.1
    slow: float = 0.05
    cut_off: float = 0.05
    retry_after: str = "1"
    slow_seconds: float = 4.0
    seed: int = 14
    served: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def next_reply(self) -> Reply:
        """The reply for the next request; a body of None means a normal answer."""
        draw = self._random.random()
        kinds = (
            ("server_error", self.server_errors, lambda: server_error(500)),
            ("rate_limit", self.rate_limits, lambda: rate_limited(self.retry_after)),
            ("slow", self.slow, lambda: slow(self.slow_seconds)),
            ("cut_off", self.cut_off, malformed_json),
        )
        for kind, share, reply in kinds:
            if draw < share:
                self.served[kind] = self.served.get(kind, 0) + 1
                return reply()
            draw -= share
        self.served["ok"] = self.served.get("ok", 0) + 1
        return Reply()


def usage_for(
    prompt: str, width: int, height: int, n: int = 1, input_images: int = 0, quality: str = "auto"
) -> dict[str, Any]:
    """The `usage` the fake reports for `n` images made from `input_images` images, in OpenAI's
    shape: output tokens per image from OpenAI's table for a standard size and quality (`auto`
    made as medium), made-up counts otherwise."""
    text_tokens = len(prompt.split())
    level = "medium" if quality == "auto" else quality
    per_image = IMAGE_TOKENS.get(level, {}).get(f"{width}x{height}")
    if per_image is None:
        per_image = (width // 16) * (height // 16) // 4
    image_tokens = per_image * n
    input_image_tokens = 323 * input_images
    return {
        "input_tokens": text_tokens + input_image_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": input_image_tokens},
        "output_tokens": image_tokens,
        "output_tokens_details": {"image_tokens": image_tokens, "text_tokens": 0},
        "total_tokens": text_tokens + image_tokens,
    }


def render(width: int, height: int, image_format: str, transparent: bool = False) -> bytes:
    """A gradient image of the given size, encoded; with `transparent`, its left half clear."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    if transparent:
        alpha = Image.new("L", (width, height), 255)
        alpha.paste(0, (0, 0, width // 2, height))
        image.putalpha(alpha)
    buffer = io.BytesIO()
    image.save(buffer, PILLOW_FORMATS[image_format])
    return buffer.getvalue()


class InvalidRequest(Exception):
    """A body OpenAI would refuse with 400: the message, code and parameter."""

    def __init__(self, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


def parse_size(model: str, size: str, any_size: bool = False) -> tuple[int, int]:
    """The pixel size `size` asks of `model`; InvalidRequest if the model does not take it.
    `any_size` takes every WxH from 64 to 4096 a side, as self-hosted servers do."""
    if size == "auto":
        return 1024, 1024
    match = re.fullmatch(r"(\d+)x(\d+)", size)
    if match:
        width, height = int(match[1]), int(match[2])
        if any_size and min(width, height) >= 64 and max(width, height) <= 4096:
            return width, height
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


def validate(
    body: dict[str, Any], models: set[str] = MODELS, compatible: bool = False
) -> tuple[int, int, str, int]:
    """Check a generation body as OpenAI does: the size, format and count of images to make.
    `compatible` checks as a compatible server does: legacy parameters and any size taken."""
    check_parameter_names(body, PARAMETERS, compatible)
    check_choice(body, "moderation", {"low", "auto"})
    return check_common(body, models, compatible)


def check_common(
    body: dict[str, Any], models: set[str], compatible: bool = False
) -> tuple[int, int, str, int]:
    """What generations and edits check alike: prompt, model, n, quality, format, background,
    size. The size, format and count of images to make."""
    check_prompt(body.get("prompt"))
    model = body.get("model")
    if model is None:
        message = "Missing required parameter: 'model'."
        raise InvalidRequest(message, "missing_required_parameter", "model")
    check_choice(body, "model", models)
    n = body.get("n") or 1
    if not isinstance(n, int) or not 1 <= n <= 10:
        raise InvalidRequest(f"Invalid 'n': {n}; expected 1 to 10.", "invalid_value", "n")
    qualities = {"low", "medium", "high", "auto"}
    if model in EXTRA_QUALITY_MODELS:
        qualities |= {"xhigh", "max"}
    check_choice(body, "quality", qualities)
    check_choice(body, "output_format", set(PILLOW_FORMATS))
    compression = body.get("output_compression")
    if compression is not None and (
        not isinstance(compression, int) or not 0 <= compression <= 100
    ):
        message = f"Invalid 'output_compression': {compression}; expected 0 to 100."
        raise InvalidRequest(message, "invalid_value", "output_compression")
    check_choice(body, "background", {"transparent", "opaque", "auto"})
    check_choice(body, "stream", {False})
    check_choice(body, "response_format", {"b64_json", "url"})
    output_format = body.get("output_format") or "png"
    if body.get("background") == "transparent" and output_format == "jpeg":
        message = "Transparent backgrounds need output_format 'png' or 'webp'."
        raise InvalidRequest(message, "invalid_value", "background")
    if (
        body.get("background") == "transparent"
        and not compatible
        and model not in TRANSPARENT_MODELS
    ):
        message = f"Transparent backgrounds are not supported for {model}."
        raise InvalidRequest(message, "unsupported_value", "background")
    if compression is not None and output_format == "png":
        message = "output_compression is only supported with output_format 'webp' or 'jpeg'."
        raise InvalidRequest(message, "unsupported_parameter", "output_compression")
    width, height = parse_size(model, body.get("size") or "auto", compatible)
    return width, height, output_format, n


def check_parameter_names(body: dict[str, Any], known: set[str], legacy: bool = False) -> None:
    """InvalidRequest for a parameter the API does not know, or a legacy one it refuses."""
    for name, value in body.items():
        if name not in known:
            raise InvalidRequest(f"Unknown parameter: '{name}'.", "unknown_parameter", name)
        if name in LEGACY_PARAMETERS and value is not None and not legacy:
            message = f"The '{name}' parameter is not supported for GPT image models."
            raise InvalidRequest(message, "unsupported_parameter", name)


@dataclass(frozen=True)
class FilePart:
    """A file part of a multipart form: its part name, file name, declared type and bytes."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Form:
    """A multipart request as received: its path, content type, text fields in order, and files
    in order."""

    path: str
    content_type: str
    fields: list[tuple[str, str]]
    files: list[FilePart]

    @property
    def field_names(self) -> list[str]:
        """The text fields' names, in order."""
        return [name for name, _ in self.fields]

    @property
    def file_names(self) -> list[str]:
        """The file parts' names, in order (`image[]` once per image)."""
        return [part.name for part in self.files]


def parse_multipart(content_type: str, body: bytes) -> tuple[list[tuple[str, str]], list[FilePart]]:
    """The text fields and file parts of a multipart/form-data body (RFC 7578); InvalidRequest
    when it is not one."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or match is None:
        message = "Expected a multipart/form-data request with a boundary."
        raise InvalidRequest(message, "invalid_request")
    delimiter = b"--" + match[1].encode("latin-1")
    sections = body.split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise InvalidRequest("The multipart body is not terminated.", "invalid_request")
    fields: list[tuple[str, str]] = []
    files: list[FilePart] = []
    for section in sections[1:-1]:
        head, separator, content = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator or not content.endswith(b"\r\n"):
            raise InvalidRequest("A multipart part is malformed.", "invalid_request")
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in head.decode().split("\r\n"))
        )
        parameters = dict(re.findall(r'(\w+)="([^"]*)"', headers.get("content-disposition", "")))
        if "name" not in parameters:
            raise InvalidRequest("A multipart part has no name.", "invalid_request")
        data = content[:-2]
        if "filename" in parameters:
            part_type = headers.get("content-type")
            files.append(FilePart(parameters["name"], parameters["filename"], part_type, data))
        else:
            fields.append((parameters["name"], data.decode()))
    return fields, files


def edit_body(fields: list[tuple[str, str]]) -> dict[str, Any]:
    """The text fields of an edit as the API reads them: numbers as numbers, `false` as False;
    InvalidRequest for a field sent twice."""
    body: dict[str, Any] = {}
    for name, value in fields:
        if name in body:
            raise InvalidRequest(f"Duplicate parameter: '{name}'.", "invalid_value", name)
        if name in {"n", "output_compression", "partial_images", "frame_count"}:
            try:
                body[name] = int(value)
            except ValueError:
                message = f"Invalid '{name}': expected an integer, got '{value}'."
                raise InvalidRequest(message, "invalid_type", name) from None
        else:
            body[name] = {"false": False, "true": True}.get(value, value)
    return body


def validate_edit(
    form: Form, models: set[str] = MODELS, compatible: bool = False
) -> tuple[int, int, str, int, int]:
    """Check an edit as OpenAI does: the fields, the images (one `image` or up to 16 `image[]`
    parts, never both), a mask that is a PNG with alpha the size of the first image, and
    input_fidelity only where the model takes it. The size, format and count of images to make,
    and how many images came in."""
    body = edit_body(form.fields)
    check_parameter_names(body, EDIT_PARAMETERS, compatible)
    for part in form.files:
        if part.name not in EDIT_FILE_PARTS:
            raise InvalidRequest(
                f"Unknown parameter: '{part.name}'.", "unknown_parameter", part.name
            )
    images = check_images(form.files)
    check_mask(form.files, images[0])
    model = body.get("model")
    fidelity = body.get("input_fidelity")
    if fidelity is not None and model in MODELS:
        allowed = INPUT_FIDELITY.get(model)
        if allowed is None:
            message = f"The 'input_fidelity' parameter is not supported for model '{model}'."
            raise InvalidRequest(message, "unsupported_parameter", "input_fidelity")
        check_choice(body, "input_fidelity", allowed)
    width, height, output_format, n = check_common(body, models, compatible)
    if body.get("size") in (None, "auto"):
        width, height = images[0].size
    return width, height, output_format, n, len(images)


def check_images(files: list[FilePart]) -> list[Image.Image]:
    """The images to edit, decoded; InvalidRequest for none, too many, a mix of `image` and
    `image[]`, or a file that is not a PNG, WebP or JPEG."""
    names = {part.name for part in files if part.name in ("image", "image[]")}
    if not names:
        raise InvalidRequest(
            "Missing required parameter: 'image'.", "missing_required_parameter", "image"
        )
    if len(names) > 1:
        message = "Send either 'image' or 'image[]', not both."
        raise InvalidRequest(message, "invalid_value", "image")
    parts = [part for part in files if part.name in names]
    if names == {"image"} and len(parts) > 1:
        raise InvalidRequest("Duplicate parameter: 'image'.", "invalid_value", "image")
    if len(parts) > MAX_EDIT_IMAGES:
        message = f"You can provide up to {MAX_EDIT_IMAGES} images; got {len(parts)}."
        raise InvalidRequest(message, "invalid_value", "image")
    images = []
    for part in parts:
        if sniff_format(part.data) is None:
            message = "Invalid image file. Supported formats are 'png', 'webp' and 'jpg'."
            raise InvalidRequest(message, "invalid_image_format", "image")
        with Image.open(io.BytesIO(part.data)) as opened:
            opened.load()
            images.append(opened.copy())
    return images


def check_mask(files: list[FilePart], first: Image.Image) -> None:
    """InvalidRequest unless the mask, if any, is one PNG under 4 MB with an alpha channel and
    the first image's dimensions."""
    masks = [part for part in files if part.name == "mask"]
    if not masks:
        return
    if len(masks) > 1 or any(part.name == "markup" for part in files):
        raise InvalidRequest("Send one 'mask', and no 'markup' with it.", "invalid_value", "mask")
    data = masks[0].data
    if sniff_format(data) != "png" or len(data) >= MAX_MASK_BYTES:
        message = "Invalid mask image: it must be a valid PNG file, less than 4MB."
        raise InvalidRequest(message, "invalid_image_format", "mask")
    with Image.open(io.BytesIO(data)) as mask:
        has_alpha = mask.mode in ("RGBA", "LA") or "transparency" in mask.info
        size = mask.size
    if not has_alpha:
        raise InvalidRequest(
            "Invalid mask image: it must have an alpha channel.", "invalid_value", "mask"
        )
    if size != first.size:
        message = f"Invalid mask image: its size {size} must match the image's {first.size}."
        raise InvalidRequest(message, "invalid_value", "mask")


def check_prompt(prompt: object) -> None:
    """InvalidRequest unless the prompt is a non-empty string within the length limit."""
    if not isinstance(prompt, str) or not prompt:
        message = "Missing required parameter: 'prompt'."
        raise InvalidRequest(message, "missing_required_parameter", "prompt")
    if len(prompt) > MAX_PROMPT_CHARACTERS:
        message = f"Expected a string with maximum length {MAX_PROMPT_CHARACTERS}."
        raise InvalidRequest(message, "string_above_max_length", "prompt")


# The raw bytes of the request being handled, for the multipart forms `read_request` leaves
# unparsed.
_RAW_REQUEST: contextvars.ContextVar["RecordingReader"] = contextvars.ContextVar("raw_request")


class RecordingReader:
    """A stream reader that keeps a copy of every byte read through it."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self.data = bytearray()

    async def readline(self) -> bytes:
        line = await self._reader.readline()
        self.data += line
        return line

    async def readexactly(self, count: int) -> bytes:
        chunk = await self._reader.readexactly(count)
        self.data += chunk
        return chunk

    def body(self) -> bytes:
        """The bytes after the head."""
        return bytes(self.data).partition(b"\r\n\r\n")[2]


@dataclass
class FakeOpenAIImages(FakeHTTPServer):
    """The server: use it as an async context manager, script misbehaviour with `script`,
    and read what it was sent in `received` (and an edit's parsed form in `forms`).

    `api_key` None takes requests without one; `models` are the model names it serves;
    `compatible` and `links` make it a self-hosted OpenAI-compatible server (see the module).
    `sent` holds the encoded file of every image it answered with, in order. With `faults`,
    requests past the script meet that mix of faults."""

    api_key: str | None = API_KEY
    models: set[str] = field(default_factory=lambda: set(MODELS))
    compatible: bool = False
    links: bool = False
    faults: FaultMix | None = None
    forms: list[Form] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    _script: deque[Reply] = field(default_factory=deque)
    _files: dict[str, bytes] = field(default_factory=dict)

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order; then behave normally. A reply
        whose body is None is answered as the real API would, once its delay is over."""
        self._script.extend(replies)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        recording = RecordingReader(reader)
        token = _RAW_REQUEST.set(recording)
        try:
            await super()._handle(recording, writer)  # type: ignore[arg-type]
        finally:
            _RAW_REQUEST.reset(token)

    def respond(self, request: Received) -> Reply:
        """The next scripted reply, or else what the real API answers; with a request id. An
        edit's form is parsed and recorded first, whatever the answer."""
        form = self._record_form(request)
        if request.method == "GET" and request.path.startswith("/v1/files/"):
            return self._file(request.path.removeprefix("/v1/files/"))
        if self._script:
            reply = self._script.popleft()
        else:
            reply = self.faults.next_reply() if self.faults else Reply()
        if reply.body is None:
            reply = replace(self._answer(request, form), delay_seconds=reply.delay_seconds)
        return replace(reply, headers={"x-request-id": f"req_{uuid.uuid4().hex}"} | reply.headers)

    def _record_form(self, request: Received) -> Form | InvalidRequest | None:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/"):
            return None
        try:
            fields, files = parse_multipart(content_type, _RAW_REQUEST.get().body())
        except InvalidRequest as exc:
            return exc
        form = Form(request.path, content_type, fields, files)
        self.forms.append(form)
        return form

    def _answer(self, request: Received, form: Form | InvalidRequest | None) -> Reply:
        """What the real API answers to this request."""
        route = (request.method, request.path)
        if route not in {("POST", "/v1/images/generations"), ("POST", "/v1/images/edits")}:
            return error_reply(404, f"Invalid URL ({request.method} {request.path})")
        denied = self._check_key(request.headers.get("authorization"))
        if denied is not None:
            return denied
        try:
            if request.path.endswith("/edits"):
                return self._edit(form)
            return self._generate(request)
        except InvalidRequest as exc:
            return error_reply(400, exc.message, code=exc.code, param=exc.param)

    def _generate(self, request: Received) -> Reply:
        if request.body is None:
            raise InvalidRequest(
                "We could not parse the JSON body of your request.", "invalid_json"
            )
        width, height, output_format, n = validate(request.body, self.models, self.compatible)
        return self._images(request.body, width, height, output_format, n, input_images=0)

    def _edit(self, form: Form | InvalidRequest | None) -> Reply:
        if form is None:
            message = "Expected a multipart/form-data request for /images/edits."
            raise InvalidRequest(message, "invalid_request")
        if isinstance(form, InvalidRequest):
            raise form
        width, height, output_format, n, count = validate_edit(form, self.models, self.compatible)
        return self._images(edit_body(form.fields), width, height, output_format, n, count)

    def _images(
        self,
        body: dict[str, Any],
        width: int,
        height: int,
        output_format: str,
        n: int,
        input_images: int,
    ) -> Reply:
        rendered = render(width, height, output_format, body.get("background") == "transparent")
        self.sent.extend([rendered] * n)
        if self.links:
            name = f"{uuid.uuid4().hex}.{output_format}"
            self._files[name] = rendered
            data = [{"url": f"{self.base_url}/files/{name}"} for _ in range(n)]
        else:
            data = [{"b64_json": base64.b64encode(rendered).decode()} for _ in range(n)]
        quality = body.get("quality") or "auto"
        usage = usage_for(body["prompt"], width, height, n, input_images, quality)
        return Reply(
            200,
            images_response(
                data,
                width,
                height,
                output_format,
                usage,
                body.get("background") or "auto",
                body.get("quality") or "auto",
            ),
        )

    def _file(self, name: str) -> Reply:
        data = self._files.get(name)
        if data is None:
            return error_reply(404, f"No file {name}")
        media_type = "image/" + name.rpartition(".")[2]
        return Reply(200, data, {"content-type": media_type})

    def _check_key(self, authorization: str | None) -> Reply | None:
        if self.api_key is None:
            return None
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


def images_response(
    data: list[dict[str, str]],
    width: int,
    height: int,
    output_format: str,
    usage: dict[str, Any],
    background: str = "auto",
    quality: str = "auto",
) -> bytes:
    """An ImagesResponse body, echoing the background and quality asked for (`auto` made as
    opaque and medium)."""
    body = {
        "created": int(time.time()),
        "background": "transparent" if background == "transparent" else "opaque",
        "data": data,
        "output_format": output_format,
        "quality": "medium" if quality == "auto" else quality,
        "size": f"{width}x{height}",
        "usage": usage,
    }
    return json.dumps(body).encode()
