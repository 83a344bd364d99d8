"""The `redis-outage` scenario of bench/faults.py: Redis killed mid-run and restarted empty, with
every setting at its default, against the same jobs without an outage, both in the same run.

A fake OpenAI vendor (bench/vendor.py) answers every call after 2 s. Darkroom runs on Postgres
and a Redis of the bench's own (a `redis-server` on a free port, without persistence, so a
restart comes back empty), with one `darkroom serve` and one `darkroom worker`. 100 generate
jobs (`openai/gpt-image-2`, n=2) are submitted; a second later, while they wait on the vendor,
Redis is killed for `--outage` seconds (10) while 20 more jobs are submitted, then started
again. Figures: jobs
succeeded, the processes still alive (none is restarted), and the time from Redis's return to
the last job finished. The baseline is the same jobs on a fresh deployment without an outage.

    .venv/bin/python bench/faults.py redis-outage [--jobs 100] [--outage 10]
"""

import argparse
import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from faults_dead_worker import submit_jobs, timestamp, wait_until_final
from vendor import (
    FakeVendor,
    fake_vendor,
    free_port,
    is_alive,
    postgres_deployment,
    print_table,
    ratio,
    tenant_jobs,
)

if TYPE_CHECKING:
    from tests.support import PrivateRedis

KILL_AFTER_SECONDS = 1.0
DURING = 20


@contextlib.contextmanager
def private_redis(directory: Path) -> Iterator["PrivateRedis"]:
    """The suite's private redis-server (importable once `vendor` put the checkout on the path),
    started, and killed after."""
    from tests.support import PrivateRedis

    server = PrivateRedis(free_port(), directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def run_jobs(
    vendor: FakeVendor, workdir: Path, arguments: argparse.Namespace, *, outage: bool
) -> dict:
    """The jobs on a fresh deployment on a fresh Redis; with `outage`, Redis dies mid-run."""
    with private_redis(workdir) as redis:
        await redis.wait_until_answering()
        settings = {"DARKROOM_REDIS_URL": redis.url}
        async with (
            postgres_deployment(vendor, workdir, settings=settings) as deployment,
            httpx.AsyncClient(timeout=60) as client,
        ):
            first_submit, job_ids = await submit_jobs(deployment, arguments.jobs)
            returned = None
            if outage:
                # The jobs are then in flight, waiting on the vendor.
                await asyncio.sleep(KILL_AFTER_SECONDS)
                redis.kill()
                _, during = await submit_jobs(deployment, DURING)
                job_ids |= during
                await asyncio.sleep(arguments.outage)
                redis.start()
                await redis.wait_until_answering()
                returned = time.time()
            finished_in_time = await wait_until_final(client, deployment)
            jobs = [job for job in await tenant_jobs(client, deployment) if job["id"] in job_ids]
            alive = all(is_alive(pid) for pid in [deployment.api_pid, *deployment.worker_pids])
    last = max(timestamp(job["finished_at"]) for job in jobs if job["finished_at"])
    return {
        "jobs": len(jobs),
        "succeeded": sum(job["status"] == "succeeded" for job in jobs),
        "alive": alive,
        "finished_in_time": finished_in_time,
        "total": last - first_submit,
        "after_return": None if returned is None else last - returned,
    }


async def measure(arguments: argparse.Namespace, workdir: Path) -> None:
    """The run without an outage, then the run with one, on the same fake vendor."""
    async with fake_vendor(2.0, "flat", workdir) as vendor:
        print("  jobs without an outage ...", flush=True)
        baseline = await run_jobs(vendor, workdir, arguments, outage=False)
        print("  jobs with Redis killed and restarted empty ...", flush=True)
        with_outage = await run_jobs(vendor, workdir, arguments, outage=True)
    print(
        f"\n{arguments.jobs} generate jobs (openai/gpt-image-2, n=2) on a 2 s fake vendor; "
        f"Postgres + a private Redis + one worker, default settings. Outage run: Redis killed "
        f"{KILL_AFTER_SECONDS:g} s after the submits, {DURING} more submitted during it, restarted "
        f"empty after {arguments.outage:g} s."
    )
    rows = [
        ["jobs", with_outage["jobs"], baseline["jobs"]],
        ["succeeded", with_outage["succeeded"], baseline["succeeded"]],
        ["API and worker still running", with_outage["alive"], baseline["alive"]],
        ["Redis back to last job finished s", with_outage["after_return"], "-"],
        ["first submit to last finished s", with_outage["total"], baseline["total"]],
        ["ratio", ratio(with_outage["total"], baseline["total"]), "1.00x"],
    ]
    print_table(["", "outage", "no outage"], rows)
    for name, run in (("outage", with_outage), ("no outage", baseline)):
        if not run["finished_in_time"]:
            print(f"{name}: not every job finished before the bench's timeout")


def options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The scenario's options, on `parser`."""
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds Redis is down")
    return parser
