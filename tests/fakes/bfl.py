"""A fake Black Forest Labs API on 127.0.0.1: `POST /v1/{model}` and the polling URL it returns
(`GET /v1/get_result?id=`), as the BFL API reference and its errors page describe them (read
2026-11-28), plus the delivery URL of each finished sample.

It checks the `x-key` header and each body against the model's documented parameters (stricter
than BFL, which ignores unknown fields: here a misspelt field fails a test instead of being
dropped), answers `{id, polling_url, cost, ...}`, reports Pending for `pending_polls` polls, then
the scripted `outcome`: Ready with a real image of the size asked, Request Moderated, Content
Moderated, Error, or Pending for ever. Any request can instead be scripted to misbehave (rate
limits with Retry-After, 5xx, slow or malformed answers). Credit costs are made up; their shape
is BFL's.
"""

import base64
import binascii
import io
import json
import math
import re
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from tests.fakes.http_server import FakeHTTPServer, Received, Reply
from tests.fakes.openai_images import render

API_KEY = "bfl-test-fake-key-0123456789abcdef"

COMMON = {"prompt", "seed", "safety_tolerance", "output_format", "webhook_url", "webhook_secret"}
KONTEXT = COMMON | {
    "input_image",
    "input_image_2",
    "input_image_3",
    "input_image_4",
    "aspect_ratio",
    "prompt_upsampling",
}
FLUX_2 = COMMON | {"width", "height"} | {f"input_image_{n}" for n in range(2, 9)} | {"input_image"}
# The body parameters of each model, from its page in the API reference.
PARAMETERS: dict[str, set[str]] = {
    "flux-pro-1.1": COMMON | {"image_prompt", "width", "height", "prompt_upsampling"},
    "flux-dev": COMMON
    | {"image_prompt", "width", "height", "steps", "prompt_upsampling", "guidance"},
    "flux-pro-1.1-ultra": COMMON
    | {"prompt_upsampling", "aspect_ratio", "raw", "image_prompt", "image_prompt_strength"},
    "flux-kontext-pro": KONTEXT,
    "flux-kontext-max": KONTEXT,
    "flux-2-pro": FLUX_2,
    "flux-2-flex": FLUX_2 | {"prompt_upsampling", "guidance", "steps", "input_image_blob_path"},
}
# Credits per image (1 credit = $0.01); the FLUX.2 models add half their base per extra MP.
CREDITS = {
    "flux-pro-1.1": 4,
    "flux-dev": 2.5,
    "flux-pro-1.1-ultra": 6,
    "flux-kontext-pro": 4,
    "flux-kontext-max": 8,
    "flux-2-pro": 3,
    "flux-2-flex": 6,
}
GRID_MODELS = {"flux-pro-1.1", "flux-dev"}
RATIO_MODELS = {"flux-pro-1.1-ultra", "flux-kontext-pro", "flux-kontext-max"}


def error_reply(status: int, detail: Any, headers: dict[str, str] | None = None) -> Reply:
    """An error answer in BFL's (FastAPI's) `{"detail": ...}` shape."""
    return Reply(status, json.dumps({"detail": detail}).encode(), headers or {})


def rate_limited(retry_after: str = "1") -> Reply:
    """429 with Retry-After: too many active tasks."""
    return error_reply(429, "Too many active tasks. Please wait.", {"retry-after": retry_after})


def server_error(status: int = 500) -> Reply:
    """A 5xx."""
    return error_reply(status, "Internal Server Error")


def out_of_credits() -> Reply:
    """402: the account has no credits left."""
    return error_reply(402, "Insufficient credits. Add credits at https://api.bfl.ai.")


def slow(seconds: float) -> Reply:
    """A normal answer that takes `seconds` to start."""
    return Reply(delay_seconds=seconds)


def malformed_json() -> Reply:
    """200 whose body is cut off mid-JSON."""
    return Reply(200, b'{"id": "abc", "polling_u')


