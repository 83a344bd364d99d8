"""Assets: storing bytes with their facts, keyed so that a re-run job never duplicates one;
listing and deleting them, and releasing content no asset refers to any more."""

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Text, cast, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cpu import run_cpu, run_image_work
from app.db import database_now, insert_for
from app.errors import Conflict, NotFound
from app.ids import is_id, new_id
from app.imaging.codecs import (
    MEDIA_TYPES,
    ImageInfo,
    check_decodes,
    check_memory,
    file_extension,
    inspect_header,
)
from app.imaging.credentials import carries_credentials
from app.models import Asset, AssetParent, Job
from app.schemas.assets import Asset as AssetSchema
from app.schemas.assets import AssetPage, AssetParentRef
from app.services.budgets import count_output
from app.services.pages import newest_first
from app.storage import Storage, content_key

logger = logging.getLogger(__name__)


class RowLock(StrEnum):
    """How a read locks an asset's row on Postgres (SQLite serializes writers already): a
    submission naming the asset as an input shares it, a deletion takes it for update. A
    deletion therefore waits for submissions in flight and refuses the asset while their jobs
    run; a submission after a deletion finds the asset gone."""

    SHARE = "share"
    UPDATE = "update"


# Lineage is walked a generation at a time, at most this many generations back.
MAX_LINEAGE_DEPTH = 100
# An asset's bytes never change, so a cache may keep them for a year without asking again.
IMMUTABLE = "private, max-age=31536000, immutable"


@dataclass
class Output:
    """One finished output of a job: encoded bytes, the seed that makes it again, the assets
    it was made from as (asset id, role), and facts for the job record (model, latency_ms,
    cost_usd and the kind's own)."""

    encoded: tuple[bytes, ImageInfo]
    seed: int | None = None
    source: str = "generated"
    parents: tuple[tuple[str, str], ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    # Whether the bytes carry the Content Credentials the job signed them with.
    content_credentials: bool = False
    # The vendor's own file, kept when the job signs its outputs: it may carry the vendor's
    # credentials, which become the signed output's parent ingredient.
    vendor_image: bytes | None = None


async def create_upload(
    session: AsyncSession,
    storage: Storage,
    tenant_id: str,
    data: bytes,
    max_pixels: int,
    source: str = "upload",
) -> Asset:
    """Validate untrusted bytes and store them as the tenant's asset (an `upload`, or a
    `reference` given inline or by URL with a request). The size is checked from the header
    first; the decode check then waits its turn under the process's memory budget."""
    info, memory = await run_cpu(_inspect_header, data, max_pixels)
    await run_image_work(memory, check_decodes, data, info)
    credentials = await run_cpu(carries_credentials, data, info.format)
    values = await _store(session, storage, tenant_id, data, info)
    asset = Asset(**values, source=source, content_credentials=credentials)
    session.add(asset)
    return asset


def _inspect_header(data: bytes, max_pixels: int) -> tuple[ImageInfo, int]:
    info = inspect_header(data, max_pixels)
    return info, check_memory(info, data)


async def record_output(
    session: AsyncSession, storage: Storage, job: Job, index: int, output: Output
) -> None:
    """Store output `index` of a job with its lineage and count it in the tenant's spend, once:
    a second call for the same index changes nothing."""
    data, info = output.encoded
    values = await _store(session, storage, job.tenant_id, data, info)
    values.update(
        source=output.source,
        job_id=job.id,
        output_index=index,
        seed=output.seed,
        details=output.details or None,
        content_credentials=output.content_credentials,
    )
    inserted = await session.execute(
        insert_for(session, Asset)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["job_id", "output_index"])
        .returning(Asset.id)
    )
    asset_id = inserted.scalar_one_or_none()
    if asset_id is None:
        return
    await count_output(session, job, output.details.get("cost_usd"))
    session.add_all(
        AssetParent(asset_id=asset_id, parent_id=parent, role=role)
        for parent, role in dict.fromkeys(output.parents)
    )


async def _store(
    session: AsyncSession, storage: Storage, tenant_id: str, data: bytes, info: ImageInfo
) -> dict[str, object]:
    """Put the bytes in storage; the asset's columns that describe them. The content stays
    locked (shared with other storers of the same bytes) until the session commits the asset,
    so a deletion releasing the same content meanwhile cannot remove the file from under it
    (see `release_content`)."""
    content_hash = hashlib.sha256(data).hexdigest()
    key = content_key(content_hash, info.format)
    await lock_content(session, key)
    await storage.put(key, data, MEDIA_TYPES[info.format])
    return {
        "id": new_id("ast"),
        "tenant_id": tenant_id,
        "content_hash": content_hash,
        "storage_key": key,
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "bytes": len(data),
    }


