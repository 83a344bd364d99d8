"""What the benches share (not a bench itself): a fake OpenAI Images vendor run as a process of
its own, the Darkroom deployments they measure (`darkroom serve` and `darkroom worker`
subprocesses, on the embedded default or on a fresh Postgres database and a queue of their own,
cleaned up afterwards), a load generator, and the way figures are printed.

Every process is started from this checkout (its directory first on PYTHONPATH), so a bench
measures the code beside it. Postgres and Redis are where the test suite finds them, or at
DARKROOM_BENCH_POSTGRES_URL (a `postgresql://` URL of a database to run CREATE DATABASE from)
and DARKROOM_BENCH_REDIS_URL. Run alone, this module is the fake vendor:

    .venv/bin/python bench/vendor.py --port 9100 --delay 2 --image photo

It answers `POST /v1/images/generations` (and `/images/generations`) as OpenAI does: the bearer
key and the body are checked by the test suite's OpenAI fake (tests/fakes/openai_images.py), and
the answer is an ImagesResponse with `b64_json` images of the requested size. Each image is
encoded once per size and kept, so a call costs the fake almost no CPU; `--delay` holds every
answer that long (0 answers at once). `--faults storm` answers a share of calls with faults
(STORM_FAULTS: HTTP 500, 429 with Retry-After 1, answers held past a 3 s time limit, cut-off
JSON). `GET /stats` tells the calls so far, those in flight, the most ever in flight at once and
the faults served by kind; `POST /stats/reset` starts the count again.
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
import io
import itertools
import json
import os
import random
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import numpy as np
import uvicorn
from PIL import Image, ImageFilter
from redis.asyncio import Redis

REPO_ROOT = Path(__file__).resolve().parents[1]
# The benches use parts of the test suite: its fakes, its private redis-server.
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))
VENDOR_SCRIPT = Path(__file__).resolve()

# The services the benches use, as the test suite finds them; each bench makes and drops its own
# database and uses queue names of its own, so nothing else on them is touched.
POSTGRES_URL = os.environ.get(
    "DARKROOM_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DARKROOM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:8]

FAKE_API_KEY = "sk-bench-fake-openai-0123456789abcdef"
IMAGE_KINDS = ("flat", "photo")
# The API's rate limit stays on (one Redis script per request, as in production) but so high
# that a bench's own traffic never meets it.
UNREACHABLE_RATE_LIMIT = "1000000000"
# Fault mixes the fake vendor can serve: each fault's share of calls. `slow` answers are held
# SLOW_FAULT_SECONDS, past the 3 s vendor time limit the fault benches set.
STORM_FAULTS = {"server_error": 0.20, "rate_limit": 0.10, "slow": 0.05, "cut_off": 0.05}
FAULT_MIXES: dict[str, dict[str, float]] = {"none": {}, "storm": STORM_FAULTS}
SLOW_FAULT_SECONDS = 4.0
STARTUP_SECONDS = 90
STOP_SECONDS = 15
PROMPT = "studio shot of a red sneaker on a concrete floor, soft light"
JOBS_PAGE = 100


# --- The fake vendor (runs in its own process) ----------------------------------------------


def render_image(kind: str, width: int, height: int, image_format: str) -> bytes:
    """An encoded image of this size. `flat` is a smooth gradient (a few KiB, cheap for
    Darkroom to decode and re-encode); `photo` adds sensor-like noise, so the file is about as
    large as a real vendor's PNG (about 2 MiB at 1024x1024) and costs what a real one costs."""
    formats = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
    if kind == "flat":
        image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    else:
        x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
        y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
        channels = np.broadcast_arrays(60 + 150 * x, 90 + 100 * y, 200 - 120 * x)
        smooth = Image.fromarray(np.stack(channels, axis=2).astype(np.uint8))
        smooth = smooth.filter(ImageFilter.GaussianBlur(2))
        grain = 6 * np.random.default_rng(7).standard_normal((height, width, 3))
        pixels = (np.asarray(smooth, dtype=np.float32) + grain).clip(0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, formats[image_format])
    return buffer.getvalue()


