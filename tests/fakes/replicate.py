"""A fake Replicate predictions API on 127.0.0.1, as replicate.com's HTTP docs and the
replicate-python client describe it (read 2026-11-28): `POST /v1/models/{owner}/{name}/
predictions`, `POST /v1/predictions` with a `version`, `GET /v1/predictions/{id}`, `POST
/v1/predictions/{id}/cancel`, plus the delivery URL of each output.

It checks the bearer token and the body (`{"input": {...}}`, and for the models it knows, each
input against that model's published schema), answers with prediction objects that go starting,
processing, then the scripted `outcome`: succeeded with real images (a list of URLs or one URL,
as the model does), failed by the safety checker, failed otherwise, canceled, or processing for
ever. `Prefer: wait` is honoured only when the prediction is already due to finish (the real
API holds the request up to N seconds; the fake answers at once). Errors are problem details;
any request can be scripted to misbehave. Timings in `metrics` are made up.
"""

import base64
import io
import json
import math
import re
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from tests.fakes.http_server import FakeHTTPServer, Received, Reply
from tests.fakes.openai_images import render

API_KEY = "r8_test_fake_replicate_token_0123456789"

FLUX_RATIOS = {"1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"}
# The published input schemas of the models the fake knows: field -> allowed values (None: any).
SCHEMAS: dict[str, dict[str, set[Any] | None]] = {
    "black-forest-labs/flux-schnell": {
        "prompt": None,
        "aspect_ratio": FLUX_RATIOS,
        "seed": None,
        "output_format": {"webp", "jpg", "png"},
        "output_quality": None,
        "num_outputs": {1, 2, 3, 4},
        "megapixels": {"1", "0.25"},
        "go_fast": {True, False},
        "num_inference_steps": {1, 2, 3, 4},
        "disable_safety_checker": {True, False},
    },
    "black-forest-labs/flux-1.1-pro": {
        "prompt": None,
        "aspect_ratio": FLUX_RATIOS | {"custom"},
        "width": None,
        "height": None,
        "seed": None,
        "output_format": {"webp", "jpg", "png"},
        "output_quality": None,
        "safety_tolerance": {1, 2, 3, 4, 5, 6},
        "prompt_upsampling": {True, False},
        "image_prompt": None,
    },
    "black-forest-labs/flux-kontext-pro": {
        "prompt": None,
        "input_image": None,
        "aspect_ratio": FLUX_RATIOS | {"match_input_image"},
        "seed": None,
        "output_format": {"jpg", "png"},
        "safety_tolerance": {0, 1, 2, 3, 4, 5, 6},
        "prompt_upsampling": {True, False},
    },
}
# Models whose output is a list of URLs; the others give one URL.
LIST_OUTPUT = {"black-forest-labs/flux-schnell"}
TOP_LEVEL = {"input", "version", "webhook", "webhook_completed", "webhook_events_filter", "stream"}
VERSION_ID = re.compile(r"[0-9a-f]{64}")
NSFW_ERROR = "NSFW content detected. Try running it again, or try a different prompt."


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> Reply:
    """An error answer as Replicate sends them: RFC 7807 problem details."""
    body = {"title": title, "detail": detail, "status": status}
    return Reply(status, json.dumps(body).encode(), headers or {})


def rate_limited(retry_after: str = "1") -> Reply:
    """429 with Retry-After, as the rate-limits page shows it."""
    return Reply(
        429,
        json.dumps({"detail": "Request was throttled. Your rate limit resets in ~30s."}).encode(),
        {"retry-after": retry_after},
    )


def server_error(status: int = 500) -> Reply:
    """A 5xx."""
    return problem(status, "Internal Server Error", "Something went wrong.")


def insufficient_credit() -> Reply:
    """402: the account is out of credit."""
    return problem(
        402,
        "Insufficient credit",
        "You have insufficient credit to run this model. Go to "
        "https://replicate.com/account/billing#billing to purchase credit.",
    )


