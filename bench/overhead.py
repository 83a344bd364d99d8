"""Benchmark what Darkroom adds to one image generation over a bare call to the vendor, both
measured in the same run.

A fake OpenAI vendor that answers at once (bench/vendor.py) stands in for OpenAI. Each request is
`POST /v1/generate` for `openai/gpt-image-2`, n=1, 1024x1024, with `Prefer: wait=60`, so its
answer is the finished job (200, succeeded): the whole production path of one job, from the API
through the queue, the provider call, the pixels and the stored asset, back to the caller. It is
sent one request at a time, then by 20 concurrent callers, on two deployments:

- embedded: `darkroom serve` with no DARKROOM_REDIS_URL (SQLite, the in-process job runner);
- postgres: `darkroom serve` and one `darkroom worker` on Postgres and Redis.

Every setting keeps its default, except that the API's rate limit is set out of the bench's
reach. The baseline is the vendor call Darkroom makes, sent straight to the fake by the same
httpx client and the same callers, measured before and after the deployments and pooled. The
fake answers at once, so the time Darkroom adds is its end-to-end latency minus the baseline's
at the same percentile. The fake's images are `flat` by default (small PNGs, so the figures are
the service's own cost); `--image photo` sends PNGs the size of a real vendor's, and then the
decoding and re-encoding of the pixels is in the figures too.

    .venv/bin/python bench/overhead.py [--sequential 100] [--requests 400] [--callers 20]
"""

import argparse
from pathlib import Path

import httpx
from vendor import (
    PROMPT,
    Deployment,
    RequestFailed,
    Send,
    direct_call,
    expect,
    fake_vendor,
    http_clients,
    latency_options,
    measure_deployments,
    measure_target,
    print_latency_table,
    run_bench,
)

GENERATE_BODY = {"prompt": PROMPT, "model": "openai/gpt-image-2", "n": 1, "size": "1024x1024"}


def generate_and_wait(deployment: Deployment) -> Send:
    """A generate job that waits for its result and must have succeeded."""
    url = f"{deployment.base_url}/v1/generate"
    headers = deployment.headers | {"Prefer": "wait=60"}

    async def send(client: httpx.AsyncClient, _: int) -> None:
        response = await client.post(url, json=GENERATE_BODY, headers=headers)
        expect(response, 200)
        if (status := response.json()["status"]) != "succeeded":
            raise RequestFailed(f"job {status}: {response.text[:300]}")

    return send


async def measure(sizes: argparse.Namespace, workdir: Path) -> None:
    """Run every target and print the table."""
    counts = sizes.sequential, sizes.requests
    async with (
        fake_vendor(0, sizes.image, workdir) as vendor,
        http_clients(sizes.callers) as clients,
    ):
        direct = await measure_target(direct_call(vendor), clients, vendor, *counts)
        targets = await measure_deployments(vendor, clients, workdir, counts, generate_and_wait)
        direct += await measure_target(direct_call(vendor), clients, vendor, *counts)
    print(
        "\nPOST /v1/generate, openai/gpt-image-2 n=1 1024x1024, Prefer: wait=60 (req/s = jobs/s); "
        f"the fake vendor answers at once with '{sizes.image}' PNGs.\nadded = target minus the "
        "direct call at the same percentile; ratio = target / direct; vendor peak = most calls "
        "in flight at the fake. The direct rows pool runs before and after the deployments."
    )
    print_latency_table(direct, targets, sizes.callers)


def main() -> None:
    """Parse the options and run."""
    arguments = latency_options(__doc__.splitlines()[0]).parse_args()
    run_bench("Darkroom overhead over a bare vendor call", measure, arguments)


if __name__ == "__main__":
    main()
