"""Benchmark a worker killed mid-run with default lease settings: how soon its jobs run again on
a new worker, against the same jobs run without a kill, both measured in the same run.

A fake OpenAI vendor (bench/vendor.py) answers every call after 2 s. Darkroom runs on Postgres
and Redis with one `darkroom worker`, every setting at its default (the lease, its renewals and
the sweep included) except the API's rate limit. 100 generate jobs (`openai/gpt-image-2`, n=2,
1024x1024) are submitted at once; once 35 have succeeded, the worker is killed with SIGKILL and
a new one started at once. Figures: the jobs the worker held at the kill (stranded: running, or
taken from the queue and not yet claimed, read from arq's log lines), the time from the kill to
each running again (its attempt count going up, polled every 0.25 s), the time
from the kill and from the new worker's start to the last job finished, jobs succeeded, jobs
with exactly 2 distinct outputs, and vendor calls made. The baseline is the same 100 jobs on a
fresh deployment with no kill; the ratio compares first submit to last finished.

    .venv/bin/python bench/faults.py dead-worker [--jobs 100] [--kill-after 35] [--delay 2]
"""

import argparse
import asyncio
import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from vendor import (
    PROMPT,
    Deployment,
    FakeVendor,
    darkroom_command,
    expect,
    fake_vendor,
    http_clients,
    percentile,
    postgres_deployment,
    print_table,
    ratio,
    run_load,
    running,
    tenant_jobs,
)

OUTPUTS = 2
GENERATE_BODY = {"prompt": PROMPT, "model": "openai/gpt-image-2", "n": OUTPUTS, "size": "1024x1024"}
SUBMITTERS = 8
POLL_SECONDS = 0.25
FINISH_SECONDS = 900
# arq's log line for a message taken (→) or done (←): `  2.35s → job_01...[.2]:run_job(...)`.
ARQ_LINE = re.compile(r"s ([→←]) (job_[0-9A-Z]+(?:\.\d+)?):run_job")


@dataclass
class Kill:
    """The kill of a run: jobs succeeded and held by the worker (stranded) at it, when it was and
    when the new worker started (Unix seconds), and seconds from it to each stranded job running
    again."""

    done: int
    stranded: list[str]
    killed_at: float
    started_at: float
    running_again: list[float] = field(default_factory=list)


@dataclass
class Run:
    """What one run of the jobs came to: times in seconds, from the jobs' own records."""

    jobs: list[dict]
    first_submit: float
    vendor_calls: int
    finished_in_time: bool
    kill: Kill | None = None

    @property
    def last_finished(self) -> float:
        return max(timestamp(job["finished_at"]) for job in self.jobs if job["finished_at"])

    @property
    def first_submit_to_done(self) -> float:
        return self.last_finished - self.first_submit

    @property
    def succeeded(self) -> int:
        return sum(job["status"] == "succeeded" for job in self.jobs)

    @property
    def exact_outputs(self) -> int:
        """Jobs that succeeded with exactly OUTPUTS outputs, each a distinct asset."""
        return sum(
            job["status"] == "succeeded"
            and len({output["asset_id"] for output in job["outputs"]}) == OUTPUTS
            and len(job["outputs"]) == OUTPUTS
            for job in self.jobs
        )


def timestamp(value: str) -> float:
    """An API timestamp as Unix seconds."""
    return datetime.fromisoformat(value).timestamp()


async def get_job(client: httpx.AsyncClient, deployment: Deployment, job_id: str) -> dict:
    response = await client.get(
        f"{deployment.base_url}/v1/jobs/{job_id}", headers=deployment.headers
    )
    expect(response, 200)
    return response.json()