@dataclass
class VendorApp:
    """The fake vendor as a bare ASGI app (no framework, so it stays out of the figures).
    `protocol` is the test suite's OpenAI fake module, whose checks and answer shapes it uses."""

    delay_seconds: float
    image_kind: str
    api_key: str
    protocol: ModuleType
    faults: dict[str, float] = field(default_factory=dict)
    calls: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    served: dict[str, int] = field(default_factory=dict)
    _random: random.Random = field(default_factory=lambda: random.Random())
    _images: dict[tuple[int, int, str], bytes] = field(default_factory=dict)

    def encoded(self, width: int, height: int, image_format: str) -> bytes:
        """The base64 of this size's image, made on first use and kept."""
        key = (width, height, image_format)
        if key not in self._images:
            data = render_image(self.image_kind, width, height, image_format)
            self._images[key] = base64.b64encode(data)
        return self._images[key]

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        route = (scope["method"], scope["path"])
        if route == ("GET", "/stats"):
            stats = {
                "calls": self.calls,
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
                "faults": self.served,
            }
            await respond(send, 200, json.dumps(stats).encode())
        elif route == ("POST", "/stats/reset"):
            self.calls, self.peak_in_flight, self.served = 0, self.in_flight, {}
            await respond(send, 204, b"")
        elif route in (("POST", "/v1/images/generations"), ("POST", "/images/generations")):
            await self.generate(scope, receive, send)
        else:
            message = f"Invalid URL ({route[0]} {route[1]})"
            await respond(send, 404, self.protocol.error_body(message, "invalid_request_error"))

    async def generate(self, scope: dict, receive: Callable, send: Callable) -> None:
        """One generation, counted in flight from its arrival to its answer."""
        self.calls += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            body = await read_body(receive)
            status, answer = self.answer(dict(scope["headers"]).get(b"authorization", b""), body)
            headers: dict[str, str] = {}
            delay = self.delay_seconds if status == 200 else 0.0
            if status == 200:
                status, answer, headers, delay = self.fault(answer, delay)
            await asyncio.sleep(delay)
            await respond(send, status, answer, headers)
        finally:
            self.in_flight -= 1

    def fault(self, answer: bytes, delay: float) -> tuple[int, bytes, dict[str, str], float]:
        """The good answer turned into a fault drawn from the mix, or left as it is: status,
        body, extra headers and the delay before it is sent."""
        draw = self._random.random()
        for kind, share in self.faults.items():
            if draw < share:
                self.served[kind] = self.served.get(kind, 0) + 1
                return self._faulty(kind, answer, delay)
            draw -= share
        return 200, answer, {}, delay

    def _faulty(
        self, kind: str, answer: bytes, delay: float
    ) -> tuple[int, bytes, dict[str, str], float]:
        error_body = self.protocol.error_body
        if kind == "server_error":
            message = "The server had an error while processing your request."
            return 500, error_body(message, "server_error"), {}, delay
        if kind == "rate_limit":
            message = "Rate limit reached for images per minute. Please try again in 1s."
            body = error_body(message, "requests", "rate_limit_exceeded")
            return 429, body, {"retry-after": "1"}, delay
        if kind == "slow":
            return 200, answer, {}, max(delay, SLOW_FAULT_SECONDS)
        return 200, answer[: len(answer) // 2], {}, delay

    def answer(self, authorization: bytes, raw_body: bytes) -> tuple[int, bytes]:
        """What OpenAI answers to this body: 401 for a wrong key, 400 for a body it refuses,
        else the ImagesResponse."""
        protocol, refused = self.protocol, "invalid_request_error"
        if authorization != f"Bearer {self.api_key}".encode():
            message = "Incorrect API key provided."
            return 401, protocol.error_body(message, refused, "invalid_api_key")
        try:
            body = json.loads(raw_body)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            message = "We could not parse the JSON body of your request."
            return 400, protocol.error_body(message, refused, "invalid_json")
        try:
            width, height, image_format, n = protocol.validate(body)
        except protocol.InvalidRequest as exc:
            return 400, protocol.error_body(exc.message, refused, exc.code, exc.param)
        usage = protocol.usage_for(body["prompt"], width, height, n)
        shell = protocol.images_response([{"b64_json": ""}] * n, width, height, image_format, usage)
        # The cached image goes into the small JSON shell: a copy, not a JSON encoding of MiBs.
        image = b'"b64_json": "' + self.encoded(width, height, image_format) + b'"'
        return 200, shell.replace(b'"b64_json": ""', image)


async def read_body(receive: Callable) -> bytes:
    """The whole request body."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(
    send: Callable, status: int, body: bytes, extra: dict[str, str] | None = None
) -> None:
    """A JSON answer with a request id, as OpenAI sends one, and any `extra` headers."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", f"req_{uuid.uuid4().hex}".encode()),
    ]
    headers += [(name.encode(), value.encode()) for name, value in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve_vendor(
    port: int, delay_seconds: float, image_kind: str, api_key: str, faults: str = "none"
) -> None:
    """Serve the fake on 127.0.0.1 until terminated; the common size is encoded up front.
    The test suite's fake is imported here, in the vendor's own process, which has the checkout
    on its path."""
    from tests.fakes import openai_images

    app = VendorApp(delay_seconds, image_kind, api_key, openai_images, FAULT_MIXES[faults])
    app.encoded(1024, 1024, "png")
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
    )


