"""Benchmark: Darkroom on Postgres + Redis + one worker under faults, one scenario per
subcommand, each next to a baseline measured in the same run.

    .venv/bin/python bench/faults.py storm [--jobs 200] [--runs 3]
    .venv/bin/python bench/faults.py dead-worker [--jobs 100] [--kill-after 35] [--delay 2]
    .venv/bin/python bench/faults.py redis-outage [--jobs 100] [--outage 10]

`storm`: a fake OpenAI vendor (bench/vendor.py) answering 20% HTTP 500, 10% 429 with
Retry-After 1, 5% slower than the 3 s vendor time limit and 5% cut-off JSON; `--jobs` jobs on
`openai/gpt-image-2` without fallback models, submitted at once. It prints the jobs succeeded and
failed by error type, the vendor calls per success, and the time from the first submission to
the last job finished, next to the same jobs on a vendor without faults. The settings it needs
are set explicitly in STORM_SETTINGS (the others keep their defaults).

`dead-worker`: a worker killed mid-run with the default lease settings; `redis-outage`: Redis
killed mid-run and restarted empty. bench/faults_dead_worker.py and bench/faults_redis_outage.py
hold those scenarios.
"""

import argparse
import asyncio
import collections
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import faults_dead_worker
import faults_redis_outage
import httpx
from vendor import (
    STORM_FAULTS,
    Deployment,
    FakeVendor,
    fake_vendor,
    load_average,
    postgres_deployment,
    print_table,
    ratio,
    run_bench,
)

MODEL = "openai/gpt-image-2"
PROMPT = "a lighthouse in a gale, wide shot"
# The storm's one setting: the vendor's 3 s time limit. Everything else keeps its default: the
# attempt budget of 7 (40% of calls fail, so 0.4**7 = 0.16% of jobs would fail every attempt),
# the breaker, the backoff and the worker's concurrency.
STORM_SETTINGS = {"DARKROOM_PROVIDER_TIMEOUT_SECONDS": "3"}
SUBMIT_CALLERS = 10
POLL_SECONDS = 0.5
FINISH_SECONDS = 1800


@dataclass
class JobsRun:
    """What a batch of jobs came to: the final jobs, the vendor's count of calls and faults, and
    the seconds from the first submission to the last job finished."""

    jobs: list[dict[str, Any]]
    vendor_calls: int
    faults: dict[str, int]
    seconds: float
    breaker_openings: int = 0

    @property
    def succeeded(self) -> int:
        """Jobs that succeeded."""
        return sum(job["status"] == "succeeded" for job in self.jobs)

    def failures(self) -> collections.Counter[str]:
        """Failed jobs by error type, an open breaker named as such."""
        return collections.Counter(
            error_kind(job) for job in self.jobs if job["status"] != "succeeded"
        )

    def first_failure(self) -> str | None:
        """The first failed job's error detail."""
        failed = [job for job in self.jobs if job["status"] != "succeeded"]
        return (failed[0].get("error") or {}).get("detail") if failed else None

    @property
    def calls_per_success(self) -> float:
        """Vendor calls made for each job that succeeded."""
        return self.vendor_calls / self.succeeded if self.succeeded else float("nan")


def error_kind(job: dict[str, Any]) -> str:
    """A failed job's error type (the problem type's last part), `circuit open` if a breaker
    ended it; a job that did not finish is `unfinished`."""
    error = job.get("error") or {}
    if job["status"] not in ("succeeded", "failed", "canceled"):
        return "unfinished"
    if error.get("circuit") == "open":
        return f"{error['type'].rsplit('/', 1)[-1]} (circuit open)"
    return str(error.get("type", job["status"])).rsplit("/", 1)[-1]


async def run_jobs(
    deployment: Deployment, vendor: FakeVendor, count: int, workdir: Path
) -> JobsRun:
    """Submit `count` jobs at once (by SUBMIT_CALLERS callers), wait for every one to finish,
    and read the vendor's calls and the times the worker's breaker opened."""
    await vendor.reset()
    body = {"prompt": PROMPT, "model": MODEL}
    async with httpx.AsyncClient(base_url=deployment.base_url, timeout=60) as client:
        pending = list(range(count))
        ids: list[str] = []

        async def submitter() -> None:
            while pending:
                pending.pop()
                response = await client.post("/v1/generate", json=body, headers=deployment.headers)
                if response.status_code != 202:
                    raise RuntimeError(f"submission: {response.status_code} {response.text[:300]}")
                ids.append(response.json()["id"])

        await asyncio.gather(*(submitter() for _ in range(SUBMIT_CALLERS)))
        jobs = await wait_for_jobs(client, deployment, ids)
    stats = await vendor.stats()
    created = min(parse_time(job["created_at"]) for job in jobs)
    finished = max(parse_time(job["finished_at"]) for job in jobs if job.get("finished_at"))
    seconds = (finished - created).total_seconds()
    openings = breaker_openings(deployment, workdir)
    return JobsRun(jobs, stats["calls"], stats["faults"], seconds, openings)


