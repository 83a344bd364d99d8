"""Each tenant's running jobs across every worker, held in Redis, so a tenant's cap on running
jobs holds cluster-wide. A slot is held by a job id and runs out like the job's lease: the run
renews it as often as the lease, so a worker killed mid-job frees its slots when their holds
run out instead of leaking them."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from enum import IntEnum

from redis.asyncio import Redis

logger = logging.getLogger(__name__)

# A hold lasts this many job leases and is renewed as often as a lease is (three times a
# lease), so a slot can go to another job while its own still runs only if renewals stop for
# two whole leases (a starved or frozen event loop); then the tenant runs one past its cap until
# that job ends. A renewal never brings back a hold that ran out or was given back, so none
# leaks a slot. A killed worker's slots free within two leases.
HOLD_LEASES = 2
RENEWALS_PER_HOLD = 3 * HOLD_LEASES
# Redis's own clock, so workers on machines whose clocks disagree agree on when a hold runs out.
_NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""
# Take a slot for a job unless the tenant holds `cap` of them already (holds that ran out do not
# count): 1 when taken, 2 when the job holds one already (see Take.HELD), 0 when full. The
# set's own expiry follows its latest hold, so an idle tenant leaves nothing behind.
# KEYS: the tenant's set (job id -> when its hold runs out). ARGV: job id, hold ms, cap.
TAKE_SCRIPT = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local taken = 2
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
  taken = 1
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return taken
"""
)
# Push a hold out from now, if it is still held (XX: one that ran out or was given back stays
# gone).
RENEW_SCRIPT = (
    _NOW_MS
    + """
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
)


class Take(IntEnum):
    """What taking a slot for a job came to."""

    FULL = 0  # the tenant is at its cap
    TAKEN = 1
    # The job held a slot already: a run of it is alive elsewhere (this is a duplicate message,
    # whose run will not take the job) or its worker died (this run takes it over).
    HELD = 2


class TenantSlots:
    """A tenant's running jobs, at most `cap` of them, in one sorted set per tenant."""

    def __init__(self, redis: Redis, queue_name: str, cap: int, hold_seconds: float) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self.cap = cap
        self.hold_ms = max(int(hold_seconds * 1000), 1)

    def key(self, tenant: str) -> str:
        """The Redis key of a tenant's running jobs."""
        return f"{self.queue_name}:running:{tenant}"

    async def take(self, tenant: str, job_id: str) -> Take:
        """Hold a slot of the tenant for the job, unless the tenant is at its cap."""
        taken = await self.redis.eval(
            TAKE_SCRIPT, 1, self.key(tenant), job_id, self.hold_ms, self.cap
        )
        return Take(int(taken))

    @contextlib.asynccontextmanager
    async def holding(self, tenant: str, job_id: str, take: Take) -> AsyncIterator[None]:
        """Keep the job's slot while the body runs, and give it back after if this run took it.
        A slot the job held already is left to run out: a duplicate message must not give back
        the slot of the live run, and a run that took over a dead worker's job cannot tell the
        two apart (its slot is then taken for one lease past its end). A failed renewal or
        give-back is only logged: the hold then runs out by itself, as a lease does."""
        renewing = asyncio.create_task(self._renew(tenant, job_id))
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            if take is Take.TAKEN:
                await self._give_back(tenant, job_id)

    async def _give_back(self, tenant: str, job_id: str) -> None:
        try:
            await self.redis.zrem(self.key(tenant), job_id)
        except Exception:
            logger.warning("could not give back the slot of job %s", job_id, exc_info=True)

    async def _renew(self, tenant: str, job_id: str) -> None:
        period = self.hold_ms / 1000 / RENEWALS_PER_HOLD
        while True:
            await asyncio.sleep(period)
            try:
                await self.redis.eval(RENEW_SCRIPT, 1, self.key(tenant), job_id, self.hold_ms)
            except Exception:
                logger.warning("could not renew the slot of job %s", job_id, exc_info=True)
