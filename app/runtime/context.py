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


@dataclass
class TaskContext:
    """The database, storage and providers shared by the API and the task bodies of a process."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # Sessions for reads alone, without a transaction around them; see app.db.create_reader.
    reader: async_sessionmaker[AsyncSession]
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
    engine = create_engine(str(settings.database_url), settings.database_pool_size)
    broadcaster = open_broadcaster(settings)
    async with open_breaker_store(settings) as breakers:
        registry = create_registry(settings, breakers)
        try:
            yield TaskContext(
                settings=settings,
                engine=engine,
                sessionmaker=create_sessionmaker(engine),
                reader=create_reader(engine),
                storage=open_storage(settings),
                registry=registry,
                listeners=[broadcast_event],
                broadcaster=broadcaster,
            )
        finally:
            await broadcaster.close()
            await registry.aclose()
            await engine.dispose()
