"""What a process runs beside its requests or jobs: the sweeper, where the process sweeps, and
its webhook machinery."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.jobs.sweeper import sweep_in_turn
from app.runtime import Runtime
from app.runtime.periodic import Periodic
from app.webhooks.scheduler import Webhooks, start_webhooks


@asynccontextmanager
async def run_background(runtime: Runtime) -> AsyncIterator[Webhooks]:
    """Start the sweeper (if this process sweeps) and the webhooks; stop both on exit."""
    context, queue = runtime.context, runtime.queue
    sweeper = (
        Periodic(
            "sweep",
            context.settings.sweep_interval_seconds,
            lambda: sweep_in_turn(context, queue, runtime.redis),
        )
        if runtime.sweeps
        else None
    )
    webhooks = start_webhooks(context, runtime.redis, scan=runtime.sweeps)
    try:
        yield webhooks
    finally:
        if sweeper is not None:
            await sweeper.stop()
        await webhooks.close()
