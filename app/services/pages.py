"""Cursor pages, newest first: every list of the API pages the same way, by id."""

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.errors import InvalidInput
from app.ids import is_id

Row = TypeVar("Row")


async def newest_first(
    session: AsyncSession,
    query: Select[tuple[Row]],
    id_column: InstrumentedAttribute[Any],
    prefix: str,
    cursor: str | None,
    limit: int,
) -> tuple[list[Row], str | None]:
    """A page of `query`'s rows, newest first (ids sort by time), after `cursor` (the last id of
    the previous page), and the cursor of the next page, None on the last. InvalidInput for a
    cursor that is not an id with the listed kind's `prefix`."""
    if cursor is not None and not is_id(cursor, prefix):
        raise InvalidInput("cursor must be the next_cursor of a previous page.")
    if cursor:
        query = query.where(id_column < cursor)
    rows = list(await session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
    page = rows[:limit]
    next_cursor = getattr(page[-1], id_column.key) if len(rows) > limit else None
    return page, next_cursor
