"""Self-hosted models: diffusers pipelines run on the GPU workers' own hardware.

Models are named in `DARKROOM_DIFFUSERS_MODELS` (`name=source`, the source a Hugging Face repo id
in the local cache or a directory saved with `save_pretrained`) and served as `diffusers/<name>`.
Every process lists them, from the model's config files where it can read them, without torch;
only a process that runs their jobs (`darkroom worker --queue gpu`, or the embedded default)
loads weights, through `serve`. The pipeline code itself, which needs the `diffusers` extra, is
in app.providers.self_hosted_pipeline and imported only there."""

import asyncio
import json
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from app.cpu import run_image_work
from app.errors import InvalidForModel, ProviderError
from app.imaging.geometry import fit_exact
from app.providers.base import (
    QUALITY_TIERS,
    EditCall,
    GenerateCall,
    GenerateResult,
    InputImage,
    ModelCapabilities,
    ModelSpec,
    step_hook,
)
from app.providers.local_edits import mask_from_png

PROVIDER = "diffusers"
# The queue lane of the jobs of these models: only `darkroom worker --queue gpu` takes them.
GPU_QUEUE = "gpu"
# SDXL's training buckets at 1024 px: a model's native sizes are these scaled to its own side.
BUCKETS_AT_1024 = (
    (1024, 1024),
    (1152, 896),
    (896, 1152),
    (1216, 832),
    (832, 1216),
    (1344, 768),
    (768, 1344),
    (1536, 640),
    (640, 1536),
)
# What a model whose config files cannot be read here is taken to be: a 1024 px latent model.
DEFAULT_NATIVE_SIDE = 1024
DEFAULT_SIZE_STEP = 64
# Pipelines whose text encoder reads sentences (T5 and larger); the rest read CLIP's 77 tokens,
# which suit weighted tags.
SENTENCE_PIPELINES = (
    "Flux",
    "StableDiffusion3",
    "PixArt",
    "Sana",
    "QwenImage",
    "HiDream",
    "Lumina",
)
TAGS_PROMPT_CHARS = 350
# Images of a job made in one pipeline call: all of its `n`.
MAX_IMAGES_PER_CALL = 10
# An edit without a strength moves this far from the source.
DEFAULT_EDIT_STRENGTH = 0.6
# What inpainting's pixel work holds at its peak per source pixel: the source, its scaled
# copy and the painted image scaled back as RGB, and the repaint mask.
INPAINT_BYTES_PER_PIXEL = 12


class DenoisingStopped(Exception):
    """Raised at a pipeline's next step once its call is to stop: the job was canceled (its
    step hook raised) or the awaiting call was (a timeout)."""


@dataclass(frozen=True)
class PipelineOptions:
    """How every self-hosted model runs here, from the settings."""

    device: str = "auto"
    precision: str = "auto"
    load: str = "startup"
    steps: int = 30
    guidance_scale: float = 7.5
    gpu_second_usd: float = 0.0
    # Threads torch gives a model running on the CPU; 0 leaves torch's own choice (one a core).
    cpu_threads: int = 0


@dataclass(frozen=True)
class ModelFiles:
    """What a model's config files say, read without loading it: its pipeline class, the side
    of its native square in pixels, and the step its sizes are multiples of."""

    pipeline_class: str | None = None
    native_side: int = DEFAULT_NATIVE_SIDE
    size_step: int = DEFAULT_SIZE_STEP


@dataclass(frozen=True)
class Denoise:
    """What every pipeline call takes: the prompts, a seed per image, the steps and the
    guidance, and the callback told each step done (which raises to stop the call)."""

    prompt: str
    negative_prompt: str | None
    seeds: list[int]
    steps: int
    guidance_scale: float
    on_step: Callable[[int, int], None]


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded in this process: where it runs and the memory its weights take there."""

    device: str
    precision: str
    memory_bytes: int


def model_directory(source: str) -> Path | None:
    """Where a model's files are on this machine: the directory `source` names, or the snapshot
    of the repo id `source` in the Hugging Face cache; None if neither is here."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if source.count("/") != 1:
        return None
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface", "hub"
    )
    repo = Path(hub) / f"models--{source.replace('/', '--')}"
    try:
        revision = (repo / "refs" / "main").read_text().strip()
    except OSError:
        return None
    snapshot = repo / "snapshots" / revision
    return snapshot if snapshot.is_dir() else None


