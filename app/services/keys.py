"""API keys: minted once, stored as a SHA-256 hash beside a visible prefix, resolved to a tenant
on every request from a per-process cache; listed, revoked and rotated by an operator."""

import hashlib
import logging
import secrets
import string
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import database_clock, database_now, insert_for
from app.errors import Conflict, InvalidInput, NotFound
from app.ids import is_id, new_id
from app.models import ApiKey, Tenant
from app.runtime.periodic import Periodic
from app.schemas.keys import ApiKey as ApiKeySchema
from app.schemas.keys import ApiKeyCreated, ApiKeyPage, ApiKeyRotation, KeyStatus

logger = logging.getLogger(__name__)

KEY_PREFIX = "dk_"
# A key reads `dk_<12 visible characters>_<secret>`: the part before the second underscore is
# its prefix, stored in the clear so lists and logs can name the key without revealing it.
PREFIX_ALPHABET = string.ascii_lowercase + string.digits
PREFIX_CHARACTERS = 12
# Keys a process remembers at once; past it the oldest are forgotten first.
MAX_CACHED_KEYS = 10_000
# A key's last use is written at most this often per process, never once per request.
LAST_USED_SECONDS = 60.0
# Every revocation or rotation bumps this Redis counter; each API process reads it this often
# and forgets every cached key when it moved, so a revoked key stops everywhere within it.
REVOCATIONS_KEY = "darkroom:api-keys:revocations"
REVOCATION_POLL_SECONDS = 1.0


def hash_key(key: str) -> str:
    """The stored form of a key. Keys carry 256 random bits, so a plain SHA-256 is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its visible prefix."""
    prefix = KEY_PREFIX + "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_CHARACTERS))
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


async def create_key(session: AsyncSession, tenant_name: str) -> str:
    """Mint a key for a tenant (made if new) and return it; only its hash is kept."""
    _, key = await mint(session, tenant_name)
    return key


async def mint(session: AsyncSession, tenant_name: str) -> tuple[ApiKey, str]:
    """A new key row for a tenant (made if new) and the key itself, shown once. The caller
    commits."""
    return await _mint_for(session, await _tenant_named(session, tenant_name))