class Invalid(Exception):
    """A body BFL would refuse with 422, with the field it is about."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name, self.message = field_name, message


@dataclass
class Task:
    """A submitted generation: the model, the size it will make, and how often it was polled."""

    model: str
    body: dict[str, Any]
    width: int
    height: int
    polls: int = 0


@dataclass
class FakeBFL(FakeHTTPServer):
    """The server: set `pending_polls` and `outcome`, script misbehaviour with `script`, read
    what it was sent in `received` and the tasks it holds in `tasks`."""

    api_key: str = API_KEY
    pending_polls: int = 1
    outcome: str = "ready"
    tasks: dict[str, Task] = field(default_factory=dict)
    samples: dict[str, bytes] = field(default_factory=dict)
    _scripts: dict[str, deque[Reply]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """Where the adapter points: BFL's base URL has no path."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply, on: str = "submit") -> None:
        """Answer the next `on` requests ("submit" or "poll") with these replies, in order; a
        reply whose body is None is answered normally once its delay is over."""
        self._scripts.setdefault(on, deque()).extend(replies)

    def unscript(self, on: str = "submit") -> None:
        """Drop the replies still scripted for `on` requests: they are answered normally again."""
        self._scripts.pop(on, None)

    def requests_to(self, kind: str) -> list[Received]:
        """The requests received of one kind: "submit", "poll" or "sample"."""
        return [request for request in self.received if kind_of(request) == kind]

    def respond(self, request: Received) -> Reply:
        kind = kind_of(request)
        script = self._scripts.get(kind)
        reply = script.popleft() if script else Reply()
        if reply.body is None:
            reply = replace(self._answer(kind, request), delay_seconds=reply.delay_seconds)
        return reply

    def _answer(self, kind: str, request: Received) -> Reply:
        if kind == "sample":
            data = self.samples.get(urlsplit(request.path).path.rsplit("/", 1)[-1])
            if data is None:
                return error_reply(404, "Not Found")
            return Reply(200, data, {"content-type": "image/png"})
        if request.headers.get("x-key") != self.api_key:
            return error_reply(403, "Not authenticated - Invalid Authentication")
        if kind == "submit":
            return self._submit(request)
        if kind == "poll":
            return self._poll(request)
        return error_reply(404, "Not Found")

    def _submit(self, request: Received) -> Reply:
        model = urlsplit(request.path).path.removeprefix("/v1/")
        if model not in PARAMETERS:
            return error_reply(404, "Not Found")
        if request.body is None:
            return error_reply(422, [validation("body", "Input should be a valid dictionary")])
        try:
            width, height = check_body(model, request.body)
        except Invalid as exc:
            return error_reply(422, [validation(exc.field_name, exc.message)])
        task_id = str(uuid.uuid4())
        self.tasks[task_id] = Task(model, request.body, width, height)
        megapixels = round(width * height / 1_000_000, 2)
        credits = CREDITS[model]
        if model.startswith("flux-2"):
            credits += credits / 2 * max(0, math.ceil(megapixels) - 1)
        answer = {
            "id": task_id,
            "polling_url": f"{self.base_url}/v1/get_result?id={task_id}",
            "cost": credits,
            "input_mp": 0.0,
            "output_mp": megapixels,
        }
        return Reply(200, json.dumps(answer).encode())

    def _poll(self, request: Received) -> Reply:
        task_id = parse_qs(urlsplit(request.path).query).get("id", [""])[0]
        task = self.tasks.get(task_id)
        if task is None:
            return Reply(200, json.dumps({"id": task_id, "status": "Task not found"}).encode())
        task.polls += 1
        if self.outcome == "never" or task.polls <= self.pending_polls:
            return status_reply(task_id, "Pending", progress=0.5)
        if self.outcome == "request_moderated":
            return status_reply(
                task_id,
                "Request Moderated",
                details={"Moderation Reasons": ["Derivative Works Filter"]},
            )
        if self.outcome == "content_moderated":
            return status_reply(
                task_id, "Content Moderated", details={"Moderation Reasons": ["NSFW"]}
            )
        if self.outcome == "error":
            return status_reply(task_id, "Error")
        name = f"{task_id}.png"
        self.samples.setdefault(name, render(task.width, task.height, "png"))
        result = {
            "sample": f"{self.base_url}/delivery/{name}",
            "prompt": task.body["prompt"],
            "seed": task.body.get("seed") or 1234,
            "start_time": 1_764_300_000.0,
            "end_time": 1_764_300_004.2,
            "duration": 4.2,
        }
        return status_reply(task_id, "Ready", result=result)


