"""A fake Stability AI v2beta Stable Image API on 127.0.0.1: the generate (ultra, core, sd3),
edit (inpaint, outpaint, erase, search-and-replace, remove-background) and upscale (fast,
conservative) endpoints as Stability's REST API reference describes them.

It checks the bearer key (401 `unauthorized`), the `Accept` header (image/* or application/json),
that the body is multipart/form-data, and each endpoint's part names: required ones present,
unknown ones refused, files where files belong, values in their documented ranges (aspect ratio,
seed, output format, strength, SD 3.5 model). It answers as the API does: image bytes with the
`finish-reason` and `seed` headers for image/*, `{image, finish_reason, seed}` for JSON, and
`{"id", "name", "errors"}` for errors. It records every request, with its form fields and files,
and can be scripted to misbehave.
"""

import asyncio
import base64
import email.parser
import email.policy
import io
import json
import random
import uuid
from collections import deque
from dataclasses import dataclass, field, replace

from PIL import Image

from tests.fakes.http_server import FakeHTTPServer, Received, Reply, write_response

API_KEY = "sk-fake-stability-0123456789abcdefABCDEF"

ASPECT_RATIOS = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "21:9": (1536, 640),
    "9:21": (640, 1536),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "5:4": (1088, 896),
    "4:5": (896, 1088),
}
SD3_MODELS = {"sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash"}
OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
MAX_SEED = 4_294_967_294


@dataclass(frozen=True)
class Endpoint:
    """One endpoint's parts: required, optional, and which are files."""

    required: frozenset[str]
    optional: frozenset[str]
    files: frozenset[str] = frozenset({"image"})


def endpoint(required: str, optional: str, files: str = "image") -> Endpoint:
    return Endpoint(
        frozenset(required.split()), frozenset(optional.split()), frozenset(files.split())
    )


COMMON = "negative_prompt seed output_format style_preset"
ENDPOINTS = {
    "/v2beta/stable-image/generate/ultra": endpoint(
        "prompt", f"aspect_ratio image strength {COMMON}"
    ),
    "/v2beta/stable-image/generate/core": endpoint("prompt", f"aspect_ratio {COMMON}"),
    "/v2beta/stable-image/generate/sd3": endpoint(
        "prompt", f"mode aspect_ratio image strength model cfg_scale {COMMON}"
    ),
    "/v2beta/stable-image/edit/inpaint": endpoint(
        "image prompt", f"mask grow_mask {COMMON}", "image mask"
    ),
    "/v2beta/stable-image/edit/outpaint": endpoint(
        "image", "left right up down prompt creativity seed output_format style_preset"
    ),
    "/v2beta/stable-image/edit/erase": endpoint(
        "image", "mask grow_mask seed output_format", "image mask"
    ),
    "/v2beta/stable-image/edit/search-and-replace": endpoint(
        "image prompt search_prompt", f"grow_mask {COMMON}"
    ),
    "/v2beta/stable-image/edit/remove-background": endpoint("image", "output_format"),
    "/v2beta/stable-image/upscale/fast": endpoint("image", "output_format"),
    "/v2beta/stable-image/upscale/conservative": endpoint(
        "image prompt", "negative_prompt seed creativity output_format"
    ),
}


@dataclass
class FormPart:
    """One part of a multipart body: its text, or a file's name, media type and bytes."""

    value: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.value.decode()


@dataclass
class MultipartReceived(Received):
    """A request with its multipart parts, by name (None when the body was not multipart)."""

    form: dict[str, FormPart] | None = None


def error_body(name: str, *errors: str) -> bytes:
    """Stability's error shape."""
    return json.dumps({"id": uuid.uuid4().hex, "name": name, "errors": list(errors)}).encode()


def error_reply(status: int, name: str, *errors: str, headers: dict | None = None) -> Reply:
    return Reply(status, error_body(name, *errors), headers or {})


def rate_limited(retry_after: str = "1") -> Reply:
    """429 past the rate limit, naming a wait."""
    message = "You have exceeded the rate limit of 150 requests within a 10 second period."
    return error_reply(429, "rate_limit_exceeded", message, headers={"retry-after": retry_after})


def server_error(status: int = 500) -> Reply:
    return error_reply(status, "internal_error", "An unexpected server error has occurred.")


def slow(seconds: float) -> Reply:
    """A good answer that takes `seconds` to start."""
    return Reply(delay_seconds=seconds)


def moderation_refusal() -> Reply:
    """403 from the content moderation system."""
    message = (
        "Your request was flagged by our content moderation system, as a result your request "
        "was denied and you were not charged."
    )
    return error_reply(403, "content_moderation", message)


