"""The contract of edits and variants: image inputs by asset, URL or base64, masks,
references, and the variants source."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.common import (
    AspectRatio,
    CompareOptions,
    JsonFloat,
    JsonInt,
    JsonNumber,
    ModelText,
    OutputOptions,
    Size,
    check_model_or_models,
    exactly_one_of,
    not_together,
)
from app.schemas.prompts import KeepItem, PromptOptions
from app.schemas.webhooks import WebhookOptions

ReferenceRole = Literal["style", "subject", "composition", "color"]
# A variation as a number, 0 (the source itself) to 1 (the most); its bounds stay in the
# document beside the JSON-number rule.
VariationAmount = Annotated[float, Field(ge=0, le=1), JsonNumber]

MAX_REFERENCES = 16
# The variation amount each named strength stands for (0 is the source itself, 1 the most).
VARIATION_AMOUNTS = {"subtle": 0.25, "strong": 0.7}


class ImageInput(BaseModel):
    """One image: exactly one of an asset of yours, a URL Darkroom fetches, or base64 bytes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"asset_id": "ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"},
            **exactly_one_of("asset_id", "url", "b64"),
        },
    )

    asset_id: str | None = Field(None, max_length=64, description="An asset of yours.")
    url: str | None = Field(
        None,
        max_length=2048,
        description="An http(s) URL of a PNG, JPEG or WebP image on a public address.",
        examples=["https://images.example.com/mug.jpg"],
    )
    b64: str | None = Field(
        None,
        description="The image bytes as base64, plain or as a `data:image/...;base64,` URL.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> "ImageInput":
        given = [name for name in ("asset_id", "url", "b64") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of asset_id, url or b64")
        return self


class ReferenceInput(BaseModel):
    """A reference image that steers the edit."""

    model_config = ConfigDict(extra="forbid")

    image: ImageInput = Field(description="The reference image.")
    role: ReferenceRole = Field(
        "style", description="What to take from it: style, subject, composition or color."
    )
    weight: JsonFloat = Field(1.0, ge=0, le=1, description="How strongly it steers, 0 to 1.")


class EditRequest(OutputOptions, CompareOptions, PromptOptions, WebhookOptions):
    """Edit a photo: change what the prompt asks, where the mask allows, keeping what `keep`
    names."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "image": {"asset_id": "ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"},
                "mask": {"asset_id": "ast_01JD7Z9A0B1C2D3E4F5G6H7J8K"},
                "prompt": "replace the background with a sunlit marble kitchen counter",
                "keep": ["product_angle", "lighting"],
                "strength": 0.7,
                "references": [
                    {"image": {"url": "https://images.example.com/palette.jpg"}, "role": "color"}
                ],
                "seed": 7,
            },
            "allOf": [not_together("size", "aspect_ratio"), not_together("model", "models")],
        },
    )

    image: ImageInput = Field(description="The source image to edit.")
    prompt: ModelText = Field(
        "",
        max_length=32000,
        description="What to change; empty keeps the source's look and only inpaints the mask.",
    )
    mask: ImageInput | None = Field(
        None,
        description="A PNG of the source's size whose fully transparent pixels (alpha 0) mark "
        "the area to change; everything else stays as it is.",
    )
    strength: JsonFloat = Field(
        0.6, ge=0, le=1, description="How far to move from the source, 0 (not at all) to 1."
    )
    keep: list[KeepItem] = Field(
        default_factory=list, max_length=10, description="What must stay as in the source."
    )
    references: list[ReferenceInput] = Field(
        default_factory=list,
        max_length=MAX_REFERENCES,
        description="Reference images; the model's capabilities cap how many.",
    )
    model: str | None = Field(
        None,
        description="Model id as `provider/model`; the default if omitted. Exclusive with "
        "`models`.",
    )
    negative_prompt: ModelText | None = Field(
        None, max_length=4000, description="What the image should not show, where taken."
    )
    size: Size | None = Field(
        None,
        description="Exact output size `WxH`; the source's own size if neither this nor "
        "aspect_ratio is given.",
    )
    aspect_ratio: AspectRatio | None = Field(
        None,
        description="Output aspect ratio `W:H`, at about the source's area.",
    )

    @model_validator(mode="after")
    def _size_or_aspect(self) -> "EditRequest":
        if self.size and self.aspect_ratio:
            raise ValueError("give either size or aspect_ratio, not both")
        return self

    @model_validator(mode="after")
    def _model_or_models(self) -> "EditRequest":
        check_model_or_models(self.model, self.models)
        return self


class VariantSource(BaseModel):
    """The image to vary: an asset of yours, or output `index` of one of your jobs."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=exactly_one_of("asset_id", "job_id")
    )

    asset_id: str | None = Field(None, max_length=64, description="An asset of yours.")
    job_id: str | None = Field(None, max_length=64, description="A succeeded job of yours.")
    index: JsonInt = Field(0, ge=0, le=99, description="Which output of `job_id`.")

    @model_validator(mode="after")
    def _one_source(self) -> "VariantSource":
        if (self.asset_id is None) == (self.job_id is None):
            raise ValueError("give either asset_id or job_id (with index)")
        return self


class VariantsRequest(OutputOptions, CompareOptions, PromptOptions, WebhookOptions):
    """Variants of an image, optionally on several models side by side."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "source": {"job_id": "job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P", "index": 0},
                "n": 3,
                "variation": "subtle",
                "models": ["local/draft", "openai/gpt-image-2"],
            }
        },
    )

    source: VariantSource = Field(description="The image to vary.")
    variation: Literal["subtle", "strong"] | VariationAmount = Field(
        "subtle", description="How far variants stray: subtle, strong, or a number 0..1."
    )
    prompt: str | None = Field(
        None,
        max_length=32000,
        description="A change to the brief; by default the source job's own prompt.",
    )

    @property
    def variation_amount(self) -> float:
        """The variation as a number from 0 to 1."""
        if isinstance(self.variation, str):
            return VARIATION_AMOUNTS[self.variation]
        return float(self.variation)
