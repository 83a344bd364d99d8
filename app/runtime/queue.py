"""The job queue: arq on Redis when configured, else an in-process runner; same task bodies."""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job as ArqJob
from arq.jobs import JobStatus
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

TASK_NAME = "run_job"
# arq's own default: a message no worker took within a day expires; the sweeper re-sends its job.
MESSAGE_LIFETIME = timedelta(days=1)
SHUTDOWN_GRACE_SECONDS = 5
# A job's place in line (its arq score, in ms): the head of the queue for a tenant with nothing
# waiting, else one turn after the tenant's last job, never later than now (a later score would
# hold the job back as if deferred). KEYS: the queue, the tenants' last places.
PLACE_SCRIPT = """
local now = tonumber(ARGV[2])
local place = now
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
if head then place = math.min(tonumber(head), now) end
local last = redis.call('HGET', KEYS[2], ARGV[1])
if last then place = math.min(math.max(place, tonumber(last) + tonumber(ARGV[3])), now) end
redis.call('HSET', KEYS[2], ARGV[1], place)
redis.call('PEXPIRE', KEYS[2], 86400000)
return place
"""
# A turn: tenants' places in line are this many milliseconds apart.
TURN_MS = 1
# What Redis being unreachable looks like (refused, reset, timed out), as opposed to a bad reply.
REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def json_serializer(value: dict[str, Any]) -> bytes:
    """arq's message format: JSON, never pickle, so a queue message cannot run code."""
    return json.dumps(value, separators=(",", ":")).encode()


def json_deserializer(data: bytes) -> dict[str, Any]:
    """The inverse of json_serializer."""
    return json.loads(data)


class DispatchState(StrEnum):
    """Where one dispatch of a job is in the queue."""

    WAITING = "waiting"  # for a worker to take it
    TAKEN = "taken"  # by a worker, which runs it (or died with it)
    GONE = "gone"  # finished, or lost with the queue


_ARQ_STATES = {
    JobStatus.deferred: DispatchState.WAITING,
    JobStatus.queued: DispatchState.WAITING,
    JobStatus.in_progress: DispatchState.TAKEN,
}


def wake_channel(queue_name: str) -> str:
    """The pub/sub channel on which a dispatch wakes the idle workers of a queue."""
    return f"{queue_name}:wake"


def queue_job_id(job_id: str, dispatch: int) -> str:
    """The queue's id for one dispatch of a job: the job id, suffixed on re-dispatches."""
    return job_id if dispatch <= 1 else f"{job_id}.{dispatch}"


class JobQueue(Protocol):
    """Where committed jobs are sent to be run."""

    async def enqueue(
        self, job_id: str, dispatch: int, *, since: datetime | None = None, tenant: str = ""
    ) -> None:
        """Send one dispatch of a job, in line as if sent at `since`; without one, a new job
        of `tenant` takes its tenant's turn (see `ArqQueue.place`)."""
        ...

    async def dispatch_state(self, job_id: str, dispatch: int) -> DispatchState:
        """Whether that dispatch is waiting in the queue, taken by a worker, or gone."""
        ...

    async def ping(self) -> None:
        """Raise if the queue cannot be reached."""
        ...

    async def close(self) -> None:
        """Release connections and stop running work."""
        ...


