"""Assets: storing bytes with their facts, keyed so that a re-run job never duplicates one."""

import hashlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.cpu import run_cpu, run_image_work
from app.errors import NotFound
from app.ids import is_id, new_id
from app.imaging.codecs import (
    MEDIA_TYPES,
    ImageInfo,
    check_decodes,
    check_memory,
    file_extension,
    inspect_header,
)
from app.models import Asset, AssetParent, Job
from app.schemas.assets import Asset as AssetSchema
from app.schemas.assets import AssetParentRef
from app.storage import Storage, content_key

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
    asset = Asset(**await _store(storage, tenant_id, data, info), source=source)
    session.add(asset)
    return asset


def _inspect_header(data: bytes, max_pixels: int) -> tuple[ImageInfo, int]:
    info = inspect_header(data, max_pixels)
    return info, check_memory(info, data)


async def record_output(
    session: AsyncSession, storage: Storage, job: Job, index: int, output: Output
) -> None:
    """Store output `index` of a job with its lineage, once: a second call for the same index
    changes nothing."""
    data, info = output.encoded
    values = await _store(storage, job.tenant_id, data, info)
    values.update(
        source=output.source,
        job_id=job.id,
        output_index=index,
        seed=output.seed,
        details=output.details or None,
    )
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    inserted = await session.execute(
        dialect.insert(Asset)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["job_id", "output_index"])
        .returning(Asset.id)
    )
    asset_id = inserted.scalar_one_or_none()
    if asset_id is not None and output.parents:
        session.add_all(
            AssetParent(asset_id=asset_id, parent_id=parent, role=role)
            for parent, role in dict.fromkeys(output.parents)
        )


async def _store(
    storage: Storage, tenant_id: str, data: bytes, info: ImageInfo
) -> dict[str, object]:
    """Put the bytes in storage; the asset's columns that describe them."""
    content_hash = hashlib.sha256(data).hexdigest()
    key = content_key(content_hash, info.format)
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


async def get_asset(session: AsyncSession, tenant_id: str, asset_id: str) -> Asset:
    """The tenant's asset; NotFound for a missing one, a malformed id, or another tenant's."""
    asset = None
    if is_id(asset_id, "ast"):
        asset = await session.scalar(
            select(Asset).where(Asset.id == asset_id, Asset.tenant_id == tenant_id)
        )
    if asset is None:
        raise NotFound(f"No asset {asset_id!r}.")
    return asset


async def asset_view(session: AsyncSession, asset: Asset) -> AssetSchema:
    """The public shape of an asset, with its parents."""
    parents = await session.execute(
        select(AssetParent.parent_id, AssetParent.role).where(AssetParent.asset_id == asset.id)
    )
    return AssetSchema(
        id=asset.id,
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
        parents=[AssetParentRef(asset_id=p, role=r) for p, r in parents],
        created_at=asset.created_at,
    )


async def lineage(session: AsyncSession, asset: Asset) -> list[AssetSchema]:
    """The asset and all its ancestors, oldest first (by creation, then id)."""
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
    return [await asset_view(session, item) for item in ordered]


async def collect_garbage(session: AsyncSession, storage: Storage, older_than: float) -> int:
    """Delete stored files no asset refers to (bytes of a request refused after they were
    written, partial writes of a crashed process) once they are `older_than` seconds old, so
    that requests in flight keep theirs. Returns how many were deleted."""
    candidates = await storage.keys_older_than(older_than)
    if not candidates:
        return 0
    referenced = set(await session.scalars(select(Asset.storage_key).distinct()))
    orphans = [key for key in candidates if key not in referenced]
    for key in orphans:
        await storage.delete(key)
    return len(orphans)


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
