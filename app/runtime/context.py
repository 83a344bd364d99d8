"""What a task body needs, built once per process from the settings."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import create_engine, create_reader, create_sessionmaker
from app.providers.registry import ProviderRegistry, create_registry
from app.runtime.breakers import open_breaker_store
from app.runtime.progress import Broadcaster, LocalBroadcaster, broadcast_event, open_broadcaster
from app.storage import Storage, open_storage

# Connections a worker keeps for its runs' bookkeeping writes (one statement each, in autocommit).
BOOKKEEPING_POOL_SIZE = 4


@dataclass
class TaskContext:
    """The database, storage and providers shared by the API and the task bodies of a process."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # Sessions for reads alone, without a transaction around them; see app.db.create_reader.
    reader: async_sessionmaker[AsyncSession]
    # Sessions for a run's bookkeeping writes, each one statement standing on its own: its
    # claim, lease renewals and final status. On Postgres their commits do not wait for the
    # disk. A database crash can lose only the last of them, and what it loses a run of the job
    # again restores: the job is claimed anew and finds its outputs, whose rows are written
    # durably, already stored.
    bookkeeper: async_sessionmaker[AsyncSession]
    storage: Storage
    registry: ProviderRegistry
    # Called on every job event as listener(context, job, event, data); see app.runtime.events.
    listeners: list[Callable[..., Awaitable[Any]]] = field(default_factory=list)
    # Carries job events to live-progress streams; see app.runtime.progress.
    broadcaster: Broadcaster = field(default_factory=LocalBroadcaster)


@asynccontextmanager
async def open_context(settings: Settings) -> AsyncIterator[TaskContext]:
    """Open the database engine and the rest for the life of a process."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = str(settings.database_url)
    engine = create_engine(url, settings.database_pool_size)
    bookkeeping = (
        engine
        if url.startswith("sqlite")
        else create_engine(url, BOOKKEEPING_POOL_SIZE, durable=False)
    )
    broadcaster = open_broadcaster(settings)
    async with open_breaker_store(settings) as breakers:
        registry = create_registry(settings, breakers)
        try:
            yield TaskContext(
                settings=settings,
                engine=engine,
                sessionmaker=create_sessionmaker(engine),
                reader=create_reader(engine),
                bookkeeper=create_reader(bookkeeping),
                storage=open_storage(settings),
                registry=registry,
                listeners=[broadcast_event],
                broadcaster=broadcaster,
            )
        finally:
            await broadcaster.close()
            await registry.aclose()
            await engine.dispose()
            await bookkeeping.dispose()
