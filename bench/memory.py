"""Benchmark the memory a 40 MP input costs the real processes, per kind of work.

Starts `darkroom serve` and one `darkroom worker` on a fresh Postgres database and a queue of
their own on Redis (bench/vendor.py), uploads a mostly-uniform RGBA PNG of 6000x6600 (39.6 MP,
a small file that decodes to 151 MiB), then runs one phase at a time: 1 and 8 concurrent
uploads (the API decodes), 1 and 4 concurrent edits, one variants job and one export (the
worker decodes). Before each phase the processes' peak RSS is reset (`/proc/PID/clear_refs`),
so each phase's peak (VmHWM) is its own; the RSS after is read once the phase's jobs are done
and the process has been idle for a moment. The baseline, measured in the same run, is each
process's idle RSS and the decoded image's size; every peak is also given as a multiple of it.

    .venv/bin/python bench/memory.py [--settle 3] [--setting DARKROOM_X=Y ...]
"""

import argparse
import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from vendor import (
    Deployment,
    RequestFailed,
    expect,
    peak_rss_mib,
    postgres_deployment,
    print_table,
    run_bench,
)

WIDTH, HEIGHT = 6000, 6600
MEBIBYTE = 1024 * 1024
DECODED_MIB = WIDTH * HEIGHT * 4 / MEBIBYTE
JOB_TIMEOUT_SECONDS = 600
EXPORT_TARGETS = ["instagram-square", {"width": 1920, "height": 1080}]


def big_png() -> bytes:
    """A 6000x6600 RGBA PNG, transparent black but for a gradient patch an edit can change."""
    pixels = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    ramp = np.linspace(0, 255, 512, dtype=np.uint8)
    pixels[1000:1512, 1000:1512, 0] = ramp[None, :]
    pixels[1000:1512, 1000:1512, 1] = ramp[:, None]
    pixels[1000:1512, 1000:1512, 3] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG")
    return buffer.getvalue()


def rss_mib(pid: int) -> float:
    """The process's resident set now (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


def reset_peak(pid: int) -> None:
    """Start the process's peak RSS (VmHWM) again from its RSS now."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def upload(client: httpx.AsyncClient, data: bytes) -> dict:
    """Upload the image; the asset."""
    response = await client.post("/v1/assets", files={"file": ("big.png", data, "image/png")})
    expect(response, 201)
    return response.json()


async def run_job(client: httpx.AsyncClient, path: str, body: dict) -> list[str]:
    """Submit a job and wait for it to succeed; the sizes of its image outputs."""
    response = await client.post(path, json=body)
    expect(response, 202)
    job_id = response.json()["id"]
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] == "succeeded":
            return [await output_size(client, output["asset_id"]) for output in job["outputs"]]
        if job["status"] in ("failed", "canceled"):
            raise RequestFailed(f"{path} job {job_id} {job['status']}: {job.get('error')}")
        await asyncio.sleep(0.5)
    raise RequestFailed(f"{path} job {job_id} not done in {JOB_TIMEOUT_SECONDS} s")


async def output_size(client: httpx.AsyncClient, asset_id: str) -> str:
    asset = (await client.get(f"/v1/assets/{asset_id}")).json()
    return f"{asset['width']}x{asset['height']}" if asset["width"] else asset["format"]


Phase = Callable[[httpx.AsyncClient], Awaitable[list[str]]]


def phases(data: bytes, asset_id: str) -> list[tuple[str, str, Phase]]:
    """(name, which process does the pixel work, what to run)."""

    async def uploads(client: httpx.AsyncClient, count: int) -> list[str]:
        assets = await asyncio.gather(*(upload(client, data) for _ in range(count)))
        return [f"{asset['width']}x{asset['height']}" for asset in assets]

    async def edits(client: httpx.AsyncClient, count: int) -> list[str]:
        body = {"image": {"asset_id": asset_id}, "prompt": "warm vintage look"}
        sizes = await asyncio.gather(*(run_job(client, "/v1/edit", body) for _ in range(count)))
        return [size for job in sizes for size in job]

    async def variants(client: httpx.AsyncClient) -> list[str]:
        body = {"source": {"asset_id": asset_id}, "n": 1}
        return await run_job(client, "/v1/variants", body)

    async def export(client: httpx.AsyncClient) -> list[str]:
        body = {"asset_id": asset_id, "targets": EXPORT_TARGETS, "fit": "cover", "format": "jpeg"}
        return await run_job(client, "/v1/export", body)

    return [
        ("upload x1", "api", lambda client: uploads(client, 1)),
        ("upload x8", "api", lambda client: uploads(client, 8)),
        ("edit x1", "worker", lambda client: edits(client, 1)),
        ("edit x4", "worker", lambda client: edits(client, 4)),
        ("variants x1", "worker", variants),
        ("export x1", "worker", export),
    ]


async def measure(arguments: argparse.Namespace, workdir: Path) -> None:
    data = big_png()
    print(
        f"input: {WIDTH}x{HEIGHT} RGBA PNG, {len(data) / 1024:.0f} KiB, decodes to "
        f"{DECODED_MIB:.1f} MiB"
    )
    settings = dict(setting.split("=", 1) for setting in arguments.setting)
    if settings:
        print("settings: " + " ".join(f"{key}={value}" for key, value in settings.items()))
    async with postgres_deployment(None, workdir, settings=settings) as deployment:
        await measure_phases(deployment, data, arguments.settle)


async def measure_phases(deployment: Deployment, data: bytes, settle: float) -> None:
    pids = {"api": deployment.api_pid, "worker": deployment.worker_pids[0]}
    async with httpx.AsyncClient(
        base_url=deployment.base_url, headers=deployment.headers, timeout=JOB_TIMEOUT_SECONDS
    ) as client:
        await asyncio.sleep(settle)
        idle = {role: rss_mib(pid) for role, pid in pids.items()}
        print(f"idle RSS: api {idle['api']:.1f} MiB, worker {idle['worker']:.1f} MiB")
        asset_id = (await upload(client, data))["id"]
        await asyncio.sleep(settle)
        rows = []
        for name, role, phase in phases(data, asset_id):
            pid = pids[role]
            before = rss_mib(pid)
            reset_peak(pid)
            started = time.perf_counter()
            sizes = await phase(client)
            seconds = time.perf_counter() - started
            await asyncio.sleep(settle)
            peak, after = peak_rss_mib(pid), rss_mib(pid)
            rows.append(
                [
                    name,
                    role,
                    before,
                    peak,
                    f"{(peak - idle[role]) / DECODED_MIB:.2f}x",
                    after,
                    seconds,
                    ",".join(sorted(set(sizes))),
                ]
            )
    print_table(
        [
            "phase",
            "process",
            "RSS before MiB",
            "peak MiB",
            "(peak-idle)/decoded",
            "RSS after MiB",
            "seconds",
            "output sizes",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settle", type=float, default=3.0, help="idle seconds before reading")
    parser.add_argument(
        "--setting", action="append", default=[], help="DARKROOM_X=Y for both processes"
    )
    run_bench("Darkroom memory per kind, 40 MP input", measure, parser.parse_args())


if __name__ == "__main__":
    main()
