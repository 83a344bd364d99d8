"""What the vendor adapter tests share."""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from app.errors import DarkroomError


def checked_problem(
    exc: DarkroomError, slug: str, status: int | None = None, *, secret: str
) -> dict[str, Any]:
    """The error's problem object, checked for its type (and status, if given) and for never
    naming the vendor's key, neither in the problem nor in the exception's text."""
    problem = exc.to_problem()
    assert problem["type"].endswith(f"/{slug}"), problem
    if status is not None:
        assert problem["status"] == status
    assert secret not in json.dumps(problem)
    assert secret not in str(exc)
    return problem


@dataclass
class RecordedSleeps:
    """The transport's sleep for tests: each wait is recorded and none is waited out, so a
    retry test asserts on the waits the transport asked for instead of on wall time."""

    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


@dataclass
class ManualClock:
    """A monotonic clock that moves only when a test advances it."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