async def _tenant_named(session: AsyncSession, tenant_name: str) -> str:
    """The id of the tenant of this name, made if new. Two requests making the same new tenant
    at once both get the one that was made first, rather than one of them a unique violation."""
    tenant_id = await session.scalar(select(Tenant.id).where(Tenant.name == tenant_name))
    if tenant_id is not None:
        return tenant_id
    await session.execute(
        insert_for(session, Tenant)
        .values(id=new_id("ten"), name=tenant_name)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return await session.scalar(select(Tenant.id).where(Tenant.name == tenant_name))


async def _mint_for(session: AsyncSession, tenant_id: str) -> tuple[ApiKey, str]:
    key, prefix = new_key()
    row = ApiKey(
        id=new_id("key"),
        tenant_id=tenant_id,
        prefix=prefix,
        key_hash=hash_key(key),
        created_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    return row, key


@dataclass(frozen=True)
class LiveKey:
    """What a request needs of a live key: whose it is, until when it works (if rotated), and
    the tenant's monthly budget (if it has one)."""

    key_id: str
    tenant_id: str
    expires_at: datetime | None
    monthly_budget_usd: float | None


async def _live_key(session: AsyncSession, digest: str) -> LiveKey | None:
    now = database_clock(session)
    row = (
        await session.execute(
            select(ApiKey.id, ApiKey.tenant_id, ApiKey.expires_at, Tenant.monthly_budget_usd)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(
                ApiKey.key_hash == digest,
                ApiKey.revoked_at.is_(None),
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
            )
        )
    ).first()
    if row is None:
        return None
    return LiveKey(row.id, row.tenant_id, row.expires_at, row.monthly_budget_usd)


async def list_keys(
    session: AsyncSession, tenant_name: str | None, cursor: str | None, limit: int
) -> ApiKeyPage:
    """A page of keys, newest first, after `cursor` (a key id): every tenant's, or one's."""
    if cursor is not None and not is_id(cursor, "key"):
        raise InvalidInput("cursor must be the next_cursor of a previous page.")
    query = (
        select(ApiKey, Tenant.name)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .order_by(ApiKey.id.desc())
        .limit(limit + 1)
    )
    if tenant_name is not None:
        query = query.where(Tenant.name == tenant_name)
    if cursor is not None:
        query = query.where(ApiKey.id < cursor)
    rows = (await session.execute(query)).all()
    now = await database_now(session)
    page, has_more = rows[:limit], len(rows) > limit
    return ApiKeyPage(
        data=[key_view(key, name, now) for key, name in page],
        has_more=has_more,
        next_cursor=page[-1][0].id if has_more else None,
    )


async def create(session: AsyncSession, tenant_name: str) -> ApiKeyCreated:
    """Mint a key for a tenant (made if new); the answer carries the key, shown only here. The
    caller commits."""
    row, key = await mint(session, tenant_name)
    return ApiKeyCreated(**key_view(row, tenant_name, row.created_at).model_dump(), key=key)


async def revoke(session: AsyncSession, key_id: str) -> ApiKeySchema:
    """Revoke a key now (a key revoked already keeps its first time). The caller commits, then
    tells the key caches (`KeyCache.invalidate_everywhere`)."""
    key, tenant_name = await _get(session, key_id)
    now = await database_now(session)
    if key.revoked_at is None:
        key.revoked_at = now
    return key_view(key, tenant_name, now)


async def rotate(session: AsyncSession, key_id: str, grace_seconds: int) -> ApiKeyRotation:
    """A new key for the key's tenant; the old one keeps working `grace_seconds` more (0 revokes
    it now). Only an active key rotates: a revoked, expired or already rotated one is 409. The
    caller commits, then tells the key caches."""
    old, tenant_name = await _get(session, key_id)
    now = await database_now(session)
    status = key_status(old, now)
    if status is not KeyStatus.ACTIVE:
        raise Conflict(f"Key {key_id} is {status}; only an active key can be rotated.")
    if grace_seconds == 0:
        old.revoked_at = now
    else:
        old.expires_at = now + timedelta(seconds=grace_seconds)
    new, key = await _mint_for(session, old.tenant_id)
    return ApiKeyRotation(
        key=ApiKeyCreated(**key_view(new, tenant_name, now).model_dump(), key=key),
        previous_key=key_view(old, tenant_name, now),
    )


async def _get(session: AsyncSession, key_id: str) -> tuple[ApiKey, str]:
    row = (
        await session.execute(
            select(ApiKey, Tenant.name)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(ApiKey.id == key_id)
            .with_for_update(of=ApiKey)
        )
    ).first()
    if row is None:
        raise NotFound(f"No API key {key_id}.")
    return row[0], row[1]


def key_status(key: ApiKey, now: datetime) -> KeyStatus:
    """Whether the key works now, and if not, why."""
    if key.revoked_at is not None:
        return KeyStatus.REVOKED
    if key.expires_at is None:
        return KeyStatus.ACTIVE
    return KeyStatus.EXPIRING if key.expires_at > now else KeyStatus.EXPIRED


def key_view(key: ApiKey, tenant_name: str, now: datetime) -> ApiKeySchema:
    """The public shape of a key row, with its status at `now`."""
    return ApiKeySchema(
        id=key.id,
        prefix=key.prefix,
        tenant=tenant_name,
        status=key_status(key, now),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
    )


async def announce_revocation(redis: Redis | None) -> None:
    """Tell every API process sharing this Redis to forget the keys it remembers. Without Redis
    (or while it is away) they forget them within DARKROOM_KEY_CACHE_SECONDS anyway."""
    if redis is None:
        return
    try:
        await redis.incr(REVOCATIONS_KEY)
    except (RedisError, OSError):
        logger.warning(
            "could not tell the API processes a key was revoked (Redis away); their caches "
            "forget it within DARKROOM_KEY_CACHE_SECONDS",
            exc_info=True,
        )


async def save_key_uses(
    sessionmaker: async_sessionmaker[AsyncSession], uses: dict[str, datetime]
) -> None:
    """Write when each key was last used, one statement for them all; a later time already
    written by another process is kept."""
    if not uses:
        return
    # The table, not the ORM class: a list of parameters then runs as one executemany.
    keys = ApiKey.__table__.c
    statement = (
        update(ApiKey.__table__)
        .where(
            keys.id == bindparam("key_id"),
            or_(keys.last_used_at.is_(None), keys.last_used_at < bindparam("used_at")),
        )
        .values(last_used_at=bindparam("used_at"))
    )
    rows = [{"key_id": key_id, "used_at": used_at} for key_id, used_at in uses.items()]
    async with sessionmaker() as session:
        await session.execute(statement, rows)
        await session.commit()


class KeyCache:
    """The tenants of live keys this process looked up in the last `seconds`, so a burst of
    requests does not read the same key row every time; invalid keys are never remembered.
    A rotated key is remembered no later than its grace ends; a tenant's budget is remembered
    with its keys, and a change of it forgets them like a revocation. A revocation made in this
    process forgets every key at once; one made elsewhere does when this process next reads
    the Redis revocation counter (`follow_revocations`), or within `seconds` without Redis.
    It also notes when each key was used, for `take_uses` to hand to `save_key_uses`."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.redis: Redis | None = None
        self._clock = clock
        self._keys: dict[str, tuple[LiveKey, float]] = {}
        self._uses: dict[str, datetime] = {}
        self._revocations: bytes | None = None

    async def live(self, session: AsyncSession, key: str) -> LiveKey | None:
        """A live key, from memory while it is fresh, else from the database; None if the key
        is unknown, revoked or expired."""
        digest = hash_key(key)
        remembered = self._keys.get(digest)
        if remembered is not None and remembered[1] > self._clock():
            live = remembered[0]
        else:
            self._keys.pop(digest, None)
            live = await _live_key(session, digest)
            if live is None:
                return None
            self._remember(digest, live)
        self._uses[live.key_id] = datetime.now(UTC)
        return live

    def _remember(self, digest: str, live: LiveKey) -> None:
        seconds = self.seconds
        if live.expires_at is not None:
            seconds = min(seconds, (live.expires_at - datetime.now(UTC)).total_seconds())
        if seconds <= 0:
            return
        if len(self._keys) >= MAX_CACHED_KEYS:
            del self._keys[next(iter(self._keys))]
        self._keys[digest] = (live, self._clock() + seconds)

    def forget_all(self) -> None:
        """Forget every remembered key: each is read again on its next request."""
        self._keys.clear()

    async def invalidate_everywhere(self) -> None:
        """After a revocation or rotation is committed: forget here, and tell the others."""
        self.forget_all()
        await announce_revocation(self.redis)

    async def follow_revocations(self) -> None:
        """Forget every key if a revocation was announced since the last call (one GET)."""
        if self.redis is None:
            return
        revocations = await self.redis.get(REVOCATIONS_KEY)
        if revocations != self._revocations:
            self.forget_all()
            self._revocations = revocations

    def take_uses(self) -> dict[str, datetime]:
        """When each key was last used since the previous call."""
        uses, self._uses = self._uses, {}
        return uses


@asynccontextmanager
async def keep_keys_current(
    cache: KeyCache, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis | None
) -> AsyncIterator[None]:
    """For the life of an API process: follow revocations announced on `redis`, and write the
    keys' last uses every LAST_USED_SECONDS and once more on the way out."""
    cache.redis = redis
    loops = [Periodic("save key uses", LAST_USED_SECONDS, lambda: _save_uses(cache, sessionmaker))]
    if redis is not None:
        loops.append(
            Periodic("follow key revocations", REVOCATION_POLL_SECONDS, cache.follow_revocations)
        )
    try:
        yield
    finally:
        for loop in loops:
            await loop.stop()
        await _save_uses(cache, sessionmaker)


async def _save_uses(cache: KeyCache, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await save_key_uses(sessionmaker, cache.take_uses())