class ArqQueue:
    """Jobs on Redis, run by `darkroom worker` processes."""

    def __init__(self, redis: ArqRedis, queue_name: str) -> None:
        self.redis = redis
        self.queue_name = queue_name

    @classmethod
    def connect(cls, redis_url: str, queue_name: str) -> "ArqQueue":
        """A queue on Redis with the JSON serializer. It connects on first use, so an API
        process starts while Redis is down: /readyz says so, submissions are accepted, and
        the sweeper sends them once Redis answers."""
        settings = RedisSettings.from_dsn(redis_url)
        redis = ArqRedis(
            host=settings.host,
            port=settings.port,
            db=settings.database,
            username=settings.username,
            password=settings.password,
            ssl=settings.ssl,
            ssl_keyfile=settings.ssl_keyfile,
            ssl_certfile=settings.ssl_certfile,
            ssl_cert_reqs=settings.ssl_cert_reqs,
            ssl_ca_certs=settings.ssl_ca_certs,
            ssl_ca_data=settings.ssl_ca_data,
            ssl_check_hostname=settings.ssl_check_hostname,
            socket_connect_timeout=settings.conn_timeout,
            encoding="utf8",
            job_serializer=json_serializer,
            job_deserializer=json_deserializer,
            default_queue_name=queue_name,
        )
        return cls(redis, queue_name)

    async def enqueue(
        self, job_id: str, dispatch: int, *, since: datetime | None = None, tenant: str = ""
    ) -> None:
        """Send a dispatch (a duplicate of one already queued is ignored by arq), and wake the
        idle workers so it starts now rather than at their next poll. arq hands out messages by
        score, the time given, so a job re-sent with the time it was first queued takes its old
        place in line instead of waiting behind every job queued since, and a new job takes
        its tenant's turn (`place`)."""
        if since is None and tenant:
            since = await self.place(tenant)
        await self.redis.enqueue_job(
            TASK_NAME,
            job_id,
            _job_id=queue_job_id(job_id, dispatch),
            _queue_name=self.queue_name,
            _defer_until=since,
            # Counted from now: arq would count it from `since`, and a day-old place in line
            # would make a message that has already expired.
            _expires=MESSAGE_LIFETIME,
        )
        try:
            await self.redis.publish(wake_channel(self.queue_name), b"")
        except REDIS_UNREACHABLE:
            # Queued all the same: the workers' poll finds it.
            logger.warning("could not announce job %s; the workers' poll will find it", job_id)

    async def place(self, tenant: str) -> datetime:
        """Where a new job of `tenant` goes in line: one turn after the tenant's previous job,
        but never behind the head of the queue, nor later than now. A tenant with nothing
        waiting goes to the head, so one tenant's burst of thousands of jobs holds another's
        job back by at most one job's run; two tenants with jobs waiting take turns."""
        score = await self.redis.eval(
            PLACE_SCRIPT,
            2,
            self.queue_name,
            f"{self.queue_name}:turns",
            tenant,
            int(time.time() * 1000),
            TURN_MS,
        )
        return datetime.fromtimestamp(int(score) / 1000, UTC)

    async def dispatch_state(self, job_id: str, dispatch: int) -> DispatchState:
        """Ask arq whether the dispatch is deferred or queued (waiting), in progress at a worker
        (taken), or neither."""
        arq_job = ArqJob(
            queue_job_id(job_id, dispatch),
            self.redis,
            _queue_name=self.queue_name,
            _deserializer=json_deserializer,
        )
        return _ARQ_STATES.get(await arq_job.status(), DispatchState.GONE)

    async def ping(self) -> None:
        """Ping Redis."""
        await self.redis.ping()

    async def close(self) -> None:
        """Close the Redis pool."""
        await self.redis.aclose()


class InProcessQueue:
    """Runs jobs as tasks of this event loop, a bounded number at a time (the embedded default)."""

    def __init__(self, run: Callable[[str], Awaitable[None]], concurrency: int) -> None:
        self._run = run
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def enqueue(
        self, job_id: str, dispatch: int, *, since: datetime | None = None, tenant: str = ""
    ) -> None:
        """Start a task that waits for a free slot, then runs the job (in the order sent)."""
        key = queue_job_id(job_id, dispatch)
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._run_in_slot(key, job_id))

    async def dispatch_state(self, job_id: str, dispatch: int) -> DispatchState:
        """Waiting while this process holds the dispatch: it cannot lose a task it runs without
        dying with it, so a task is never taken and stranded."""
        held = queue_job_id(job_id, dispatch) in self._tasks
        return DispatchState.WAITING if held else DispatchState.GONE

    async def ping(self) -> None:
        """Always reachable: it is this process."""

    async def close(self) -> None:
        """Let running jobs finish for a short grace period, then cancel the rest; their leases
        run out and the sweeper of the next start runs them again."""
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _run_in_slot(self, key: str, job_id: str) -> None:
        try:
            async with self._slots:
                await self._run(job_id)
        except Exception:
            logger.exception("job %s failed outside its task body", job_id)
        finally:
            self._tasks.pop(key, None)
