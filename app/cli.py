"""The `darkroom` command: serve, worker, migrate, keys (create, list, revoke, rotate), tenants
(budget, retention), gc, openapi. All read DARKROOM_* settings."""

import argparse
import asyncio
import itertools
import json
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from redis.asyncio import Redis
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.errors import DarkroomError
from app.logs import configure_logging
from app.schemas.budgets import MAX_BUDGET_USD
from app.schemas.keys import DEFAULT_GRACE_SECONDS, MAX_GRACE_SECONDS, ApiKey
from app.services import assets, budgets, keys
from app.services.retention import MAX_RETENTION_DAYS, set_retention
from app.storage import open_storage

# The top-level `migrations` package: the checkout's directory, or the copy the wheel installed.
MIGRATIONS = Path(str(files("migrations")))
OPENAPI_PATH = Path("openapi/openapi.json")
# What `darkroom keys list` shows of each key, in order.
KEY_COLUMNS = ("id", "prefix", "tenant", "status", "created_at", "last_used_at", "expires_at")

# Waiting for a database that is still starting: the first pause, doubled up to the longest, and
# how long one connection attempt may take (a server that answers at all does in far less).
FIRST_RETRY_SECONDS = 0.5
LONGEST_RETRY_SECONDS = 5.0
CONNECT_ATTEMPT_SECONDS = 5.0
# Postgres' answers while it starts up or shuts down (57P03) and while it is full (53300) pass;
# so do refused, unresolvable and timed-out connections (OSError). Anything else will not.
PASSING_SQLSTATES = frozenset({"57P03", "53300"})

logger = logging.getLogger(__name__)
Result = TypeVar("Result")


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


async def _with_session(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[Result]]
) -> Result:
    """Run `work(session)` in one transaction on the settings' database; its result."""
    engine = create_engine(str(settings.database_url))
    try:
        async with create_sessionmaker(engine)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


async def _announce_revocation(settings: Settings) -> None:
    """Tell the API processes sharing the settings' Redis to forget the keys they remember."""
    if not settings.redis_url:
        return
    redis = Redis.from_url(settings.redis_url)
    try:
        await keys.announce_revocation(redis)
    finally:
        await redis.aclose()


def keys_create(settings: Settings, tenant: str) -> None:
    """Mint an API key for a tenant: the key alone on stdout, and on stderr which database holds
    it, since a server on another database would refuse it."""
    migrate(settings)
    key = asyncio.run(_with_session(settings, lambda session: keys.create_key(session, tenant)))
    print(
        f"Created an API key for tenant {tenant!r} in the database {_redacted(settings)}. "
        "It is shown once; only its hash is stored.",
        file=sys.stderr,
    )
    print(key)


def keys_list(settings: Settings, tenant: str | None) -> None:
    """Print every key (or one tenant's), newest first: one line each, never the secret."""

    async def every_key(session: AsyncSession) -> list[ApiKey]:
        found: list[ApiKey] = []
        cursor = None
        while True:
            page = await keys.list_keys(session, tenant, cursor, 100)
            found.extend(page.data)
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    listed = asyncio.run(_with_session(settings, every_key))
    print("\t".join(KEY_COLUMNS))
    for key in listed:
        print("\t".join(_cell(getattr(key, column)) for column in KEY_COLUMNS))


def keys_revoke(settings: Settings, key_id: str) -> None:
    """Revoke a key; the API processes sharing Redis stop taking it within a second."""
    revoked = asyncio.run(_with_session(settings, lambda session: keys.revoke(session, key_id)))
    asyncio.run(_announce_revocation(settings))
    print(f"Revoked {revoked.id} ({revoked.prefix}) of tenant {revoked.tenant!r}.")


def keys_rotate(settings: Settings, key_id: str, grace_seconds: int) -> None:
    """Mint a successor of a key: the new key alone on stdout (shown once), and on stderr until
    when the old one still works."""
    rotation = asyncio.run(
        _with_session(settings, lambda session: keys.rotate(session, key_id, grace_seconds))
    )
    asyncio.run(_announce_revocation(settings))
    old, new = rotation.previous_key, rotation.key
    until = "is revoked" if old.expires_at is None else f"works until {_cell(old.expires_at)}"
    print(
        f"Rotated {old.id} ({old.prefix}) of tenant {old.tenant!r}: the old key {until}; the "
        f"new one is {new.id} ({new.prefix}), shown once.",
        file=sys.stderr,
    )
    print(new.key)


def tenants_budget(settings: Settings, tenant: str, budget_usd: float | None) -> None:
    """Set or remove a tenant's monthly budget; the API processes sharing Redis apply it within
    a second."""
    set_budget = budgets.set_budget
    asyncio.run(_with_session(settings, lambda session: set_budget(session, tenant, budget_usd)))
    asyncio.run(_announce_revocation(settings))
    if budget_usd is None:
        print(f"Tenant {tenant!r} has no monthly budget.")
    else:
        print(f"Tenant {tenant!r} may spend ${budget_usd:.2f} per calendar month (UTC).")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return f"{value.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
    return str(value)


def serve(settings: Settings) -> None:
    """Migrate, then serve the API with uvicorn."""
    import uvicorn

    from app.main import create_app

    migrate(settings)
    base_url = f"http://{settings.host}:{settings.port}"
    mode = "arq workers on Redis" if settings.redis_url else "the in-process job runner"
    _announce(
        settings, f"Darkroom on {base_url} (database {_redacted(settings)}, jobs run by {mode})."
    )
    _announce(settings, "Get an API key with: .venv/bin/darkroom keys create --tenant NAME")
    _announce(settings, f"API reference: {base_url}/docs")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        # uvicorn's lines go through the root logger configured by `main`, in its format; its
        # access line gives way to Darkroom's own (app/access.py), which names the route too.
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