async def get_asset(
    session: AsyncSession, tenant_id: str, asset_id: str, lock: RowLock | None = None
) -> Asset:
    """The tenant's asset; NotFound for a missing one, a malformed id, or another tenant's.
    With `lock`, its row stays locked until the session's transaction ends (see `RowLock`)."""
    asset = None
    if is_id(asset_id, "ast"):
        query = select(Asset).where(
            Asset.id == asset_id, Asset.tenant_id == tenant_id, Asset.live()
        )
        if lock is not None:
            query = query.with_for_update(read=lock == RowLock.SHARE)
        asset = await session.scalar(query)
    if asset is None:
        raise NotFound(f"No asset {asset_id!r}.")
    return asset


async def use_asset(session: AsyncSession, tenant_id: str, asset_id: str) -> Asset:
    """The tenant's asset, named as an input of a job being submitted: its row is share-locked
    until the job is committed, so a deletion of the asset waits and then sees the job."""
    return await get_asset(session, tenant_id, asset_id, RowLock.SHARE)


@dataclass
class AssetFilter:
    """Which of a tenant's assets a list shows: by source, producing job and creation time."""

    source: str | None = None
    job_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


async def list_assets(
    session: AsyncSession, tenant_id: str, only: AssetFilter, cursor: str | None, limit: int
) -> AssetPage:
    """A page of the tenant's assets, newest first, after `cursor` (an asset id)."""
    query = select(Asset).where(Asset.tenant_id == tenant_id, Asset.live())
    if only.source:
        query = query.where(Asset.source == only.source)
    if only.job_id:
        query = query.where(Asset.job_id == only.job_id)
    if only.created_after:
        query = query.where(Asset.created_at > only.created_after)
    if only.created_before:
        query = query.where(Asset.created_at < only.created_before)
    page, next_cursor = await newest_first(session, query, Asset.id, "ast", cursor, limit)
    return AssetPage(
        data=await asset_views(session, page),
        has_more=next_cursor is not None,
        next_cursor=next_cursor,
    )


async def delete_asset(session: AsyncSession, tenant_id: str, asset_id: str) -> list[str]:
    """Delete the tenant's asset (NotFound if it has none by that id, or it is deleted already;
    Conflict while a queued or running job takes it as input). Returns the storage keys to
    release once the deletion is committed."""
    asset = await get_asset(session, tenant_id, asset_id, RowLock.UPDATE)
    await check_not_in_use(session, tenant_id, [asset.id])
    return await retire(session, [asset])


async def check_not_in_use(session: AsyncSession, tenant_id: str, asset_ids: list[str]) -> None:
    """Conflict if a queued or running job of the tenant names one of these assets in its
    request (as source, mask, reference or export source): deleting it would fail that job.
    Ids are unique and fixed-length, so finding one in the request's text finds that asset."""
    if not asset_ids:
        return
    request_text = cast(Job.request, Text)
    user = await session.scalar(
        select(Job)
        .where(
            Job.tenant_id == tenant_id,
            Job.in_flight(),
            or_(*(request_text.contains(asset_id) for asset_id in asset_ids)),
        )
        .limit(1)
    )
    if user is None:
        return
    used = next(asset_id for asset_id in asset_ids if asset_id in str(user.request))
    raise Conflict(
        f"Asset {used} is an input of job {user.id}, which is {user.status}; "
        "cancel the job or wait until it finishes, then delete the asset."
    )


async def retire(session: AsyncSession, assets: list[Asset]) -> list[str]:
    """Mark assets deleted; the storage keys of their content, to release after commit."""
    if not assets:
        return []
    await session.execute(
        update(Asset)
        .where(Asset.id.in_([asset.id for asset in assets]), Asset.live())
        .values(deleted_at=await database_now(session))
        .execution_options(synchronize_session=False)
    )
    return sorted({asset.storage_key for asset in assets})


async def release_content(
    sessionmaker: async_sessionmaker[AsyncSession], storage: Storage, keys: list[str]
) -> None:
    """Remove each stored file no live asset of any tenant refers to any more (content is
    shared: two tenants' identical uploads are one file). Each key is checked and removed under
    its content lock, in a transaction of its own, after the deletion that freed it committed.
    A file that cannot be removed now is left to `darkroom gc`."""
    for key in keys:
        try:
            async with sessionmaker() as session:
                await _remove_if_unreferenced(session, storage, key)
        except Exception:
            logger.warning("could not release stored file %s; gc will", key, exc_info=True)


async def _remove_if_unreferenced(session: AsyncSession, storage: Storage, key: str) -> bool:
    """Remove the file under `key` unless a live asset refers to it, checked under the content
    lock and committed; whether it was removed. The lock is exclusive: it waits for every
    request storing the same bytes to commit its asset, and one that stores them after this
    commits writes the file again."""
    await lock_content(session, key, exclusive=True)
    referenced = await session.scalar(
        select(Asset.id).where(Asset.storage_key == key, Asset.live()).limit(1)
    )
    if referenced is None:
        await storage.delete(key)
    await session.commit()
    return referenced is None


