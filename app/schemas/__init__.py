"""The public JSON contract (pydantic v2); the one source of the OpenAPI spec."""

import json
import math
from datetime import datetime
from math import gcd
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.schemas.prompts import PromptOptions
from app.schemas.webhooks import WebhookOptions

OutputFormat = Literal["png", "jpeg", "webp"]
# What stored assets may be: images, and the zip of an export's bundle.
AssetFormat = Literal["png", "jpeg", "webp", "avif", "zip"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
JobKind = Literal["generate", "edit", "variants", "export"]
AssetSource = Literal["upload", "generated", "reference", "export"]

MAX_SEED = 2**32 - 1
MIN_SIDE, MAX_SIDE = 64, 4096
MIN_ASPECT, MAX_ASPECT = 1 / 4, 4
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 16
MAX_FALLBACK_MODELS = 3


class Problem(BaseModel):
    """An RFC 9457 problem object: every error Darkroom returns has this shape."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong in this case, for a person.")
    instance: str | None = Field(None, description="The request path that failed.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="For validation problems: one entry per invalid field."
    )

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "type": "https://darkroom.dev/problems/not-found",
                "title": "Not found",
                "status": 404,
                "detail": "No job job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P.",
                "instance": "/v1/jobs/job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
            }
        },
    )


def parse_aspect_ratio(value: str) -> tuple[int, int]:
    """`"16:9"` -> (16, 9), reduced to lowest terms."""
    width_part, _, height_part = value.partition(":")
    width, height = int(width_part), int(height_part)
    divisor = gcd(width, height)
    return width // divisor, height // divisor


def parse_size(value: str) -> tuple[int, int]:
    """`"1024x768"` -> (1024, 768)."""
    width_part, _, height_part = value.lower().partition("x")
    return int(width_part), int(height_part)


def check_metadata(value: dict[str, Any]) -> None:
    """Refuse caller metadata that could not be stored and returned exactly as sent: too deep,
    too large, or holding NaN, Infinity, NUL characters or unpaired surrogates."""
    # Iterative, so that no nesting depth can exhaust the stack.
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata must nest at most {MAX_METADATA_DEPTH} levels deep")
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                pending.append((child, depth + 1))
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("metadata must not contain NaN or Infinity")
    if len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError("metadata must serialize to at most 16 KiB of JSON")


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ValueError("metadata must not contain NUL characters")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("metadata must be valid Unicode (no unpaired surrogates)") from None


class GenerateRequest(PromptOptions, WebhookOptions):
    """Generate images from a brief."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "prompt": "a ceramic coffee mug on a walnut desk, morning light",
                "aspect_ratio": "16:9",
                "n": 2,
                "output_format": "png",
                "seed": 42,
                "metadata": {"campaign": "spring-launch"},
            }
        },
    )

    prompt: str = Field(
        min_length=1, max_length=32000, description="The brief: what the image should show."
    )
    model: str | None = Field(
        None,
        description="Model id as `provider/model` (see GET /v1/models); the default if omitted.",
        examples=["local/draft"],
    )
    n: int = Field(1, ge=1, le=10, description="How many images to make.")
    aspect_ratio: str | None = Field(
        None,
        pattern=r"^[1-9][0-9]{0,3}:[1-9][0-9]{0,3}$",
        description="Output aspect ratio `W:H`, between 1:4 and 4:1; kept exactly, to the pixel.",
        examples=["16:9"],
    )
    size: str | None = Field(
        None,
        pattern=r"^[1-9][0-9]{1,3}[xX][1-9][0-9]{1,3}$",
        description="Exact output size `WxH`, 64 to 4096 a side; exclusive with aspect_ratio.",
        examples=["1200x630"],
    )
    output_format: OutputFormat = Field("png", description="Encoding of the stored outputs.")
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        description="Seed of the first output (output i uses seed + i); random if omitted.",
    )
    negative_prompt: str | None = Field(
        None,
        max_length=4000,
        description="What the image should not show, where the model takes it.",
    )
    fallback_models: list[str] = Field(
        default_factory=list,
        max_length=MAX_FALLBACK_MODELS,
        description="Models to try in order when the model fails for a passing reason "
        "(overloaded, timed out, unreachable); not after a refusal such as moderation. Each "
        "output records the model that made it and those that failed before it.",
        examples=[["openai/gpt-image-1.5", "local/draft"]],
    )
    metadata: dict[str, Any] | None = Field(
        None, description="Your own JSON object (up to 16 KiB), returned as is on the job."
    )

    @field_validator("aspect_ratio")
    @classmethod
    def _aspect_in_range(cls, value: str | None) -> str | None:
        if value is None:
            return None
        width, height = parse_aspect_ratio(value)
        if not MIN_ASPECT <= width / height <= MAX_ASPECT:
            raise ValueError("aspect ratio must be between 1:4 and 4:1")
        if max(width, height) > MAX_SIDE:
            raise ValueError(f"aspect ratio in lowest terms must fit in {MAX_SIDE} pixels a side")
        return f"{width}:{height}"

    @field_validator("size")
    @classmethod
    def _size_in_range(cls, value: str | None) -> str | None:
        if value is None:
            return None
        width, height = parse_size(value)
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise ValueError(f"each side must be between {MIN_SIDE} and {MAX_SIDE} pixels")
        return f"{width}x{height}"

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_storable(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_metadata(value)
        return value

    @model_validator(mode="after")
    def _size_or_aspect(self) -> "GenerateRequest":
        if self.size and self.aspect_ratio:
            raise ValueError("give either size or aspect_ratio, not both")
        return self


class JobOutput(BaseModel):
    """One image a job produced."""

    asset_id: str = Field(
        description="The stored asset.", examples=["ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"]
    )
    url: str = Field(
        description="Path of the image bytes.", examples=["/v1/assets/ast_01JD7Z.../content"]
    )
    width: int = Field(description="Width in pixels.")
    height: int = Field(description="Height in pixels.")
    format: AssetFormat = Field(description="Encoding of the bytes.")
    seed: int | None = Field(description="Seed that reproduces this output with the same request.")
    model: str | None = Field(None, description="The model that made it.")
    latency_ms: int | None = Field(None, description="Time the model took for it.")
    cost_usd: float | None = Field(None, description="What it cost, where known.")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="What else is known of how it was made (fallbacks tried, export target, "
        "vendor usage).",
    )


