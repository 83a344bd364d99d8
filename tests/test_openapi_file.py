"""The checked-in `openapi/openapi.json`: what `darkroom openapi` prints,
and good enough to generate a working Python client with `openapi-python-client`."""

import asyncio
import importlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

from app.cli import openapi_json
from app.config import Settings
from tests.support import (
    REPO_ROOT,
    darkroom_command,
    darkroom_environment,
    darkroom_serve,
    embedded_only,
    free_port,
)

SPEC_PATH = REPO_ROOT / "openapi" / "openapi.json"
SDK_PACKAGE = "darkroom_client"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
STALE = (
    "openapi/openapi.json is stale: run `make openapi` "
    "(`darkroom openapi --output openapi/openapi.json`) and commit it."
)


def test_checked_in_spec_is_current(tmp_path):
    assert SPEC_PATH.read_text(encoding="utf-8") == openapi_json(Settings(data_dir=tmp_path)), STALE


def test_openapi_command_writes_the_document_sorted_and_indented(tmp_path):
    settings = Settings(data_dir=tmp_path / "var")
    output = tmp_path / "spec" / "openapi.json"

    result = subprocess.run(
        darkroom_command("openapi", "--output", str(output)),
        env=darkroom_environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    text = output.read_text(encoding="utf-8")
    assert text == openapi_json(settings)
    assert text.endswith("}\n") and text.startswith('{\n  "components": {')
    assert json.loads(text)["info"]["title"] == "Darkroom"


def test_openapi_command_prints_exactly_the_checked_in_document(tmp_path):
    result = subprocess.run(
        darkroom_command("openapi"),
        env=darkroom_environment(Settings(data_dir=tmp_path / "var")),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == SPEC_PATH.read_text(encoding="utf-8"), STALE


def generator_config(spec: dict) -> dict:
    """Generator settings: image and archive downloads are read as bytes (the generator only
    knows octet-stream for binary bodies), and no formatter runs over the output."""
    media_types = {
        media_type
        for operations in spec["paths"].values()
        for operation in operations.values()
        for response in operation["responses"].values()
        for media_type in response.get("content", {})
        if not media_type.endswith("json") and not media_type.startswith("text/")
    }
    overrides = dict.fromkeys(sorted(media_types), "application/octet-stream")
    return {"content_type_overrides": overrides, "post_hooks": []}


@pytest.fixture(scope="session")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The Python client generated from the checked-in spec, once per test session."""
    root = tmp_path_factory.mktemp("sdk")
    config = root / "config.json"
    config.write_text(json.dumps(generator_config(json.loads(SPEC_PATH.read_text()))))
    result = subprocess.run(
        [
            *(str(GENERATOR), "generate", "--path", str(SPEC_PATH), "--meta", "none"),
            *("--output-path", str(root / SDK_PACKAGE), "--config", str(config)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A clean spec generates without a warning, so no operation is left out of the client.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(SDK_PACKAGE)
    finally:
        sys.path.remove(str(root))


@pytest.fixture(params=["embedded", "postgres"])
async def server(
    request: pytest.FixtureRequest, tmp_path: Path, deployment_settings: Settings
) -> AsyncIterator[tuple[str, str]]:
    """A real `darkroom serve` process on a free port (embedded, or on Postgres with the
    session's arq worker and bucket), and an API key for it: (base URL, key)."""
    port = free_port()
    if request.param == "postgres":
        request.getfixturevalue("worker")
        settings = deployment_settings.model_copy(update={"port": port})
    else:
        settings = Settings(data_dir=tmp_path / "var", port=port)
    async with darkroom_serve(settings, "sdk", tmp_path / "server.log") as (base_url, key, _):
        yield base_url, key


async def test_generated_client_drives_generate_poll_download(sdk, server):
    from darkroom_client.api.assets import get_asset_content
    from darkroom_client.api.generate import generate_image
    from darkroom_client.api.jobs import get_job
    from darkroom_client.models import GenerateRequest, GenerateRequestOutputFormat, Job

    base_url, key = server
    client = sdk.AuthenticatedClient(base_url=base_url, token=key, raise_on_unexpected_status=True)
    async with client:
        job = await generate_image.asyncio(
            client=client,
            body=GenerateRequest(
                prompt="a lighthouse at dusk",
                size="320x200",
                output_format=GenerateRequestOutputFormat.WEBP,
            ),
        )
        assert isinstance(job, Job), job
        deadline = time.monotonic() + 60
        while job.status not in ("succeeded", "failed", "canceled"):
            assert time.monotonic() < deadline, f"job {job.id} still {job.status}"
            await asyncio.sleep(0.05)
            job = await get_job.asyncio(job.id, client=client)
        assert job.status == "succeeded", job
        (output,) = job.outputs
        content = await get_asset_content.asyncio(output.asset_id, client=client)

    image = Image.open(content.payload)
    assert image.format == "WEBP" and image.size == (320, 200) == (output.width, output.height)


@embedded_only("server")
async def test_generated_client_reads_errors_as_problems(sdk, server):
    from darkroom_client.api.jobs import get_job
    from darkroom_client.models import Problem

    base_url, key = server
    async with sdk.AuthenticatedClient(base_url=base_url, token=key) as client:
        missing = await get_job.asyncio("job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P", client=client)
    async with sdk.AuthenticatedClient(base_url=base_url, token="dk_wrong") as client:
        refused = await get_job.asyncio_detailed("job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P", client=client)

    assert isinstance(missing, Problem) and missing.status == 404
    assert refused.status_code == 401 and isinstance(refused.parsed, Problem)