# --- Processes -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def child_environment(values: dict[str, str]) -> dict[str, str]:
    """This environment without any DARKROOM_* setting, with this checkout first on the path
    and `values` added."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_")}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
    )
    return environment | values


def darkroom_command(*arguments: str) -> list[str]:
    """The `darkroom` command line, run by this interpreter from this checkout."""
    return [sys.executable, "-c", f"from app.cli import main; main({list(arguments)!r})"]


@contextlib.contextmanager
def running(command: Sequence[str], environment: dict[str, str], log: Path) -> Iterator[int]:
    """Run a command in a process group of its own, its output in `log`; on the way out stop
    that group (SIGTERM, then SIGKILL) and wait for it. Yields the process id. It runs in the
    log's directory, the bench's scratch directory, where no `.env` file adds settings."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            list(command),
            cwd=log.parent,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process.pid
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the process group this bench started for `process`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def is_alive(pid: int) -> bool:
    """Whether the process still runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def log_tail(log: Path, lines: int = 30) -> str:
    """The end of a process's log, for an error message."""
    if not log.exists():
        return "(no output)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


async def wait_until_answering(url: str, pid: int, log: Path) -> None:
    """Wait until GET `url` answers 2xx; fail with the process's log if it exits or is slow."""
    deadline = time.monotonic() + STARTUP_SECONDS
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if not is_alive(pid):
                raise RuntimeError(f"{url}: the process exited; its log:\n{log_tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).is_success:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {STARTUP_SECONDS} s; log:\n{log_tail(log)}")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set since it started (VmHWM in /proc/PID/status), in MiB:
    C allocations and every thread included, which tracemalloc would not see."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM")


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used so far, user and system, every thread included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- The fake vendor as the benches use it ---------------------------------------------------


@dataclass
class FakeVendor:
    """A running fake vendor process."""

    port: int
    api_key: str = FAKE_API_KEY

    @property
    def base_url(self) -> str:
        """Where an OpenAI client points, `/v1` included."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def stats(self) -> dict[str, Any]:
        """Calls so far, in flight now, the most in flight at once, and faults served by kind."""
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{self.port}/stats")
            response.raise_for_status()
            return response.json()

    async def reset(self) -> None:
        """Start the call count and the peak again."""
        async with httpx.AsyncClient() as client:
            (await client.post(f"http://127.0.0.1:{self.port}/stats/reset")).raise_for_status()

    def generation_body(self) -> dict[str, Any]:
        """The body Darkroom's openai provider sends for one 1024x1024 PNG of gpt-image-2."""
        return {
            "model": "gpt-image-2",
            "prompt": PROMPT,
            "n": 1,
            "size": "1024x1024",
            "quality": "auto",
            "background": "auto",
            "output_format": "png",
            "moderation": "auto",
        }

    @property
    def headers(self) -> dict[str, str]:
        """The vendor key as OpenAI's clients send it."""
        return {"Authorization": f"Bearer {self.api_key}"}