def read_model_files(source: str) -> ModelFiles:
    """The model's pipeline class, native side and size step from its config files; the
    defaults for whatever cannot be read here (a model whose files are only on GPU machines)."""
    directory = model_directory(source)
    if directory is None:
        return ModelFiles()
    index = _read_json(directory / "model_index.json")
    denoiser = _read_json(directory / "unet" / "config.json") or _read_json(
        directory / "transformer" / "config.json"
    )
    vae = _read_json(directory / "vae" / "config.json")
    vae_scale = 2 ** (len(vae.get("block_out_channels") or [0] * 4) - 1)
    sample_size = denoiser.get("sample_size")
    if isinstance(sample_size, list):
        sample_size = max(sample_size)
    down_blocks = len(denoiser.get("down_block_types") or [0])
    return ModelFiles(
        pipeline_class=index.get("_class_name"),
        native_side=int(sample_size) * vae_scale if sample_size else DEFAULT_NATIVE_SIDE,
        size_step=vae_scale * 2 ** max(down_blocks - 1, 0),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def native_sizes(files: ModelFiles) -> tuple[tuple[int, int], ...]:
    """SDXL's buckets scaled to the model's native side, as multiples of its size step."""
    scale, step = files.native_side / 1024, files.size_step

    def snap(side: int) -> int:
        return max(step, round(side * scale / step) * step)

    return tuple(dict.fromkeys((snap(width), snap(height)) for width, height in BUCKETS_AT_1024))


def steps_for(quality: str, steps: int) -> int:
    """Denoising steps at a quality tier: `draft` half, `high` half as many again."""
    if quality == "draft":
        return max(1, steps // 2)
    if quality == "high":
        return steps + steps // 2
    return steps


def model_spec(name: str, files: ModelFiles, options: PipelineOptions) -> ModelSpec:
    """The catalog entry of one self-hosted model."""
    sentences = any(family in (files.pipeline_class or "") for family in SENTENCE_PIPELINES)
    return ModelSpec(
        provider=PROVIDER,
        name=name,
        description=(
            f"Self-hosted diffusers model ({files.pipeline_class or 'pipeline class unknown'}) "
            "on this installation's GPU workers: text to image, image to image and masked "
            "inpainting, seeds reproducible on the same hardware."
        ),
        capabilities=ModelCapabilities(
            modes=("generate", "edit", "variants"),
            sizes=native_sizes(files),
            seed=True,
            negative_prompt=options.guidance_scale > 1,
            mask=True,
            images_per_call=MAX_IMAGES_PER_CALL,
            prompt_style="sentences" if sentences else "tags",
            max_prompt_chars=4000 if sentences else TAGS_PROMPT_CHARS,
            quality_levels=tuple(
                (tier, f"{steps_for(tier, options.steps)} steps") for tier in QUALITY_TIERS
            ),
        ),
        price_per_image_usd=0.0 if options.gpu_second_usd == 0 else None,
    )


# Told of models once they are loaded: model id -> where it runs and its memory.
OnLoad = Callable[[dict[str, LoadedModel]], Awaitable[None]]


@dataclass
class _Model:
    source: str
    files: ModelFiles
    spec: ModelSpec
    pipeline: Any = None
    # The load under way, shared by every job waiting for it: a job canceled while it loads
    # leaves it going rather than starting another.
    load: asyncio.Task[Any] | None = None
    # Held while the model runs a call (on a thread of its own), so calls run one at a time and
    # a call waiting its turn holds no thread.
    running: asyncio.Lock = field(default_factory=asyncio.Lock)


class DiffusersProvider:
    """The self-hosted models; each loads once, in the processes that `serve` them."""

    name = PROVIDER
    enabled_by = "DARKROOM_DIFFUSERS_MODELS"
    queue = GPU_QUEUE

    def __init__(self, models: dict[str, str], options: PipelineOptions) -> None:
        self._options = options
        self._on_load: OnLoad | None = None
        self._models = {}
        for name, source in models.items():
            files = read_model_files(source)
            self._models[name] = _Model(source, files, model_spec(name, files, options))
        self._serving = False
        if options.gpu_second_usd:
            self.pricing = (
                f"Self-hosted: an image costs its share of its pipeline call's seconds at "
                f"${options.gpu_second_usd:g} per GPU-second."
            )

    def models(self) -> list[ModelSpec]:
        """The models named in the settings."""
        return [model.spec for model in self._models.values()]

    def is_available(self) -> bool:
        """Whether any model is named; GPU workers run them, whatever process takes the job."""
        return bool(self._models)

    async def serve(self, on_load: "OnLoad | None" = None) -> None:
        """Make this process one that runs these models: it loads each now, when loading at
        start-up, else on its first job, and tells `on_load` of each once loaded. Loading fails
        loudly, so a GPU worker that cannot load its models stops at start-up rather than
        failing every job."""
        self._serving = True
        self._on_load = on_load
        if self._options.load == "startup":
            for model in self._models.values():
                await self._pipeline(model)

    def loaded(self) -> dict[str, LoadedModel]:
        """Model id -> where it runs and its weights' memory, for those loaded here."""
        return {
            model.spec.id: model.pipeline.facts
            for model in self._models.values()
            if model.pipeline is not None
        }

    async def aclose(self) -> None:
        """Let go of the loaded pipelines."""
        for model in self._models.values():
            model.pipeline = None

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One image, from the model's text-to-image pipeline."""
        return (await self.generate_batch([call]))[0]

    async def generate_batch(self, calls: list[GenerateCall]) -> list[GenerateResult]:
        """The images of `calls` (one prompt, one size, a seed each) from one pipeline call;
        each image is the one its seed makes alone."""
        first = calls[0]
        pipeline = await self._pipeline(self._model(first.model))
        steps = steps_for(first.render.quality, self._options.steps)
        seeds = [call.seed for call in calls]

        def run(on_step: Callable[[int, int], None]) -> list[Image.Image]:
            denoise = self._denoise(first.prompt, first.negative_prompt, seeds, steps, on_step)
            return pipeline.text_to_image(denoise, (first.width, first.height))

        images, seconds = await self._run(self._model(first.model), run)
        return [self._result(image, steps, seconds / len(images), pipeline) for image in images]

    async def edit(self, call: EditCall) -> GenerateResult:
        """Image to image (an unmasked edit, or a variant at its variation) at the model's
        native size nearest the call's, or inpainting of the mask's transparent area."""
        if call.references:
            raise InvalidForModel("Self-hosted models take no reference images.")
        model = self._model(call.model)
        pipeline = await self._pipeline(model)
        steps = steps_for(call.render.quality, self._options.steps)
        if call.mask is not None:
            return await self._inpaint(call, model, pipeline, steps)
        size = (call.width, call.height)
        source = fit_exact(call.image.decode(size).convert("RGB"), *size)
        strength = call.variation if call.variation is not None else call.strength
        strength = DEFAULT_EDIT_STRENGTH if strength is None else strength

        def run(on_step: Callable[[int, int], None]) -> list[Image.Image]:
            denoise = self._denoise(call.prompt, call.negative_prompt, [call.seed], steps, on_step)
            return pipeline.image_to_image(denoise, source, strength)

        images, seconds = await self._run(model, run)
        return self._result(images[0], steps, seconds, pipeline)

    async def _inpaint(
        self, call: EditCall, model: _Model, pipeline: Any, steps: int
    ) -> GenerateResult:
        """Inpainting, made at the source's aspect ratio near the model's native area, then
        scaled to the source's own size and laid over the source through the mask: the result
        has the source's size, and every pixel outside the mask is the source's own. The
        pixel work before and after runs as any image work does, within the memory budget."""
        assert call.mask is not None
        memory = call.image.width * call.image.height * INPAINT_BYTES_PER_PIXEL
        work = working_size((call.image.width, call.image.height), model.files)
        original, repaint, source, mask = await run_image_work(
            memory, _inpaint_inputs, call.image, call.mask, work
        )

        def run(on_step: Callable[[int, int], None]) -> list[Image.Image]:
            denoise = self._denoise(call.prompt, call.negative_prompt, [call.seed], steps, on_step)
            return pipeline.inpaint(denoise, source, mask)

        painted, seconds = await self._run(model, run)
        image = await run_image_work(memory, _lay_over, painted[0], original, repaint)
        return self._result(image, steps, seconds, pipeline)

    def _denoise(
        self,
        prompt: str,
        negative_prompt: str | None,
        seeds: list[int],
        steps: int,
        on_step: Callable[[int, int], None],
    ) -> Denoise:
        guidance = self._options.guidance_scale
        return Denoise(prompt, negative_prompt, seeds, steps, guidance, on_step)

    def _model(self, name: str) -> _Model:
        model = self._models.get(name)
        if model is None:
            raise InvalidForModel(f"No self-hosted model {name!r} is configured here.")
        return model

    async def _pipeline(self, model: _Model) -> Any:
        """The model's loaded pipeline, loading it (once) if need be."""
        if not self._serving:
            raise ProviderError(
                f"{model.spec.id} runs only on GPU workers (`darkroom worker --queue gpu`)."
            )
        if model.pipeline is None:
            if model.load is None:
                model.load = asyncio.create_task(self._load(model))
            try:
                await asyncio.shield(model.load)
            finally:
                if model.load.done() and model.load.exception() is not None:
                    # Failed: the next job tries again.
                    model.load = None
        return model.pipeline

    async def _load(self, model: _Model) -> None:
        try:
            from app.providers.self_hosted_pipeline import load_pipeline

            pipeline = await asyncio.to_thread(load_pipeline, model.source, self._options)
        except (ImportError, OSError, ValueError, RuntimeError) as exc:
            raise ProviderError(
                f"{model.spec.id} could not be loaded from {model.source!r}: {exc}"
            ) from exc
        model.pipeline = pipeline
        if self._on_load is not None:
            await self._on_load({model.spec.id: pipeline.facts})

    async def _run(
        self, model: _Model, work: Callable[[Callable[[int, int], None]], list[Image.Image]]
    ) -> tuple[list[Image.Image], float]:
        """Run `work` on a thread once the model is free, passing it the step callback, and
        return the images and the seconds the thread took. The thread never waits on the event
        loop: each step is handed to the job's step hook, which runs beside it (the latest
        step, when steps come faster than it) and stops the thread at its next step by
        raising (the job canceled). A call canceled here (a timeout) stops the thread at its
        next step too, and the model stays taken until it has."""
        hook = step_hook.get()
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        stopped_by: list[BaseException] = []
        latest: list[tuple[int, int]] = []
        stepped = asyncio.Event()

        def on_step(step: int, steps: int) -> None:
            if stop.is_set():
                raise DenoisingStopped
            loop.call_soon_threadsafe(_note, step, steps)

        def _note(step: int, steps: int) -> None:
            latest[:] = [(step, steps)]
            stepped.set()

        async def tell() -> None:
            while hook is not None:
                await stepped.wait()
                stepped.clear()
                try:
                    await hook(*latest[0])
                except Exception as exc:
                    stopped_by.append(exc)
                    stop.set()
                    return

        def timed() -> tuple[list[Image.Image], float]:
            started = time.perf_counter()
            images = work(on_step)
            return images, time.perf_counter() - started

        async with model.running:
            teller = asyncio.create_task(tell())
            thread = asyncio.ensure_future(asyncio.to_thread(timed))
            try:
                return await asyncio.shield(thread)
            except DenoisingStopped:
                raise stopped_by[0] from None
            except ProviderError:
                raise
            except Exception as exc:
                # Out of device memory, a size the model cannot take: the job's own failure.
                raise ProviderError(f"{model.spec.id} failed: {exc}") from exc
            except asyncio.CancelledError:
                stop.set()
                await asyncio.wait([thread])
                raise
            finally:
                teller.cancel()

    def _result(
        self, image: Image.Image, steps: int, seconds: float, pipeline: Any
    ) -> GenerateResult:
        facts: LoadedModel = pipeline.facts
        return GenerateResult(
            image=image,
            cost_usd=seconds * self._options.gpu_second_usd,
            details={
                "steps": steps,
                "gpu_seconds": round(seconds, 3),
                "device": facts.device,
                "precision": facts.precision,
            },
        )


def working_size(size: tuple[int, int], files: ModelFiles) -> tuple[int, int]:
    """`size` scaled to the model's native area, each side a multiple of its size step."""
    scale = files.native_side / math.sqrt(size[0] * size[1])
    step = files.size_step
    width, height = (max(step, round(side * scale / step) * step) for side in size)
    return width, height


def _inpaint_inputs(
    image: InputImage, mask: InputImage, work: tuple[int, int]
) -> tuple[Image.Image, Image.Image, Image.Image, Image.Image]:
    """The source at its own size, the area to repaint there (an L image, white where the
    caller's mask is fully transparent), and both scaled to the working size."""
    original = image.decode().convert("RGB")
    repaint = Image.fromarray(mask_from_png(mask.decode(), original.size)).convert("L")
    source = original.resize(work, Image.Resampling.LANCZOS)
    return original, repaint, source, repaint.resize(work, Image.Resampling.NEAREST)


def _lay_over(painted: Image.Image, original: Image.Image, repaint: Image.Image) -> Image.Image:
    """The painted image, scaled to the source's size, in the repaint area; the source
    elsewhere."""
    scaled = painted.resize(original.size, Image.Resampling.LANCZOS)
    return Image.composite(scaled, original, repaint)
