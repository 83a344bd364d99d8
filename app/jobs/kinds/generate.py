"""Generate jobs: each output is one image at the model's nearest generation size, then cropped
or padded to the exact requested size (or stored as the vendor sent it, when it already is that
size and format). A model whose vendor makes several images a call is asked for a job's outputs
together; any other makes one per call."""

import asyncio
import itertools
import math

from app.cpu import run_image_work
from app.imaging.codecs import ImageInfo, encode, sniff_format
from app.imaging.geometry import cover_size, fit_exact, fit_kind
from app.jobs.kinds.base import (
    KindRunner,
    call_with_fallbacks,
    output_details,
    output_seed,
    render_of,
)
from app.models import Job
from app.providers.base import (
    BatchProvider,
    GenerateCall,
    GenerateResult,
    ModelSpec,
    MultiImageProvider,
    Provider,
)
from app.runtime.context import TaskContext
from app.services.assets import Output
from app.services.prompting import prompt_for

# Pixels are held as RGBA at most: 4 bytes each.
BYTES_PER_PIXEL = 4


async def finish_image(
    result: GenerateResult, request: dict, details: dict
) -> tuple[bytes, ImageInfo]:
    """The stored file of an output: the vendor's own bytes when they already have the
    requested size and format (already checked, and keeping what the vendor embedded), else the
    image scaled and cropped to the exact requested size and encoded, off the event loop.
    Records in `details` what the model made, how it became exactly the requested size, and
    whether its bytes were passed through."""
    image = result.image
    width, height, image_format = request["width"], request["height"], request["output_format"]
    details["generated_size"] = f"{image.width}x{image.height}"
    details["fit"] = fit_kind(image.size, width, height)
    encoded = result.encoded
    if (
        encoded is not None
        and image.size == (width, height)
        and sniff_format(encoded) == image_format
    ):
        details["passed_through"] = True
        return encoded, ImageInfo(image_format, width, height)
    details["passed_through"] = False

    def _finish() -> tuple[bytes, ImageInfo]:
        fitted = fit_exact(image, width, height)
        data = encode(fitted, image_format, request.get("output_compression"))
        return data, ImageInfo(image_format, width, height)

    return await run_image_work(finish_memory(image.size, width, height), _finish)


def finish_memory(made: tuple[int, int], width: int, height: int) -> int:
    """The bytes fitting and encoding an output of `made` size holds at its peak: the image
    itself (a vendor's is decoded here, on first use), its scaled copy (none when it already has
    the size), the crop, and the encoded file (at worst as large as the pixels), at 4 bytes a
    pixel."""
    scaled = 0 if made == (width, height) else math.prod(cover_size(made, width, height))
    return BYTES_PER_PIXEL * (math.prod(made) + scaled + 2 * width * height)


class GenerateRunner(KindRunner):
    """Images from a brief."""

    def __init__(self, context: TaskContext, job: Job) -> None:
        super().__init__(context, job)
        # The call making each output asked for and not yet taken, and every output this run
        # asked for (so none is asked for twice).
        self._calls: dict[int, asyncio.Future[dict[int, Output]]] = {}
        self._asked: set[int] = set()

    async def make(self, index: int) -> Output:
        if index not in self._asked:
            indexes = self._together_with(index)
            call = asyncio.ensure_future(self._make_together(indexes))
            self._calls.update(dict.fromkeys(indexes, call))
            self._asked.update(indexes)
        return (await self._calls.pop(index))[index]

    def _together_with(self, index: int) -> list[int]:
        """`index` and the outputs of its group not yet made or asked for that one call can
        make with it."""
        models, _ = self.models_for(index)
        provider, spec = self.context.registry.resolve(models[0])
        # Outputs asked for together are outputs in flight together: the job's bound holds.
        per_call = min(spec.capabilities.images_per_call, self.output_concurrency())
        if per_call == 1 or not isinstance(provider, MultiImageProvider | BatchProvider):
            return [index]
        waiting = (
            other
            for other in range(self.output_count())
            if other != index
            and other not in self.done
            and other not in self._asked
            and self.models_for(other)[0] == models
        )
        return [index, *itertools.islice(waiting, per_call - 1)]

    async def _make_together(self, indexes: list[int]) -> dict[int, Output]:
        """The outputs `indexes` of one group, from one call where the model allows it (a
        fallback model that does not makes them one call each, at once)."""
        request = self.request
        models, _ = self.models_for(indexes[0])
        seeds = [output_seed(request["seed"], self.models_for(index)[1]) for index in indexes]

        async def call(provider: Provider, spec: ModelSpec) -> list[GenerateResult]:
            prompt = prompt_for(request, spec.id)
            width, height = spec.capabilities.generation_size(
                request["width"], request["height"], request.get("quality", "auto")
            )
            calls = [
                GenerateCall(
                    model=spec.name,
                    prompt=prompt["prompt"],
                    negative_prompt=prompt.get("negative_prompt"),
                    width=width,
                    height=height,
                    seed=seed,
                    output_format=request["output_format"],
                    render=render_of(request),
                )
                for seed in seeds
            ]
            together = len(calls) <= spec.capabilities.images_per_call
            if len(calls) > 1 and together and isinstance(provider, BatchProvider):
                return await provider.generate_batch(calls)
            if len(calls) > 1 and together and isinstance(provider, MultiImageProvider):
                return await provider.generate_many(calls[0], len(calls))
            return list(await asyncio.gather(*(provider.generate(one) for one in calls)))

        results, facts = await call_with_fallbacks(self.context, models, call)
        outputs = {}
        for index, seed, result in zip(indexes, seeds, results, strict=True):
            details = output_details(result, facts)
            outputs[index] = Output(
                await finish_image(result, request, details),
                seed,
                details=details,
                vendor_image=result.encoded if request.get("content_credentials") else None,
            )
        return outputs