async def submit_jobs(deployment: Deployment, count: int) -> tuple[float, set[str]]:
    """Submit `count` jobs by a few concurrent submitters; when the first went and the ids."""
    job_ids: set[str] = set()

    async def submit(client: httpx.AsyncClient, _: int) -> None:
        response = await client.post(
            f"{deployment.base_url}/v1/generate", json=GENERATE_BODY, headers=deployment.headers
        )
        expect(response, 202)
        job_ids.add(response.json()["id"])

    first_submit = time.time()
    async with http_clients(SUBMITTERS) as clients:
        submitted = await run_load(submit, count, clients)
    if submitted.first_failure:
        raise RuntimeError(f"a submit failed: {submitted.first_failure}")
    return first_submit, job_ids


async def wait_until_final(client: httpx.AsyncClient, deployment: Deployment) -> bool:
    """Poll until no job is queued or running; False if that takes longer than the bench
    allows."""
    deadline = time.monotonic() + FINISH_SECONDS
    while time.monotonic() < deadline:
        queued = await tenant_jobs(client, deployment, "queued")
        if not queued and not await tenant_jobs(client, deployment, "running"):
            return True
        await asyncio.sleep(1)
    return False


async def wait_for_succeeded(client: httpx.AsyncClient, deployment: Deployment, count: int) -> int:
    """Poll until at least `count` jobs succeeded and one is running; how many succeeded."""
    while True:
        done = len(await tenant_jobs(client, deployment, "succeeded"))
        if done >= count and await tenant_jobs(client, deployment, "running"):
            return done
        await asyncio.sleep(POLL_SECONDS)


async def watch_running_again(
    client: httpx.AsyncClient, deployment: Deployment, stranded: list[dict], killed_at: float
) -> list[float]:
    """Seconds from the kill until each stranded job's attempt count went up (a new run
    claimed it; a job taken but not yet claimed counts from 0) or it became final."""
    waiting = {job["id"]: job["attempts"] for job in stranded}
    seconds: list[float] = []
    deadline = time.monotonic() + FINISH_SECONDS
    while waiting and time.monotonic() < deadline:
        for job_id, attempts in list(waiting.items()):
            job = await get_job(client, deployment, job_id)
            if job["attempts"] > attempts or job["finished_at"] is not None:
                seconds.append(time.time() - killed_at)
                del waiting[job_id]
        await asyncio.sleep(POLL_SECONDS)
    return seconds


async def run_jobs(
    vendor: FakeVendor, workdir: Path, arguments: argparse.Namespace, *, killed: bool
) -> Run:
    """Submit the jobs to a fresh deployment with one default worker; with `killed`, kill the
    worker mid-run and start another."""
    async with (
        postgres_deployment(vendor, workdir, workers=1) as deployment,
        httpx.AsyncClient(timeout=60) as client,
        contextlib.AsyncExitStack() as replacements,
    ):
        await vendor.reset()
        first_submit, job_ids = await submit_jobs(deployment, arguments.jobs)
        kill = None
        if killed:
            kill = await kill_and_replace(client, deployment, workdir, replacements, arguments)
        finished_in_time = await wait_until_final(client, deployment)
        jobs = [job for job in await tenant_jobs(client, deployment) if job["id"] in job_ids]
        calls = (await vendor.stats())["calls"]
    return Run(jobs, first_submit, calls, finished_in_time, kill)


async def kill_and_replace(
    client: httpx.AsyncClient,
    deployment: Deployment,
    workdir: Path,
    replacements: contextlib.AsyncExitStack,
    arguments: argparse.Namespace,
) -> Kill:
    """Once `kill_after` jobs succeeded, SIGKILL the worker, start another at once, and watch
    the jobs it held (running, or taken from the queue and not yet claimed) until each runs
    again."""
    done = await wait_for_succeeded(client, deployment, arguments.kill_after)
    os.kill(deployment.worker_pids[0], signal.SIGKILL)
    killed_at = time.time()
    port = urlsplit(deployment.base_url).port
    held = held_at_death(workdir / f"postgres-{port}-worker.log")
    stranded = [
        job
        for job in [await get_job(client, deployment, i) for i in held]
        if not job["finished_at"]
    ]
    log = workdir / "replacement-worker.log"
    replacements.enter_context(running(darkroom_command("worker"), deployment.environment, log))
    kill = Kill(done, [job["id"] for job in stranded], killed_at, time.time())
    claimed = sum(job["status"] == "running" for job in stranded)
    print(
        f"  killed the worker with {done} done, {claimed} running and "
        f"{len(stranded) - claimed} taken from the queue but not yet claimed",
        flush=True,
    )
    kill.running_again = await watch_running_again(client, deployment, stranded, killed_at)
    return kill


