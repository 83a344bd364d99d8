"""Benchmark a burst of slow vendor jobs through one worker with default settings, against the
same vendor calls made directly at full concurrency, both measured in the same run.

A fake OpenAI vendor (bench/vendor.py) answers every call after 2 s with a PNG the size of a
real vendor's. Darkroom runs on Postgres and Redis with one `darkroom worker`, every setting at
its default (DARKROOM_RUNNER_CONCURRENCY is not set), except that the API's rate limit is set out
of the bench's reach. After one warm-up job, 500 generate jobs (`openai/gpt-image-2`, n=1,
1024x1024) are submitted as fast as the submitters can (each answer a 202, no waiting); the
bench then polls the API until none is queued or running, and reads every job back. Figures:
the time from the first submit to the last job finished and from the last submit to it (from
the jobs' own finished_at), jobs succeeded, each job's time from creation to finish (p50/p99),
the most calls in flight at the fake at once, and the worker's and the API's peak RSS (VmHWM).

The baseline is the same 500 calls sent straight to the fake by httpx, all at once (with
`photo` images it includes this process receiving about 1.3 GiB of answers, which on a busy
machine takes seconds of its own; the output says how many).

    .venv/bin/python bench/fanin.py [--jobs 500] [--delay 2] [--image photo]
"""

import argparse
import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from vendor import (
    IMAGE_KINDS,
    PROMPT,
    Deployment,
    FakeVendor,
    LoadRun,
    expect,
    fake_vendor,
    http_clients,
    peak_rss_mib,
    percentile,
    postgres_deployment,
    print_table,
    ratio,
    run_bench,
    run_load,
    tenant_jobs,
)

GENERATE_BODY = {"prompt": PROMPT, "model": "openai/gpt-image-2", "n": 1, "size": "1024x1024"}
POLL_SECONDS = 1.0
PROGRESS_SECONDS = 30.0


async def pending(client: httpx.AsyncClient, deployment: Deployment) -> bool:
    """Whether any of the tenant's jobs is still queued or running."""
    for status in ("queued", "running"):
        response = await client.get(
            f"{deployment.base_url}/v1/jobs",
            params={"status": status, "limit": 1},
            headers=deployment.headers,
        )
        expect(response, 200)
        if response.json()["data"]:
            return True
    return False


async def count_final(client: httpx.AsyncClient, deployment: Deployment, job_ids: set[str]) -> int:
    """How many of `job_ids` are final (read from the job list)."""
    jobs = await tenant_jobs(client, deployment)
    return sum(job["id"] in job_ids and job["finished_at"] is not None for job in jobs)


async def wait_until_final(
    client: httpx.AsyncClient, deployment: Deployment, job_ids: set[str], seconds: float
) -> bool:
    """Poll until no job is queued or running; say how far it got every so often. False when
    `seconds` pass first."""
    started = time.monotonic()
    next_report = started + PROGRESS_SECONDS
    while await pending(client, deployment):
        now = time.monotonic()
        if now - started > seconds:
            return False
        if now >= next_report:
            done = await count_final(client, deployment, job_ids)
            print(f"  {done}/{len(job_ids)} final after {now - started:.0f} s", flush=True)
            next_report += PROGRESS_SECONDS
        await asyncio.sleep(POLL_SECONDS)
    return True


def timestamp(value: str) -> float:
    """An API timestamp as Unix seconds."""
    return datetime.fromisoformat(value).timestamp()


@dataclass
class Outcome:
    """What Darkroom made of the burst: times in seconds (from the jobs' own records), each
    job's time from creation to finish, the fake's peak in flight, and peak RSS in MiB."""

    submit: LoadRun
    succeeded: int
    finished_in_time: bool
    submit_seconds: float
    total_seconds: float
    after_last_submit: float
    job_seconds: list[float]
    vendor_peak: int
    worker_peak_mib: float
    api_peak_mib: float


def worker_settings(arguments: argparse.Namespace) -> dict[str, str]:
    """The settings that differ from the defaults: only a runner concurrency asked for."""
    if arguments.runner_concurrency is None:
        return {}
    return {"DARKROOM_RUNNER_CONCURRENCY": str(arguments.runner_concurrency)}


async def through_darkroom(
    vendor: FakeVendor, workdir: Path, arguments: argparse.Namespace
) -> Outcome:
    """Submit the burst to one default worker and read the outcome back."""
    async with (
        postgres_deployment(
            vendor, workdir, workers=1, settings=worker_settings(arguments)
        ) as deployment,
        http_clients(arguments.submitters) as clients,
    ):
        client = clients[0]
        warm_up = await client.post(
            f"{deployment.base_url}/v1/generate",
            json=GENERATE_BODY,
            headers=deployment.headers | {"Prefer": "wait=60"},
        )
        expect(warm_up, 200)
        await vendor.reset()
        job_ids: set[str] = set()

        async def submit(submitter: httpx.AsyncClient, _: int) -> None:
            response = await submitter.post(
                f"{deployment.base_url}/v1/generate", json=GENERATE_BODY, headers=deployment.headers
            )
            expect(response, 202)
            job_ids.add(response.json()["id"])

        print(f"  submitting {arguments.jobs} jobs ...", flush=True)
        first_submit = time.time()
        submitted = await run_load(submit, arguments.jobs, clients)
        last_submit = time.time()
        timeout = arguments.jobs * arguments.delay + 600
        finished_in_time = await wait_until_final(client, deployment, job_ids, timeout)
        jobs = [job for job in await tenant_jobs(client, deployment) if job["id"] in job_ids]
        stats = await vendor.stats()
        worker_peak = peak_rss_mib(deployment.worker_pids[0])
        api_peak = peak_rss_mib(deployment.api_pid)
    succeeded = [job for job in jobs if job["status"] == "succeeded"]
    last_finished = max((timestamp(job["finished_at"]) for job in succeeded), default=last_submit)
    return Outcome(
        submit=submitted,
        succeeded=len(succeeded),
        finished_in_time=finished_in_time,
        submit_seconds=last_submit - first_submit,
        total_seconds=last_finished - first_submit,
        after_last_submit=last_finished - last_submit,
        job_seconds=[job["timings"]["total_ms"] / 1000 for job in succeeded],
        vendor_peak=stats["peak_in_flight"],
        worker_peak_mib=worker_peak,
        api_peak_mib=api_peak,
    )


