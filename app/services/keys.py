"""API keys: minted once, stored as a SHA-256 hash, resolved to a tenant on every request."""

import hashlib
import secrets
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ids import new_id
from app.models import ApiKey, Tenant

KEY_PREFIX = "dk_"
# Keys a process remembers at once; past it the oldest are forgotten first.
MAX_CACHED_KEYS = 10_000


def hash_key(key: str) -> str:
    """The stored form of a key. Keys carry 256 random bits, so a plain SHA-256 is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(session: AsyncSession, tenant_name: str) -> str:
    """Mint a key for a tenant (made if new) and return it; only its hash is kept."""
    tenant = await session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(id=new_id("ten"), name=tenant_name)
        session.add(tenant)
        await session.flush()
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(id=new_id("key"), tenant_id=tenant.id, prefix=key[:10], key_hash=hash_key(key))
    )
    return key


async def tenant_for_key(session: AsyncSession, key: str) -> str | None:
    """The tenant id a live key belongs to, or None."""
    return await _tenant_for_hash(session, hash_key(key))


async def _tenant_for_hash(session: AsyncSession, digest: str) -> str | None:
    return await session.scalar(
        select(ApiKey.tenant_id).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    )


class KeyCache:
    """The tenants of live keys this process looked up in the last `seconds`, so a burst of
    requests does not read the same key row every time. A key revoked in the database stops
    working here within `seconds`; invalid keys are never remembered."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._tenants: dict[str, tuple[str, float]] = {}

    async def tenant(self, session: AsyncSession, key: str) -> str | None:
        """The tenant id of a live key, from memory while it is fresh, else from the database."""
        digest = hash_key(key)
        remembered = self._tenants.get(digest)
        if remembered is not None and remembered[1] > self._clock():
            return remembered[0]
        tenant_id = await _tenant_for_hash(session, digest)
        self._tenants.pop(digest, None)
        if tenant_id is not None and self.seconds > 0:
            if len(self._tenants) >= MAX_CACHED_KEYS:
                del self._tenants[next(iter(self._tenants))]
            self._tenants[digest] = (tenant_id, self._clock() + self.seconds)
        return tenant_id
