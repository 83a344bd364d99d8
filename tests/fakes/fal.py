"""A fake fal queue on 127.0.0.1, as fal's queue docs and fal-client describe it (read
2026-11-28): `POST /{endpoint id}` queues a request and answers `{request_id, status_url,
response_url, cancel_url}` (the URLs drop the endpoint's sub-path); `GET .../requests/{id}/
status` goes IN_QUEUE, IN_PROGRESS, COMPLETED; `GET .../requests/{id}` is the model's output;
`PUT .../requests/{id}/cancel` cancels; plus the CDN URL of each image.

It checks `Authorization: Key <key>` and, for the endpoints it knows, each input against the
endpoint's published schema (stricter than fal about unknown fields, so a misspelt field fails a
test). As on fal, invalid input is accepted into the queue and reported when the output is read:
422 with a `detail` list. The scripted `outcome` decides the rest: completed with a real image,
`nsfw` (fal's safety checker: `has_nsfw_concepts: [true]`), `policy` (422
`content_policy_violation`), `error` (500 runner error, `X-Fal-Retryable: false`), or `never`.
Any request can be scripted to misbehave. Timings are made up.
"""

import base64
import io
import json
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from tests.fakes.http_server import FakeHTTPServer, Received, Reply
from tests.fakes.openai_images import render

API_KEY = "fal-test-key-id:fal-test-key-secret-0123456789"

IMAGE_SIZES = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
RATIOS = {"21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21"}
FLUX = {
    "prompt",
    "image_size",
    "num_inference_steps",
    "seed",
    "guidance_scale",
    "sync_mode",
    "num_images",
    "enable_safety_checker",
    "output_format",
    "acceleration",
}
KONTEXT = {
    "prompt",
    "seed",
    "guidance_scale",
    "sync_mode",
    "num_images",
    "output_format",
    "safety_tolerance",
    "enhance_prompt",
    "aspect_ratio",
}
# The inputs of each endpoint the fake knows, from its page in fal's model API reference.
SCHEMAS: dict[str, set[str]] = {
    "fal-ai/flux/dev": FLUX,
    "fal-ai/flux/schnell": FLUX,
    "fal-ai/flux-pro/v1.1": {
        "prompt",
        "image_size",
        "seed",
        "sync_mode",
        "num_images",
        "enable_safety_checker",
        "output_format",
        "safety_tolerance",
        "enhance_prompt",
    },
    "fal-ai/flux-pro/kontext": KONTEXT | {"image_url"},
    "fal-ai/flux-pro/kontext/text-to-image": KONTEXT,
}


def error_reply(status: int, detail: Any, headers: dict[str, str] | None = None) -> Reply:
    """An error answer in fal's `{"detail": ...}` shape."""
    return Reply(status, json.dumps({"detail": detail}).encode(), headers or {})


def model_error(loc: list[str], message: str, error_type: str) -> dict[str, Any]:
    """One entry of a model error's `detail` list."""
    return {
        "loc": loc,
        "msg": message,
        "type": error_type,
        "url": f"https://docs.fal.ai/errors/#{error_type}",
    }


def rate_limited(retry_after: str = "1") -> Reply:
    """429 with Retry-After: past the concurrent-request limit."""
    return error_reply(429, "Too many concurrent requests.", {"retry-after": retry_after})


def server_error(status: int = 500) -> Reply:
    """A 5xx request error."""
    body = {"detail": "Internal error", "error_type": "internal_error"}
    return Reply(status, json.dumps(body).encode(), {"x-fal-error-type": "internal_error"})


def exhausted_balance() -> Reply:
    """403 for an account out of credit, as fal answers it."""
    return error_reply(
        403,
        "User is locked. Reason: Exhausted balance. Top up your balance at "
        "fal.ai/dashboard/billing.",
    )


def slow(seconds: float) -> Reply:
    """A normal answer that takes `seconds` to start."""
    return Reply(delay_seconds=seconds)


def malformed_json() -> Reply:
    """200 whose body is cut off mid-JSON."""
    return Reply(200, b'{"request_id": "abc", "status_u')