class JobGroup(BaseModel):
    """The outputs one model made in a side-by-side job, with its speed and cost."""

    model: str = Field(description="The model.", examples=["local/draft"])
    outputs: list[JobOutput] = Field(description="Its outputs, in order.")
    latency_ms: int | None = Field(description="Median time the model took per image.")
    cost_usd: float | None = Field(description="What its images cost together, where known.")


class JobTimings(BaseModel):
    """Where a job's time went, in milliseconds."""

    queued_ms: int | None = Field(None, description="From creation until a worker started it.")
    provider_ms: int | None = Field(None, description="Time spent inside the model provider.")
    total_ms: int | None = Field(None, description="From creation until it finished.")


JOB_EXAMPLE = {
    "id": "job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
    "object": "job",
    "kind": "generate",
    "status": "succeeded",
    "model": "local/draft",
    "request": {
        "prompt": "a ceramic coffee mug on a walnut desk, morning light",
        "model": "local/draft",
        "n": 1,
        "width": 1360,
        "height": 765,
        "size": "1360x765",
        "aspect_ratio": "16:9",
        "output_format": "png",
        "seed": 42,
    },
    "outputs": [
        {
            "asset_id": "ast_01JD7Z8QAB5X2W1V0T9S8R7Q6P",
            "url": "/v1/assets/ast_01JD7Z8QAB5X2W1V0T9S8R7Q6P/content",
            "width": 1360,
            "height": 765,
            "format": "png",
            "seed": 42,
            "model": "local/draft",
            "latency_ms": 48,
            "cost_usd": 0.0,
            "details": {},
        }
    ],
    "error": None,
    "attempts": 1,
    "cost_usd": 0.0,
    "timings": {"queued_ms": 12, "provider_ms": 48, "total_ms": 75},
    "created_at": "2026-11-28T09:30:00.000Z",
    "started_at": "2026-11-28T09:30:00.012Z",
    "finished_at": "2026-11-28T09:30:00.075Z",
    "metadata": {"campaign": "spring-launch"},
}