def slow(seconds: float) -> Reply:
    """A normal answer that takes `seconds` to start."""
    return Reply(delay_seconds=seconds)


def malformed_json() -> Reply:
    """201 whose body is cut off mid-JSON."""
    return Reply(201, b'{"id": "abc", "status": "start')


class Invalid(Exception):
    """An input Replicate refuses with 422."""


@dataclass
class Prediction:
    """A prediction the fake holds: what it runs, the size it makes, how often it was read."""

    id: str
    model: str
    version: str
    input: dict[str, Any]
    width: int
    height: int
    reads: int = 0
    canceled: bool = False


@dataclass
class FakeReplicate(FakeHTTPServer):
    """The server: set `pending_polls` and `outcome`, script misbehaviour with `script`, read
    what it was sent in `received` and the predictions in `predictions`."""

    api_key: str = API_KEY
    pending_polls: int = 1
    outcome: str = "succeeded"
    predictions: dict[str, Prediction] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    _scripts: dict[str, deque[Reply]] = field(default_factory=dict)

    def script(self, *replies: Reply, on: str = "create") -> None:
        """Answer the next `on` requests ("create", "get" or "cancel") with these replies; a
        reply whose body is None is answered normally once its delay is over."""
        self._scripts.setdefault(on, deque()).extend(replies)

    def requests_to(self, kind: str) -> list[Received]:
        """The requests received of one kind: "create", "get", "cancel" or "file"."""
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
                return problem(404, "Not found", "No such file.")
            return Reply(200, data, {"content-type": "image/png"})
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return problem(401, "Unauthenticated", "You did not pass a valid authentication token")
        if kind == "create":
            return self._create(request)
        prediction = self.predictions.get(request.path.split("/")[3])
        if prediction is None:
            return problem(404, "Not found", "The requested resource could not be found.")
        if kind == "cancel":
            prediction.canceled = True
            return Reply(200, json.dumps(self._view(prediction)).encode())
        if kind == "get":
            prediction.reads += 1
            return Reply(200, json.dumps(self._view(prediction)).encode())
        return problem(404, "Not found", "The requested resource could not be found.")

    def _create(self, request: Received) -> Reply:
        body = request.body
        if body is None or not isinstance(body.get("input"), dict):
            return problem(422, "Input validation failed", "- input: input is required")
        unknown = set(body) - TOP_LEVEL
        if unknown:
            return problem(422, "Invalid request", f"- {sorted(unknown)[0]}: unknown field")
        path = urlsplit(request.path).path
        if path == "/v1/predictions":
            version = str(body.get("version") or "")
            model = version.partition(":")[0] if "/" in version else "someone/pinned-model"
            version_id = version.rpartition(":")[2]
            if not VERSION_ID.fullmatch(version_id):
                return problem(
                    422, "Invalid version", "- version: Invalid version or not permitted"
                )
        else:
            if "version" in body:
                return problem(422, "Invalid request", "- version: not allowed for a model")
            model, version_id = path.removeprefix("/v1/models/").removesuffix("/predictions"), ""
        try:
            width, height = check_input(model, body["input"])
        except Invalid as exc:
            return problem(422, "Input validation failed", str(exc))
        prediction = Prediction(
            str(uuid.uuid4().hex[:26]),
            model,
            version_id or "official",
            body["input"],
            width,
            height,
        )
        self.predictions[prediction.id] = prediction
        if wants_wait(request.headers.get("prefer", "")) and self.pending_polls == 0:
            prediction.reads = 1
        return Reply(201, json.dumps(self._view(prediction)).encode())

    def _view(self, prediction: Prediction) -> dict[str, Any]:
        """The prediction object as it stands after this many reads."""
        view: dict[str, Any] = {
            "id": prediction.id,
            "model": prediction.model,
            "version": prediction.version,
            "input": prediction.input,
            "logs": "",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": "starting",
            "created_at": "2026-11-28T12:00:00.000Z",
            "urls": {
                "get": f"{self.base_url}/predictions/{prediction.id}",
                "cancel": f"{self.base_url}/predictions/{prediction.id}/cancel",
                "web": f"https://replicate.com/p/{prediction.id}",
            },
        }
        if prediction.canceled:
            return view | {"status": "canceled"}
        if prediction.reads == 0:
            return view
        if self.outcome == "never" or prediction.reads <= self.pending_polls:
            return view | {"status": "processing", "logs": "Running...\n"}
        finished = view | {"metrics": {"predict_time": 1.25, "total_time": 1.9}}
        if self.outcome == "nsfw":
            return finished | {"status": "failed", "error": NSFW_ERROR}
        if self.outcome == "failed":
            return finished | {"status": "failed", "error": "CUDA out of memory (E1001)"}
        if self.outcome == "canceled":
            return finished | {"status": "canceled"}
        name = f"{prediction.id}.png"
        self.files.setdefault(name, render(prediction.width, prediction.height, "png"))
        url = f"http://127.0.0.1:{self.port}/files/{name}"
        output: Any = (
            [url] if prediction.model in LIST_OUTPUT or prediction.model not in SCHEMAS else url
        )
        return finished | {"status": "succeeded", "output": output}