def out_of_credits() -> Reply:
    """402: the account has no credits left."""
    message = "You lack sufficient credits to make this request. Please purchase more credits."
    return error_reply(402, "payment_required", message)


def malformed_image() -> Reply:
    """200 image/png whose bytes are cut off."""
    return Reply(
        200, render(64, 64)[:40], {"content-type": "image/png", "finish-reason": "SUCCESS"}
    )


def json_garbage() -> Reply:
    """200 that is not an image at all (a truncated JSON body)."""
    return Reply(200, b'{"image": "iVBOR', {"content-type": "application/json"})


def content_filtered() -> Reply:
    """A marker: the next real answer comes with finish-reason CONTENT_FILTERED (blurred)."""
    return Reply(headers={"finish-reason": "CONTENT_FILTERED"})


class InvalidRequest(Exception):
    """A body the API refuses with 400 bad_request."""


def render(width: int, height: int, image_format: str = "png", alpha: bool = False) -> bytes:
    """A gradient image of the given size, encoded."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGBA" if alpha else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, OUTPUT_FORMATS[image_format])
    return buffer.getvalue()


def parse_multipart(content_type: str, body: bytes) -> dict[str, FormPart]:
    """The parts of a multipart/form-data body, by name."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    if not message.is_multipart():
        raise InvalidRequest("content-type: must be multipart/form-data")
    parts: dict[str, FormPart] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise InvalidRequest("a part has no name")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        parts[str(name)] = FormPart(
            payload, filename, part.get_content_type() if filename else None
        )
    return parts


def image_of(part: FormPart, name: str) -> Image.Image:
    """The image a file part carries; InvalidRequest if it is not one."""
    if part.filename is None:
        raise InvalidRequest(f"{name}: must be a file, not a text field")
    try:
        with Image.open(io.BytesIO(part.value)) as image:
            image.load()
            return image.copy()
    except OSError as exc:
        raise InvalidRequest(f"{name}: unable to decode image") from exc


def number(form: dict[str, FormPart], name: str, low: float, high: float) -> float | None:
    """A numeric field within its range, or None if absent."""
    if name not in form:
        return None
    try:
        value = float(form[name].text)
    except ValueError as exc:
        raise InvalidRequest(f"{name}: must be a number") from exc
    if not low <= value <= high:
        raise InvalidRequest(f"{name}: must be between {low:g} and {high:g}")
    return value


def validate(path: str, form: dict[str, FormPart]) -> tuple[int, int, bool]:
    """Check a form against its endpoint: the size of the image to return, and whether it has
    a transparent background."""
    spec = ENDPOINTS[path]
    for name in spec.required - set(form):
        raise InvalidRequest(f"{name}: required")
    for name in set(form) - spec.required - spec.optional:
        raise InvalidRequest(f"{name}: unknown field")
    for name, part in form.items():
        if name not in spec.files and part.filename is not None:
            raise InvalidRequest(f"{name}: must be a text field")
    if "prompt" in form and not 1 <= len(form["prompt"].text) <= 10_000:
        raise InvalidRequest("prompt: must be 1 to 10000 characters")
    if "output_format" in form and form["output_format"].text not in OUTPUT_FORMATS:
        raise InvalidRequest("output_format: must be one of jpeg, png, webp")
    if "seed" in form and not form["seed"].text.isdigit():
        raise InvalidRequest("seed: must be an integer")
    number(form, "seed", 0, MAX_SEED)
    number(form, "grow_mask", 0, 100)
    source = image_of(form["image"], "image") if "image" in form else None
    if "mask" in form:
        image_of(form["mask"], "mask")
    if path.startswith("/v2beta/stable-image/generate/"):
        return validate_generate(path, form, source)
    assert source is not None
    width, height = source.size
    if path.endswith("/outpaint"):
        sides = [int(number(form, side, 0, 2000) or 0) for side in ("left", "right", "up", "down")]
        if not any(sides):
            raise InvalidRequest("at least one of left, right, up or down must be non-zero")
        return width + sides[0] + sides[1], height + sides[2] + sides[3], False
    if path.endswith("/upscale/fast"):
        return width * 4, height * 4, False
    if path.endswith("/upscale/conservative"):
        return width * 2, height * 2, False
    return width, height, path.endswith("/remove-background")


