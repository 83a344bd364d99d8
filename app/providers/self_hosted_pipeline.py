"""The torch side of self-hosted models (the `diffusers` extra): load a pipeline once, and run
text to image, image to image and inpainting on it, one call at a time, stoppable between
denoising steps. Imported only by a process that serves the models (app.providers.self_hosted)."""

import logging
from typing import Any

from PIL import Image

from app.errors import InvalidForModel
from app.providers.self_hosted import Denoise, LoadedModel, PipelineOptions

try:
    import diffusers
    import torch
    import transformers
    from diffusers import (
        AutoPipelineForImage2Image,
        AutoPipelineForInpainting,
        AutoPipelineForText2Image,
    )
except ImportError as missing:  # pragma: no cover - the extra is installed wherever this runs
    raise RuntimeError(
        "Self-hosted models need the diffusers extra: pip install 'darkroom[diffusers]'"
    ) from missing

logger = logging.getLogger(__name__)
# Their progress bars and per-prompt notices (a prompt cut to the text encoder's length) are not
# for a service's log; errors still are.
for library in (diffusers.utils.logging, transformers.utils.logging):
    library.disable_progress_bar()
    library.set_verbosity_error()
PRECISIONS = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def pick_device(setting: str) -> str:
    """The device `auto` means here: CUDA, then Apple's MPS, then the CPU."""
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_precision(setting: str, device: str) -> str:
    """The precision `auto` means on `device`: half on a GPU, full on the CPU."""
    if setting != "auto":
        return setting
    return "float32" if device == "cpu" else "float16"


def load_pipeline(source: str, options: PipelineOptions) -> "Pipeline":
    """Load a model's text-to-image pipeline from a directory or the Hugging Face cache (never
    the network) onto its device, at its precision."""
    device = pick_device(options.device)
    precision = pick_precision(options.precision, device)
    if device == "cpu" and options.cpu_threads:
        torch.set_num_threads(options.cpu_threads)
    text_to_image = AutoPipelineForText2Image.from_pretrained(
        source, dtype=PRECISIONS[precision], local_files_only=True
    ).to(device)
    text_to_image.set_progress_bar_config(disable=True)
    pipeline = Pipeline(text_to_image, LoadedModel(device, precision, weight_bytes(text_to_image)))
    logger.info(
        "loaded %s on %s at %s: %.1f MiB of weights",
        source,
        device,
        precision,
        pipeline.facts.memory_bytes / 2**20,
    )
    return pipeline


def weight_bytes(pipeline: Any) -> int:
    """The memory the pipeline's modules take: their parameters and buffers."""
    total = 0
    for component in pipeline.components.values():
        if isinstance(component, torch.nn.Module):
            tensors = [*component.parameters(), *component.buffers()]
            total += sum(tensor.numel() * tensor.element_size() for tensor in tensors)
    return total


class Pipeline:
    """One loaded model. Its image-to-image and inpainting pipelines share the text-to-image
    one's modules (no more memory). Not for two threads at once: the provider runs one call
    on it at a time."""

    def __init__(self, text_to_image: Any, facts: LoadedModel) -> None:
        self.facts = facts
        self._text_to_image = text_to_image
        self._variants: dict[type, Any] = {}

    def text_to_image(self, denoise: Denoise, size: tuple[int, int]) -> list[Image.Image]:
        """One image per seed, in one batch."""
        width, height = size
        return self._call(self._text_to_image, denoise, width=width, height=height)

    def image_to_image(
        self, denoise: Denoise, source: Image.Image, strength: float
    ) -> list[Image.Image]:
        """The source moved `strength` (0..1) of the way towards the prompt."""
        pipeline = self._variant(AutoPipelineForImage2Image, "image to image")
        # diffusers runs int(steps * strength) steps: at least one, whatever the rounding.
        strength = min(1.0, max(strength, 1.001 / denoise.steps))
        return self._call(pipeline, denoise, image=source, strength=strength)

    def inpaint(
        self, denoise: Denoise, source: Image.Image, mask: Image.Image
    ) -> list[Image.Image]:
        """The source with the mask's white area painted anew."""
        pipeline = self._variant(AutoPipelineForInpainting, "inpainting")
        width, height = source.size
        return self._call(
            pipeline, denoise, image=source, mask_image=mask, width=width, height=height
        )

    def _variant(self, auto_class: Any, task: str) -> Any:
        """The pipeline for `task` built on the loaded modules; InvalidForModel if the model's
        family has none."""
        if auto_class not in self._variants:
            try:
                variant = auto_class.from_pipe(self._text_to_image)
            except ValueError as exc:
                raise InvalidForModel(f"This model's pipeline has no {task}.") from exc
            variant.set_progress_bar_config(disable=True)
            self._variants[auto_class] = variant
        return self._variants[auto_class]

    def _call(self, pipeline: Any, denoise: Denoise, **arguments: Any) -> list[Image.Image]:
        """Run the pipeline for one image per seed, each from a CPU generator of its own (so a
        seed makes the same image in any batch), telling `denoise.on_step` after each step."""
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in denoise.seeds]

        def step_end(running: Any, step: int, _timestep: Any, tensors: dict) -> dict:
            # Image to image runs the last `strength` of the steps only.
            denoise.on_step(step + 1, getattr(running, "num_timesteps", denoise.steps))
            return tensors

        with torch.inference_mode():
            output = pipeline(
                prompt=denoise.prompt,
                negative_prompt=denoise.negative_prompt,
                guidance_scale=denoise.guidance_scale,
                num_images_per_prompt=len(denoise.seeds),
                generator=generators,
                num_inference_steps=denoise.steps,
                callback_on_step_end=step_end,
                output_type="pil",
                **arguments,
            )
        return [image.convert("RGB") for image in output.images]