def kind_of(request: Received) -> str:
    """Which of the fake's endpoints a request is for."""
    path = urlsplit(request.path).path
    if request.method == "GET" and path.startswith("/files/"):
        return "file"
    if request.method == "POST" and (
        path == "/v1/predictions"
        or (path.startswith("/v1/models/") and path.endswith("/predictions"))
    ):
        return "create"
    if request.method == "POST" and re.fullmatch(r"/v1/predictions/\w+/cancel", path):
        return "cancel"
    if request.method == "GET" and re.fullmatch(r"/v1/predictions/\w+", path):
        return "get"
    return "other"


def wants_wait(prefer: str) -> bool:
    """Whether a Prefer header asks to wait (`wait` or `wait=N`, N from 1 to 60)."""
    match = re.search(r"(?:^|[,;\s])wait(?:=(\d+))?", prefer)
    return bool(match) and (match[1] is None or 1 <= int(match[1]) <= 60)


def check_input(model: str, fields: dict[str, Any]) -> tuple[int, int]:
    """Check a known model's input against its schema; the size of the image it will make."""
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise Invalid("- input: prompt is required")
    schema = SCHEMAS.get(model)
    if schema is None:
        return int(fields.get("width") or 1024), int(fields.get("height") or 1024)
    for name, value in fields.items():
        if name not in schema:
            raise Invalid(f"- input.{name}: Additional property {name} is not allowed")
        allowed = schema[name]
        if allowed is not None and value not in allowed:
            raise Invalid(
                f"- input.{name}: {name} must be one of the following: {sorted(map(str, allowed))}"
            )
    ratio = fields.get("aspect_ratio", "1:1")
    if ratio == "custom":
        width, height = fields.get("width"), fields.get("height")
        for name, side in (("width", width), ("height", height)):
            if not isinstance(side, int) or not 256 <= side <= 1440:
                raise Invalid(f"- input.{name}: Must be between 256 and 1440")
        return width, height
    if ratio == "match_input_image":
        return source_size(fields.get("input_image"))
    ratio_width, ratio_height = (int(part) for part in ratio.split(":"))
    width = round(math.sqrt(1024 * 1024 * ratio_width / ratio_height) / 16) * 16
    return width, round(width * ratio_height / ratio_width / 16) * 16


def source_size(uri: object) -> tuple[int, int]:
    """The size of an input image given as a data URI."""
    if not isinstance(uri, str) or not uri.startswith("data:image/"):
        raise Invalid("- input.input_image: a data URI or URL is required")
    try:
        data = base64.b64decode(uri.partition(",")[2], validate=True)
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (ValueError, OSError) as exc:
        raise Invalid("- input.input_image: could not read the image") from exc