def _announce(settings: Settings, line: str) -> None:
    # Printed for a person at a terminal; logged when the output is JSON lines for a machine.
    if settings.log_format == "json":
        logger.info(line)
    else:
        print(line)


def worker(settings: Settings, lane: str) -> None:
    """Run an arq worker of one lane of the queue until interrupted."""
    from app.jobs.worker import create_worker
    from app.metrics import serve_worker_metrics

    migrate(settings)
    serve_worker_metrics(settings)
    create_worker(settings, lane).run()


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


def tenant_retention(settings: Settings, tenant: str, days: int | None) -> None:
    """Set how many days a tenant's finished jobs and uploads are kept: a number (0 keeps them
    for good), or None (`default`) to follow DARKROOM_RETENTION_DAYS."""
    asyncio.run(_with_session(settings, lambda session: set_retention(session, tenant, days)))
    print(f"tenant {tenant!r} keeps its data: {_retention_words(days)}")


def _retention_words(days: int | None) -> str:
    if days is None:
        return "as DARKROOM_RETENTION_DAYS says"
    return "for good" if days == 0 else f"{days} days"


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
    commands.add_parser("worker", help="run an arq worker (needs DARKROOM_REDIS_URL)").add_argument(
        "--queue",
        choices=["default", "gpu"],
        default="default",
        help="the jobs it takes: `gpu` for self-hosted models' (it loads them), else the rest",
    )
    commands.add_parser("migrate", help="apply database migrations")
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    keys.add_parser("create", help="mint a key").add_argument("--tenant", required=True)
    keys.add_parser("list", help="list keys, newest first").add_argument(
        "--tenant", help="only this tenant's"
    )
    keys.add_parser("revoke", help="stop a key now").add_argument("id", help="the key's id")
    rotate = keys.add_parser("rotate", help="mint a successor; the old key works a while more")
    rotate.add_argument("id", help="the key's id")
    rotate.add_argument(
        "--grace",
        type=_grace_seconds,
        default=DEFAULT_GRACE_SECONDS,
        help=f"seconds the old key keeps working, 0 to {MAX_GRACE_SECONDS} "
        f"(default {DEFAULT_GRACE_SECONDS}; 0 revokes it now)",
    )
    tenants = commands.add_parser("tenants", help="manage tenants").add_subparsers(
        dest="tenants_command", required=True
    )
    budget = tenants.add_parser("budget", help="set or remove a tenant's monthly budget")
    budget.add_argument("tenant", help="the tenant's name")
    amount = budget.add_mutually_exclusive_group(required=True)
    amount.add_argument("--usd", type=_budget_usd, help="USD per calendar month (UTC)")
    amount.add_argument("--none", action="store_true", help="remove the budget")
    retention = tenants.add_parser("retention", help="set how long a tenant's data is kept")
    retention.add_argument("--tenant", required=True)
    retention.add_argument(
        "--days",
        required=True,
        type=_retention_days,
        help=f"days up to {MAX_RETENTION_DAYS} (0 keeps data for good), or `default`",
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
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    if arguments.command != "openapi":
        wait_for_database(settings)
    if arguments.command == "serve":
        serve(settings)
    elif arguments.command == "worker":
        worker(settings, "" if arguments.queue == "default" else arguments.queue)
    elif arguments.command == "migrate":
        migrate(settings)
    elif arguments.command == "gc":
        collect_garbage(settings, arguments.older_than_hours * 3600)
    elif arguments.command == "openapi" and arguments.output is None:
        sys.stdout.write(openapi_json(settings))
    elif arguments.command == "openapi":
        write_openapi(settings, arguments.output)
    else:
        run_operator_command(settings, arguments)


def run_operator_command(settings: Settings, arguments: argparse.Namespace) -> None:
    """`darkroom keys ...` and `darkroom tenants ...`; a key or tenant that does not exist,
    or a key that cannot be rotated, exits with one message."""
    try:
        if arguments.command == "tenants" and arguments.tenants_command == "retention":
            tenant_retention(settings, arguments.tenant, arguments.days)
        elif arguments.command == "tenants":
            tenants_budget(settings, arguments.tenant, None if arguments.none else arguments.usd)
        elif arguments.keys_command == "create":
            keys_create(settings, arguments.tenant)
        elif arguments.keys_command == "list":
            keys_list(settings, arguments.tenant)
        elif arguments.keys_command == "revoke":
            keys_revoke(settings, arguments.id)
        else:
            keys_rotate(settings, arguments.id, arguments.grace)
    except DarkroomError as error:
        raise SystemExit(f"darkroom: {error.detail}") from None


def _budget_usd(value: str) -> float:
    usd = float(value)
    if not 0 <= usd <= MAX_BUDGET_USD:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_BUDGET_USD}")
    return usd


def _retention_days(value: str) -> int | None:
    # Digits in ASCII only: str.isdigit also takes "²", which int() then refuses.
    if value == "default":
        return None
    if not re.fullmatch("[0-9]{1,6}", value) or int(value) > MAX_RETENTION_DAYS:
        raise argparse.ArgumentTypeError(
            f"must be a whole number of days, 0 (for good) to {MAX_RETENTION_DAYS}, or `default`"
        )
    return int(value)


def _grace_seconds(value: str) -> int:
    seconds = int(value)
    if not 0 <= seconds <= MAX_GRACE_SECONDS:
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_GRACE_SECONDS}")
    return seconds
