"""The job queue: arq on Redis when configured, else an in-process runner; same task bodies."""

import asyncio
import json
import logging
import time
from collections import Counter, deque
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
# The place of a job put back because its tenant is at its cap: a short wait from now, and a
# spacing after the tenant's last job put back, so however many it has waiting they come up
# again one at a time (a freed slot is taken within one spacing) rather than all together.
# KEYS: the tenants' last places put back. ARGV: tenant, now (ms), wait (ms), spacing (ms).
DEFER_SCRIPT = """
local place = tonumber(ARGV[2]) + tonumber(ARGV[3])
local last = redis.call('HGET', KEYS[1], ARGV[1])
if last then place = math.max(place, tonumber(last) + tonumber(ARGV[4])) end
redis.call('HSET', KEYS[1], ARGV[1], place)
redis.call('PEXPIRE', KEYS[1], 86400000)
return place
"""
DEFER_WAIT_MS = 200
DEFER_SPACING_MS = 50
# What Redis being unreachable looks like (refused, reset, timed out), as opposed to a bad reply.
REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
# Waits between attempts to reach a lost Redis again (a connection, a subscription): doubling,
# with jitter, so a restarted Redis is not met by every process at the same instant; the longest
# is also the most a process lags its return.
RECONNECT_FIRST_DELAY_SECONDS = 0.1
RECONNECT_MAX_DELAY_SECONDS = 5.0


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


def lane_queue(queue_name: str, lane: str) -> str:
    """The arq queue of a lane: jobs of self-hosted models go to the `gpu` lane, taken only by
    `darkroom worker --queue gpu`; every other job to the default lane (""), the queue itself."""
    return f"{queue_name}:{lane}" if lane else queue_name


def queue_job_id(job_id: str, dispatch: int) -> str:
    """The queue's id for one dispatch of a job: the job id, suffixed on re-dispatches."""
    return job_id if dispatch <= 1 else f"{job_id}.{dispatch}"


