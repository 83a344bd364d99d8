"""Edit and variants jobs: image inputs resolved to the tenant's assets (fetched, decoded and
validated like uploads), checked against the model, and normalized into the job's request."""

import asyncio
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from math import isqrt
from typing import Any

import pybase64
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.cpu import run_cpu
from app.errors import DarkroomError, InvalidImage, InvalidInput
from app.fetcher import fetch_image
from app.imaging.geometry import parse_aspect_ratio, parse_size
from app.models import Asset, Job, JobKind, JobStatus
from app.providers.base import ModelSpec
from app.schemas.common import MAX_SIDE, MIN_SIDE
from app.schemas.edit import EditRequest, ImageInput, VariantSource, VariantsRequest
from app.services import jobs
from app.services.assets import create_upload, use_asset
from app.services.generate import (
    check_model_can_make,
    compared,
    job_specs,
    render_options,
    seed_or_random,
)
from app.services.prompting import plan_prompts
from app.services.submission import Kind, Submitter
from app.storage import Storage

FETCH_TIMEOUT_SECONDS = 10.0
INPUTS_DEADLINE_SECONDS = 30.0
EDITABLE_FORMATS = ("png", "jpeg", "webp")
_DATA_URL = re.compile(r"^data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)


@dataclass
class Inputs:
    """Where a request's images come from: the tenant's store and the fetcher's rules."""

    session: AsyncSession
    storage: Storage
    settings: Settings
    tenant_id: str

    # URL inputs downloaded ahead of storing any input (`fetch`), by URL.
    fetched: dict[str, bytes] = dataclass_field(default_factory=dict)

    async def fetch(self, given: ImageInput, field: str) -> None:
        """Download a URL input now, before any input is stored: storing takes the content's
        lock (on SQLite, the database's write lock) until the request commits, and a slow URL
        fetched after that would hold it. A bad URL raises its 4xx error naming `field`."""
        if given.url is None or given.url in self.fetched:
            return
        with _naming(field):
            self.fetched[given.url] = await self._download(given.url)

    async def resolve(self, given: ImageInput, field: str) -> Asset:
        """The tenant's asset for an input: the named asset, or the fetched or decoded bytes
        stored as a new `reference` asset (a URL input must have been `fetch`ed). A bad input
        raises its 4xx error naming `field`."""
        with _naming(field):
            if given.asset_id is not None:
                return editable(await use_asset(self.session, self.tenant_id, given.asset_id))
            data = self._bytes_of(given)
            return await create_upload(
                self.session,
                self.storage,
                self.tenant_id,
                data,
                self.settings.max_image_pixels,
                source="reference",
            )

    def _bytes_of(self, given: ImageInput) -> bytes:
        if given.url is not None:
            # Fetched ahead (`fetch`): downloading here would hold the content's lock meanwhile.
            return self.fetched[given.url]
        return decode_base64(given.b64 or "")

    async def _download(self, url: str) -> bytes:
        fetched = await fetch_image(
            url,
            self.settings.url_policy,
            max_bytes=self.settings.max_body_bytes,
            timeout_seconds=FETCH_TIMEOUT_SECONDS,
        )
        return fetched.data

    async def load(self, asset: Asset) -> bytes:
        """An asset's bytes."""
        return await self.storage.get(asset.storage_key)


@contextmanager
def _naming(field: str) -> Iterator[None]:
    """Prefix the detail of a Darkroom error raised inside with the input's field, and name it."""
    try:
        yield
    except DarkroomError as exc:
        exc.detail = f"{field}: {exc.detail}"
        exc.extensions.setdefault("field", field)
        raise


def editable(asset: Asset) -> Asset:
    """The asset, if it is an image a model can take (PNG, JPEG or WebP); InvalidInput for an
    export's zip bundle or AVIF file."""
    if asset.format not in EDITABLE_FORMATS:
        raise InvalidInput(
            f"Asset {asset.id} is a {asset.format} file; use a PNG, JPEG or WebP image."
        )
    return asset


def decode_base64(text: str) -> bytes:
    """Bytes from plain base64 or a data URL; InvalidInput if it is neither."""
    payload = _DATA_URL.sub("", text.strip(), count=1)
    try:
        return pybase64.b64decode("".join(payload.split()), validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise InvalidInput("b64 is not valid base64 (plain, or a data:image/... URL).") from None


def inputs_of(submitter: Submitter) -> Inputs:
    """Where a submitter's image inputs are resolved: its tenant's assets and storage."""
    return Inputs(submitter.session, submitter.storage, submitter.settings, submitter.tenant_id)


async def normalize_edit(submitter: Submitter, body: EditRequest) -> dict[str, Any]:
    """Check the edit against the model, store its inputs as assets (in the request's
    transaction, so a bad input leaves nothing behind), and normalize it."""
    inputs = inputs_of(submitter)
    specs = job_specs(submitter, body.model, body.models)
    for spec in specs:
        _check_model(spec, "edit", body.n, body.output_format)
        _check_edit_inputs(spec, body)
    rendering = render_options(submitter.registry, specs, body)
    try:
        # One deadline over every input, so many slow URLs cannot hold the request for long.
        async with asyncio.timeout(INPUTS_DEADLINE_SECONDS):
            source, mask, references = await _edit_inputs(inputs, body)
    except TimeoutError:
        raise InvalidInput(
            f"The request's images could not all be fetched within {INPUTS_DEADLINE_SECONDS:g} "
            "seconds; upload them as assets and refer to them by asset_id."
        ) from None
    width, height = edit_size(body, source)
    aspect = parse_aspect_ratio(body.aspect_ratio) if body.aspect_ratio else None
    request = {
        "model": specs[0].id,
        **compared(specs, body.models),
        "image": source.id,
        "mask": mask.id if mask else None,
        "references": references,
        "strength": body.strength,
        "keep": list(body.keep),
        "n": body.n,
        "width": width,
        "height": height,
        "size": f"{width}x{height}",
        "output_format": body.output_format,
        "seed": seed_or_random(body.seed),
    } | plan_prompts(
        body.prompt,
        specs,
        optimize=body.optimize,
        style=body.style,
        aspect_ratio=aspect or (width, height),
        keep=body.keep,
        references=[reference.role for reference in body.references],
        negative_prompt=body.negative_prompt,
        is_edit=True,
    )
    return request | rendering


def _check_edit_inputs(spec: ModelSpec, body: EditRequest) -> None:
    """InvalidInput unless the model takes the edit's mask and as many references."""
    if body.mask is not None and not spec.capabilities.mask:
        raise InvalidInput(f"{spec.id} does not take a mask; omit it or pick another model.")
    if len(body.references) > spec.capabilities.max_references:
        raise InvalidInput(
            f"{spec.id} takes at most {spec.capabilities.max_references} reference images; "
            f"this request has {len(body.references)}."
        )


async def _edit_inputs(
    inputs: Inputs, body: EditRequest
) -> tuple[Asset, Asset | None, list[dict[str, object]]]:
    """The edit's source, mask (checked against the source) and references as assets."""
    named = [(body.image, "image"), *([(body.mask, "mask")] if body.mask else [])]
    named += [(ref.image, f"references[{i}].image") for i, ref in enumerate(body.references)]
    for given, field in named:
        await inputs.fetch(given, field)
    source = await inputs.resolve(body.image, "image")
    mask = await inputs.resolve(body.mask, "mask") if body.mask else None
    if mask is not None:
        await _check_mask(inputs, mask, source)
    references = [
        {
            "asset_id": (await inputs.resolve(reference.image, f"references[{i}].image")).id,
            "role": reference.role,
            "weight": reference.weight,
        }
        for i, reference in enumerate(body.references)
    ]
    return source, mask, references


async def normalize_variants(submitter: Submitter, body: VariantsRequest) -> dict[str, Any]:
    """Check every compared model can make the variants, find the source, and normalize
    (one group of `n` per model)."""
    inputs = inputs_of(submitter)
    specs = job_specs(submitter, None, body.models)
    for spec in specs:
        _check_model(spec, "variants", body.n, body.output_format)
    rendering = render_options(submitter.registry, specs, body)
    source, source_job = await _variant_source(inputs, body.source)
    brief = body.prompt if body.prompt is not None else _brief_of(source_job)
    width, height = fit_side_limits(*source.dimensions())
    request = {
        "model": specs[0].id,
        "models": [spec.id for spec in specs],
        "image": source.id,
        "variation": body.variation_amount,
        "n": body.n,
        "width": width,
        "height": height,
        "size": f"{width}x{height}",
        "output_format": body.output_format,
        "seed": seed_or_random(body.seed),
    } | plan_prompts(
        brief,
        specs,
        optimize=body.optimize if brief else "off",
        style=body.style,
        aspect_ratio=(width, height),
        keep=(),
        references=(),
        negative_prompt=None,
        is_edit=True,
    )
    return request | rendering


def _check_model(spec: ModelSpec, mode: str, n: int, output_format: str) -> None:
    # Variants are edits of their source, so any model that edits can make them.
    if "edit" not in spec.capabilities.modes:
        raise InvalidInput(f"{spec.id} cannot {mode}; GET /v1/models lists what each model does.")
    check_model_can_make(spec, n, output_format)


async def _check_mask(inputs: Inputs, mask: Asset, source: Asset) -> None:
    if (mask.width, mask.height) != (source.width, source.height):
        raise InvalidImage(
            f"mask: the mask is {mask.width}x{mask.height} but the image is "
            f"{source.width}x{source.height}; they must have the same dimensions.",
            field="mask",
        )
    data = await inputs.load(mask)
    if not await run_cpu(_has_alpha, data):
        raise InvalidImage(
            "mask: the mask has no alpha channel; use a PNG whose fully transparent pixels "
            "(alpha 0) mark the area to change.",
            field="mask",
        )


def _has_alpha(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        return image.has_transparency_data


def edit_size(body: EditRequest, source: Asset) -> tuple[int, int]:
    """The output size of an edit: `size`, else `aspect_ratio` at about the source's area,
    else the source's own size (scaled into the side limits)."""
    if body.size:
        return parse_size(body.size)
    source_width, source_height = source.dimensions()
    if not body.aspect_ratio:
        return fit_side_limits(source_width, source_height)
    ratio_width, ratio_height = parse_aspect_ratio(body.aspect_ratio)
    # The multiple of the ratio nearest the source's area with both sides within the limits.
    smallest = -(-MIN_SIDE // min(ratio_width, ratio_height))
    largest = MAX_SIDE // max(ratio_width, ratio_height)
    if smallest > largest:
        raise InvalidInput(
            f"Aspect ratio {body.aspect_ratio} cannot be held exactly within {MIN_SIDE} to "
            f"{MAX_SIDE} pixels a side; give an exact `size` instead."
        )
    scale = isqrt(source_width * source_height // (ratio_width * ratio_height))
    scale = min(max(scale, smallest), largest)
    return ratio_width * scale, ratio_height * scale


def fit_side_limits(width: int, height: int) -> tuple[int, int]:
    """The size scaled (keeping its ratio) so both sides lie within the side limits."""
    scale = min(1.0, MAX_SIDE / max(width, height))
    scale = max(scale, MIN_SIDE / min(width, height))
    fitted = round(width * scale), round(height * scale)
    if max(fitted) > MAX_SIDE:
        raise InvalidInput(
            f"The source is {width}x{height}, too narrow to fit {MIN_SIDE} to {MAX_SIDE} pixels "
            "a side; give an exact `size`."
        )
    return fitted


async def _variant_source(inputs: Inputs, source: VariantSource) -> tuple[Asset, Job | None]:
    session, tenant_id = inputs.session, inputs.tenant_id
    if source.asset_id is not None:
        asset = editable(await use_asset(session, tenant_id, source.asset_id))
        job = await jobs.get_job(session, tenant_id, asset.job_id) if asset.job_id else None
        return asset, job
    job = await jobs.get_job(session, tenant_id, source.job_id or "")
    if job.status != JobStatus.SUCCEEDED:
        raise InvalidInput(f"Job {job.id} is {job.status}; vary the outputs of a succeeded job.")
    # By output index, which stays the output's own when an earlier output is deleted.
    assets = {asset.output_index: asset for asset in await jobs.outputs_of(session, job.id)}
    if source.index not in assets:
        raise InvalidInput(
            f"Job {job.id} has {len(assets)} outputs; index {source.index} is past them "
            "or was deleted."
        )
    return editable(await use_asset(session, tenant_id, assets[source.index].id)), job


def _brief_of(job: Job | None) -> str:
    if job is None:
        return ""
    return str(job.request.get("brief") or job.request.get("prompt") or "")


EDIT = Kind(JobKind.EDIT, EditRequest, normalize_edit)
VARIANTS = Kind(JobKind.VARIANTS, VariantsRequest, normalize_variants)