async def lock_content(session: AsyncSession, key: str, exclusive: bool = False) -> None:
    """Hold the lock of a storage key until the session's transaction ends, so that storing
    content and releasing it never interleave. Postgres takes an advisory lock on the key:
    shared for storers, so requests storing the same bytes (in any order, from any tenant) never
    wait for each other, and `exclusive` for the remover. SQLite, where one writer holds the
    whole database, takes the write lock."""
    if session.bind.dialect.name == "postgresql":
        digest = hashlib.sha256(key.encode()).digest()
        lock = func.pg_advisory_xact_lock if exclusive else func.pg_advisory_xact_lock_shared
        await session.execute(select(lock(int.from_bytes(digest[:8], signed=True))))
    else:
        await session.execute(update(Asset).where(false()).values(deleted_at=None))


async def asset_view(session: AsyncSession, asset: Asset) -> AssetSchema:
    """The public shape of an asset, with its parents."""
    return (await asset_views(session, [asset]))[0]


async def asset_views(session: AsyncSession, assets: list[Asset]) -> list[AssetSchema]:
    """The public shape of assets, with their parents, read in one query."""
    edges = await session.execute(
        select(AssetParent.asset_id, AssetParent.parent_id, AssetParent.role).where(
            AssetParent.asset_id.in_([asset.id for asset in assets])
        )
    )
    parents: dict[str, list[AssetParentRef]] = defaultdict(list)
    for asset_id, parent_id, role in edges:
        parents[asset_id].append(AssetParentRef(asset_id=parent_id, role=role))
    return [_asset_view(asset, parents[asset.id]) for asset in assets]


def _asset_view(asset: Asset, parents: list[AssetParentRef]) -> AssetSchema:
    return AssetSchema(
        id=asset.id,
        deleted_at=asset.deleted_at,
        source=asset.source,  # type: ignore[arg-type]
        format=asset.format,  # type: ignore[arg-type]
        media_type=MEDIA_TYPES[asset.format],
        width=asset.width,
        height=asset.height,
        bytes=asset.bytes,
        content_hash=asset.content_hash,
        url=content_path(asset.id),
        job_id=asset.job_id,
        seed=asset.seed,
        content_credentials=asset.content_credentials,
        parents=parents,
        created_at=asset.created_at,
    )


async def lineage(session: AsyncSession, asset: Asset) -> list[AssetSchema]:
    """The asset and all its ancestors, oldest first (by creation, then id). A deleted ancestor
    is listed with its `deleted_at`, and the walk goes on through it to its own parents."""
    found: dict[str, Asset] = {asset.id: asset}
    frontier = [asset.id]
    for _ in range(MAX_LINEAGE_DEPTH):
        parent_ids = (
            set(
                await session.scalars(
                    select(AssetParent.parent_id).where(AssetParent.asset_id.in_(frontier))
                )
            )
            - found.keys()
        )
        if not parent_ids:
            break
        parents = await session.scalars(
            select(Asset).where(Asset.id.in_(parent_ids), Asset.tenant_id == asset.tenant_id)
        )
        frontier = []
        for parent in parents:
            found[parent.id] = parent
            frontier.append(parent.id)
    ordered = sorted(found.values(), key=lambda item: (item.created_at, item.id))
    return await asset_views(session, ordered)


async def collect_garbage(session: AsyncSession, storage: Storage, older_than: float) -> int:
    """Delete stored files no live asset refers to (bytes of a request refused after they were
    written, partial writes of a crashed process, content a deletion could not release) once
    they are `older_than` seconds old, so that requests in flight keep theirs. Returns how many
    were deleted."""
    candidates = await storage.keys_older_than(older_than)
    if not candidates:
        return 0
    referenced = set(
        await session.scalars(select(Asset.storage_key).where(Asset.live()).distinct())
    )
    orphans = [key for key in candidates if key not in referenced]
    # Each is checked again in a transaction of its own, under the content lock: the same bytes
    # may have been stored again since, keeping their old file rather than rewriting it.
    await session.commit()
    return sum([await _remove_if_unreferenced(session, storage, key) for key in orphans])


def content_headers(asset: Asset) -> dict[str, str]:
    """The headers a download of the asset's bytes carries, besides their type and length: an
    image opens in place, anything else (an export's zip bundle) is saved; either is named
    `<asset id>.<extension>`."""
    disposition = "inline" if MEDIA_TYPES[asset.format].startswith("image/") else "attachment"
    name = f"{asset.id}.{file_extension(asset.format)}"
    return {
        "ETag": f'"{asset.content_hash}"',
        "Cache-Control": IMMUTABLE,
        "Content-Disposition": f'{disposition}; filename="{name}"',
    }


def content_path(asset_id: str) -> str:
    """Where an asset's bytes are served."""
    return f"/v1/assets/{asset_id}/content"
