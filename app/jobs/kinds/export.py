"""Export jobs: one output per target, cut from one decoded source, then optionally a zip of
them all. While one output is stored the next is already rendering, so both cores work."""

import asyncio
import io
import zipfile
from typing import Any

from sqlalchemy import select

from app.cpu import release_free_memory, run_cpu, run_image_work
from app.errors import ExportBudgetExceeded, NotFound
from app.imaging.codecs import ImageInfo, file_extension
from app.imaging.export import (
    ExportBudgetError,
    ExportedImage,
    ExportOptions,
    ExportTarget,
    PreparedExport,
    prepare_export,
)
from app.jobs.kinds.base import KindRunner, Output
from app.models import Asset, Job
from app.runtime.context import TaskContext

BUNDLE_FORMAT = "zip"
# Estimates of the memory export work holds at its peak, per pixel: preparing decodes the
# source (RGBA at most), may convert it to sRGB, and keeps a pyramid of halvings (a third more);
# a render holds its scaled copy, its crop and the encoded file.
PREPARE_BYTES_PER_PIXEL = 4 * 3
RENDER_BYTES_PER_PIXEL = 4 * 3


class ExportRunner(KindRunner):
    """Files for destinations from one asset."""

    def __init__(self, context: TaskContext, job: Job) -> None:
        super().__init__(context, job)
        self.targets = [
            ExportTarget(target["name"], target["width"], target["height"])
            for target in self.request["targets"]
        ]
        self.prepared: PreparedExport | None = None
        self.renders: dict[int, asyncio.Future[ExportedImage]] = {}

    async def prepare(self) -> None:
        """Read the source once and decode it into the pyramid every target is cut from."""
        async with self.context.sessionmaker() as session:
            source = await session.scalar(
                select(Asset).where(
                    Asset.id == self.request["asset_id"],
                    Asset.tenant_id == self.job.tenant_id,
                    Asset.live(),
                )
            )
        if source is None:
            raise NotFound(f"Asset {self.request['asset_id']} no longer exists.")
        data = await self.context.storage.get(source.storage_key)
        self.prepared = await run_image_work(
            source.width * source.height * PREPARE_BYTES_PER_PIXEL,
            prepare_export,
            data,
            self.targets,
            export_options(self.request),
        )

    def output_count(self) -> int:
        return len(self.targets) + (1 if self.request["bundle"] else 0)

    def output_concurrency(self) -> int:
        """One at a time: the next target renders ahead on a thread while one is stored, and
        the bundle, last, reads every target back."""
        return 1

    async def make(self, index: int) -> Output:
        if index == len(self.targets):
            return await self._bundle()
        rendering = self._start(index)
        following = index + 1
        if following < len(self.targets) and following not in self.done:
            self._start(following)
        try:
            exported = await rendering
        except ExportBudgetError as exc:
            raise ExportBudgetExceeded(
                str(exc),
                target=self.targets[index].name,
                max_bytes=exc.max_bytes,
                smallest_bytes=exc.smallest_bytes,
            ) from exc
        finally:
            self.renders.pop(index, None)
        if not self._targets_after(index):
            await self._release_source()
        return Output(
            (exported.data, ImageInfo(exported.format, exported.width, exported.height)),
            source="export",
            parents=((self.request["asset_id"], "source"),),
            details={
                "target": exported.target.name,
                "fit": self.request["fit"],
                "upscaled": exported.upscaled,
                "quality": exported.quality,
            },
        )

    def _targets_after(self, index: int) -> list[int]:
        """The targets after `index` still to render in this run."""
        return [later for later in range(index + 1, len(self.targets)) if later not in self.done]

    async def _release_source(self) -> None:
        """Drop the decoded source and its pyramid once the last target is cut from them, and
        hand their memory back to the system: the job may still store files and zip a bundle,
        and the worker runs other jobs, long after."""
        self.prepared = None
        await run_cpu(release_free_memory)

    def _start(self, index: int) -> "asyncio.Future[ExportedImage]":
        """Render target `index` on a thread, once."""
        if index not in self.renders:
            assert self.prepared is not None, "prepare() runs before make()"
            target = self.targets[index]
            memory = target.width * target.height * RENDER_BYTES_PER_PIXEL
            rendering = asyncio.ensure_future(run_image_work(memory, self.prepared.render, index))
            # A render started ahead may never be awaited when the job stops early.
            rendering.add_done_callback(_consume_exception)
            self.renders[index] = rendering
        return self.renders[index]

    async def _bundle(self) -> Output:
        """A zip of every target's output, read back from storage, so the bundle is the same
        whichever run made the files."""
        async with self.context.sessionmaker() as session:
            rows = await session.execute(
                select(Asset.id, Asset.output_index, Asset.storage_key, Asset.format)
                .where(Asset.job_id == self.job.id, Asset.output_index < len(self.targets))
                .order_by(Asset.output_index)
            )
            members = list(rows)
        names = _file_names(
            [self.targets[member.output_index].name for member in members],
            [member.format for member in members],
        )
        contents = [await self.context.storage.get(member.storage_key) for member in members]
        data = await run_cpu(_zip, list(zip(names, contents, strict=True)))
        files = [
            {"name": name, "asset_id": member.id}
            for name, member in zip(names, members, strict=True)
        ]
        return Output(
            (data, ImageInfo(BUNDLE_FORMAT, None, None)),
            source="export",
            parents=((self.request["asset_id"], "source"),),
            details={"bundle": True, "files": files},
        )


def export_options(request: dict[str, Any]) -> ExportOptions:
    """The pipeline's options from a normalized export request."""
    return ExportOptions(
        fit=request["fit"],
        format=request["format"],
        quality=request["quality"],
        max_bytes=request["max_bytes"],
        background=request["background"],
        strip_metadata=request["strip_metadata"],
        provenance=request["provenance"],
    )


def _consume_exception(future: "asyncio.Future[ExportedImage]") -> None:
    if not future.cancelled():
        future.exception()


def _file_names(targets: list[str], formats: list[str]) -> list[str]:
    """A file name per output, from its target; a repeated target gets a numbered suffix."""
    names: list[str] = []
    for target, image_format in zip(targets, formats, strict=True):
        extension = file_extension(image_format)
        name, number = f"{target}.{extension}", 1
        while name in names:
            number += 1
            name = f"{target}-{number}.{extension}"
        names.append(name)
    return names


def _zip(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    # Stored, not deflated: the images are compressed already.
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, content in files:
            # A fixed timestamp, so the same files always make the same bytes; readable files.
            member = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            member.external_attr = 0o644 << 16
            archive.writestr(member, content)
    return buffer.getvalue()
