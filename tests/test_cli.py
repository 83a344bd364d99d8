"""The `darkroom` command: migrate (also concurrently), where `keys create` keeps its data, the
start-up preconditions of serve and worker, gc. The keys and tenants commands are in
tests/test_cli_keys.py."""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import make_url

from app.cli import head_revision, migrate
from app.config import Settings
from app.db import create_engine
from app.models import Base
from tests.factories import image_bytes
from tests.support import (
    POSTGRES_URL,
    REPO_ROOT,
    darkroom_command,
    empty_database,
    free_port,
    fresh_database,
    postgres_settings,
    run_cli,
    serving,
    stop_worker,
    wait_until_serving,
)


def copy_of_darkroom(root: Path, *, checkout: bool) -> Path:
    """Darkroom's `app` and `migrations` packages copied into `root`: a source checkout (with
    pyproject.toml beside them), or laid out as an installed package (the wheel ships both).
    With its own migrations the copy never migrates by another checkout's, which an editable
    install of that checkout would otherwise supply."""
    ignored = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO_ROOT / "app", root / "app", ignore=ignored)
    shutil.copytree(REPO_ROOT / "migrations", root / "migrations", ignore=ignored)
    if checkout:
        shutil.copy(REPO_ROOT / "pyproject.toml", root)
    return root