class Job(BaseModel):
    """A unit of image work and, once finished, its outputs or its error."""

    model_config = ConfigDict(json_schema_extra={"example": JOB_EXAMPLE})

    id: str = Field(
        description="Opaque, time-sortable job id.", examples=["job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"]
    )
    object: Literal["job"] = Field("job", description="Always `job`.")
    kind: JobKind = Field(description="What the job does.")
    status: JobStatus = Field(description="queued, running, then succeeded, failed or canceled.")
    model: str = Field(description="The model that runs the job.", examples=["local/draft"])
    request: dict[str, Any] = Field(
        description="The normalized request: defaults filled in, size and seed resolved."
    )
    outputs: list[JobOutput] = Field(description="The images, in order; empty until it succeeds.")
    groups: list[JobGroup] | None = Field(
        None, description="For variants: the outputs grouped by model, for comparison."
    )
    error: Problem | None = Field(description="Why it failed, as a problem object; else null.")
    attempts: int = Field(description="How many times a worker started it.")
    cost_usd: float | None = Field(description="What the provider charged, where known.")
    timings: JobTimings = Field(description="Durations in milliseconds.")
    created_at: datetime = Field(description="When it was accepted.")
    started_at: datetime | None = Field(description="When a worker first started it.")
    finished_at: datetime | None = Field(description="When it reached a final status.")
    metadata: dict[str, Any] | None = Field(description="Your metadata, as you sent it.")


class JobPage(BaseModel):
    """A page of jobs, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "object": "list",
                "data": [JOB_EXAMPLE],
                "has_more": True,
                "next_cursor": "job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
                "total_cost_usd": 0.42,
                "unpriced_jobs": 0,
            }
        }
    )

    object: Literal["list"] = Field("list", description="Always `list`.")
    data: list[Job] = Field(description="The jobs on this page.")
    has_more: bool = Field(description="Whether another page follows.")
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")
    total_cost_usd: float = Field(
        description="What every job matching the filter cost together (all pages, not only "
        "this one), counting the jobs whose cost is known; see `unpriced_jobs`.",
        examples=[0.42],
    )
    unpriced_jobs: int = Field(
        description="Succeeded jobs matching the filter whose cost is unknown (a model without "
        "a known price): when above 0, `total_cost_usd` is a lower bound.",
        examples=[0],
    )


class AssetParentRef(BaseModel):
    """An asset this one was made from."""

    asset_id: str = Field(
        description="The parent asset.", examples=["ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"]
    )
    role: str = Field(description="How the parent was used (source, mask, reference).")


ASSET_EXAMPLE = {
    "id": "ast_01JD7Z8QAB5X2W1V0T9S8R7Q6P",
    "object": "asset",
    "source": "generated",
    "format": "png",
    "media_type": "image/png",
    "width": 1360,
    "height": 765,
    "bytes": 182044,
    "content_hash": "9f2c1e4b7a0d3c6e8f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f70",
    "url": "/v1/assets/ast_01JD7Z8QAB5X2W1V0T9S8R7Q6P/content",
    "job_id": "job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
    "seed": 42,
    "parents": [],
    "created_at": "2026-11-28T09:30:00.070Z",
}


class Asset(BaseModel):
    """Stored image bytes with their dimensions and lineage."""

    model_config = ConfigDict(json_schema_extra={"example": ASSET_EXAMPLE})

    id: str = Field(description="Opaque asset id.", examples=["ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"])
    object: Literal["asset"] = Field("asset", description="Always `asset`.")
    source: AssetSource = Field(description="How it came to be.")
    format: AssetFormat = Field(description="Encoding of the bytes.")
    media_type: str = Field(description="MIME type of the bytes.", examples=["image/png"])
    width: int = Field(description="Width in pixels.", examples=[1360])
    height: int = Field(description="Height in pixels.", examples=[765])
    bytes: int = Field(description="Size of the content in bytes.")
    content_hash: str = Field(description="SHA-256 of the content, hex; also its ETag.")
    url: str = Field(description="Path of the image bytes.")
    job_id: str | None = Field(description="The job that produced it, if any.")
    seed: int | None = Field(description="Seed it was generated with, if any.")
    parents: list[AssetParentRef] = Field(description="The assets it was made from.")
    created_at: datetime = Field(description="When it was stored.")


class AssetList(BaseModel):
    """Assets, oldest first."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"object": "list", "data": [ASSET_EXAMPLE]}}
    )

    object: Literal["list"] = Field("list", description="Always `list`.")
    data: list[Asset] = Field(description="The assets.")


