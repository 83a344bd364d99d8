"""Where a process does its pixel work (decode, fit, encode, local renders, exports): a pool of
threads as large as the machine's cores, off the event loop. Jobs waiting on vendors hold only
coroutines, so a process can wait on many at once; what they do with the pixels queues here
instead of each taking a thread, and the event loop (lease renewals, vendor calls) is never
crowded out by more CPU work than there are cores."""

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="darkroom-cpu")


def set_threads(count: int) -> None:
    """Use `count` threads for pixel work (0: one per core); work already queued finishes on
    the old pool."""
    global _pool
    threads = count or os.cpu_count() or 2
    if threads != _pool._max_workers:
        old, _pool = _pool, ThreadPoolExecutor(threads, thread_name_prefix="darkroom-cpu")
        old.shutdown(wait=False)


async def run_cpu(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args, **kwargs)` on the pixel-work pool, awaited."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool, functools.partial(function, *args, **kwargs))
