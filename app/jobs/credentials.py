"""Content Credentials on a job's outputs: when the request asks for them, each image output is
signed with a C2PA manifest of what the job did (created by a model, edited, resized or
converted for an export) with the image it was made from as its parent ingredient. Jobs that do
not ask pay nothing: no credentials are loaded and no output is read."""

import dataclasses
import functools
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.cpu import run_cpu
from app.imaging.codecs import ImageInfo, file_extension, sniff_format
from app.imaging.credentials import (
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    PARENT_INGREDIENT,
    TRAINED_ALGORITHMIC_MEDIA,
    Claim,
    Ingredient,
    SigningCredentials,
    carries_credentials,
    load_credentials,
    sign,
)
from app.models import Asset, Job, JobKind
from app.runtime.context import TaskContext
from app.services.assets import Output

# Formats a manifest can be embedded in (an export's zip bundle is not an image).
SIGNABLE_FORMATS = {"png", "jpeg", "webp", "avif"}
OPENED = {"action": "c2pa.opened", "parameters": {"ingredientIds": [PARENT_INGREDIENT]}}


def wants_credentials(job: Job) -> bool:
    """Whether the job's request asks for Content Credentials on its outputs."""
    return bool(job.request.get("content_credentials"))


async def sign_output(context: TaskContext, job: Job, output: Output) -> Output:
    """`output` with a signed manifest embedded, and its details saying who signed it."""
    data, info = output.encoded
    if info.format not in SIGNABLE_FORMATS:
        return output
    settings = context.settings
    credentials = await run_cpu(
        _credentials, settings.c2pa_certificate, settings.c2pa_private_key, settings.data_dir
    )
    parent = await _parent_ingredient(context, job, output)
    claim = Claim(
        title=f"{job.id}-{output.details.get('target', 'output')}.{file_extension(info.format)}",
        actions=_actions(job, output, info, parent),
        parent=parent,
        facts={"job_id": job.id},
    )
    signed = await run_cpu(sign, data, info.format, claim, credentials)
    details = output.details | {
        "content_credentials": "testing" if credentials.for_testing else "operator"
    }
    return dataclasses.replace(
        output, encoded=(signed, info), details=details, content_credentials=True
    )


@functools.cache
def _credentials(
    certificate: Path | None, private_key: Path | None, data_dir: Path
) -> SigningCredentials:
    """The process's signing credentials, read (or made) once."""
    return load_credentials(certificate, private_key, data_dir)


async def _parent_ingredient(context: TaskContext, job: Job, output: Output) -> Ingredient | None:
    """The image the output was made from: the vendor's own file when it carries the vendor's
    Content Credentials, else the source asset of an edit, variant or export."""
    if output.vendor_image is not None:
        vendor_format = sniff_format(output.vendor_image)
        vendor = Ingredient(output.vendor_image, vendor_format or "", f"{job.model} output")
        if vendor_format and await run_cpu(carries_credentials, vendor.data, vendor_format):
            return vendor
    source_id = next((asset for asset, role in output.parents if role == "source"), None)
    if source_id is None:
        return None
    async with context.reader() as session:
        source = await session.scalar(select(Asset).where(Asset.id == source_id))
    if source is None:
        return None
    data = await context.storage.get(source.storage_key)
    return Ingredient(data, source.format, f"{source.id}.{file_extension(source.format)}")


def _actions(
    job: Job, output: Output, info: ImageInfo, parent: Ingredient | None
) -> list[dict[str, Any]]:
    """What the job did to make the output, as C2PA actions."""
    model = {"name": str(output.details.get("model", job.model))}
    if job.kind == JobKind.EXPORT:
        assert parent is not None, "an export has a source"
        return [OPENED, *_export_actions(job.request, parent, info)]
    if parent is None:
        return [
            {
                "action": "c2pa.created",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": model,
            }
        ]
    if job.kind == JobKind.GENERATE:
        # The vendor's signed file is the parent: it says how it was created.
        return [OPENED, *([] if output.details.get("passed_through") else _fitted())]
    return [
        OPENED,
        {
            "action": "c2pa.edited",
            "digitalSourceType": COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
            "softwareAgent": model,
        },
    ]


def _fitted() -> list[dict[str, Any]]:
    return [{"action": "c2pa.resized", "description": "Fitted to the requested size."}]


def _export_actions(
    request: dict[str, Any], parent: Ingredient, info: ImageInfo
) -> list[dict[str, Any]]:
    actions = [
        {
            "action": "c2pa.resized",
            "description": f"Fitted ({request['fit']}) to {info.width}x{info.height}.",
        }
    ]
    if parent.format != info.format:
        actions.append(
            {"action": "c2pa.converted", "description": f"{parent.format} to {info.format}."}
        )
    return actions
