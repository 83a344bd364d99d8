"""The export contract: what to make from an asset, and the catalogue of destination presets."""

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    WithJsonSchema,
    model_validator,
)

from app.imaging.presets import MAX_SIDE, PRESETS
from app.schemas.common import JsonInt, JsonNumber, Metadata, worded
from app.schemas.webhooks import WebhookOptions

ExportFit = Literal["cover", "contain", "pad", "smart"]
ExportFormat = Literal["png", "jpeg", "webp", "avif"]

MAX_TARGETS = 32
# One job's outputs together: every preset in the catalogue is about 22 million pixels.
MAX_TOTAL_PIXELS = 100_000_000
HEX_COLOUR_PATTERN = r"^#([0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$"
HexColour = Annotated[
    str,
    Field(pattern=HEX_COLOUR_PATTERN),
    worded("a hex colour, `#RGB`, `#RGBA`, `#RRGGBB` or `#RRGGBBAA`, e.g. #ffffff"),
]


def _known_preset(name: str) -> str:
    if name not in PRESETS:
        raise ValueError(
            f"unknown preset {name!r}; see GET /v1/export/presets for the names "
            f"({', '.join(PRESETS)})"
        )
    return name


PresetName = Annotated[
    str, AfterValidator(_known_preset), WithJsonSchema({"type": "string", "enum": list(PRESETS)})
]


class ExportSize(BaseModel):
    """An explicit output size in pixels."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"width": 800, "height": 600}}
    )

    width: JsonInt = Field(ge=1, le=MAX_SIDE, description="Width in pixels.", examples=[800])
    height: JsonInt = Field(ge=1, le=MAX_SIDE, description="Height in pixels.", examples=[600])


def _target_kind(value: Any) -> str:
    return "size" if isinstance(value, dict | ExportSize) else "preset"


# Tagged, so a bad entry is reported against what it is rather than against both shapes.
ExportTargetSpec = Annotated[
    Annotated[PresetName, Tag("preset")] | Annotated[ExportSize, Tag("size")],
    Discriminator(_target_kind),
]


class ExportRequest(WebhookOptions):
    """Export an asset to files for one or more destinations."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "asset_id": "ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
                "targets": ["instagram-square", "og-image", {"width": 800, "height": 600}],
                "fit": "smart",
                "format": "webp",
                "max_bytes": 300000,
                "bundle": True,
            },
            # quality is for lossy formats: not with png.
            "not": {
                "required": ["format", "quality"],
                "properties": {"format": {"const": "png"}, "quality": {"type": "integer"}},
            },
        },
    )

    asset_id: str = Field(
        description="The image to export: one of your assets.",
        examples=["ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"],
    )
    targets: list[ExportTargetSpec] = Field(
        min_length=1,
        max_length=MAX_TARGETS,
        description="One output per entry, in order: a preset name (GET /v1/export/presets) or "
        f"an exact size, each side 1 to {MAX_SIDE} pixels.",
        examples=[["instagram-square", {"width": 800, "height": 600}]],
    )
    fit: ExportFit = Field(
        "cover",
        description="How the image meets the target: `cover` fills it and crops the centre, "
        "`smart` fills it and crops around the most salient region, `contain` scales the whole "
        "image to fit inside and keeps its aspect ratio, so the file is NOT the target's size "
        "when the ratios differ (a 16:9 image in 728x90 is 160x90), `pad` fits inside and fills "
        "the rest with `background` to exactly the target's size.",
    )
    background: HexColour = Field(
        "#ffffff",
        description="Hex colour (#rgb, #rgba, #rrggbb, #rrggbbaa) of `pad` bars and of what "
        "shows through transparency in formats without alpha (jpeg).",
        examples=["#ffffff"],
    )
    format: ExportFormat = Field(
        "jpeg", description="Encoding of every output; jpeg is accepted by every destination."
    )
    quality: Annotated[int, Field(ge=1, le=100), JsonNumber] | None = Field(
        None,
        description="Encoder quality of jpeg, webp or avif (defaults 85, 82 and 60); with "
        "`max_bytes`, the highest quality tried. Not for png, which is lossless.",
    )
    max_bytes: Annotated[int, Field(ge=1), JsonNumber] | None = Field(
        None,
        description="Byte budget of each output: the highest quality whose file fits is used "
        "(for png, the strongest compression). The job fails, naming the target and the "
        "smallest size reached, when nothing fits; for png, at once, naming the least size any "
        "PNG of those dimensions can have, when the budget is below it. The budget is the "
        "image's before signing: `content_credentials` adds its manifest on top (a few KB, and "
        "the manifests a signed source carries).",
        examples=[300000],
    )
    strip_metadata: StrictBool = Field(
        True, description="Drop the source's EXIF (camera, GPS position) and XMP."
    )
    provenance: StrictBool = Field(
        False,
        description="Embed where the image came from (the source asset; the model, prompt and "
        "job id of the job that made it, when known) as XMP, or PNG text chunks.",
    )
    content_credentials: StrictBool = Field(
        False,
        description="Sign each file with Content Credentials: an embedded C2PA manifest saying "
        "it was resized (and converted) from the source asset, which is its parent ingredient "
        "with any manifest it carries. `strip_metadata` never removes it. Not the zip bundle. "
        "The manifest is added after `max_bytes` is met, so a signed file may exceed it.",
        examples=[True],
    )
    bundle: StrictBool = Field(
        False, description="Also produce one zip of every output, as the job's last output."
    )
    metadata: Metadata | None = Field(
        None, description="Your own JSON object (up to 16 KiB), returned as is on the job."
    )

    @model_validator(mode="after")
    def _consistent(self) -> "ExportRequest":
        if self.format == "png" and self.quality is not None:
            raise ValueError("quality does not apply to png, which is lossless; drop it")
        if sum(math.prod(target_size(target)) for target in self.targets) > MAX_TOTAL_PIXELS:
            raise ValueError(f"the targets together may hold at most {MAX_TOTAL_PIXELS:,} pixels")
        return self


def target_size(target: str | ExportSize) -> tuple[int, int]:
    """A target's width and height in pixels."""
    if isinstance(target, ExportSize):
        return target.width, target.height
    return PRESETS[target]


class ExportPreset(BaseModel):
    """A named destination size."""

    name: str = Field(description="Pass as a target of POST /v1/export.", examples=["og-image"])
    width: int = Field(description="Width in pixels.", examples=[1200])
    height: int = Field(description="Height in pixels.", examples=[630])


class ExportPresetList(BaseModel):
    """Every export preset."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "object": "list",
                "data": [
                    {"name": "instagram-square", "width": 1080, "height": 1080},
                    {"name": "og-image", "width": 1200, "height": 630},
                ],
            }
        }
    )

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "object": "list",
                "data": [
                    {"name": "instagram-square", "width": 1080, "height": 1080},
                    {"name": "og-image", "width": 1200, "height": 630},
                ],
            }
        }
    )

    object: Literal["list"] = Field("list", description="Always `list`.")
    data: list[ExportPreset] = Field(description="The presets.")