def held_at_death(worker_log: Path) -> set[str]:
    """The jobs a dead worker had taken from the queue and not finished, from arq's log lines
    (`→ job_id[.dispatch]:run_job(...)` when it takes one, `← ...` when it is done)."""
    taken, finished = set(), set()
    for line in worker_log.read_text(errors="replace").splitlines():
        if match := ARQ_LINE.search(line):
            arrow, queue_id = match.groups()
            (taken if arrow == "→" else finished).add(queue_id)
    return {queue_id.split(".")[0] for queue_id in taken - finished}


def print_runs(arguments: argparse.Namespace, baseline: Run, run: Run) -> None:
    """The figures of both runs side by side, and the kill's own."""
    kill = run.kill
    assert kill is not None
    again = sorted(kill.running_again)
    print(
        f"\n{arguments.jobs} generate jobs (openai/gpt-image-2, n={OUTPUTS}, 1024x1024), fake "
        f"vendor answering after {arguments.delay:g} s; Postgres + Redis, one darkroom worker, "
        f"default settings.\nKill run: SIGKILL to the worker once {arguments.kill_after} jobs "
        f"succeeded ({kill.done} when it came), a new worker started at once; "
        f"it held {len(kill.stranded)} unfinished jobs."
    )
    rows = [
        ["jobs", arguments.jobs, arguments.jobs],
        ["succeeded", run.succeeded, baseline.succeeded],
        [f"with exactly {OUTPUTS} distinct outputs", run.exact_outputs, baseline.exact_outputs],
        ["vendor calls", run.vendor_calls, baseline.vendor_calls],
        [
            "first submit to last finished s",
            run.first_submit_to_done,
            baseline.first_submit_to_done,
        ],
        ["kill to each stranded job running again s", " ".join(f"{s:.1f}" for s in again), "-"],
        ["kill to last stranded job running again s", max(again, default=float("nan")), "-"],
        ["kill to last job finished s", run.last_finished - kill.killed_at, "-"],
        ["new worker start to last job finished s", run.last_finished - kill.started_at, "-"],
        [
            "total time ratio (kill / no kill)",
            ratio(run.first_submit_to_done, baseline.first_submit_to_done),
            "1.00x",
        ],
    ]
    print_table(["", "killed worker", "no kill"], rows)
    if not (run.finished_in_time and baseline.finished_in_time):
        print("A run did not finish every job before the bench's timeout.")
    if again:
        print(f"median kill to running again: {percentile(again, 50):.1f} s")


async def measure(arguments: argparse.Namespace, workdir: Path) -> None:
    """The run without a kill, then the run with one, on the same fake vendor."""
    async with fake_vendor(arguments.delay, "flat", workdir) as vendor:
        print("  jobs without a kill ...", flush=True)
        baseline = await run_jobs(vendor, workdir, arguments, killed=False)
        print("  jobs with the worker killed ...", flush=True)
        with_kill = await run_jobs(vendor, workdir, arguments, killed=True)
    print_runs(arguments, baseline, with_kill)


def options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The dead-worker bench's options, on `parser`."""
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--kill-after", type=int, default=35, help="jobs succeeded at the kill")
    parser.add_argument("--delay", type=float, default=2.0, help="the fake vendor's seconds")
    return parser
