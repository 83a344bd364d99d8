"""Benchmark Darkroom's OpenAI-compatible `POST /v1/images/generations` against the LiteLLM proxy
in front of the same fake vendor, with the bare vendor call as the baseline, all in one run.

A fake OpenAI vendor that answers at once (bench/vendor.py) stands in for OpenAI. Each target
answers OpenAI's ImagesResponse for gpt-image-2, n=1, 1024x1024:

- darkroom embedded: `darkroom serve` with no DARKROOM_REDIS_URL (SQLite, in-process runner);
- darkroom postgres: `darkroom serve` and one `darkroom worker` on Postgres and Redis;
  on both, each call is a job (recorded, its image stored as an asset) the route waits for;
- litellm: the LiteLLM proxy (`litellm --config`) routing `gpt-image-2` to the fake as an OpenAI
  model with `api_base` set to it. LiteLLM is not a Darkroom dependency: on first use the bench
  installs a pinned release into a virtualenv of its own, bench/.litellm-venv (not in git).
  When it cannot be installed or started, the bench says why and reports Darkroom alone.

The baseline is the vendor call sent straight to the fake by the same httpx clients, measured
before and after the proxies and pooled; each target is measured with one caller and with 20
concurrent callers. Darkroom keeps every default setting except its rate limit, set out of the
bench's reach. Figures: p50/p99 ms, req/s, and the latency each proxy adds to the direct call.

    .venv/bin/python bench/openai_compat.py [--sequential 100] [--requests 400] [--callers 20]
"""

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from vendor import (
    PROMPT,
    REPO_ROOT,
    Deployment,
    FakeVendor,
    RequestFailed,
    Send,
    direct_call,
    expect,
    fake_vendor,
    free_port,
    http_clients,
    latency_options,
    measure_deployments,
    measure_target,
    print_latency_table,
    run_bench,
    running,
    wait_until_answering,
)

LITELLM_VENV = REPO_ROOT / "bench" / ".litellm-venv"
# Pinned, so that every run measures the same proxy and no unvetted release is pulled in:
# releases of this package have been published with malware before (1.82.7 and 1.82.8).
LITELLM_REQUIREMENT = "litellm[proxy]==1.106.12"
INSTALL_SECONDS = 1800
PROXY_MODEL = "gpt-image-2"


class LiteLLMUnavailable(Exception):
    """LiteLLM could not be installed or started here; the message says why."""


@dataclass(frozen=True)
class ImagesEndpoint:
    """Where an OpenAI client would point: base URL (with `/v1`), key and model name."""

    base_url: str
    api_key: str
    model: str

    def generation(self) -> Send:
        """One `POST /images/generations` that must answer 200 with an image."""
        url = f"{self.base_url}/images/generations"
        body = {"model": self.model, "prompt": PROMPT, "n": 1, "size": "1024x1024"}
        headers = {"Authorization": f"Bearer {self.api_key}"}

        async def send(client: httpx.AsyncClient, _: int) -> None:
            response = await client.post(url, json=body, headers=headers)
            expect(response, 200)
            if not response.json().get("data"):
                raise RequestFailed(f"no image: {response.text[:300]}")

        return send