def default_environment(code: Path, data_home: Path, **settings: str) -> dict[str, str]:
    """An environment with no DARKROOM_* settings but `settings`, importing Darkroom from `code`,
    whose user data directory lies in `data_home`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_")}
    environment |= {f"DARKROOM_{name.upper()}": value for name, value in settings.items()}
    return environment | {"PYTHONPATH": str(code), "XDG_DATA_HOME": str(data_home)}


def keys_create_in(directory: Path, environment: dict[str, str]) -> subprocess.CompletedProcess:
    """`darkroom keys create` run from `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-c", "from app.cli import main; main()", "keys", "create"]
    return subprocess.run(
        [*command, "--tenant", directory.name],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def serve_from(directory: Path, environment: dict[str, str]) -> subprocess.Popen[bytes]:
    """`darkroom serve` run from `directory`."""
    return subprocess.Popen(
        darkroom_command("serve"),
        cwd=directory,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_a_key_made_from_any_directory_is_accepted_by_make_run(tmp_path):
    checkout = copy_of_darkroom(tmp_path / "checkout", checkout=True)
    environment = default_environment(checkout, tmp_path / "data-home")
    elsewhere = tmp_path / "elsewhere"

    created = keys_create_in(elsewhere, environment)

    assert created.returncode == 0, created.stderr
    assert f"in the database sqlite+aiosqlite:///{checkout / 'var' / 'darkroom.db'}." in (
        created.stderr
    )
    assert not (elsewhere / "var").exists()
    key = created.stdout.strip()
    port = free_port()
    # What `make run` does: `darkroom serve` from the checkout, with nothing configured.
    server = serve_from(checkout, environment | {"DARKROOM_PORT": str(port)})
    try:
        await wait_until_serving(f"http://127.0.0.1:{port}", server)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            jobs = await http.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"})
    finally:
        stop_worker(server)
    assert jobs.status_code == 200, jobs.text


async def test_an_installed_darkroom_keeps_its_data_in_the_user_data_directory(tmp_path):
    installed = copy_of_darkroom(tmp_path / "site-packages", checkout=False)
    data_home = tmp_path / "data-home"
    environment = default_environment(installed, data_home)

    created = [keys_create_in(tmp_path / name, environment) for name in ("one", "two")]

    database = data_home / "darkroom" / "darkroom.db"
    for result, name in zip(created, ("one", "two"), strict=True):
        assert result.returncode == 0, result.stderr
        assert f"sqlite+aiosqlite:///{database}." in result.stderr
        assert not (tmp_path / name / "var").exists()
    async with serving(Settings(data_dir=data_home / "darkroom")) as (_, client, _auth):
        for result in created:
            key = result.stdout.strip()
            jobs = await client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"})
            assert jobs.status_code == 200, jobs.text


def test_worker_refuses_to_start_without_redis(tmp_path):
    result = run_cli(Settings(data_dir=tmp_path), "worker")

    assert result.returncode != 0
    assert "DARKROOM_REDIS_URL" in result.stderr


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_start_up_waits_for_the_database_then_exits_with_one_message(tmp_path, command):
    with socket.socket() as closed:
        # Bound but never listening: every connection to it is refused, as while Postgres starts.
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/darkroom"
        settings = postgres_settings(url, tmp_path, startup_timeout_seconds=1.5)

        result = run_cli(settings, command)

    lines = result.stderr.strip().splitlines()
    attempts = [line for line in lines if "is not accepting connections" in line]
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    # At 0, 0.5 and 1.5 s: the first two are logged and retried, the last one gives up.
    assert [f"attempt {n}," in line for n, line in enumerate(attempts, 1)] == [True, True]
    assert lines[-1].startswith(f"darkroom: the database at 127.0.0.1:{port}/darkroom did not")
    assert "within 1.5 s (attempts: 3;" in lines[-1]
    assert "DARKROOM_STARTUP_TIMEOUT_SECONDS" in lines[-1]
    assert len(lines) == 3


def test_start_up_gives_up_at_once_on_a_database_that_will_not_come(tmp_path):
    url = make_url(POSTGRES_URL).set(database="no_such_database").render_as_string(False)
    settings = postgres_settings(url, tmp_path, startup_timeout_seconds=60)

    started = time.monotonic()
    result = run_cli(settings, "serve")

    assert result.returncode == 1
    assert time.monotonic() - started < 30
    assert result.stderr.strip() == (
        f"darkroom: cannot connect to the database at {url.split('@')[-1]}: "
        'database "no_such_database" does not exist.'
    )


async def test_concurrent_migrations_on_postgres_all_succeed(tmp_path):
    async with fresh_database("migrate") as url:
        settings = Settings(database_url=url, data_dir=tmp_path)

        # Separate processes, as an API and its workers starting together would be.
        results = await asyncio.gather(
            *(asyncio.to_thread(run_cli, settings, "migrate") for _ in range(3))
        )

        assert [result.returncode for result in results] == [0, 0, 0]
        database = await asyncpg.connect(
            make_url(url).set(drivername="postgresql").render_as_string(False)
        )
        tables = {
            row["tablename"] for row in await database.fetch("SELECT tablename FROM pg_tables")
        }
        version = await database.fetchval("SELECT version_num FROM alembic_version")
        await database.close()
        assert {"tenants", "api_keys", "jobs", "assets", "asset_parents"} <= tables
        assert version == head_revision()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_migrations_build_exactly_the_tables_the_models_describe(tmp_path, backend):
    async with empty_database(backend, "schema", tmp_path) as url:
        settings = Settings(database_url=url, data_dir=tmp_path)
        await asyncio.to_thread(migrate, settings)
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                differences = await connection.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
                )
        finally:
            await engine.dispose()

    assert differences == []


async def test_gc_deletes_only_old_files_no_asset_refers_to(tmp_path):
    settings = Settings(data_dir=tmp_path / "var")
    async with serving(settings) as (app, client, auth):
        kept = await client.post(
            "/v1/assets", files={"file": ("a.png", image_bytes(), "image/png")}, headers=auth
        )
        storage = app.state.storage
        await storage.put("ab/orphan.png", b"refused request bytes")
        await storage.put("cd/recent-orphan.png", b"a request still in flight")
        await storage.put("ef/.incoming-crashed", b"partial write")
    kept_key = next(
        path.relative_to(storage.root).as_posix()
        for path in storage.root.rglob("*.png")
        if "orphan" not in path.name
    )
    an_hour_and_more_ago = time.time() - 3700
    for key in ("ab/orphan.png", "ef/.incoming-crashed", kept_key):
        os.utime(storage.root / key, (an_hour_and_more_ago, an_hour_and_more_ago))

    result = run_cli(settings, "gc")

    assert result.returncode == 0, result.stderr
    assert "deleted 2 unreferenced asset files" in result.stdout
    remaining = {
        p.relative_to(storage.root).as_posix() for p in storage.root.rglob("*") if p.is_file()
    }
    assert remaining == {kept_key, "cd/recent-orphan.png"}
    assert kept.status_code == 201