@dataclass
class Request:
    """A queued request: its endpoint, input, the problems its input has, and status reads."""

    id: str
    endpoint: str
    input: dict[str, Any]
    problems: list[dict[str, Any]]
    width: int = 1024
    height: int = 768
    reads: int = 0
    canceled: bool = False


@dataclass
class FakeFal(FakeHTTPServer):
    """The server: set `pending_polls` and `outcome`, script misbehaviour with `script`, read
    what it was sent in `received` and the queued requests in `requests`."""

    api_key: str = API_KEY
    pending_polls: int = 1
    outcome: str = "completed"
    requests: dict[str, Request] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    _scripts: dict[str, deque[Reply]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """Where the adapter points: the queue host, no path."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply, on: str = "submit") -> None:
        """Answer the next `on` requests ("submit", "status", "result" or "cancel") with these
        replies; a reply whose body is None is answered normally once its delay is over."""
        self._scripts.setdefault(on, deque()).extend(replies)

    def requests_to(self, kind: str) -> list[Received]:
        """The requests received of one kind: "submit", "status", "result", "cancel", "file"."""
        return [request for request in self.received if kind_of(request) == kind]

    def respond(self, request: Received) -> Reply:
        kind = kind_of(request)
        script = self._scripts.get(kind)
        reply = script.popleft() if script else Reply()
        if reply.body is None:
            reply = replace(self._answer(kind, request), delay_seconds=reply.delay_seconds)
        return reply

    def _answer(self, kind: str, request: Received) -> Reply:
        if kind == "file":
            data = self.files.get(request.path.rsplit("/", 1)[-1])
            if data is None:
                return error_reply(404, "Not found")
            return Reply(200, data, {"content-type": "image/png"})
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Key "):
            return error_reply(401, "Authentication is required to perform this action.")
        if authorization != f"Key {self.api_key}":
            return error_reply(401, "No user found for Key ID and Secret")
        if kind == "submit":
            return self._submit(request)
        queued = self.requests.get(request_id_of(request.path))
        if queued is None:
            return error_reply(404, "Request not found")
        if kind == "status":
            return self._status(queued)
        if kind == "result":
            return self._result(queued)
        if kind == "cancel":
            queued.canceled = True
            return Reply(202, json.dumps({"status": "CANCELLATION_REQUESTED"}).encode())
        return error_reply(404, "Not found")

    def _submit(self, request: Received) -> Reply:
        endpoint = urlsplit(request.path).path.strip("/")
        if request.body is None:
            return error_reply(422, [model_error(["body"], "Invalid JSON body", "value_error")])
        queued = Request(str(uuid.uuid4()), endpoint, request.body, [])
        queued.problems, size = check_input(endpoint, request.body)
        queued.width, queued.height = size
        self.requests[queued.id] = queued
        base = f"{self.base_url}/{'/'.join(endpoint.split('/')[:2])}/requests/{queued.id}"
        answer = {
            "status": "IN_QUEUE",
            "request_id": queued.id,
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
            "queue_position": 0,
        }
        return Reply(200, json.dumps(answer).encode())

    def _status(self, queued: Request) -> Reply:
        queued.reads += 1
        app_path = "/".join(queued.endpoint.split("/")[:2])
        base = {"response_url": f"{self.base_url}/{app_path}/requests/{queued.id}"}
        if self.outcome == "never" or queued.reads <= self.pending_polls:
            if queued.reads == 1:
                return Reply(
                    200, json.dumps(base | {"status": "IN_QUEUE", "queue_position": 0}).encode()
                )
            return Reply(200, json.dumps(base | {"status": "IN_PROGRESS", "logs": None}).encode())
        completed = base | {"status": "COMPLETED", "logs": None, "metrics": {"inference_time": 0.8}}
        return Reply(200, json.dumps(completed).encode())

    def _result(self, queued: Request) -> Reply:
        if self.outcome == "never" or queued.reads <= self.pending_polls:
            return error_reply(400, "Request is still in progress")
        if queued.problems:
            return error_reply(422, queued.problems)
        if self.outcome == "policy":
            problem = model_error(
                ["body", "prompt"],
                "The content could not be processed because it contained material flagged by "
                "a content checker.",
                "content_policy_violation",
            )
            return error_reply(422, [problem], {"x-fal-retryable": "false"})
        if self.outcome == "error":
            body = {"detail": "Runner error", "error_type": "runner_server_error"}
            return Reply(500, json.dumps(body).encode(), {"x-fal-retryable": "false"})
        nsfw = self.outcome == "nsfw"
        name = f"{queued.id}.png"
        self.files.setdefault(name, render(queued.width, queued.height, "png"))
        output = {
            "images": [
                {
                    "url": f"{self.base_url}/files/{name}",
                    "width": queued.width,
                    "height": queued.height,
                    "content_type": "image/png",
                }
            ],
            "timings": {"inference": 0.8},
            "seed": queued.input.get("seed", 1234),
            "has_nsfw_concepts": [nsfw],
            "prompt": queued.input.get("prompt"),
        }
        return Reply(200, json.dumps(output).encode())


def kind_of(request: Received) -> str:
    """Which of the fake's endpoints a request is for."""
    path = urlsplit(request.path).path
    if request.method == "GET" and path.startswith("/files/"):
        return "file"
    if request.method == "POST":
        return "submit"
    if "/requests/" in path:
        if request.method == "GET" and path.endswith("/status"):
            return "status"
        if request.method == "PUT" and path.endswith("/cancel"):
            return "cancel"
        if request.method == "GET":
            return "result"
    return "other"


def request_id_of(path: str) -> str:
    """The request id in a `.../requests/{id}[/status|/cancel]` path."""
    return urlsplit(path).path.split("/requests/", 1)[1].split("/")[0]


def check_input(
    endpoint: str, fields: dict[str, Any]
) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    """The model errors an endpoint reports for this input, and the size it will make."""
    problems = []
    schema = SCHEMAS.get(endpoint)
    if not isinstance(fields.get("prompt"), str) or not fields["prompt"]:
        problems.append(model_error(["body", "prompt"], "field required", "missing"))
    for name in fields:
        if schema is not None and name not in schema:
            problems.append(
                model_error(["body", name], "extra fields not permitted", "extra_forbidden")
            )
    if fields.get("output_format", "jpeg") not in ("jpeg", "png"):
        problems.append(model_error(["body", "output_format"], "unexpected value", "literal_error"))
    if fields.get("num_images", 1) not in (1, 2, 3, 4):
        problems.append(model_error(["body", "num_images"], "must be 1 to 4", "value_error"))
    size = (1024, 768)
    image_size = fields.get("image_size")
    if isinstance(image_size, str):
        if image_size not in IMAGE_SIZES:
            problems.append(
                model_error(["body", "image_size"], "unexpected value", "literal_error")
            )
        size = IMAGE_SIZES.get(image_size, size)
    elif isinstance(image_size, dict):
        width, height = image_size.get("width"), image_size.get("height")
        if set(image_size) != {"width", "height"} or not all(
            isinstance(v, int) and 0 < v <= 14142 for v in (width, height)
        ):
            problems.append(
                model_error(["body", "image_size"], "width and height required", "value_error")
            )
        else:
            size = (width, height)
    ratio = fields.get("aspect_ratio")
    if ratio is not None:
        if ratio not in RATIOS:
            problems.append(
                model_error(["body", "aspect_ratio"], "unexpected value", "literal_error")
            )
        else:
            ratio_width, ratio_height = (int(part) for part in ratio.split(":"))
            size = (1024, round(1024 * ratio_height / ratio_width))
    if "image_url" in (schema or {}) or (schema is None and "image_url" in fields):
        try:
            size = source_size(fields.get("image_url")) if ratio is None else size
        except ValueError:
            problems.append(
                model_error(["body", "image_url"], "could not load the image", "image_load_error")
            )
    return problems, size


def source_size(uri: object) -> tuple[int, int]:
    """The size of an image given as a data URI."""
    if not isinstance(uri, str) or not uri.startswith("data:image/"):
        raise ValueError("not a data URI")
    try:
        data = base64.b64decode(uri.partition(",")[2], validate=True)
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (ValueError, OSError) as exc:
        raise ValueError("not an image") from exc