def validate_generate(
    path: str, form: dict[str, FormPart], source: Image.Image | None
) -> tuple[int, int, bool]:
    """The generate endpoints: text-to-image at an aspect ratio, or image-to-image."""
    aspect = form["aspect_ratio"].text if "aspect_ratio" in form else "1:1"
    if aspect not in ASPECT_RATIOS:
        raise InvalidRequest(f"aspect_ratio: must be one of {', '.join(ASPECT_RATIOS)}")
    if path.endswith("/sd3"):
        model = form["model"].text if "model" in form else "sd3.5-large"
        if model not in SD3_MODELS:
            raise InvalidRequest(f"model: must be one of {', '.join(sorted(SD3_MODELS))}")
        if model == "sd3.5-large-turbo" and "negative_prompt" in form:
            raise InvalidRequest("negative_prompt: sd3.5-large-turbo does not take one")
        mode = form["mode"].text if "mode" in form else "text-to-image"
        if mode not in ("text-to-image", "image-to-image"):
            raise InvalidRequest("mode: must be text-to-image or image-to-image")
        if (mode == "image-to-image") != (source is not None):
            raise InvalidRequest("image: required in image-to-image mode, and only there")
    if source is not None:
        if number(form, "strength", 0, 1) is None:
            raise InvalidRequest("strength: required when image is given")
        if "aspect_ratio" in form:
            raise InvalidRequest("aspect_ratio: not used with an image")
        return source.width, source.height, False
    if "strength" in form:
        raise InvalidRequest("strength: only used with an image")
    return *ASPECT_RATIOS[aspect], False


@dataclass
class FakeStability(FakeHTTPServer):
    """The server: use it as an async context manager, script misbehaviour with `script`, and
    read what it was sent in `received` (MultipartReceived, with each request's form)."""

    api_key: str = API_KEY
    _script: deque[Reply] = field(default_factory=deque)

    @property
    def base_url(self) -> str:
        """The API's base URL (paths start with /v2beta)."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order; then behave normally. A reply
        whose body is None is answered as the real API would, after its delay and with its
        headers."""
        self._script.extend(replies)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The shared reader keeps JSON bodies only; this API speaks multipart.
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await read_multipart_request(reader)
            await self.counted_send(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def send(self, request: Received, writer: asyncio.StreamWriter) -> None:
        reply = self._script.popleft() if self._script else Reply()
        if reply.body is None:
            answer = self._answer(request)
            reply = replace(
                answer, delay_seconds=reply.delay_seconds, headers=answer.headers | reply.headers
            )
        await asyncio.sleep(reply.delay_seconds)
        await write_response(writer, reply.status, reply.body or b"", reply.headers)

    def _answer(self, request: Received) -> Reply:
        """What the real API answers to this request."""
        assert isinstance(request, MultipartReceived)
        if request.method != "POST" or request.path not in ENDPOINTS:
            return error_reply(404, "not_found", f"{request.method} {request.path}: not found")
        authorization = request.headers.get("authorization", "")
        if authorization != f"Bearer {self.api_key}":
            key = authorization.removeprefix("Bearer ")
            return error_reply(401, "unauthorized", f"Incorrect API key provided: {key}")
        accept = request.headers.get("accept", "image/*")
        if accept not in ("image/*", "application/json"):
            return error_reply(400, "bad_request", "accept: must be image/* or application/json")
        if request.form is None:
            return error_reply(400, "bad_request", "content-type: must be multipart/form-data")
        try:
            width, height, alpha = validate(request.path, request.form)
        except InvalidRequest as exc:
            return error_reply(400, "bad_request", str(exc))
        seed = int(request.form["seed"].text) if "seed" in request.form else 0
        seed = seed or random.randint(1, MAX_SEED)
        image_format = (
            request.form["output_format"].text if "output_format" in request.form else "png"
        )
        data = render(width, height, image_format, alpha)
        if accept == "application/json":
            body = {
                "image": base64.b64encode(data).decode(),
                "finish_reason": "SUCCESS",
                "seed": seed,
            }
            return Reply(200, json.dumps(body).encode())
        headers = {"content-type": f"image/{image_format}", "finish-reason": "SUCCESS"}
        spec = ENDPOINTS[request.path]
        if "seed" in spec.required | spec.optional:
            headers["seed"] = str(seed)
        return Reply(200, data, headers)


async def read_multipart_request(reader: asyncio.StreamReader) -> MultipartReceived:
    """Read one HTTP/1.1 request, keeping a multipart body's parts."""
    method, path, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raw_body = await reader.readexactly(int(headers.get("content-length", "0")))
    content_type = headers.get("content-type", "")
    form = None
    if content_type.startswith("multipart/form-data"):
        try:
            form = parse_multipart(content_type, raw_body)
        except InvalidRequest:
            form = None
    return MultipartReceived(method, path, headers, None, form)
