"""API keys: minted once, stored as a SHA-256 hash, resolved to a tenant on every request."""

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ids import new_id
from app.models import ApiKey, Tenant

KEY_PREFIX = "dk_"


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
    return await session.scalar(
        select(ApiKey.tenant_id).where(
            ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)
        )
    )