class JobQueue(Protocol):
    """Where committed jobs are sent to be run."""

    async def enqueue(
        self,
        job_id: str,
        dispatch: int,
        *,
        since: datetime | None = None,
        tenant: str = "",
        lane: str = "",
    ) -> None:
        """Send one dispatch of a job to its lane (see `lane_queue`), in line as if sent at
        `since`; without one, a new job of `tenant` takes its tenant's turn (see
        `ArqQueue.place`)."""
        ...

    async def dispatch_state(self, job_id: str, dispatch: int, lane: str = "") -> DispatchState:
        """Whether that dispatch is waiting in its lane, taken by a worker, or gone."""
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
        self,
        job_id: str,
        dispatch: int,
        *,
        since: datetime | None = None,
        tenant: str = "",
        lane: str = "",
    ) -> None:
        """Send a dispatch to its lane (a duplicate of one already queued is ignored by arq),
        and wake the lane's idle workers so it starts now rather than at their next poll. arq
        hands out messages by score, the time given, so a job re-sent with the time it was
        first queued takes its old place in line instead of waiting behind every job queued
        since, and a new job takes its tenant's turn (`place`)."""
        queue = lane_queue(self.queue_name, lane)
        if since is None and tenant:
            since = await self.place(tenant, queue)
        await self._send(job_id, dispatch, since, tenant, queue)
        try:
            await self.redis.publish(wake_channel(queue), b"")
        except REDIS_UNREACHABLE:
            # Queued all the same: the workers' poll finds it.
            logger.warning("could not announce job %s; the workers' poll will find it", job_id)

    async def _send(
        self, job_id: str, dispatch: int, since: datetime | None, tenant: str, queue: str
    ) -> None:
        await self.redis.enqueue_job(
            TASK_NAME,
            job_id,
            # Read by the worker to keep the tenant within its cap on running jobs.
            tenant,
            _job_id=queue_job_id(job_id, dispatch),
            _queue_name=queue,
            _defer_until=since,
            # Counted from now: arq would count it from `since`, and a day-old place in line
            # would make a message that has already expired.
            _expires=MESSAGE_LIFETIME,
        )

    async def place(self, tenant: str, queue: str) -> datetime:
        """Where a new job of `tenant` goes in line in `queue`: one turn after the tenant's
        previous job, but never behind the head of the queue, nor later than now. A tenant with
        nothing waiting goes to the head, so one tenant's burst of thousands of jobs holds
        another's job back by at most one job's run; two tenants with jobs waiting take turns."""
        score = await self.redis.eval(
            PLACE_SCRIPT,
            2,
            queue,
            f"{queue}:turns",
            tenant,
            int(time.time() * 1000),
            TURN_MS,
        )
        return datetime.fromtimestamp(int(score) / 1000, UTC)

    async def defer(self, job_id: str, dispatch: int, tenant: str, lane: str = "") -> None:
        """Send a dispatch of a job whose tenant is at its cap to wait a moment before it is
        taken again, spaced after the tenant's other jobs put back (see DEFER_SCRIPT). Other
        tenants' jobs, queued at or before now, go ahead of it meanwhile. No worker is woken:
        nothing is ready yet, and their poll finds it when it is."""
        score = await self.redis.eval(
            DEFER_SCRIPT,
            1,
            f"{lane_queue(self.queue_name, lane)}:deferred",
            tenant,
            int(time.time() * 1000),
            DEFER_WAIT_MS,
            DEFER_SPACING_MS,
        )
        since = datetime.fromtimestamp(int(score) / 1000, UTC)
        await self._send(job_id, dispatch, since, tenant, lane_queue(self.queue_name, lane))

    async def dispatch_state(self, job_id: str, dispatch: int, lane: str = "") -> DispatchState:
        """Ask arq whether the dispatch is deferred or queued in its lane (waiting), in progress
        at a worker (taken), or neither."""
        arq_job = ArqJob(
            queue_job_id(job_id, dispatch),
            self.redis,
            _queue_name=lane_queue(self.queue_name, lane),
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
    """Runs jobs as tasks of this event loop, a bounded number at a time (the embedded default).
    Tenants take turns as they do on arq: each tenant's jobs wait in a line of their own, in the
    order sent, and a free slot goes to the tenant served longest ago (or never, since it last
    had nothing waiting or running) that has a job waiting and is under its cap on running jobs
    (`tenant_cap`, 0 for none)."""

    def __init__(
        self, run: Callable[[str], Awaitable[None]], concurrency: int, tenant_cap: int = 0
    ) -> None:
        self._run = run
        self._concurrency = concurrency
        self._tenant_cap = tenant_cap
        # Tenant -> its waiting dispatches (queue key, job id), in the order sent.
        self._waiting: dict[str, deque[tuple[str, str]]] = {}
        self._running: Counter[str] = Counter()
        # Tenant -> the number of the turn it last started a job in, while it has jobs here.
        self._last_turn: dict[str, int] = {}
        self._turns = 0
        self._held: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def enqueue(
        self,
        job_id: str,
        dispatch: int,
        *,
        since: datetime | None = None,
        tenant: str = "",
        lane: str = "",
    ) -> None:
        """Put the dispatch at the end of its tenant's line, and start what may start: this
        process runs every lane's jobs."""
        key = queue_job_id(job_id, dispatch)
        if key in self._held:
            return
        self._held.add(key)
        self._waiting.setdefault(tenant, deque()).append((key, job_id))
        self._start_waiting()

    async def dispatch_state(self, job_id: str, dispatch: int, lane: str = "") -> DispatchState:
        """Waiting while this process holds the dispatch: it cannot lose a task it runs without
        dying with it, so a task is never taken and stranded."""
        held = queue_job_id(job_id, dispatch) in self._held
        return DispatchState.WAITING if held else DispatchState.GONE

    async def ping(self) -> None:
        """Always reachable: it is this process."""

    async def close(self) -> None:
        """Start nothing more; let running jobs finish for a short grace period, then cancel the
        rest. Their leases run out (or they are still queued) and the sweeper of the next start
        runs them again."""
        self._waiting.clear()
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._held.clear()

    def _start_waiting(self) -> None:
        """Fill free slots, a job at a time from the tenant whose turn it is."""
        while len(self._tasks) < self._concurrency:
            tenant = self._next_tenant()
            if tenant is None:
                return
            line = self._waiting[tenant]
            key, job_id = line.popleft()
            if not line:
                del self._waiting[tenant]
            self._running[tenant] += 1
            self._last_turn[tenant] = self._turns
            self._turns += 1
            self._tasks[key] = asyncio.create_task(self._run_in_slot(key, job_id, tenant))

    def _next_tenant(self) -> str | None:
        """The tenant served longest ago of those with a job waiting and under their cap."""
        ready = [
            tenant
            for tenant in self._waiting
            if not self._tenant_cap or self._running[tenant] < self._tenant_cap
        ]
        return min(ready, key=lambda tenant: self._last_turn.get(tenant, -1), default=None)

    async def _run_in_slot(self, key: str, job_id: str, tenant: str) -> None:
        try:
            await self._run(job_id)
        except Exception:
            logger.exception("job %s failed outside its task body", job_id)
        finally:
            self._tasks.pop(key, None)
            self._held.discard(key)
            self._running[tenant] -= 1
            if not self._running[tenant]:
                del self._running[tenant]
                if tenant not in self._waiting:
                    # Nothing here any more: its next job goes first, as on arq.
                    del self._last_turn[tenant]
            self._start_waiting()
