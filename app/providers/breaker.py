"""A vendor's circuit breaker: after `threshold` failures in a row calls to the vendor pause for
a cooldown, then one trial call decides whether they go on or pause again.

An open breaker delays calls, it does not fail them: a call that meets it waits for the trial
(at most `max_wait_seconds`, then it goes as an ordinary attempt), so a job fails only with the
vendor's own error once its attempt budget is spent. Only a caller with somewhere else to go (a
fallback model) is told at once, inside `fallback_available()`.

The breaker's state lives in a BreakerStore: in this process by default, or one the runtime
injects that shares it with every process calling the same vendor (app/runtime/breakers.py).
The count of failures in a row stays in the process that saw them; what is shared is the
decision, so one worker's trip protects the others.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from app.errors import ProviderOverloaded

logger = logging.getLogger(__name__)

# How often a call waiting on an open breaker looks at its state again.
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class BreakerState:
    """What a store knows of one vendor: `tripped` from the moment the breaker opens until a
    call succeeds; `open_seconds`, how much of the pause is left (0 once the trial may go)."""

    open_seconds: float = 0.0
    tripped: bool = False


CLOSED = BreakerState()


class BreakerStore(Protocol):
    """Where breakers keep the state every caller of a vendor must see. Its methods never
    raise for a store that cannot be reached: a vendor call must not fail for it."""

    async def read(self, vendor: str) -> BreakerState:
        """The vendor's state now."""
        ...

    async def trip(self, vendor: str, seconds: float) -> None:
        """Open the vendor's breaker for `seconds`."""
        ...

    async def reset(self, vendor: str) -> None:
        """Close the vendor's breaker."""
        ...

    async def claim_trial(self, vendor: str, seconds: float) -> bool:
        """Whether this caller makes the trial call of a tripped breaker whose pause is over:
        True for one caller at a time; a claim lapses after `seconds` (its caller died)."""
        ...


@dataclass
class LocalBreakerStore:
    """Breaker state in this process only: for a process alone with its vendors, and what a
    shared store falls back on while it cannot be reached."""

    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    _open_until: dict[str, float] = field(default_factory=dict)
    _trial_until: dict[str, float] = field(default_factory=dict)

    async def read(self, vendor: str) -> BreakerState:
        """The vendor's state now."""
        if vendor not in self._open_until:
            return CLOSED
        return BreakerState(max(0.0, self._open_until[vendor] - self.clock()), tripped=True)

    async def trip(self, vendor: str, seconds: float) -> None:
        """Open the vendor's breaker for `seconds`."""
        self._open_until[vendor] = self.clock() + seconds
        self._trial_until.pop(vendor, None)

    async def reset(self, vendor: str) -> None:
        """Close the vendor's breaker."""
        self._open_until.pop(vendor, None)
        self._trial_until.pop(vendor, None)

    async def claim_trial(self, vendor: str, seconds: float) -> bool:
        """True for the first caller after the pause, and again once its claim lapsed."""
        now = self.clock()
        if self._trial_until.get(vendor, 0.0) > now:
            return False
        self._trial_until[vendor] = now + seconds
        return True


# Whether a call that meets an open breaker is told at once instead of waiting.
_FAIL_FAST: ContextVar[bool] = ContextVar("fail_fast_on_open_breaker", default=False)


@contextmanager
def fallback_available() -> Iterator[None]:
    """Within it, a call that meets an open breaker raises ProviderOverloaded at once instead
    of waiting: for a caller that has another model to try."""
    token = _FAIL_FAST.set(True)
    try:
        yield
    finally:
        _FAIL_FAST.reset(token)


@dataclass
class CircuitBreaker:
    """One vendor's breaker in this process: its settings, its store and the failures in a row
    this process saw."""

    threshold: int = 5
    cooldown_seconds: float = 30.0
    max_wait_seconds: float = 120.0
    store: BreakerStore = field(default_factory=LocalBreakerStore)
    failures: int = 0
    # Whether the breaker was tripped when this process last looked.
    tripped: bool = False

    async def admit(self, vendor: str, trial_seconds: float) -> bool:
        """Wait until a call to the vendor may go: at once while the breaker is closed, else
        once its pause is over and this call is the trial, or another's trial closed it, or
        `max_wait_seconds` have passed (the call then goes as an ordinary attempt). True when
        this call is the trial, which `trial_seconds` bounds. Inside `fallback_available()` an
        open breaker raises ProviderOverloaded instead."""
        deadline = time.monotonic() + self.max_wait_seconds
        while True:
            state = await self.store.read(vendor)
            if self.tripped and not state.tripped:
                # Another caller's trial closed it: failures seen before count no more.
                self.failures = 0
            self.tripped = state.tripped
            if not state.tripped:
                return False
            if state.open_seconds <= 0 and await self.store.claim_trial(vendor, trial_seconds):
                return True
            if _FAIL_FAST.get():
                raise self._open_error(vendor, state)
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(max(state.open_seconds, POLL_SECONDS), left))

    async def record(self, vendor: str, succeeded: bool, trial: bool = False) -> None:
        """Count a call's outcome. A success closes a tripped breaker; a failed trial opens it
        again at once, and the `threshold`-th failure in a row opens a closed one. The store
        is written only when the state changes."""
        if succeeded:
            self.failures = 0
            if self.tripped or trial:
                logger.info("%s: a call succeeded; its breaker is closed", vendor)
                self.tripped = False
                await self.store.reset(vendor)
            return
        self.failures += 1
        if trial or (not self.tripped and self.failures >= self.threshold):
            logger.warning(
                "%s: %s; calls to it pause for %g s",
                vendor,
                "the trial call failed" if trial else f"{self.failures} failures in a row",
                self.cooldown_seconds,
            )
            self.tripped = True
            await self.store.trip(vendor, self.cooldown_seconds)

    def _open_error(self, vendor: str, state: BreakerState) -> ProviderOverloaded:
        pause = f"another {state.open_seconds:.0f} s" if state.open_seconds else "its trial call"
        return ProviderOverloaded(
            f"{vendor} failed {self.threshold} times in a row; calls to it pause for {pause}.",
            provider=vendor,
            circuit="open",
        )