@contextlib.asynccontextmanager
async def fake_vendor(
    delay_seconds: float, image_kind: str, workdir: Path, faults: str = "none"
) -> AsyncIterator[FakeVendor]:
    """A fake vendor process answering after `delay_seconds` with `image_kind` images, and
    with the FAULT_MIXES entry `faults`."""
    port = free_port()
    log = workdir / f"vendor-{port}.log"
    command = [
        sys.executable,
        str(VENDOR_SCRIPT),
        *("--port", str(port), "--delay", str(delay_seconds), "--image", image_kind),
        *("--faults", faults),
    ]
    with running(command, child_environment({}), log) as pid:
        await wait_until_answering(f"http://127.0.0.1:{port}/stats", pid, log)
        yield FakeVendor(port)


# --- Darkroom deployments --------------------------------------------------------------------


@dataclass
class Deployment:
    """A running Darkroom: the API process, its workers, a tenant's key, and the environment
    its processes run with (to start another worker like them)."""

    base_url: str
    api_key: str
    api_pid: int
    worker_pids: list[int]
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        """The tenant's Authorization header."""
        return {"Authorization": f"Bearer {self.api_key}"}


def postgres_url(database: str, driver: str = "postgresql") -> str:
    """The URL of `database` on the bench's Postgres server."""
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit((driver, parts.netloc, f"/{database}", parts.query, ""))


@contextlib.asynccontextmanager
async def fresh_database(name: str) -> AsyncIterator[str]:
    """A new, empty Postgres database (its name), dropped on the way out."""
    database = f"darkroom_bench_{RUN_ID}_{name}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
        try:
            yield database
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()


async def forget_queue(database: str, queue_name: str, api_keys: Sequence[str]) -> None:
    """Delete what a deployment left in Redis: its queue, the arq records of its jobs (the
    job ids come from its database), its worker's health check and its keys' rate limits."""
    connection = await asyncpg.connect(postgres_url(database))
    job_ids: list[str] = []
    try:
        # No table when the deployment failed before it migrated.
        with contextlib.suppress(asyncpg.UndefinedTableError):
            job_ids = [row["id"] for row in await connection.fetch("SELECT id FROM jobs")]
    finally:
        await connection.close()
    keys = [queue_name, f"{queue_name}:health-check"]
    keys += [f"darkroom:rate-limit:{hashlib.sha256(key.encode()).hexdigest()}" for key in api_keys]
    for job_id in job_ids:
        keys += [f"arq:{part}:{job_id}" for part in ("job", "in-progress", "retry", "result")]
    redis = Redis.from_url(REDIS_URL)
    try:
        for start in range(0, len(keys), 1000):
            await redis.unlink(*keys[start : start + 1000])
    finally:
        await redis.aclose()


def create_key(environment: dict[str, str], log: Path) -> str:
    """A new tenant's API key from `darkroom keys create` (which also migrates the database)."""
    completed = subprocess.run(
        darkroom_command("keys", "create", "--tenant", f"bench-{uuid.uuid4().hex[:8]}"),
        cwd=log.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
    )
    with log.open("a") as output:
        output.write(completed.stderr)
    if completed.returncode != 0:
        raise RuntimeError(f"darkroom keys create failed:\n{completed.stderr[-3000:]}")
    return completed.stdout.strip().splitlines()[-1]


async def wait_for_workers(
    queue_name: str, pids: Sequence[int], log: Path, redis_url: str = REDIS_URL
) -> None:
    """Wait until the arq worker has polled its queue once (it then writes its health check)."""
    redis = Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not await redis.exists(f"{queue_name}:health-check"):
            if time.monotonic() > deadline or not all(is_alive(pid) for pid in pids):
                raise RuntimeError(f"darkroom worker did not start; its log:\n{log_tail(log)}")
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()


async def tenant_jobs(
    client: httpx.AsyncClient, deployment: "Deployment", status: str | None = None
) -> list[dict[str, Any]]:
    """The tenant's jobs (of one status, if given), read page by page."""
    jobs: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": JOBS_PAGE}
        params |= {"status": status} if status else {}
        params |= {"cursor": cursor} if cursor else {}
        response = await client.get(
            f"{deployment.base_url}/v1/jobs", params=params, headers=deployment.headers
        )
        expect(response, 200)
        page = response.json()
        jobs += page["data"]
        if not page["has_more"]:
            return jobs
        cursor = page["next_cursor"]


