"""A TypeScript client generated from the checked-in `openapi/openapi.json` with
`@hey-api/openapi-ts` (its Fetch API client), compiled with `tsc --strict`, drives a running
server: generate, follow the event stream, download, and a refusal read as a typed problem.

The client is generated anew on every run, each test in a copy of clients/typescript of its
own (the project's files, its installed node_modules linked), so a spec that drifts from what
the hand-written driver expects fails to compile, and tests running at once never share
generated files. The npm packages come from `make test` (`npm ci` in clients/typescript); Node
is needed by the tests only."""

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.support import REPO_ROOT, darkroom_serve, free_port, wait_until_serving

PROJECT = REPO_ROOT / "clients" / "typescript"
SPEC_PATH = REPO_ROOT / "openapi" / "openapi.json"
DRIVER = PROJECT / "src" / "roundtrip.ts"
PROJECT_FILES = ["package.json", "tsconfig.json", "openapi-ts.config.ts", "src/roundtrip.ts"]
TOOLS = PROJECT / "node_modules" / ".bin"
NOT_INSTALLED = (
    "the TypeScript client's npm packages are not installed: run `make test`, or "
    "`npm ci` in clients/typescript"
)


def node() -> str:
    """The `node` executable; the tests fail (not skip) without Node and npm, as CI has both."""
    found = shutil.which("node")
    assert found is not None and shutil.which("npm"), "Node.js 20.19+ and npm are needed"
    assert (TOOLS / "openapi-ts").exists() and (TOOLS / "tsc").exists(), NOT_INSTALLED
    return found


def copy_project(directory: Path) -> Path:
    """A copy of the TypeScript project in `directory`, sharing the installed node_modules."""
    for name in PROJECT_FILES:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT / name, directory / name)
    (directory / "node_modules").symlink_to(PROJECT / "node_modules", target_is_directory=True)
    return directory


def run_tool(project: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run a node tool of the TypeScript project (openapi-ts, tsc) from the copy's directory."""
    return subprocess.run(
        [node(), *arguments],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


def generate_client(project: Path, spec: Path) -> None:
    """Generate the SDK from `spec` into the copy's src/generated (the project's config)."""
    result = run_tool(project, str(TOOLS / "openapi-ts"), "--silent", "--input", str(spec))
    assert result.returncode == 0, result.stdout + result.stderr


def compile_project(project: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`tsc -p` of the copy (strict, per its tsconfig) with extra options."""
    return run_tool(project, str(TOOLS / "tsc"), "-p", str(project), *options)


@pytest.fixture(scope="module")
def compiled_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The driver and the client generated from the checked-in spec, compiled to ES modules in
    the copy's build directory: the driver's compiled path."""
    project = copy_project(tmp_path_factory.mktemp("typescript"))
    generate_client(project, SPEC_PATH)
    result = compile_project(project, "--noEmit", "false", "--outDir", str(project / "build"))
    assert result.returncode == 0, result.stdout + result.stderr
    return project / "build" / "roundtrip.js"


@pytest.fixture(scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """`darkroom serve` on the embedded default in a fresh data dir, started but not yet waited
    on, so that it boots while the client compiles: (base URL, API key, process)."""
    root = tmp_path_factory.mktemp("typescript-server")
    settings = Settings(data_dir=root / "var", port=free_port())
    async with darkroom_serve(settings, "typescript", root / "server.log", wait=False) as started:
        yield started


def test_driver_reads_the_api_only_through_generated_types():
    source = DRIVER.read_text(encoding="utf-8")
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)

    # A cast or an `any` would let the driver compile against a spec it no longer matches.
    assert not re.search(r"\bany\b|\bas\s+[A-Za-z{\[]", code)
    assert "@ts-" not in source
    assert "from './generated/sdk.gen.js'" in source
    assert "from './generated/types.gen.js'" in source


def test_driver_fails_to_compile_against_a_spec_that_drifted(tmp_path):
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    output = spec["components"]["schemas"]["JobOutput"]
    output["properties"]["asset"] = output["properties"].pop("asset_id")
    output["required"] = ["asset" if name == "asset_id" else name for name in output["required"]]
    drifted = tmp_path / "openapi.json"
    drifted.write_text(json.dumps(spec), encoding="utf-8")
    project = copy_project(tmp_path / "typescript")

    generate_client(project, drifted)
    result = compile_project(project)

    assert result.returncode != 0
    assert "Property 'asset_id' does not exist on type 'JobOutput'" in result.stdout


async def test_generated_client_generates_follows_events_downloads_and_reads_problems(
    server, compiled_driver
):
    base_url, key, server_process = server
    await wait_until_serving(base_url, server_process)
    environment = {**os.environ, "DARKROOM_BASE_URL": base_url, "DARKROOM_API_KEY": key}

    process = await asyncio.create_subprocess_exec(
        node(),
        str(compiled_driver),
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)

    assert process.returncode == 0, stderr.decode()
    summary = json.loads(stdout)
    job, output, problem = summary["job"], summary["output"], summary["problem"]
    assert job["submitted_status"] in {"queued", "running"} and job["status"] == "succeeded"
    assert job["events"][-1] == "succeeded"
    assert output["content_type"] == "image/png" and output["is_png"] is True
    assert output["downloaded_bytes"] == output["reported_bytes"] > 0
    assert output["png_size"] == output["reported_size"] == [320, 200]
    assert problem.pop("detail").startswith("Unknown model 'nowhere/no-such-model'")
    assert problem == {
        "name": "DarkroomProblem",
        "type": "/problems/model-unavailable",
        "title": "Model unavailable",
        "status": 422,
    }
