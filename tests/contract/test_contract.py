"""The OpenAPI document says what the server does: schemathesis runs every check over every
operation but the event stream (examples, coverage, fuzzing and stateful phases, with a fixed
seed and a bounded number of cases) against a real `darkroom serve`, and any failure fails."""

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.support import darkroom_serve, free_port

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SCHEMATHESIS = Path(sys.executable).with_name("st")
PHASES = ("Examples", "Coverage", "Fuzzing", "Stateful")
ADMIN_TOKEN = "contract-admin-token"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """`darkroom serve` on the embedded default in a fresh data directory, with no rate limit
    (the run makes thousands of requests a minute): (base URL, API key)."""
    settings = Settings(
        data_dir=tmp_path / "var",
        port=free_port(),
        rate_limit_requests=0,
        admin_token=ADMIN_TOKEN,
    )
    async with darkroom_serve(settings, "contract", tmp_path / "server.log") as (base_url, key, _):
        yield base_url, key


def run_schemathesis(base_url: str, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "--no-color",
            "run",
            f"{base_url}/openapi.json",
            "--checks",
            "all",
            "--exclude-path",
            "/v1/jobs/{job_id}/events",
        ],
        cwd=ROOT,
        env=os.environ
        | {
            # tests/contract/schemathesis.toml sends these as the API key and the operator's token,
            # and loads its hooks from tests/contract/hooks.py.
            "CONTRACT_API_KEY": key,
            "CONTRACT_ADMIN_TOKEN": ADMIN_TOKEN,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )


async def test_the_server_does_what_its_openapi_document_says(server):
    result = await asyncio.to_thread(run_schemathesis, *server)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = output[output.index("SUMMARY") :]
    for phase in PHASES:
        assert f"✅ {phase}" in summary, summary
    # Every operation but the event stream was selected and tested.
    selected = re.search(r"Selected: (\d+)/(\d+)", summary)
    assert selected is not None, summary
    assert int(selected[1]) == int(selected[2]) - 1, summary
    assert f"Tested: {selected[1]}" in summary, summary
