"""Background loops: one step run every few seconds until the process stops, surviving its own
failures (a sweep that hits a lost database connection is logged and tried again next time)."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)


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
