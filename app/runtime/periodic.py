"""Background loops: one step run every few seconds until the process stops, surviving its own
failures (a sweep that hits a lost database connection is logged and tried again next time), and
the turn that lets one of many processes run a shared step per period."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# A turn is held for this share of the period, so the process that took it, asking again on its
# next tick, finds it free.
TURN_SHARE = 0.9


async def take_turn(redis: Redis | None, key: str, seconds: float) -> bool:
    """Whether this process runs a step that every process sharing a Redis runs every `seconds`
    (a sweep, a scan): True for the first to ask in each period, so the database sees one step
    per period however many processes there are. Without Redis, or while it is away, every
    process runs it: such steps are safe to run at once, only costlier."""
    if redis is None:
        return True
    milliseconds = max(1, int(seconds * TURN_SHARE * 1000))
    try:
        return bool(await redis.set(key, "1", nx=True, px=milliseconds))
    except (RedisError, OSError):
        return True


class Periodic:
    """Runs `step` every `seconds` in a task of this event loop, from construction to `stop`."""

    def __init__(self, name: str, seconds: float, step: Callable[[], Awaitable[Any]]) -> None:
        self.name = name
        self.seconds = seconds
        self.step = step
        self._task = asyncio.create_task(self._repeat(), name=name)

    async def _repeat(self) -> None:
        failing = False
        while True:
            try:
                await self.step()
            except Exception:
                # The first failure of a run is logged in full; while the cause lasts (a database
                # or Redis that stays down) the repeats are debug lines, until a step works again.
                level = logging.DEBUG if failing else logging.ERROR
                logger.log(
                    level,
                    "%s failed; trying again every %g s",
                    self.name,
                    self.seconds,
                    exc_info=True,
                )
                failing = True
            else:
                if failing:
                    logger.info("%s works again", self.name)
                failing = False
            await asyncio.sleep(self.seconds)

    async def stop(self) -> None:
        """Cancel the loop and wait for it to end."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
