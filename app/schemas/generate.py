"""The generate request: a brief and how to render it."""

from pydantic import ConfigDict, Field, model_validator

from app.schemas.common import (
    MAX_FALLBACK_MODELS,
    AspectRatio,
    Brief,
    CompareOptions,
    ModelText,
    OutputOptions,
    Size,
    check_model_or_models,
    not_together,
)
from app.schemas.prompts import PromptOptions
from app.schemas.webhooks import WebhookOptions


class GenerateRequest(OutputOptions, CompareOptions, PromptOptions, WebhookOptions):
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
            },
            "allOf": [
                not_together("size", "aspect_ratio"),
                not_together("model", "models"),
                # Fallbacks stand in for one model: none beside several.
                {
                    "not": {
                        "required": ["models", "fallback_models"],
                        "properties": {
                            "models": {"not": {"type": "null"}},
                            "fallback_models": {"minItems": 1},
                        },
                    }
                },
            ],
        },
    )

    prompt: Brief = Field(
        min_length=1, max_length=32000, description="The brief: what the image should show."
    )
    model: str | None = Field(
        None,
        description="Model id as `provider/model` (see GET /v1/models); the default if omitted. "
        "Exclusive with `models`.",
        examples=["local/draft"],
    )
    aspect_ratio: AspectRatio | None = Field(
        None,
        description="Output aspect ratio `W:H`, between 1:4 and 4:1; kept exactly, to the pixel.",
        examples=["16:9"],
    )
    size: Size | None = Field(
        None,
        description="Exact output size `WxH`, 64 to 4096 a side; exclusive with aspect_ratio.",
        examples=["1200x630"],
    )
    negative_prompt: ModelText | None = Field(
        None,
        max_length=4000,
        description="What the image should not show, where the model takes it.",
    )
    fallback_models: list[str] = Field(
        default_factory=list,
        max_length=MAX_FALLBACK_MODELS,
        description="Models to try in order when the model fails for a passing reason "
        "(overloaded, timed out, unreachable); not after a refusal such as moderation. Each "
        "output records the model that made it and those that failed before it. Not with "
        "`models`: a compared model's failure is recorded in its group instead.",
        examples=[["openai/gpt-image-1.5", "local/draft"]],
    )

    @model_validator(mode="after")
    def _size_or_aspect(self) -> "GenerateRequest":
        if self.size and self.aspect_ratio:
            raise ValueError("give either size or aspect_ratio, not both")
        return self

    @model_validator(mode="after")
    def _model_or_models(self) -> "GenerateRequest":
        check_model_or_models(self.model, self.models)
        if self.models is not None and self.fallback_models:
            raise ValueError("fallback_models apply to one model; not with models")
        return self
