"""Benchmark one job of several outputs on a slow vendor: whether they wait on the vendor together
or one after another, against one vendor call made directly, both measured in the same run.

A fake OpenAI vendor (bench/vendor.py) answers every call after `--delay` seconds (2 s). Darkroom
runs on Postgres and Redis with one `darkroom worker`, every setting at its default. Each request
is `POST /v1/generate` for `openai/gpt-image-2` with `n: 4` and `Prefer: wait`, sent one at a
time: OpenAI makes several images a call (`n`), so the four outputs are one call. (Models that
make one image a call make a job's outputs as that many calls at once; the suite shows it with
the Stability fake, which answers only the requests it is sent.)

The baseline is one call straight to the fake for one image. Figures: each model's median and
slowest wall time of the job, the vendor calls it made, and the most calls the fake had in
flight at once; the ratio is the median to the baseline's.

    .venv/bin/python bench/outputs.py [--jobs 5] [--n 4] [--delay 2]
"""

import argparse
import statistics
import time
from pathlib import Path

import httpx
from vendor import (
    PROMPT,
    Deployment,
    FakeVendor,
    expect,
    fake_vendor,
    postgres_deployment,
    print_table,
    ratio,
    run_bench,
)

MODELS = ("openai/gpt-image-2",)


async def job_seconds(
    client: httpx.AsyncClient, deployment: Deployment, model: str, n: int
) -> float:
    """The wall time of one generate job that waits for its result, which must succeed."""
    body = {"prompt": PROMPT, "model": model, "n": n, "size": "1024x1024"}
    headers = deployment.headers | {"Prefer": "wait=60"}
    started = time.perf_counter()
    response = await client.post(f"{deployment.base_url}/v1/generate", json=body, headers=headers)
    seconds = time.perf_counter() - started
    expect(response, 200)
    job = response.json()
    if job["status"] != "succeeded" or len(job["outputs"]) != n:
        raise SystemExit(f"{model}: job did not make {n} outputs: {job.get('error')}")
    return seconds


async def direct_seconds(client: httpx.AsyncClient, vendor: FakeVendor) -> float:
    """One call for one image straight to the fake."""
    started = time.perf_counter()
    response = await client.post(
        f"{vendor.base_url}/images/generations",
        json=vendor.generation_body(),
        headers=vendor.headers,
    )
    expect(response, 200)
    return time.perf_counter() - started


async def measure(arguments: argparse.Namespace, workdir: Path) -> None:
    """Run the jobs of each model and the direct calls, and print the table."""
    rows = []
    async with (
        fake_vendor(arguments.delay, "flat", workdir) as vendor,
        httpx.AsyncClient(timeout=120) as client,
    ):
        direct = [await direct_seconds(client, vendor) for _ in range(arguments.jobs)]
        baseline = statistics.median(direct)
        async with postgres_deployment(vendor, workdir) as deployment:
            await job_seconds(client, deployment, MODELS[0], 1)  # warm-up
            for model in MODELS:
                await vendor.reset()
                times = [
                    await job_seconds(client, deployment, model, arguments.n)
                    for _ in range(arguments.jobs)
                ]
                stats = await vendor.stats()
                median = statistics.median(times)
                rows.append(
                    [
                        f"{model}, n={arguments.n}",
                        median,
                        max(times),
                        stats["calls"] / arguments.jobs,
                        stats["peak_in_flight"],
                        ratio(median, baseline),
                    ]
                )
    rows.append(["direct call, one image", baseline, max(direct), 1, 1, "1.00x"])
    print(
        f"\n{arguments.jobs} jobs per model, one at a time, Prefer: wait; the fake vendor answers "
        f"after {arguments.delay:g} s. Darkroom: Postgres + Redis, one worker, default settings."
    )
    print_table(
        ["", "median s", "slowest s", "vendor calls per job", "calls in flight, peak", "ratio"],
        rows,
    )


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5, help="jobs per model")
    parser.add_argument("--n", type=int, default=4, help="outputs per job")
    parser.add_argument("--delay", type=float, default=2.0, help="the fake vendor's seconds")
    run_bench("One job of several outputs on a slow vendor", measure, parser.parse_args())


if __name__ == "__main__":
    main()
