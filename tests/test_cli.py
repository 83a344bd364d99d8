"""The `darkroom` command: migrate (also concurrently), keys create, worker preconditions."""

import asyncio
import contextlib
import os
import subprocess
import time

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.cli import head_revision, migrate
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.models import ApiKey, Base
from app.services.keys import hash_key
from tests.factories import image_bytes
from tests.support import darkroom_command, darkroom_environment, fresh_database, serving


def run_cli(settings: Settings, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        darkroom_command(*arguments),
        env=darkroom_environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_keys_create_prints_the_key_last_and_stores_only_its_hash(tmp_path):
    settings = Settings(data_dir=tmp_path)

    result = run_cli(settings, "keys", "create", "--tenant", "acme")

    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("dk_") and len(key) > 40
    engine = create_engine(str(settings.database_url))
    try:
        async with create_sessionmaker(engine)() as session:
            stored = list(await session.scalars(select(ApiKey)))
    finally:
        await engine.dispose()
    assert [row.key_hash for row in stored] == [hash_key(key)]
    assert key not in (tmp_path / "darkroom.db").read_bytes().decode("latin-1")


def test_worker_refuses_to_start_without_redis(tmp_path):
    result = run_cli(Settings(data_dir=tmp_path), "worker")

    assert result.returncode != 0
    assert "DARKROOM_REDIS_URL" in result.stderr


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
    async with contextlib.AsyncExitStack() as stack:
        if backend == "postgres":
            url = await stack.enter_async_context(fresh_database("schema"))
        else:
            url = f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"
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
