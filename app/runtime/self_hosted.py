"""Where self-hosted models are loaded, told across processes: a GPU worker writes what each
model it loaded takes (device, precision, memory) to Redis, and the API's catalog and /readyz
read it there beside what the process itself loaded (the embedded default runs them itself)."""

import asyncio
import dataclasses
import json
import logging

from redis.asyncio import Redis

from app.providers.self_hosted import LoadedModel
from app.runtime.context import TaskContext
from app.runtime.queue import REDIS_UNREACHABLE, ArqQueue, JobQueue

logger = logging.getLogger(__name__)
# A Redis that hangs rather than refusing holds the catalog and /readyz no longer than this.
REPORT_READ_SECONDS = 2


def report_key(queue_name: str) -> str:
    """The Redis hash of model id -> what it took where a GPU worker last loaded it."""
    return f"{queue_name}:self-hosted"


async def report_loaded(redis: Redis, queue_name: str, loaded: dict[str, LoadedModel]) -> None:
    """Tell the other processes what this GPU worker's models take, once they are loaded."""
    if not loaded:
        return
    mapping = {model: json.dumps(dataclasses.asdict(facts)) for model, facts in loaded.items()}
    await redis.hset(report_key(queue_name), mapping=mapping)


async def loaded_models(context: TaskContext, queue: JobQueue) -> dict[str, LoadedModel]:
    """Model id -> where it is loaded and its memory: as GPU workers reported it, and as this
    process loaded it. Only asked of Redis when self-hosted models are configured."""
    configured = set(context.registry.self_hosted_ids())
    reported: dict[str, LoadedModel] = {}
    if configured and isinstance(queue, ArqQueue):
        try:
            async with asyncio.timeout(REPORT_READ_SECONDS):
                entries = await queue.redis.hgetall(report_key(context.settings.queue_name))
        except (*REDIS_UNREACHABLE, TimeoutError):
            logger.warning("could not read the self-hosted models' reports from Redis")
            entries = {}
        for model, facts in entries.items():
            model = model.decode() if isinstance(model, bytes) else model
            if model in configured:
                reported[model] = LoadedModel(**json.loads(facts))
    return reported | context.registry.loaded_models()