def openai_settings(vendor: FakeVendor) -> dict[str, str]:
    """The settings that send `openai/...` models to the fake vendor."""
    return {"DARKROOM_OPENAI_API_KEY": vendor.api_key, "DARKROOM_OPENAI_BASE_URL": vendor.base_url}


@contextlib.asynccontextmanager
async def embedded_deployment(
    vendor: FakeVendor | None, workdir: Path
) -> AsyncIterator[Deployment]:
    """`darkroom serve` on the embedded default: SQLite, and the in-process job runner (no
    DARKROOM_REDIS_URL), its data in a directory of its own."""
    port = free_port()
    data_dir = workdir / f"embedded-{port}"
    values = {
        "DARKROOM_DATA_DIR": str(data_dir),
        "DARKROOM_PORT": str(port),
        "DARKROOM_RATE_LIMIT_REQUESTS": UNREACHABLE_RATE_LIMIT,
    }
    if vendor is not None:
        values |= openai_settings(vendor)
    environment = child_environment(values)
    log = workdir / f"embedded-{port}.log"
    try:
        api_key = create_key(environment, log)
        with running(darkroom_command("serve"), environment, log) as api_pid:
            base_url = f"http://127.0.0.1:{port}"
            await wait_until_answering(f"{base_url}/healthz", api_pid, log)
            yield Deployment(base_url, api_key, api_pid, [])
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def postgres_deployment(
    vendor: FakeVendor | None,
    workdir: Path,
    workers: int = 1,
    api_command: Sequence[str] | None = None,
    settings: dict[str, str] | None = None,
) -> AsyncIterator[Deployment]:
    """`darkroom serve` and `workers` `darkroom worker` processes on a fresh Postgres database
    and a queue of their own on Redis, sharing a data directory for asset files. Settings not
    named here or in `settings` (DARKROOM_* values) keep their defaults. `api_command` serves
    something else than `darkroom serve` with the same settings, database and key."""
    port = free_port()
    name = f"postgres-{port}"
    data_dir = workdir / name
    queue_name = f"darkroom:bench:{RUN_ID}:{port}"
    async with fresh_database(str(port)) as database:
        values = {
            "DARKROOM_DATA_DIR": str(data_dir),
            "DARKROOM_PORT": str(port),
            "DARKROOM_DATABASE_URL": postgres_url(database, "postgresql+asyncpg"),
            "DARKROOM_REDIS_URL": REDIS_URL,
            "DARKROOM_QUEUE_NAME": queue_name,
            "DARKROOM_SIGNING_SECRET": secrets.token_urlsafe(32),
            "DARKROOM_RATE_LIMIT_REQUESTS": UNREACHABLE_RATE_LIMIT,
        }
        if vendor is not None:
            values |= openai_settings(vendor)
        environment = child_environment(values | (settings or {}))
        log = workdir / f"{name}.log"
        api_keys: list[str] = []
        try:
            api_keys.append(create_key(environment, log))
            with contextlib.ExitStack() as processes:
                api_pid = processes.enter_context(
                    running(api_command or darkroom_command("serve"), environment, log)
                )
                base_url = f"http://127.0.0.1:{port}"
                await wait_until_answering(f"{base_url}/healthz", api_pid, log)
                worker_log = workdir / f"{name}-worker.log"
                worker_pids = [
                    processes.enter_context(
                        running(darkroom_command("worker"), environment, worker_log)
                    )
                    for _ in range(workers)
                ]
                if worker_pids:
                    redis_url = environment["DARKROOM_REDIS_URL"]
                    await wait_for_workers(queue_name, worker_pids, worker_log, redis_url)
                yield Deployment(base_url, api_keys[0], api_pid, worker_pids, environment)
        finally:
            await forget_queue(database, queue_name, api_keys)
            shutil.rmtree(data_dir, ignore_errors=True)


# --- Load and figures ------------------------------------------------------------------------


class RequestFailed(Exception):
    """A request whose answer was not the one the bench expects."""


