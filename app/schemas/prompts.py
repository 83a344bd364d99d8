"""The contract of the prompt optimizer: the options every job request takes, and
POST /v1/prompts/optimize."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.prompts.presets import STYLE_PRESETS
from app.schemas.common import ASPECT_RATIO_PATTERN, ASPECT_RATIO_WORDS, Brief, worded

Optimize = Literal["auto", "off", "llm"]
# A destination's aspect ratio: any shape, since only the composition adapts to it.
DestinationAspectRatio = Annotated[
    str, Field(pattern=ASPECT_RATIO_PATTERN), worded(ASPECT_RATIO_WORDS)
]

# The style preset names, which the optimizer checks; stated in the document too.
STYLE_NAMES = {"enum": [*STYLE_PRESETS, None]}

# What an edit can hold fixed from its source.
KeepItem = Literal[
    "identity",
    "face",
    "product_angle",
    "framing",
    "composition",
    "layout",
    "lighting",
    "background",
    "colors",
    "text",
]


class PromptOptions(BaseModel):
    """How the brief becomes the prompt sent to the model."""

    optimize: Optimize = Field(
        "auto",
        description="`auto` expands the brief by rules, `llm` asks the configured LLM (falling "
        "back to the rules), `off` sends the brief as written.",
    )
    style: str | None = Field(
        None,
        max_length=40,
        json_schema_extra=STYLE_NAMES,
        description="A style preset for the optimizer (see POST /v1/prompts/optimize).",
        examples=["studio-product"],
    )


class OptimizePromptRequest(BaseModel):
    """A brief to expand, and what it is for."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "prompt": "ceramic mug, product shot",
                "model": "openai/gpt-image-2",
                "aspect_ratio": "16:9",
                "style": "studio-product",
            }
        },
    )

    prompt: Brief = Field(min_length=1, max_length=32000, description="The brief.")

    model: str | None = Field(
        None, description="The target model, whose prompt style and length limit apply."
    )
    aspect_ratio: DestinationAspectRatio | None = Field(
        None,
        description="The destination's aspect ratio `W:H`; composition adapts to it.",
    )
    style: str | None = Field(
        None, max_length=40, json_schema_extra=STYLE_NAMES, description="A style preset name."
    )
    keep: list[KeepItem] = Field(
        default_factory=list,
        max_length=10,
        description="For edits: what must stay as in the source (see POST /v1/edit).",
    )
    mode: Literal["rules", "llm"] = Field(
        "rules", description="`rules`, or `llm` over the configured LLM (falling back to rules)."
    )


class OptimizedPromptView(BaseModel):
    """The optimizer's result: slots given and filled, use case, and the prompt to send."""

    object: Literal["optimized_prompt"] = Field("optimized_prompt", description="Always this.")
    model: str = Field(description="The model it was written for.", examples=["local/draft"])
    brief: str = Field(description="The brief as given.")
    use_case: str = Field(description="What the image is for, as detected.", examples=["product"])
    slots: dict[str, Any] = Field(description="The final value of every slot.")
    given: list[str] = Field(
        description="Slots the brief stated, and the style when a style preset was asked for."
    )
    filled: list[str] = Field(description="Slots the optimizer filled.")
    prompt: str = Field(description="The prompt to send to the model.")
    negative_prompt: str | None = Field(description="What the image should not show.")
    rendering: Literal["sentences", "tags"] = Field(description="Sentences or weighted tags.")
    mode: Literal["rules", "llm"] = Field(description="What produced the slots.")
    fallback_reason: str | None = Field(description="Why llm mode fell back to the rules.")
