"""Export jobs: turning a request into the job's normalized request, and the preset catalogue."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidInput
from app.imaging.export import DEFAULT_QUALITY
from app.imaging.presets import PRESETS
from app.models import Asset, Job, JobKind
from app.schemas.export import ExportPreset, ExportPresetList, ExportRequest, ExportSize
from app.services.assets import use_asset
from app.services.submission import Kind, Submitter

# What runs an export job, in the place of a provider's model: Darkroom's own pipeline.
EXPORT_MODEL = "export"
# The formats an export can read; a zip bundle is an asset but not an image.
IMAGE_FORMATS = ("png", "jpeg", "webp", "avif")
# A JPEG carries XMP in one segment of at most 64 KiB; a prompt and a brief of this many
# characters each fit even when every character is escaped or takes four bytes of UTF-8.
MAX_PROVENANCE_TEXT = 5000


def list_presets() -> ExportPresetList:
    """The catalogue of named destination sizes."""
    return ExportPresetList(
        data=[ExportPreset(name=name, width=w, height=h) for name, (w, h) in PRESETS.items()]
    )


async def normalize(submitter: Submitter, body: ExportRequest) -> dict[str, Any]:
    """Find the tenant's source image (NotFound for one it does not have) and normalize."""
    session, tenant_id = submitter.session, submitter.tenant_id
    source = await use_asset(session, tenant_id, body.asset_id)
    if source.format not in IMAGE_FORMATS:
        raise InvalidInput(f"Asset {source.id} is a {source.format} file, not an image to export.")
    provenance = await provenance_of(session, source) if body.provenance else None
    return normalize_export(body, source, provenance)


def normalize_export(
    body: ExportRequest, source: Asset, provenance: dict[str, str] | None
) -> dict[str, Any]:
    """The request as the job runs it: every target resolved to a name and exact pixels, the
    quality filled in, and the provenance to embed."""
    return {
        "model": EXPORT_MODEL,
        "asset_id": source.id,
        "targets": [_target(target) for target in body.targets],
        "fit": body.fit,
        "background": body.background,
        "format": body.format,
        "quality": None if body.format == "png" else body.quality or DEFAULT_QUALITY[body.format],
        "max_bytes": body.max_bytes,
        "strip_metadata": body.strip_metadata,
        "provenance": provenance,
        "bundle": body.bundle,
        "content_credentials": body.content_credentials,
    }


def _target(target: str | ExportSize) -> dict[str, Any]:
    if isinstance(target, ExportSize):
        return {"name": f"{target.width}x{target.height}", **target.model_dump()}
    width, height = PRESETS[target]
    return {"name": target, "width": width, "height": height}


async def provenance_of(session: AsyncSession, source: Asset) -> dict[str, str]:
    """What is known of where an asset came from: itself, and the model, prompt (and brief) and
    id of the job that made it; for an export of an export, of the job that made the original."""
    provenance = {"source_asset_id": source.id}
    asset: Asset | None = source
    job = await _producer(session, source)
    while job is not None and job.kind == JobKind.EXPORT:
        asset = await session.scalar(
            select(Asset).where(
                Asset.id == job.request["asset_id"], Asset.tenant_id == source.tenant_id
            )
        )
        job = await _producer(session, asset) if asset is not None else None
    if job is None or asset is None:
        return provenance
    provenance["job_id"] = job.id
    model = (asset.details or {}).get("model") or job.model
    if model:
        provenance["model"] = str(model)
    # The prompt the model was given and, when the prompt optimizer rewrote it, the brief.
    prompt, brief = job.request.get("prompt"), job.request.get("brief")
    if isinstance(prompt, str) and prompt:
        provenance["prompt"] = prompt[:MAX_PROVENANCE_TEXT]
    if isinstance(brief, str) and brief and brief != prompt:
        provenance["brief"] = brief[:MAX_PROVENANCE_TEXT]
    return provenance


async def _producer(session: AsyncSession, asset: Asset) -> Job | None:
    if asset.job_id is None:
        return None
    return await session.scalar(
        select(Job).where(Job.id == asset.job_id, Job.tenant_id == asset.tenant_id)
    )


EXPORT = Kind(JobKind.EXPORT, ExportRequest, normalize)
