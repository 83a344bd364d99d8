"""Size mapping on every model in the catalog: for each requested aspect ratio or size, the size
asked of the model is one it supports, and the finished output is exactly the requested size."""

import pytest
from PIL import Image

from app.config import Settings
from app.imaging.geometry import fit_exact, fit_kind, output_size, parse_aspect_ratio, parse_size
from app.providers.base import ModelSpec
from app.providers.registry import create_registry

ASPECT_RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "4:1", "1:4", "5:4"]
SIZES = ["1200x630", "1080x1920", "64x64", "4096x1024", "1024x1536", "333x777"]


def every_model() -> list[ModelSpec]:
    """Every model the registry builds when every vendor is configured."""
    settings = Settings(
        openai_api_key="sk-test",
        openai_compat_base_url="http://models.internal/v1",
        openai_compat_models="flux-schnell,owner/model",
        **{
            f"{vendor}_api_key": "test-key"
            for vendor in ("google", "stability", "bfl", "replicate", "fal")
        },
    )
    return [spec for spec, _ in create_registry(settings).catalog()]


def requested_size(spec: ModelSpec, request: str) -> tuple[int, int]:
    """The exact output size a request asks for, as the job normalizes it."""
    if ":" in request:
        return output_size(None, parse_aspect_ratio(request), spec.capabilities.default_area)
    return output_size(parse_size(request), None, spec.capabilities.default_area)


def supports(spec: ModelSpec, size: tuple[int, int]) -> bool:
    """Whether the model takes this generation size."""
    capabilities = spec.capabilities
    if capabilities.sizes is not None:
        return size in capabilities.sizes
    return all(capabilities.min_side <= side <= capabilities.max_side for side in size)


MODELS = every_model()


@pytest.mark.parametrize("spec", MODELS, ids=[spec.id for spec in MODELS])
def test_the_model_is_asked_for_a_size_it_supports_and_the_output_is_exact(
    spec: ModelSpec,
) -> None:
    for request_text in ASPECT_RATIOS + SIZES:
        width, height = requested_size(spec, request_text)

        generated = spec.capabilities.generation_size(width, height)
        finished = fit_exact(Image.new("L", generated, 128), width, height)

        assert supports(spec, generated), f"{spec.id} cannot make {generated} for {request_text}"
        assert finished.size == (width, height), request_text
        assert fit_kind(generated, width, height) in {"exact", "scaled", "cropped"}


FIXED_SIZE_MODELS = [spec for spec in MODELS if spec.capabilities.sizes is not None]


@pytest.mark.parametrize("spec", FIXED_SIZE_MODELS, ids=[spec.id for spec in FIXED_SIZE_MODELS])
def test_the_nearest_native_size_is_the_closest_in_aspect(spec: ModelSpec) -> None:
    sizes = spec.capabilities.sizes or ()
    for request_text in ASPECT_RATIOS:
        width, height = requested_size(spec, request_text)
        generated = spec.capabilities.generation_size(width, height)
        wanted = width / height
        best = min(abs(w / h - wanted) for w, h in sizes)
        assert abs(generated[0] / generated[1] - wanted) == best


def test_openai_sizes_for_common_requests() -> None:
    gpt = next(spec for spec in MODELS if spec.id == "openai/gpt-image-2")
    cases = {"16:9": (1536, 1024), "9:16": (1024, 1536), "1:1": (1024, 1024), "4:1": (1536, 1024)}

    for request_text, expected in cases.items():
        width, height = requested_size(gpt, request_text)
        assert gpt.capabilities.generation_size(width, height) == expected


def test_fit_says_what_was_done() -> None:
    assert fit_kind((1024, 1024), 1024, 1024) == "exact"
    assert fit_kind((1024, 1024), 512, 512) == "scaled"
    assert fit_kind((1536, 1024), 768, 512) == "scaled"
    assert fit_kind((1536, 1024), 1360, 765) == "cropped"
    assert fit_kind((1024, 1536), 1024, 1024) == "cropped"
