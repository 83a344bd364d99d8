"""The `darkroom` command: serve, worker, migrate, keys create, tenants retention, gc, openapi.
All read DARKROOM_* settings."""

import argparse
import asyncio
import itertools
import json
import logging
import sys
import time
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.errors import InvalidInput
from app.logs import install_redaction, uvicorn_log_config
from app.services import assets
from app.services.keys import create_key
from app.services.retention import set_retention
from app.storage import open_storage

# The top-level `migrations` package: the checkout's directory, or the copy the wheel installed.
MIGRATIONS = Path(str(files("migrations")))
OPENAPI_PATH = Path("openapi/openapi.json")

# Waiting for a database that is still starting: the first pause, doubled up to the longest, and
# how long one connection attempt may take (a server that answers at all does in far less).
FIRST_RETRY_SECONDS = 0.5
LONGEST_RETRY_SECONDS = 5.0
CONNECT_ATTEMPT_SECONDS = 5.0
# Postgres' answers while it starts up or shuts down (57P03) and while it is full (53300) pass;
# so do refused, unresolvable and timed-out connections (OSError). Anything else will not.
PASSING_SQLSTATES = frozenset({"57P03", "53300"})

logger = logging.getLogger(__name__)


def head_revision() -> str:
    """The newest schema revision this code knows."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head() or ""


def migrate(settings: Settings) -> None:
    """Bring the database schema up to date (creating the SQLite file if need be)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = str(settings.database_url)
    command.upgrade(config, "head")


async def _create_key(settings: Settings, tenant: str) -> str:
    engine = create_engine(str(settings.database_url))
    try:
        async with create_sessionmaker(engine)() as session:
            key = await create_key(session, tenant)
            await session.commit()
            return key
    finally:
        await engine.dispose()


def keys_create(settings: Settings, tenant: str) -> None:
    """Mint an API key for a tenant: the key alone on stdout, and on stderr which database holds
    it, since a server on another database would refuse it."""
    migrate(settings)
    key = asyncio.run(_create_key(settings, tenant))
    print(
        f"Created an API key for tenant {tenant!r} in the database {_redacted(settings)}. "
        "It is shown once; only its hash is stored.",
        file=sys.stderr,
    )
    print(key)


def serve(settings: Settings) -> None:
    """Migrate, then serve the API with uvicorn."""
    import uvicorn

    from app.main import create_app

    migrate(settings)
    base_url = f"http://{settings.host}:{settings.port}"
    mode = "arq workers on Redis" if settings.redis_url else "the in-process job runner"
    print(f"Darkroom on {base_url} (database {_redacted(settings)}, jobs run by {mode}).")
    print("Get an API key with: .venv/bin/darkroom keys create --tenant NAME")
    print(f"API reference: {base_url}/docs")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=uvicorn_log_config(),
    )


def worker(settings: Settings) -> None:
    """Run an arq worker until interrupted."""
    from app.jobs.worker import create_worker

    migrate(settings)
    create_worker(settings).run()