def install_litellm() -> Path:
    """The `litellm` command of the bench's own virtualenv, installed there on first use."""
    command = LITELLM_VENV / "bin" / "litellm"
    marker = LITELLM_VENV / "installed.txt"
    if command.exists() and marker.exists() and marker.read_text() == LITELLM_REQUIREMENT:
        return command
    print(f"  installing {LITELLM_REQUIREMENT} into {LITELLM_VENV} (once) ...", flush=True)
    steps = (
        [sys.executable, "-m", "venv", "--clear", str(LITELLM_VENV)],
        [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q", LITELLM_REQUIREMENT],
    )
    for step in steps:
        try:
            completed = subprocess.run(
                step, capture_output=True, text=True, timeout=INSTALL_SECONDS
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LiteLLMUnavailable(f"`{' '.join(step)}` did not run: {exc}") from exc
        if completed.returncode != 0:
            output = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
            raise LiteLLMUnavailable(f"`{' '.join(step)}` failed: " + " / ".join(output))
    marker.write_text(LITELLM_REQUIREMENT)
    return command


@contextlib.asynccontextmanager
async def litellm_proxy(
    command: Path, vendor: FakeVendor, workdir: Path
) -> AsyncIterator[ImagesEndpoint]:
    """The LiteLLM proxy routing PROXY_MODEL to the fake vendor, with a master key of its own
    (the proxy refuses to start without one)."""
    port = free_port()
    master_key = f"sk-{secrets.token_hex(24)}"
    config = {
        "model_list": [
            {
                "model_name": PROXY_MODEL,
                "litellm_params": {
                    "model": f"openai/{PROXY_MODEL}",
                    "api_base": vendor.base_url,
                    "api_key": vendor.api_key,
                },
            }
        ],
        "general_settings": {"master_key": master_key},
    }
    # JSON is YAML, so the config needs no YAML writer.
    config_path = workdir / "litellm.yaml"
    config_path.write_text(json.dumps(config, indent=2))
    # Its own environment: not Darkroom's checkout on the path, and the model price table it
    # ships rather than a download this machine cannot make.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_")}
    environment.pop("PYTHONPATH", None)
    environment["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    arguments = ["--config", str(config_path), "--host", "127.0.0.1", "--port", str(port)]
    log = workdir / "litellm.log"
    with running([str(command), *arguments], environment, log) as pid:
        base_url = f"http://127.0.0.1:{port}"
        try:
            await wait_until_answering(f"{base_url}/health/liveliness", pid, log)
        except RuntimeError as exc:
            raise LiteLLMUnavailable(f"the proxy did not start: {exc}") from exc
        yield ImagesEndpoint(f"{base_url}/v1", master_key, PROXY_MODEL)


def images_generation(deployment: Deployment) -> Send:
    """A Darkroom deployment's OpenAI-compatible generation request."""
    endpoint = ImagesEndpoint(f"{deployment.base_url}/v1", deployment.api_key, "openai/gpt-image-2")
    return endpoint.generation()


async def measure(sizes: argparse.Namespace, workdir: Path) -> None:
    """Run every target and print the table."""
    counts = sizes.sequential, sizes.requests
    litellm_problem = None
    try:
        litellm = await asyncio.to_thread(install_litellm)
    except LiteLLMUnavailable as exc:
        litellm, litellm_problem = None, str(exc)
    async with (
        fake_vendor(0, sizes.image, workdir) as vendor,
        http_clients(sizes.callers) as clients,
    ):
        direct = await measure_target(direct_call(vendor), clients, vendor, *counts)
        targets = await measure_deployments(vendor, clients, workdir, counts, images_generation)
        if litellm is not None:
            try:
                async with litellm_proxy(litellm, vendor, workdir) as endpoint:
                    print("  measuring litellm ...", flush=True)
                    targets["litellm proxy"] = await measure_target(
                        endpoint.generation(), clients, vendor, *counts
                    )
            except LiteLLMUnavailable as exc:
                litellm_problem = str(exc)
        direct += await measure_target(direct_call(vendor), clients, vendor, *counts)
    print(
        "\nPOST /v1/images/generations, gpt-image-2 n=1 1024x1024 (Darkroom: openai/gpt-image-2), "
        f"b64_json answers; the fake vendor answers at once with '{sizes.image}' PNGs.\nadded = "
        "target minus the direct call at the same percentile; ratio = target / direct; vendor "
        "peak = most calls in flight at the fake. The direct rows pool runs before and after."
    )
    print_latency_table(direct, targets, sizes.callers)
    if litellm_problem:
        print(f"LiteLLM not measured: {litellm_problem}")
    else:
        print(f"LiteLLM: {LITELLM_REQUIREMENT}, one proxy process, default settings.")


def main() -> None:
    """Parse the options and run."""
    arguments = latency_options(__doc__.splitlines()[0]).parse_args()
    run_bench(
        "Darkroom's OpenAI-compatible images route against the LiteLLM proxy", measure, arguments
    )


if __name__ == "__main__":
    main()