def breaker_openings(deployment: Deployment, workdir: Path) -> int:
    """How often the worker's breaker opened (or opened again after a failed trial), from the
    log lines it writes then (postgres_deployment names the log after the API's port)."""
    log = workdir / f"postgres-{urlsplit(deployment.base_url).port}-worker.log"
    if not log.exists():
        return 0
    return sum("calls to it pause for" in line for line in log.read_text().splitlines())


async def wait_for_jobs(
    client: httpx.AsyncClient, deployment: Deployment, ids: list[str]
) -> list[dict[str, Any]]:
    """Every job once final, polled one after another (a finished job is read once)."""
    deadline = time.monotonic() + FINISH_SECONDS
    jobs = []
    for job_id in ids:
        while True:
            response = await client.get(f"/v1/jobs/{job_id}", headers=deployment.headers)
            job = response.json()
            if job["status"] in ("succeeded", "failed", "canceled"):
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
        jobs.append(job)
    return jobs


def parse_time(value: str) -> datetime:
    """A timestamp of the API."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def measure_storm(arguments: argparse.Namespace, workdir: Path) -> None:
    """The jobs on a vendor without faults, then on one with the storm's faults, `--runs`
    times, each on a fresh deployment."""
    print(f"fault mix: {STORM_FAULTS}; settings: {STORM_SETTINGS}")
    results: list[tuple[str, JobsRun]] = []
    for run in range(1, arguments.runs + 1):
        for faults in ("none", "storm"):
            async with (
                fake_vendor(0.0, "flat", workdir, faults) as vendor,
                postgres_deployment(
                    vendor, workdir, workers=1, settings=STORM_SETTINGS
                ) as deployment,
            ):
                name = "baseline" if faults == "none" else "storm"
                print(f"  run {run}: {arguments.jobs} jobs, {name} ...", flush=True)
                measured = await run_jobs(deployment, vendor, arguments.jobs, workdir)
                results.append((f"{name} {run}", measured))
                print(f"    load average (1, 5, 15 min): {load_average()}", flush=True)
    print_storm(results)


def print_storm(results: list[tuple[str, JobsRun]]) -> None:
    """One row per batch, the failures by type and the faults served, then the medians."""
    columns = ["run", "jobs", "succeeded", "succeeded %", "vendor calls", "calls/success"]
    columns += ["breaker openings", "seconds", "time ratio"]
    baselines = [run.seconds for name, run in results if name.startswith("baseline")]
    baseline = statistics.median(baselines)
    rows = [
        [
            name,
            len(run.jobs),
            run.succeeded,
            100 * run.succeeded / len(run.jobs),
            run.vendor_calls,
            f"{run.calls_per_success:.2f}",
            run.breaker_openings,
            run.seconds,
            ratio(run.seconds, baseline),
        ]
        for name, run in results
    ]
    print_table(columns, rows)
    for name, run in results:
        print(f"{name}: failed by type {dict(run.failures()) or '{}'}; faults served {run.faults}")
        if run.first_failure():
            print(f"  first failure: {run.first_failure()}")
    storms = [run for name, run in results if name.startswith("storm")]
    share = statistics.median(100 * run.succeeded / len(run.jobs) for run in storms)
    calls = statistics.median(run.calls_per_success for run in storms)
    seconds = statistics.median(run.seconds for run in storms)
    print(
        f"storm medians: {share:.1f}% succeeded, {calls:.2f} vendor calls per success, "
        f"{seconds:.1f} s ({ratio(seconds, baseline)} the baseline's {baseline:.1f} s)"
    )


SCENARIOS = {
    "storm": (measure_storm, "a vendor failure storm without fallback models"),
    "dead-worker": (faults_dead_worker.measure, "a worker killed mid-run, default lease settings"),
    "redis-outage": (faults_redis_outage.measure, "Redis killed mid-run and restarted empty"),
}


def main() -> None:
    """Run the scenario the subcommand names."""
    parser = argparse.ArgumentParser(description="Darkroom under faults, against a baseline.")
    scenarios = parser.add_subparsers(dest="scenario", required=True)
    storm = scenarios.add_parser("storm", help=SCENARIOS["storm"][1])
    storm.add_argument("--jobs", type=int, default=200, help="jobs per batch")
    storm.add_argument("--runs", type=int, default=1, help="baseline and storm batches")
    dead_worker = scenarios.add_parser("dead-worker", help=SCENARIOS["dead-worker"][1])
    faults_dead_worker.options(dead_worker)
    redis_outage = scenarios.add_parser("redis-outage", help=SCENARIOS["redis-outage"][1])
    faults_redis_outage.options(redis_outage)
    arguments = parser.parse_args()
    measure, title = SCENARIOS[arguments.scenario]
    run_bench(f"bench/faults.py {arguments.scenario}: {title}", measure, arguments)


if __name__ == "__main__":
    main()