def openapi_json(settings: Settings) -> str:
    """The app's OpenAPI document as checked in: sorted keys, indent 2, a trailing newline."""
    from app.main import create_app

    document = create_app(settings).openapi()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_openapi(settings: Settings, path: Path) -> None:
    """Write the OpenAPI document to `path`, creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(openapi_json(settings), encoding="utf-8")
    print(f"Wrote {path}.", file=sys.stderr)


def wait_for_database(settings: Settings) -> None:
    """Return once the database takes connections. While it cannot yet (refused, not resolvable,
    starting up), retry with backoff for `startup_timeout_seconds`, one log line per attempt;
    then, or at once for any other failure, exit with one message."""
    if str(settings.database_url).startswith("sqlite"):
        return  # a file: nothing to wait for
    where = _redacted(settings)
    deadline = time.monotonic() + settings.startup_timeout_seconds
    pause = FIRST_RETRY_SECONDS
    for attempt in itertools.count(1):
        error = asyncio.run(_connection_error(str(settings.database_url)))
        if error is None:
            return
        if not _passing(error):
            raise SystemExit(
                f"darkroom: cannot connect to the database at {where}: {_reason(error)}."
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SystemExit(
                f"darkroom: the database at {where} did not accept connections within "
                f"{settings.startup_timeout_seconds:g} s (attempts: {attempt}; the last: "
                f"{_reason(error)}). Start it, check DARKROOM_DATABASE_URL, or wait longer with "
                "DARKROOM_STARTUP_TIMEOUT_SECONDS."
            )
        wait = min(pause, remaining)
        logger.warning(
            "The database at %s is not accepting connections (%s); attempt %d, next in %.1f s",
            where,
            _reason(error),
            attempt,
            wait,
        )
        time.sleep(wait)
        pause = min(pause * 2, LONGEST_RETRY_SECONDS)


async def _connection_error(database_url: str) -> OSError | DBAPIError | None:
    engine = create_engine(database_url)
    try:
        async with asyncio.timeout(CONNECT_ATTEMPT_SECONDS), engine.connect():
            return None
    except (OSError, DBAPIError) as exc:  # TimeoutError is an OSError
        return exc
    finally:
        await engine.dispose()


def _passing(error: OSError | DBAPIError) -> bool:
    return isinstance(error, OSError) or getattr(error.orig, "sqlstate", None) in PASSING_SQLSTATES


def _reason(error: OSError | DBAPIError) -> str:
    # The driver's own words, without SQLAlchemy's wrapper text and links.
    cause = error.orig if isinstance(error, DBAPIError) else error
    return str(cause) or type(cause).__name__


def _redacted(settings: Settings) -> str:
    url = str(settings.database_url)
    return url.split("@")[-1] if "@" in url else url


def tenant_retention(settings: Settings, tenant: str, days: str) -> None:
    """Set how many days a tenant's finished jobs and uploads are kept: a number (0 keeps them
    for good), or `default` to follow DARKROOM_RETENTION_DAYS."""

    async def run() -> None:
        engine = create_engine(str(settings.database_url))
        try:
            async with create_sessionmaker(engine)() as session:
                await set_retention(session, tenant, None if days == "default" else int(days))
                await session.commit()
        finally:
            await engine.dispose()

    if days != "default" and not days.isdigit():
        sys.exit("--days takes a whole number of days (0 keeps data for good) or `default`")
    try:
        asyncio.run(run())
    except InvalidInput as exc:
        sys.exit(exc.detail)
    print(f"tenant {tenant!r} keeps its data: {_retention_words(days)}")


def _retention_words(days: str) -> str:
    if days == "default":
        return "as DARKROOM_RETENTION_DAYS says"
    return "for good" if int(days) == 0 else f"{int(days)} days"


def collect_garbage(settings: Settings, older_than_seconds: float) -> None:
    """Delete asset files no asset refers to, older than `older_than_seconds`."""

    async def run() -> int:
        engine = create_engine(str(settings.database_url))
        try:
            async with create_sessionmaker(engine)() as session:
                storage = open_storage(settings)
                return await assets.collect_garbage(session, storage, older_than_seconds)
        finally:
            await engine.dispose()

    print(f"deleted {asyncio.run(run())} unreferenced asset files")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `darkroom` console script."""
    parser = argparse.ArgumentParser(prog="darkroom", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the API (migrates first)")
    commands.add_parser("worker", help="run an arq worker (needs DARKROOM_REDIS_URL)")
    commands.add_parser("migrate", help="apply database migrations")
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    keys.add_parser("create", help="mint a key").add_argument("--tenant", required=True)
    tenants = commands.add_parser("tenants", help="manage tenants").add_subparsers(
        dest="tenants_command", required=True
    )
    retention = tenants.add_parser("retention", help="set how long a tenant's data is kept")
    retention.add_argument("--tenant", required=True)
    retention.add_argument(
        "--days", required=True, help="days (0 keeps data for good), or `default`"
    )
    commands.add_parser("gc", help="delete asset files no asset refers to").add_argument(
        "--older-than-hours",
        type=float,
        default=1.0,
        help="leave younger files alone, for requests in flight (default 1)",
    )
    commands.add_parser("openapi", help="print the OpenAPI document").add_argument(
        "--output",
        type=Path,
        help=f"write it to this file instead (the checked-in one is {OPENAPI_PATH})",
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    install_redaction()
    settings = Settings()
    if arguments.command != "openapi":
        wait_for_database(settings)
    if arguments.command == "serve":
        serve(settings)
    elif arguments.command == "worker":
        worker(settings)
    elif arguments.command == "migrate":
        migrate(settings)
    elif arguments.command == "tenants":
        tenant_retention(settings, arguments.tenant, arguments.days)
    elif arguments.command == "gc":
        collect_garbage(settings, arguments.older_than_hours * 3600)
    elif arguments.command == "openapi" and arguments.output is None:
        sys.stdout.write(openapi_json(settings))
    elif arguments.command == "openapi":
        write_openapi(settings, arguments.output)
    else:
        keys_create(settings, arguments.tenant)
