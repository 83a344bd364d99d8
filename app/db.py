"""The async SQLAlchemy engine and session factory, and the per-request session dependency."""

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import ColumnElement, event, func, text
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


def create_engine(database_url: str, pool_size: int = 20) -> AsyncEngine:
    """An engine for Postgres (asyncpg), keeping `pool_size` connections, or the embedded SQLite
    file (aiosqlite)."""
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    engine = create_async_engine(database_url, pool_size=pool_size, max_overflow=pool_size // 2)
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
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
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
    """Sessions for reads alone: each statement stands on its own (autocommit), so a read costs
    its own round trip and no BEGIN and ROLLBACK around it. Never write through one."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; a route that writes commits it, as its unit of work."""
    async with request.app.state.sessionmaker() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]
