"""The estimate: the body of any job route with its `kind`, and what that job would be, cost
and take, or why it would be refused, without creating it."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.catalog import PriceRange
from app.schemas.common import Problem
from app.schemas.edit import EditRequest, VariantsRequest
from app.schemas.export import ExportRequest
from app.schemas.generate import GenerateRequest

JobKindName = Literal["generate", "edit", "variants", "export"]


def _schema_extra(kind: str, request: type[BaseModel]) -> dict[str, Any]:
    """The job route's own schema additions (the rules between its fields), with its example
    given the kind."""
    extra = request.model_config.get("json_schema_extra")
    extra = dict(extra) if isinstance(extra, dict) else {}
    extra["example"] = {"kind": kind} | extra.get("example", {})  # type: ignore[operator]
    return extra


class GenerateEstimate(GenerateRequest):
    """The body of POST /v1/generate, with `kind: generate`."""

    model_config = ConfigDict(json_schema_extra=_schema_extra("generate", GenerateRequest))

    kind: Literal["generate"] = Field(description="The job route the body is for.")


class EditEstimate(EditRequest):
    """The body of POST /v1/edit, with `kind: edit`."""

    model_config = ConfigDict(json_schema_extra=_schema_extra("edit", EditRequest))

    kind: Literal["edit"] = Field(description="The job route the body is for.")


class VariantsEstimate(VariantsRequest):
    """The body of POST /v1/variants, with `kind: variants`."""

    model_config = ConfigDict(json_schema_extra=_schema_extra("variants", VariantsRequest))

    kind: Literal["variants"] = Field(description="The job route the body is for.")


class ExportEstimate(ExportRequest):
    """The body of POST /v1/export, with `kind: export`."""

    model_config = ConfigDict(json_schema_extra=_schema_extra("export", ExportRequest))

    kind: Literal["export"] = Field(description="The job route the body is for.")


EstimateRequest = Annotated[
    GenerateEstimate | EditEstimate | VariantsEstimate | ExportEstimate,
    Field(discriminator="kind"),
]


class ModelEstimate(BaseModel):
    """What one model of the job would make, cost and take."""

    model: str = Field(description="The model id.", examples=["openai/gpt-image-1-mini"])
    images: int = Field(description="How many images it would make.", examples=[2])
    generation_size: str = Field(
        description="The size the model would be asked for, `WxH`, before the output is "
        "scaled and cropped to the exact size.",
        examples=["1024x1024"],
    )
    native_quality: str | None = Field(
        None,
        description="What the quality tier becomes on this model; null without a quality control.",
        examples=["low"],
    )
    cost_usd: PriceRange | None = Field(
        None,
        description="Expected cost of its images together: a range where the vendor bills per "
        "token; null when its price is unknown.",
    )
    latency_ms: int | None = Field(
        None,
        description="Expected time for one image: the median over this installation's recent "
        "outputs of the model, else the catalog's typical figure; null when neither is known.",
        examples=[8400],
    )
    latency_source: Literal["observed", "catalog"] | None = Field(
        None,
        description="`observed` (this installation's median) or `catalog` (the model's typical "
        "figure, not measured here).",
    )


class Estimate(BaseModel):
    """What a job would be, without creating it."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "object": "estimate",
                "kind": "generate",
                "accepted": True,
                "refusal": None,
                "request": {
                    "model": "openai/gpt-image-1-mini",
                    "n": 2,
                    "size": "1024x1024",
                    "quality": "draft",
                    "prompt": "A ceramic mug on a walnut desk, morning light, ...",
                },
                "models": [
                    {
                        "model": "openai/gpt-image-1-mini",
                        "images": 2,
                        "generation_size": "1024x1024",
                        "native_quality": "low",
                        "cost_usd": {"min_usd": 0.004434, "max_usd": 0.007184},
                        "latency_ms": 9100,
                        "latency_source": "observed",
                    }
                ],
                "cost_usd": {"min_usd": 0.004434, "max_usd": 0.007184},
                "unpriced_models": [],
            }
        }
    )

    object: Literal["estimate"] = Field("estimate", description="Always `estimate`.")
    kind: JobKindName = Field(description="The job route the body is for.")
    accepted: bool = Field(
        description="Whether the job route would accept the body now (it runs the same "
        "checks, the tenant's monthly budget included)."
    )
    refusal: Problem | None = Field(
        None,
        description="Why the route would refuse it, as the problem it would answer; null when "
        "accepted.",
    )
    request: dict[str, Any] | None = Field(
        None,
        description="The normalized request the job would record: models, exact sizes, the "
        "final prompts, quality. Its `seed` is drawn here when the body gives none, and a real "
        "job draws its own. Null when refused.",
    )
    models: list[ModelEstimate] = Field(
        default_factory=list,
        description="Per model the job would run (not its fallbacks): images, generation size, "
        "cost and expected latency. Empty for an export, which runs no model.",
    )
    cost_usd: PriceRange | None = Field(
        None,
        description="Expected cost of the whole job; null when a model's price is unknown "
        "(see `unpriced_models`) or the body is refused.",
    )
    unpriced_models: list[str] = Field(
        default_factory=list, description="Models of the job whose price is unknown."
    )
