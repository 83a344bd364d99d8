"""Jobs as callers see them: status, normalized request, outputs, timings and cost."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models import JobKind, JobStatus
from app.schemas.catalog import PriceRange
from app.schemas.common import AssetFormat, Problem


class JobOutput(BaseModel):
    """One image a job produced."""

    asset_id: str = Field(
        description="The stored asset.", examples=["ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"]
    )
    url: str = Field(
        description="Path of the image bytes.", examples=["/v1/assets/ast_01JD7Z.../content"]
    )
    width: int | None = Field(
        description="Width in pixels; null for an export's zip bundle, which is not an image."
    )
    height: int | None = Field(
        description="Height in pixels; null for an export's zip bundle, which is not an image."
    )
    format: AssetFormat = Field(description="Encoding of the bytes.")
    seed: int | None = Field(description="Seed that reproduces this output with the same request.")
    model: str | None = Field(None, description="The model that made it.")
    latency_ms: int | None = Field(None, description="Time the model took for it.")
    cost_usd: float | None = Field(None, description="What it cost, where known.")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="What else is known of how it was made: the size the model made "
        "(`generated_size`), how it became the requested size (`fit`), whether the vendor's file "
        "was stored as sent (`passed_through`), fallbacks tried, export target, vendor usage.",
    )


class OutputFailure(BaseModel):
    """An output a compared model failed to make, and why."""

    index: int = Field(description="The output's index in the job.", examples=[2])
    seed: int = Field(description="The seed it was to have.", examples=[42])
    error: Problem = Field(description="Why the model failed, as a problem object.")


class JobGroup(BaseModel):
    """The outputs one model made in a side-by-side job, with its speed, cost and failures."""

    model: str = Field(description="The model.", examples=["local/draft"])
    outputs: list[JobOutput] = Field(description="Its outputs, in order.")
    latency_ms: int | None = Field(description="Median time the model took per image.")
    cost_usd: float | None = Field(description="What its images cost together, where known.")
    failures: list[OutputFailure] = Field(
        default_factory=list,
        description="The outputs it failed to make, with why; empty when it made them all.",
    )


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
    "estimated_cost_usd": {"min_usd": 0.0, "max_usd": 0.0},
    "timings": {"queued_ms": 12, "provider_ms": 48, "total_ms": 75},
    "created_at": "2026-11-28T09:30:00.000Z",
    "started_at": "2026-11-28T09:30:00.012Z",
    "finished_at": "2026-11-28T09:30:00.075Z",
    "metadata": {"campaign": "spring-launch"},
}


def _compare_output(asset_id: str, model: str, seed: int, latency_ms: int, cost: float) -> dict:
    return {
        "asset_id": asset_id,
        "url": f"/v1/assets/{asset_id}/content",
        "width": 1024,
        "height": 1024,
        "format": "png",
        "seed": seed,
        "model": model,
        "latency_ms": latency_ms,
        "cost_usd": cost,
        "details": {"generated_size": "1024x1024", "fit": "exact", "passed_through": False},
    }


_COMPARE_OUTPUTS = [
    _compare_output("ast_01JD7Z8QAB5X2W1V0T9S8R7Q6P", "local/draft", 42, 41, 0.0),
    _compare_output("ast_01JD7Z8QAC5X2W1V0T9S8R7Q6P", "local/draft", 43, 44, 0.0),
    _compare_output("ast_01JD7Z8QAD5X2W1V0T9S8R7Q6P", "openai/gpt-image-1-mini", 42, 9100, 0.0052),
]
# A job comparing two models on one brief where one of the second model's outputs was refused:
# the job succeeded, and the group says which output failed and why.
COMPARE_JOB_EXAMPLE = JOB_EXAMPLE | {
    "status": "succeeded",
    "request": {
        "brief": "a ceramic coffee mug on a walnut desk, morning light",
        "model": "local/draft",
        "models": ["local/draft", "openai/gpt-image-1-mini"],
        "n": 2,
        "width": 1024,
        "height": 1024,
        "size": "1024x1024",
        "output_format": "png",
        "seed": 42,
        "prompt": "A ceramic coffee mug on a walnut desk, soft morning light, ...",
        "model_prompts": {
            "local/draft": {"prompt": "A ceramic coffee mug on a walnut desk, ..."},
            "openai/gpt-image-1-mini": {"prompt": "A ceramic coffee mug on a walnut desk, ..."},
        },
    },
    "outputs": _COMPARE_OUTPUTS,
    "groups": [
        {
            "model": "local/draft",
            "outputs": _COMPARE_OUTPUTS[:2],
            "latency_ms": 42,
            "cost_usd": 0.0,
            "failures": [],
        },
        {
            "model": "openai/gpt-image-1-mini",
            "outputs": _COMPARE_OUTPUTS[2:],
            "latency_ms": 9100,
            "cost_usd": 0.0052,
            "failures": [
                {
                    "index": 3,
                    "seed": 43,
                    "error": {
                        "type": "/problems/moderation-blocked",
                        "title": "Blocked by moderation",
                        "status": 422,
                        "detail": "OpenAI's safety system refused the request.",
                    },
                }
            ],
        },
    ],
    "cost_usd": 0.0052,
    "estimated_cost_usd": {"min_usd": 0.0104, "max_usd": 0.0109},
    "timings": {"queued_ms": 12, "provider_ms": 9185, "total_ms": 9240},
    "finished_at": "2026-11-28T09:30:09.240Z",
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
        None,
        description="For a job comparing `models` (and every variants job): the outputs grouped "
        "by model, in the order the request named them, each with its median latency, cost and "
        "the outputs it failed to make. One model failing leaves the others' outputs; a job "
        "where every model failed is failed.",
    )
    error: Problem | None = Field(description="Why it failed, as a problem object; else null.")
    attempts: int = Field(description="How many times a worker started it.")
    cost_usd: float | None = Field(
        description="What its stored outputs cost: the sum of the known costs, added as each "
        "output is stored (so a job canceled or failed part way reports what it made); null when "
        "no output's price is known."
    )
    estimated_cost_usd: PriceRange | None = Field(
        None,
        description="What the job was expected to cost when it was submitted (as POST "
        "/v1/estimate answers it), beside `cost_usd`; null when a model's price is unknown.",
    )
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
                "total_estimated_cost_usd": {"min_usd": 0.38, "max_usd": 0.51},
                "unestimated_jobs": 0,
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
    total_estimated_cost_usd: PriceRange = Field(
        description="What every job matching the filter was expected to cost together when "
        "submitted (all pages), counting the jobs with an estimate; see `unestimated_jobs`."
    )
    unestimated_jobs: int = Field(
        description="Jobs matching the filter without an estimated cost (a model without a "
        "known price): when above 0, `total_estimated_cost_usd` is a lower bound.",
        examples=[0],
    )