class ModelCapabilities(BaseModel):
    """What a model can do."""

    modes: list[str] = Field(description="Supported job kinds.", examples=[["generate"]])
    sizes: list[str] | None = Field(
        description="Sizes the model generates natively; null when any size in range works."
    )
    min_side: int = Field(description="Smallest side it generates, in pixels.")
    max_side: int = Field(description="Largest side it generates, in pixels.")
    output_formats: list[OutputFormat] = Field(description="Formats outputs can be stored as.")
    transparent_background: bool = Field(description="Whether it can leave the background clear.")
    seed: bool = Field(description="Whether a seed reproduces an output.")
    negative_prompt: bool = Field(description="Whether it takes a negative prompt.")
    mask: bool = Field(description="Whether it takes a mask for edits.")
    max_references: int = Field(description="Most reference images one request may carry.")
    max_n: int = Field(description="Most images one job may ask for.")
    aspect_ratios: list[str] | None = Field(
        None,
        description="The aspect ratios of its native sizes, `W:H`; null when any size in range "
        "works. Other ratios are made at the nearest one, then cropped to the exact request.",
        examples=[["1:1", "3:2", "2:3"]],
    )


class Model(BaseModel):
    """A model in the catalog."""

    id: str = Field(description="Model id to pass as `model`.", examples=["local/draft"])
    object: Literal["model"] = Field("model", description="Always `model`.")
    provider: str = Field(description="The provider that serves it.", examples=["local"])
    name: str = Field(description="The provider's name for the model.", examples=["draft"])
    description: str = Field(description="What the model is and is good for.")
    available: bool = Field(description="False when the provider is not configured here.")
    capabilities: ModelCapabilities = Field(description="What it can do.")
    price_per_image_usd: float | None = Field(description="List price of one image, if known.")
    pricing: str | None = Field(
        None,
        description="How the vendor bills when a price per image does not say it (per token, "
        "per second), and where the price table's figures come from.",
    )
    typical_latency_ms: int | None = Field(description="Typical time for one image, if known.")
    observed_latency_ms: int | None = Field(
        None,
        description="Median time the model took per image over this installation's last 50 "
        "outputs of it; null before its first.",
        examples=[8400],
    )


class ModelList(BaseModel):
    """Every model Darkroom knows."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "object": "list",
                "data": [
                    {
                        "id": "local/draft",
                        "object": "model",
                        "provider": "local",
                        "name": "draft",
                        "description": "Offline procedural draft renderer, not an AI model.",
                        "available": True,
                        "capabilities": {
                            "modes": ["generate", "edit", "variants"],
                            "sizes": None,
                            "min_side": 64,
                            "max_side": 4096,
                            "output_formats": ["png", "jpeg", "webp"],
                            "transparent_background": False,
                            "seed": True,
                            "negative_prompt": False,
                            "mask": True,
                            "max_references": 4,
                            "max_n": 10,
                            "aspect_ratios": None,
                        },
                        "price_per_image_usd": 0.0,
                        "pricing": None,
                        "typical_latency_ms": 50,
                        "observed_latency_ms": 41,
                    }
                ],
            }
        }
    )

    object: Literal["list"] = Field("list", description="Always `list`.")
    data: list[Model] = Field(description="The models.")


class Health(BaseModel):
    """Liveness or readiness."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"status": "ok", "checks": {"database": "ok", "queue": "ok"}}}
    )

    status: Literal["ok"] = Field("ok", description="Always `ok`; failures are problem+json.")
    checks: dict[str, str] = Field(
        default_factory=dict, description="Each dependency checked and its state."
    )
