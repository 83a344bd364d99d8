"""Where a process does its pixel work (decode, fit, encode, local renders, exports): a pool of
threads as large as the machine's cores, off the event loop. Jobs waiting on vendors hold only
coroutines, so a process can wait on many at once; what they do with the pixels queues here
instead of each taking a thread, and the event loop (lease renewals, vendor calls) is never
crowded out by more CPU work than there are cores.

Pixel work is also admitted by the memory it will take: each call of `run_image_work` names an
estimate, and waits until it fits under the process's memory budget beside the work already
running, so many large images arriving at once queue instead of together taking more memory
than the machine has. After large work, freed memory is handed back to the system."""

import asyncio
import ctypes
import ctypes.util
import functools
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

MEBIBYTE = 1024 * 1024
# The default budget is this share of the machine's memory (or of the cgroup's limit), so an
# API process and a worker or two fit on one machine with room for everything else...
DEFAULT_BUDGET_SHARE = 4
# ...but never less than this, or one large image would wait for nothing.
MIN_DEFAULT_BUDGET = 512 * MEBIBYTE
# Work estimated at this much or more hands freed memory back to the system when it ends: glibc
# keeps freed heap pages (and the pages of each thread's arena) for reuse otherwise.
TRIM_AFTER_BYTES = 64 * MEBIBYTE
_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)

_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="darkroom-cpu")


def set_threads(count: int) -> None:
    """Use `count` threads for pixel work (0: one per core); work already queued finishes on
    the old pool."""
    global _pool
    threads = count or os.cpu_count() or 2
    if threads != _pool._max_workers:
        old, _pool = _pool, ThreadPoolExecutor(threads, thread_name_prefix="darkroom-cpu")
        old.shutdown(wait=False)


def thread_count() -> int:
    """Threads the pixel-work pool runs."""
    return _pool._max_workers


async def run_cpu(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` on the pixel-work pool, awaited."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, functools.partial(function, *args, **kwargs))


def machine_memory() -> int:
    """The memory this process may use, in bytes: the machine's, or its cgroup's limit if
    lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_LIMITS:
        try:
            limit = path.read_text().strip()
        except OSError:
            continue
        if limit.isdigit():
            total = min(total, int(limit))
    return total


def default_budget() -> int:
    """The memory budget a process takes when the setting leaves it to the machine."""
    return max(machine_memory() // DEFAULT_BUDGET_SHARE, MIN_DEFAULT_BUDGET)


class MemoryBudget:
    """Bytes of pixel work admitted at once. Work waits, first come first served, until its
    estimate fits beside what is running; work larger than the whole budget runs alone rather
    than never. Safe to use from any event loop and any thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._lock = threading.Lock()
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, amount: int) -> None:
        """Wait until `amount` bytes are admitted; the caller releases them when done."""
        with self._lock:
            self._admit_waiting()  # first drops waiters nobody awaits any more
            if not self._waiting and self._fits(amount):
                self.in_use += amount
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append((amount, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock:
                if (amount, waiter) in self._waiting:
                    self._waiting.remove((amount, waiter))
                    # It may have been holding back smaller work behind it.
                    self._admit_waiting()
                    raise
            # Admitted as it was cancelled: `_wake` gives the bytes back if the waiter itself
            # was cancelled, and otherwise it is up to us.
            if not waiter.cancelled():
                self.release(amount)
            raise

    def set_limit(self, limit: int) -> None:
        """Admit up to `limit` bytes from now on (work already admitted keeps its place)."""
        with self._lock:
            self.limit = limit
            self._admit_waiting()

    def release(self, amount: int) -> None:
        """Give back bytes admitted by `acquire`, admitting whoever waits and now fits."""
        with self._lock:
            self.in_use -= amount
            self._admit_waiting()

    def _fits(self, amount: int) -> bool:
        return self.in_use == 0 or self.in_use + amount <= self.limit

    def _admit_waiting(self) -> None:
        while self._waiting and self._fits(self._waiting[0][0]):
            amount, waiter = self._waiting.popleft()
            loop = waiter.get_loop()
            # A loop that has stopped will never wake its waiter: counting the bytes for it
            # would hold them for good (a process's loop runs while anything awaits).
            if loop.is_closed() or not loop.is_running():
                continue
            try:
                loop.call_soon_threadsafe(_wake, waiter, amount, self)
            except RuntimeError:  # it closed just now: nobody is waiting any more
                continue
            self.in_use += amount


def _wake(waiter: asyncio.Future[None], amount: int, budget: MemoryBudget) -> None:
    if waiter.cancelled():
        budget.release(amount)
    else:
        waiter.set_result(None)


_budget_limit = default_budget()
# One budget per event loop. A process runs its work on one loop; keeping them apart means a
# loop that stops with work admitted (a test's, say) cannot hold bytes another loop is owed.
_budgets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MemoryBudget] = (
    weakref.WeakKeyDictionary()
)


def set_memory_budget(megabytes: int) -> None:
    """Admit at most `megabytes` MiB of pixel work at once (0: a share of the machine's
    memory). Work already admitted keeps its place."""
    global _budget_limit
    _budget_limit = megabytes * MEBIBYTE if megabytes else default_budget()
    for budget in list(_budgets.values()):
        budget.set_limit(_budget_limit)


def memory_budget() -> MemoryBudget:
    """This process's memory budget for pixel work (that of the running event loop)."""
    loop = asyncio.get_running_loop()
    budget = _budgets.get(loop)
    if budget is None:
        budget = _budgets[loop] = MemoryBudget(_budget_limit)
    return budget


async def run_image_work(
    memory: int, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """`function(*args, **kwargs)` on the pixel-work pool once `memory` (the bytes it is
    estimated to hold at its peak) fits under the budget. The bytes stay counted until the
    function has returned on its thread, even if the caller stops waiting first."""
    budget = memory_budget()
    await budget.acquire(memory)
    # The pool's thread keeps its work item (and so the function and its arguments) a moment
    # after the caller has its result; taken out here, they are freed as the call ends, before
    # the trim, and not after whatever the caller frees next and trims for.
    calls = [functools.partial(function, *args, **kwargs)]

    def admitted() -> T:
        call = calls.pop()
        try:
            return call()
        finally:
            del call
            budget.release(memory)
            if memory >= TRIM_AFTER_BYTES:
                release_free_memory()

    try:
        future = _pool.submit(admitted)
    except BaseException:
        budget.release(memory)
        raise
    # A caller that stops waiting while the work is still queued cancels it: then `admitted`
    # never runs, and the bytes are given back here instead.
    future.add_done_callback(lambda done: done.cancelled() and budget.release(memory))
    return await asyncio.wrap_future(future)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Hand the freed pages of every malloc arena back to the system (glibc only; elsewhere
    nothing), so a process's resident memory falls back after a large image is done with."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
