"""The wheel: it ships the migrations and the playground's files, and an installed
`darkroom migrate` finds and runs them."""

import contextlib
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.cli import head_revision
from app.config import Settings
from tests.conftest import S3_BUCKET
from tests.support import (
    RUN_ID,
    bucket_settings,
    darkroom_environment,
    free_port,
    fresh_database,
    postgres_settings,
    stop_worker,
    wait_until_serving,
)

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "app", "migrations"]
IGNORED = shutil.ignore_patterns("__pycache__")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources, so no build directory lands in the checkout."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=IGNORED)
        else:
            shutil.copy(ROOT / name, source / name)
    output = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", output, source],
        check=True,
        timeout=120,
    )
    return next(output.glob("darkroom-*.whl"))


def test_the_wheel_ships_the_migration_environment_and_every_revision(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    revisions = {
        f"migrations/versions/{path.name}" for path in (ROOT / "migrations/versions").glob("*.py")
    }

    assert revisions
    assert revisions | {"migrations/env.py", "migrations/script.py.mako"} <= names


def test_the_wheel_ships_the_playground(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    files = {f"app/playground/{path.name}" for path in (ROOT / "app/playground").iterdir()}

    assert {"app/playground/index.html", "app/playground/main.js"} <= files <= names


def test_an_installed_wheel_migrates_from_another_directory(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site, wheel],
        check=True,
        timeout=120,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environment = darkroom_environment(Settings(data_dir=elsewhere / "var"))
    environment["PYTHONPATH"] = str(site)

    result = subprocess.run(
        [site / "bin" / "darkroom", "migrate"],
        cwd=elsewhere,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    located = subprocess.run(
        [sys.executable, "-c", "from app.cli import MIGRATIONS; print(MIGRATIONS)"],
        cwd=elsewhere,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert located.stdout.strip() == str(site / "migrations")
    database = sqlite3.connect(elsewhere / "var" / "darkroom.db")
    assert database.execute("SELECT version_num FROM alembic_version").fetchall() == [
        (head_revision(),)
    ]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed, its dependencies taken from the test
    environment (a path file) rather than downloaded again: the interpreter to run it with."""
    venv = tmp_path_factory.mktemp("deploy") / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dependencies = next(path for path in sys.path if path.endswith("site-packages"))
    (Path(site) / "test-dependencies.pth").write_text(dependencies + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", wheel], check=True, timeout=120
    )
    return python


@contextlib.contextmanager
def deployment(
    python: Path, settings: Settings, root: Path
) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """The installed wheel migrated, with a key minted, serving from `root`/api and working
    from `root`/worker (each its own directory and data dir): the API's URL, the key and the
    API process."""
    api_directory, worker_directory = root / "api", root / "worker"
    api_directory.mkdir()
    worker_directory.mkdir()
    # Nothing of the checkout on the path: the processes run the installed wheel.
    environment = darkroom_environment(settings)
    environment.pop("PYTHONPATH", None)
    port = free_port()
    api = environment | {"DARKROOM_DATA_DIR": str(api_directory), "DARKROOM_PORT": str(port)}
    worker = environment | {"DARKROOM_DATA_DIR": str(worker_directory)}
    darkroom = str(python.parent / "darkroom")

    def run(*arguments: str) -> str:
        return subprocess.run(
            [darkroom, *arguments],
            cwd=api_directory,
            env=api,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout

    run("migrate")
    key = run("keys", "create", "--tenant", "deployed").strip()
    with (root / "api.log").open("wb") as api_log, (root / "worker.log").open("wb") as worker_log:
        serving = subprocess.Popen(
            [darkroom, "serve"], cwd=api_directory, env=api, stdout=api_log, stderr=api_log
        )
        working = subprocess.Popen(
            [darkroom, "worker"],
            cwd=worker_directory,
            env=worker,
            stdout=worker_log,
            stderr=worker_log,
        )
    try:
        yield f"http://127.0.0.1:{port}", key, serving
    finally:
        stop_worker(serving)
        stop_worker(working)


async def test_an_installed_wheel_runs_api_and_worker_sharing_only_postgres_redis_and_s3(
    installed: Path, s3_endpoint: str, tmp_path: Path
) -> None:
    async with fresh_database("deploy") as database_url:
        settings = postgres_settings(
            database_url,
            tmp_path,
            queue_name=f"darkroom:test:{RUN_ID}:deploy",
            **bucket_settings(s3_endpoint, S3_BUCKET, f"deploy-{RUN_ID}"),
        )
        with deployment(installed, settings, tmp_path) as (base_url, key, serving):
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
                await wait_until_serving(base_url, serving)
                job = await generated(client, headers)
                content = await client.get(job["outputs"][0]["url"], headers=headers)
                playground = [await client.get(path) for path in ("/", "/playground/main.js")]

    assert job["status"] == "succeeded", job
    # The installed package serves the playground from its own files.
    assert [response.status_code for response in playground] == [200, 200]
    assert content.status_code == 200
    assert content.content.startswith(b"\x89PNG")
    # The worker ran it, and neither process kept an asset on its own disk.
    assert f"{job['id']}:run_job" in (tmp_path / "worker.log").read_text()
    assert not list((tmp_path / "api").rglob("*.png"))
    assert not list((tmp_path / "worker").rglob("*.png"))


async def generated(client: httpx.AsyncClient, headers: dict[str, str]) -> dict:
    """A finished local/draft job made through the deployed API."""
    response = await client.post(
        "/v1/generate",
        json={"prompt": "a ceramic mug on a walnut desk", "model": "local/draft"},
        headers=headers | {"Prefer": "wait=30"},
    )
    assert response.status_code in (200, 202), response.text
    return response.json()