def kind_of(request: Received) -> str:
    """Which of the fake's endpoints a request is for."""
    path = urlsplit(request.path).path
    if request.method == "GET" and path == "/v1/get_result":
        return "poll"
    if request.method == "GET" and path.startswith("/delivery/"):
        return "sample"
    if request.method == "POST" and path.startswith("/v1/"):
        return "submit"
    return "other"


def status_reply(task_id: str, status: str, **fields: Any) -> Reply:
    """A get_result answer."""
    body = {"id": task_id, "status": status, "result": None, "progress": None} | fields
    return Reply(200, json.dumps(body).encode())


def validation(field_name: str, message: str) -> dict[str, Any]:
    """One FastAPI validation error."""
    return {"loc": ["body", field_name], "msg": message, "type": "value_error"}


def check_body(model: str, body: dict[str, Any]) -> tuple[int, int]:
    """Check a submit body as the model's reference page describes it; the output size."""
    for name in body:
        if name not in PARAMETERS[model]:
            raise Invalid(name, "Extra inputs are not permitted")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise Invalid("prompt", "Field required")
    if body.get("output_format") not in (None, "jpeg", "png"):
        raise Invalid("output_format", "Input should be 'jpeg' or 'png'")
    seed = body.get("seed")
    if seed is not None and not isinstance(seed, int):
        raise Invalid("seed", "Input should be a valid integer")
    steps = body.get("steps", 28)
    if not isinstance(steps, int) or not 1 <= steps <= 50:
        raise Invalid("steps", "Input should be between 1 and 50")
    tolerance = body.get("safety_tolerance", 2)
    if not isinstance(tolerance, int) or not 0 <= tolerance <= 6:
        raise Invalid("safety_tolerance", "Input should be between 0 and 6")
    inputs = [
        decode_input(name, body[name])
        for name in sorted(body)
        if name.startswith("input_image") and body[name]
    ]
    if model in GRID_MODELS:
        return grid_side(body, "width", 1024, 32, 256, 1440), grid_side(
            body, "height", 768, 32, 256, 1440
        )
    if model in RATIO_MODELS:
        megapixels = 4.0 if model == "flux-pro-1.1-ultra" else 1.0
        if "aspect_ratio" not in body and inputs:
            return inputs[0].size
        return size_for_ratio(body.get("aspect_ratio") or "16:9", megapixels)
    width, height = body.get("width") or 0, body.get("height") or 0
    if not (width and height) and inputs:
        return inputs[0].size
    return grid_side(body, "width", 1024, 16, 64, 4096), grid_side(
        body, "height", 1024, 16, 64, 4096
    )


def grid_side(body: dict[str, Any], name: str, default: int, step: int, low: int, high: int) -> int:
    """A width or height: an integer in low..high and a multiple of step."""
    value = body.get(name, default)
    if not isinstance(value, int) or not low <= value <= high:
        raise Invalid(name, f"Input should be between {low} and {high}")
    if value % step:
        raise Invalid(name, f"Must be a multiple of {step}")
    return value


def size_for_ratio(ratio: object, megapixels: float) -> tuple[int, int]:
    """The pixels BFL makes for an aspect ratio: about `megapixels`, on a 32 grid."""
    match = re.fullmatch(r"(\d+):(\d+)", ratio) if isinstance(ratio, str) else None
    if match is None:
        raise Invalid("aspect_ratio", "Aspect ratio must be in the format 'width:height'")
    value = int(match[1]) / int(match[2])
    if not 9 / 21 - 1e-9 <= value <= 21 / 9 + 1e-9:
        raise Invalid("aspect_ratio", "Aspect ratio must be between 21:9 and 9:21")
    area = megapixels * 1024 * 1024
    width = round(math.sqrt(area * value) / 32) * 32
    return width, round(width / value / 32) * 32


def decode_input(name: str, value: object) -> Image.Image:
    """An input image sent as base64 (or a URL, which the fake does not fetch)."""
    if not isinstance(value, str):
        raise Invalid(name, "Input should be a valid string")
    if value.startswith(("http://", "https://")):
        return Image.new("RGB", (1024, 1024))
    try:
        data = base64.b64decode(value, validate=True)
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.copy()
    except (binascii.Error, OSError) as exc:
        raise Invalid(name, "Could not decode the base64 image") from exc
