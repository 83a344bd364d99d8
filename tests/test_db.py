"""The Postgres engine: pooled connections that died while idle are replaced before use."""

import asyncio

from sqlalchemy import text

from app.db import PING_AFTER_IDLE_SECONDS, create_engine


async def test_a_pooled_connection_killed_while_idle_is_replaced_before_use(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url, pool_size=1)
    killer = create_engine(postgres_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            first = await connection.scalar(text("SELECT pg_backend_pid()"))
        # Postgres ends the pooled connection's session, as a restart or a failover would.
        async with killer.connect() as other:
            killed = await other.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        assert killed is True
        await asyncio.sleep(PING_AFTER_IDLE_SECONDS + 0.1)
        async with engine.connect() as connection:
            second = await connection.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
    finally:
        await engine.dispose()
        await killer.dispose()
