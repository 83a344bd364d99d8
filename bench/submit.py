"""Benchmark the submission path, `POST /v1/generate` answered 202, under 200 concurrent
clients, against a floor app that does the least the same submission needs, both measured in
the same run.

Darkroom is one `darkroom serve` process on Postgres and Redis with no worker: the jobs stay
queued, so the figures are the API's alone and no worker competes for the cores. Every setting
keeps its default, except that the API's rate limit is set out of the bench's reach (it still
counts every request in Redis). The floor is bench/submit_floor.py (a key lookup by hash, the
same pydantic body model, one INSERT into the same jobs table, one arq enqueue), served by
uvicorn with the same settings, on a database and queue of its own. Each request asks for a
`local/draft` image, no wait. Both get the same requests from the same load generator (200
concurrent httpx clients in this bench's process, which shares the machine's cores with the
server), in alternating rounds so that the noise of a shared machine falls on both alike.

Figures: req/s, p50 and p99 latency, failures, the server's CPU time per request (from
/proc, steadier than wall time on a busy machine), the load generator's CPU time per request,
and the ratios of Darkroom to the floor.

    .venv/bin/python bench/submit.py [--requests 4000] [--clients 200] [--rounds 2]
"""

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from vendor import (
    PROMPT,
    Deployment,
    LoadRun,
    cpu_seconds,
    expect,
    http_clients,
    postgres_deployment,
    print_table,
    ratio,
    run_bench,
    run_load,
)

BODY = {"prompt": PROMPT, "model": "local/draft", "size": "1024x1024"}
FLOOR_COMMAND = [sys.executable, str(Path(__file__).with_name("submit_floor.py"))]


@dataclass
class Target:
    """One server under load: its runs, and the CPU seconds it and the client spent on them."""

    deployment: Deployment
    runs: list[LoadRun] = field(default_factory=list)
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    async def load(self, clients: list[httpx.AsyncClient], requests: int) -> LoadRun:
        """`requests` submissions, one concurrent client per client; CPU time counted."""
        url = f"{self.deployment.base_url}/v1/generate"
        headers = self.deployment.headers

        async def send(client: httpx.AsyncClient, _: int) -> None:
            expect(await client.post(url, json=BODY, headers=headers), 202)

        server_before, client_before = cpu_seconds(self.deployment.api_pid), time.process_time()
        run = await run_load(send, requests, clients)
        self.server_cpu += cpu_seconds(self.deployment.api_pid) - server_before
        self.client_cpu += time.process_time() - client_before
        return run

    @property
    def pooled(self) -> LoadRun:
        """Every measured round as one run."""
        return LoadRun.pooled(self.runs)

    def cpu_ms_per_request(self, seconds: float) -> float:
        """CPU seconds spent on the measured rounds, per request, in ms."""
        run = self.pooled
        return 1000 * seconds / max(1, len(run.latencies) + run.failures)

    def row(self, name: str) -> list[object]:
        """This target's line of the table."""
        run = self.pooled
        return [
            name,
            len(run.latencies),
            run.failures,
            run.per_second,
            run.p50_ms,
            run.p99_ms,
            self.cpu_ms_per_request(self.server_cpu),
            self.cpu_ms_per_request(self.client_cpu),
        ]


async def measure(arguments: argparse.Namespace, workdir: Path) -> None:
    """Warm both servers up, run the rounds, print the table."""
    clients = arguments.clients
    async with (
        postgres_deployment(None, workdir, workers=0) as darkroom,
        postgres_deployment(None, workdir, workers=0, api_command=FLOOR_COMMAND) as floor,
        http_clients(clients) as pool,
    ):
        targets = {"darkroom": Target(darkroom), "floor": Target(floor)}
        for target in targets.values():
            await target.load(pool, arguments.warm_up)
            target.server_cpu = target.client_cpu = 0.0
        per_round = max(1, arguments.requests // arguments.rounds)
        for number in range(arguments.rounds):
            for name, target in targets.items():
                print(f"  round {number + 1}/{arguments.rounds}: {name} ...", flush=True)
                target.runs.append(await target.load(pool, per_round))
    print(
        f"\nPOST /v1/generate (local/draft, 202, no wait), {clients} concurrent clients, "
        f"{arguments.rounds} alternating rounds of {per_round} requests each, after "
        f"{arguments.warm_up} warm-up requests.\nDarkroom: one darkroom serve on Postgres + "
        "Redis, no worker (jobs stay queued). Floor: bench/submit_floor.py, same uvicorn settings."
    )
    ours, floor_target = targets["darkroom"], targets["floor"]
    columns = ["target", "requests", "failed", "req/s", "p50 ms", "p99 ms"]
    columns += ["server CPU ms/req", "client CPU ms/req"]
    rows = [ours.row("darkroom"), floor_target.row("floor")]
    rows.append(
        ["darkroom / floor", "", ""]
        + [ratio(mine, theirs) for mine, theirs in zip(rows[0][3:], rows[1][3:], strict=True)]
    )
    print_table(columns, rows)
    for name, target in targets.items():
        if failure := target.pooled.first_failure:
            print(f"first failure of {name}: {failure}")


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="measured requests per server")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server")
    parser.add_argument("--warm-up", type=int, default=200, help="unmeasured requests first")
    run_bench(
        "Darkroom's submission path against a minimal floor app", measure, parser.parse_args()
    )


if __name__ == "__main__":
    main()