@dataclass
class Direct:
    """The baseline: its run, the fake's peak in flight, the size of one answer, and the CPU
    time this process spent sending the calls and receiving the answers."""

    run: LoadRun
    vendor_peak: int
    answer_mib: float
    client_cpu_seconds: float


async def direct(vendor: FakeVendor, jobs: int) -> Direct:
    """The same calls straight to the fake, all at once."""
    await vendor.reset()
    url = f"{vendor.base_url}/images/generations"
    body = vendor.generation_body()
    answer_bytes: list[int] = []

    async def send(client: httpx.AsyncClient, _: int) -> None:
        response = await client.post(url, json=body, headers=vendor.headers)
        expect(response, 200)
        answer_bytes.append(len(response.content))

    async with http_clients(jobs) as clients:
        cpu_before = time.process_time()
        run = await run_load(send, jobs, clients)
        cpu_seconds = time.process_time() - cpu_before
    peak = (await vendor.stats())["peak_in_flight"]
    return Direct(run, peak, max(answer_bytes, default=0) / 2**20, cpu_seconds)


async def measure(arguments: argparse.Namespace, workdir: Path) -> None:
    """Run Darkroom and the baseline, and print the table."""
    async with fake_vendor(arguments.delay, arguments.image, workdir) as vendor:
        print("  direct calls ...", flush=True)
        baseline = await direct(vendor, arguments.jobs)
        darkroom = await through_darkroom(vendor, workdir, arguments)
    jobs, delay, direct_run = arguments.jobs, arguments.delay, baseline.run
    changed = worker_settings(arguments)
    setup = ", ".join(f"{name}={value}" for name, value in changed.items()) or "default settings"
    print(
        f"\n{jobs} generate jobs (openai/gpt-image-2, n=1, 1024x1024), fake vendor answering "
        f"after {delay:g} s with '{arguments.image}' PNGs.\nDarkroom: Postgres + Redis, one "
        f"darkroom worker, {setup}; submitted by "
        f"{arguments.submitters} concurrent submitters (202s), then polled until final.\n"
        f"Direct: the same {jobs} vendor calls by httpx, all at once. Each answer is "
        f"{baseline.answer_mib:.1f} MiB; receiving them took this process "
        f"{baseline.client_cpu_seconds:.1f} s of CPU, part of the direct time on a busy machine."
    )
    submit_rate = f"{darkroom.submit_seconds:.1f} ({jobs / darkroom.submit_seconds:.0f} jobs/s)"
    rows = [
        ["calls", jobs, jobs],
        ["succeeded", darkroom.succeeded, len(direct_run.latencies)],
        ["submit phase s", submit_rate, "-"],
        ["first submit to all done s", darkroom.total_seconds, direct_run.wall_seconds],
        ["last submit to all done s", darkroom.after_last_submit, "-"],
        [
            "per job p50 s (created to finished)",
            percentile(darkroom.job_seconds, 50),
            direct_run.p50_ms / 1000,
        ],
        ["per job p99 s", percentile(darkroom.job_seconds, 99), direct_run.p99_ms / 1000],
        ["vendor calls in flight, peak", darkroom.vendor_peak, baseline.vendor_peak],
        ["worker peak RSS MiB", darkroom.worker_peak_mib, "-"],
        ["API peak RSS MiB", darkroom.api_peak_mib, "-"],
        [
            "total time ratio (darkroom / direct)",
            ratio(darkroom.total_seconds, direct_run.wall_seconds),
            "1.00x",
        ],
    ]
    print_table(["", "darkroom", "direct"], rows)
    if not darkroom.finished_in_time:
        print("Darkroom did not finish every job before the bench's timeout.")
    for failure in (darkroom.submit.first_failure, direct_run.first_failure):
        if failure:
            print(f"first failure: {failure}")


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--delay", type=float, default=2.0, help="the fake vendor's seconds")
    parser.add_argument("--image", choices=IMAGE_KINDS, default="photo")
    parser.add_argument("--submitters", type=int, default=32, help="concurrent submitters")
    parser.add_argument(
        "--runner-concurrency",
        type=int,
        help="jobs the worker runs at once (DARKROOM_RUNNER_CONCURRENCY); its default if omitted",
    )
    run_bench(
        "A burst of slow vendor jobs through one default worker", measure, parser.parse_args()
    )


if __name__ == "__main__":
    main()