@dataclass
class LoadRun:
    """The latencies (seconds) of the requests that succeeded, the wall time of the whole run,
    and the failures (with the first one's reason)."""

    latencies: list[float]
    wall_seconds: float
    failures: int = 0
    first_failure: str | None = None

    @property
    def p50_ms(self) -> float:
        """Median latency in ms."""
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        """99th percentile latency in ms."""
        return percentile(self.latencies, 99) * 1000

    @property
    def per_second(self) -> float:
        """Successful requests per second of wall time."""
        return len(self.latencies) / self.wall_seconds if self.wall_seconds else 0.0

    @classmethod
    def pooled(cls, runs: Sequence["LoadRun"]) -> "LoadRun":
        """Several runs of the same load as one: every latency, the wall times added."""
        failures = [run.first_failure for run in runs if run.first_failure]
        return cls(
            [latency for run in runs for latency in run.latencies],
            sum(run.wall_seconds for run in runs),
            sum(run.failures for run in runs),
            failures[0] if failures else None,
        )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, interpolated between the nearest ranks (as numpy's default)."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


Send = Callable[[httpx.AsyncClient, int], Awaitable[None]]


async def run_load(send: Send, total: int, clients: Sequence[httpx.AsyncClient]) -> LoadRun:
    """`total` calls of `send(client, index)`, one concurrent caller per client, each sending
    its next request when its last one is answered (a closed loop)."""
    indexes = itertools.count()
    latencies: list[float] = []
    failures: list[str] = []

    async def caller(client: httpx.AsyncClient) -> None:
        while (index := next(indexes)) < total:
            started = time.perf_counter()
            try:
                await send(client, index)
            except (RequestFailed, httpx.HTTPError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}"[:500])
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller(client) for client in clients))
    wall = time.perf_counter() - started
    return LoadRun(latencies, wall, len(failures), failures[0] if failures else None)


