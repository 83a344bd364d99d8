"""app/cpu.py: pixel work admitted by its estimated memory, on real threads: work that does not
fit beside what runs waits its turn, work that fits runs at once, work larger than the whole
budget still runs (alone), and a caller that stops waiting gives its place back."""

import asyncio
import contextlib
import threading
import time

import pytest

from app import cpu
from app.cpu import (
    MEBIBYTE,
    MemoryBudget,
    memory_budget,
    run_image_work,
    set_memory_budget,
    set_threads,
)


@pytest.fixture(autouse=True)
async def small_budget():
    """A 10 MiB budget of its own and two threads for each test (the suite's tests share one
    event loop, and so one budget, with whatever earlier tests left running); the defaults
    again afterwards."""
    set_threads(2)
    set_memory_budget(10)
    loop = asyncio.get_running_loop()
    shared = cpu._budgets.get(loop)
    cpu._budgets[loop] = MemoryBudget(10 * MEBIBYTE)
    yield
    if shared is not None:
        cpu._budgets[loop] = shared
    set_memory_budget(0)
    set_threads(0)


class Overlap:
    """Counts the work running at once, from the pool's threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.order: list[str] = []
        self.started = threading.Event()

    def work(self, name: str, hold: threading.Event | None = None) -> str:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.order.append(f"start {name}")
        self.started.set()
        if hold is not None:
            assert hold.wait(10), "the test never let the work finish"
        else:
            time.sleep(0.05)  # long enough for other admitted work to start beside it
        with self.lock:
            self.running -= 1
            self.order.append(f"end {name}")
        return name


async def test_work_that_does_not_fit_together_runs_one_at_a_time():
    overlap = Overlap()

    names = await asyncio.gather(
        *(run_image_work(6 * MEBIBYTE, overlap.work, name) for name in "abc")
    )

    assert names == ["a", "b", "c"]
    assert overlap.most == 1
    assert overlap.order == ["start a", "end a", "start b", "end b", "start c", "end c"]
    assert memory_budget().in_use == 0


async def test_work_that_fits_together_runs_at_once():
    both_running = threading.Barrier(2, timeout=10)

    def meet(name: str) -> str:
        both_running.wait()  # raises BrokenBarrierError unless the other runs at the same time
        return name

    names = await asyncio.gather(
        run_image_work(4 * MEBIBYTE, meet, "a"), run_image_work(4 * MEBIBYTE, meet, "b")
    )

    assert names == ["a", "b"]


async def test_work_larger_than_the_budget_runs_alone_and_small_work_waits_for_it():
    overlap, release = Overlap(), threading.Event()
    large = asyncio.ensure_future(run_image_work(500 * MEBIBYTE, overlap.work, "large", release))
    assert await asyncio.to_thread(overlap.started.wait, 10)
    small = asyncio.ensure_future(run_image_work(MEBIBYTE, overlap.work, "small"))
    await asyncio.sleep(0.2)

    assert overlap.order == ["start large"]
    release.set()
    assert await large == "large"
    assert await small == "small"
    assert overlap.order == ["start large", "end large", "start small", "end small"]
    assert memory_budget().in_use == 0


async def test_a_caller_that_stops_waiting_gives_its_place_back():
    overlap, release = Overlap(), threading.Event()
    first = asyncio.ensure_future(run_image_work(8 * MEBIBYTE, overlap.work, "first", release))
    assert await asyncio.to_thread(overlap.started.wait, 10)
    abandoned = asyncio.ensure_future(run_image_work(8 * MEBIBYTE, overlap.work, "abandoned"))
    await asyncio.sleep(0.05)
    abandoned.cancel()
    release.set()

    assert await first == "first"
    assert await run_image_work(8 * MEBIBYTE, overlap.work, "next") == "next"
    assert abandoned.cancelled()
    assert "start abandoned" not in overlap.order
    assert memory_budget().in_use == 0


async def test_work_cancelled_while_queued_for_a_thread_gives_its_bytes_back():
    set_threads(1)
    overlap, release = Overlap(), threading.Event()
    first = asyncio.ensure_future(run_image_work(MEBIBYTE, overlap.work, "first", release))
    assert await asyncio.to_thread(overlap.started.wait, 10)
    # Admitted (it fits beside the first) but waiting for the only thread.
    queued = asyncio.ensure_future(run_image_work(MEBIBYTE, overlap.work, "queued"))
    await asyncio.sleep(0.05)
    queued.cancel()
    # Its cancel reaches the pool's queue before the thread is freed.
    with contextlib.suppress(asyncio.CancelledError):
        await queued
    await asyncio.sleep(0)
    release.set()

    assert await first == "first"
    assert queued.cancelled()
    assert "start queued" not in overlap.order
    assert memory_budget().in_use == 0
