"""The public JSON contract (pydantic v2); the one source of the OpenAPI spec."""

import json
import math
from datetime import datetime
from math import gcd
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OutputFormat = Literal["png", "jpeg", "webp"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
JobKind = Literal["generate", "edit", "variants", "export"]
AssetSource = Literal["upload", "generated", "reference", "export"]

MAX_SEED = 2**32 - 1
MIN_SIDE, MAX_SIDE = 64, 4096
MIN_ASPECT, MAX_ASPECT = 1 / 4, 4
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 16


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


class GenerateRequest(BaseModel):
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
    format: OutputFormat = Field(description="Encoding of the bytes.")
    seed: int | None = Field(description="Seed that reproduces this output with the same request.")
    model: str | None = Field(None, description="The model that made it.")
    latency_ms: int | None = Field(None, description="Time the model took for it.")
    cost_usd: float | None = Field(None, description="What it cost, where known.")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="What else is known of how it was made (fallbacks tried, export target, "
        "vendor usage).",
    )


class JobTimings(BaseModel):
    """Where a job's time went, in milliseconds."""

    queued_ms: int | None = Field(None, description="From creation until a worker started it.")
    provider_ms: int | None = Field(None, description="Time spent inside the model provider.")
    total_ms: int | None = Field(None, description="From creation until it finished.")


class Job(BaseModel):
    """A unit of image work and, once finished, its outputs or its error."""

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

    object: Literal["list"] = Field("list", description="Always `list`.")
    data: list[Job] = Field(description="The jobs on this page.")
    has_more: bool = Field(description="Whether another page follows.")
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")


class AssetParentRef(BaseModel):
    """An asset this one was made from."""

    asset_id: str = Field(
        description="The parent asset.", examples=["ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"]
    )
    role: str = Field(description="How the parent was used (source, mask, reference).")


class Asset(BaseModel):
    """Stored image bytes with their dimensions and lineage."""

    id: str = Field(description="Opaque asset id.", examples=["ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"])
    object: Literal["asset"] = Field("asset", description="Always `asset`.")
    source: AssetSource = Field(description="How it came to be.")
    format: OutputFormat = Field(description="Encoding of the bytes.")
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
    typical_latency_ms: int | None = Field(description="Typical time for one image, if known.")


class ModelList(BaseModel):
    """Every model Darkroom knows."""

    object: Literal["list"] = Field("list", description="Always `list`.")
    data: list[Model] = Field(description="The models.")


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok"] = Field("ok", description="Always `ok`; failures are problem+json.")
    checks: dict[str, str] = Field(
        default_factory=dict, description="Each dependency checked and its state."
    )
