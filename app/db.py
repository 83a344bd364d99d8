"""The async SQLAlchemy engine and session factory, and the per-request session dependency."""

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import ColumnElement, Table, event, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# A pooled Postgres connection idle this long is pinged before its next use.
PING_AFTER_IDLE_SECONDS = 1.0
RETURNED_AT = "darkroom_returned_at"


def create_engine(database_url: str, pool_size: int = 20, *, durable: bool = True) -> AsyncEngine:
    """An engine for Postgres (asyncpg), keeping `pool_size` connections, or the embedded SQLite
    file (aiosqlite). On Postgres, a commit through an engine that is not `durable` returns
    before its record reaches the disk (synchronous_commit off): a database crash may lose the
    last fraction of a second of such commits, never anything else, and never corrupts."""
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    settings = {} if durable else {"server_settings": {"synchronous_commit": "off"}}
    engine = create_async_engine(
        database_url, pool_size=pool_size, max_overflow=pool_size // 2, connect_args=settings
    )
    event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    event.listen(engine.sync_engine, "checkin", _note_return)
    return engine


def _ping_if_idle(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
    """Ping a pooled connection that sat idle before handing it out, so a Postgres restart or a
    dropped path shows here (and the pool connects afresh) rather than in a job's statement. A
    connection in steady use is not pinged: a ping costs three round trips (BEGIN, an empty
    statement, ROLLBACK), more than most of the work it would guard."""
    if time.monotonic() - record.info.get(RETURNED_AT, 0.0) < PING_AFTER_IDLE_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        # The pool drops the connection and hands out another, as pool_pre_ping does.
        raise DisconnectionError("a pooled connection did not answer its ping") from exc


def _note_return(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    if record is not None:
        record.info[RETURNED_AT] = time.monotonic()


def _tune_sqlite(connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the API read while the in-process runner writes; foreign keys are off by default.
    # In WAL mode, NORMAL syncs the log at checkpoints rather than at every commit: a commit
    # survives the process dying, and only an operating system crash or power loss may undo the
    # last ones, never corrupting the file. FULL spent about 3 ms of each commit waiting on disk.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


async def database_now(session: AsyncSession) -> datetime:
    """The database's clock on Postgres, so leases mean the same on every machine; this
    process's clock on the embedded SQLite, where only one process runs jobs."""
    if session.bind.dialect.name != "postgresql":
        return datetime.now(UTC)
    return await session.scalar(text("SELECT now()"))


def database_clock(session: AsyncSession) -> ColumnElement[datetime] | datetime:
    """`database_now` to write into a statement, costing no round trip of its own: Postgres's
    `now()` (the transaction's start, as `SELECT now()` would read it), this process's clock on
    the embedded SQLite."""
    if session.bind.dialect.name != "postgresql":
        return datetime.now(UTC)
    return func.now()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def create_reader(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose every statement stands on its own (autocommit), so it costs its own round
    trip and no BEGIN and COMMIT or ROLLBACK around it: for reads, and for a write that is one
    statement. Never for writes that must commit or fail together."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; a route that writes commits it, as its unit of work."""
    async with request.app.state.sessionmaker() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]


def insert_for(session: AsyncSession, table: type | Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT in the session's own dialect, for its ON CONFLICT clauses (Postgres and SQLite
    spell them alike)."""
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