@contextlib.asynccontextmanager
async def http_clients(
    count: int, request_seconds: float = 120
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """`count` httpx clients of one keep-alive connection each, one per concurrent caller. One
    client with many connections would cost far more CPU per request as its pool grows (about
    ten times more at 200 connections), and the load generator would measure itself."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    # One TLS context for all: each client would otherwise load the CA bundle itself.
    tls = ssl.create_default_context()
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(limits=limits, timeout=request_seconds, verify=tls)
            )
            for _ in range(count)
        ]


WARM_UP_REQUESTS = 10


@dataclass
class Runs:
    """One target measured one request at a time and by concurrent callers, with the most
    vendor calls in flight at once during the concurrent run."""

    sequential: LoadRun
    concurrent: LoadRun
    vendor_peak: int

    def __add__(self, other: "Runs") -> "Runs":
        return Runs(
            LoadRun.pooled([self.sequential, other.sequential]),
            LoadRun.pooled([self.concurrent, other.concurrent]),
            max(self.vendor_peak, other.vendor_peak),
        )


async def measure_target(
    send: Send,
    clients: Sequence[httpx.AsyncClient],
    vendor: FakeVendor,
    sequential: int,
    concurrent: int,
) -> Runs:
    """Warm up, then `sequential` requests one at a time, then `concurrent` requests by one
    caller per client."""
    await run_load(send, WARM_UP_REQUESTS, clients[:1])
    one_at_a_time = await run_load(send, sequential, clients[:1])
    await vendor.reset()
    all_callers = await run_load(send, concurrent, clients)
    return Runs(one_at_a_time, all_callers, (await vendor.stats())["peak_in_flight"])


async def measure_deployments(
    vendor: FakeVendor,
    clients: Sequence[httpx.AsyncClient],
    workdir: Path,
    counts: tuple[int, int],
    send_for: Callable[[Deployment], Send],
) -> dict[str, Runs]:
    """Darkroom on the embedded default and on Postgres + Redis + one worker, in turn, each
    measured with the requests `send_for` makes for it."""
    targets: dict[str, Runs] = {}
    deployments = {
        "darkroom embedded": embedded_deployment(vendor, workdir),
        "darkroom postgres": postgres_deployment(vendor, workdir, workers=1),
    }
    for name, starting in deployments.items():
        async with starting as deployment:
            print(f"  measuring {name} ...", flush=True)
            targets[name] = await measure_target(send_for(deployment), clients, vendor, *counts)
    return targets


def direct_call(vendor: FakeVendor) -> Send:
    """The baseline request: the vendor call Darkroom makes, sent straight to the fake."""
    url = f"{vendor.base_url}/images/generations"
    body = vendor.generation_body()

    async def send(client: httpx.AsyncClient, _: int) -> None:
        expect(await client.post(url, json=body, headers=vendor.headers), 200)

    return send


def print_latency_table(direct: Runs, targets: dict[str, Runs], callers: int) -> None:
    """Each target against the direct vendor call, one request at a time, then by `callers`
    callers: latency, rate, what it adds to the direct call at the same percentile, the ratio
    to it, and the most vendor calls in flight at once; then the first failure of each run."""
    columns = ["target", "callers", "requests", "failed", "p50 ms", "p99 ms", "req/s"]
    columns += ["added p50", "added p99", "p50 ratio", "p99 ratio", "vendor peak"]
    rows: list[list[object]] = []
    for concurrent in (False, True):
        baseline = direct.concurrent if concurrent else direct.sequential
        for name, runs in {"direct vendor call": direct, **targets}.items():
            run = runs.concurrent if concurrent else runs.sequential
            added = (
                ("-", "-")
                if run is baseline
                else (f"{run.p50_ms - baseline.p50_ms:.1f}", f"{run.p99_ms - baseline.p99_ms:.1f}")
            )
            rows.append(
                [
                    name,
                    callers if concurrent else 1,
                    len(run.latencies),
                    run.failures,
                    run.p50_ms,
                    run.p99_ms,
                    run.per_second,
                    *added,
                    ratio(run.p50_ms, baseline.p50_ms),
                    ratio(run.p99_ms, baseline.p99_ms),
                    runs.vendor_peak if concurrent else 1,
                ]
            )
    print_table(columns, rows)
    for name, runs in {"direct vendor call": direct, **targets}.items():
        for run in (runs.sequential, runs.concurrent):
            if run.first_failure:
                print(f"first failure of {name}: {run.first_failure}")


def expect(response: httpx.Response, status: int) -> None:
    """RequestFailed unless the answer has this status."""
    if response.status_code != status:
        raise RequestFailed(f"{response.status_code} {response.text[:300]}")


def print_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A table: the first column left-aligned, the others right-aligned, floats to 1 decimal."""

    def cell(value: object) -> str:
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    cells = [[cell(value) for value in row] for row in rows]
    widths = [max(len(text) for text in column) for column in zip(columns, *cells, strict=True)]
    for row in [list(columns), *cells]:
        first, *rest = row
        line = first.ljust(widths[0]) + "".join(
            text.rjust(width + 2) for text, width in zip(rest, widths[1:], strict=True)
        )
        print(line.rstrip())


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def print_machine(title: str) -> None:
    """The bench's title, the CPUs and the load average at the start."""
    print(title)
    print(f"{os.cpu_count()} CPUs; load average at start (1, 5, 15 min): {load_average()}")


def run_bench(
    title: str,
    measure: Callable[[argparse.Namespace, Path], Awaitable[None]],
    arguments: argparse.Namespace,
) -> None:
    """Print the title and the machine, run `measure` in a scratch directory, and print the load
    average at the end: how every bench starts and ends."""
    print_machine(title)
    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as directory:
        asyncio.run(measure(arguments, Path(directory)))
    print(f"load average at end (1, 5, 15 min): {load_average()}")


def latency_options(description: str) -> argparse.ArgumentParser:
    """The options of the latency benches: requests one at a time, then by concurrent callers."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sequential", type=int, default=100, help="requests one at a time")
    parser.add_argument("--requests", type=int, default=400, help="requests by the callers")
    parser.add_argument("--callers", type=int, default=20, help="concurrent callers")
    parser.add_argument("--image", choices=IMAGE_KINDS, default="flat")
    return parser


def ratio(value: float, baseline: float) -> str:
    """`value / baseline` as `N.NNx`."""
    return f"{value / baseline:.2f}x" if baseline else "n/a"


def main() -> None:
    """Serve the fake vendor."""
    parser = argparse.ArgumentParser(description="The fake OpenAI Images vendor of the benches.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--image", choices=IMAGE_KINDS, default="flat")
    parser.add_argument("--api-key", default=FAKE_API_KEY)
    parser.add_argument("--faults", choices=sorted(FAULT_MIXES), default="none")
    arguments = parser.parse_args()
    serve_vendor(
        arguments.port, arguments.delay, arguments.image, arguments.api_key, arguments.faults
    )


if __name__ == "__main__":
    main()
