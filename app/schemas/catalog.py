"""The model catalog: every model with its capabilities, price and availability."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import JsonInt, OutputFormat


class PriceRange(BaseModel):
    """An expected price in USD: a single figure when min equals max, a range where the vendor
    bills per token or per second."""

    min_usd: float = Field(description="The lowest expected price.", examples=[0.0082])
    max_usd: float = Field(description="The highest expected price.", examples=[0.0122])


class LoadedModel(BaseModel):
    """Where a self-hosted model is loaded: on a GPU worker (as the last to load it reported),
    or in this process."""

    device: str = Field(description="`cuda`, `mps` or `cpu`.", examples=["cuda"])
    precision: str = Field(description="The weights' precision.", examples=["float16"])
    memory_bytes: JsonInt = Field(
        description="Memory its weights take on that device.", examples=[6_938_040_682]
    )


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
    quality_levels: dict[str, str] | None = Field(
        None,
        description="What each quality tier (`draft`, `standard`, `high`, `auto`) becomes on "
        "this model: its native setting (OpenAI's `quality`, a render resolution...); null "
        "when the model has no quality control and makes every tier alike.",
        examples=[{"draft": "low", "standard": "medium", "high": "high", "auto": "auto"}],
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
    prices_by_quality: dict[str, PriceRange] | None = Field(
        None,
        description="Expected price of one image at each quality tier; null when unknown.",
        examples=[{"draft": {"min_usd": 0.002176, "max_usd": 0.003264}}],
    )
    typical_latency_ms: int | None = Field(description="Typical time for one image, if known.")
    observed_latency_ms: int | None = Field(
        None,
        description="Median time the model took per image over this installation's last 50 "
        "outputs of it; null before its first.",
        examples=[8400],
    )
    loaded: LoadedModel | None = Field(
        None,
        description="Self-hosted models only: where its weights are loaded and the memory they "
        "take; null until a GPU worker has loaded it.",
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
                        "description": "Offline stand-in for testing a workflow; not an AI model.",
                        "available": True,
                        "capabilities": {
                            "modes": ["generate", "edit", "variants"],
                            "sizes": None,
                            "min_side": 64,
                            "max_side": 4096,
                            "output_formats": ["png", "jpeg", "webp"],
                            "transparent_background": True,
                            "seed": True,
                            "negative_prompt": False,
                            "mask": True,
                            "max_references": 4,
                            "max_n": 10,
                            "aspect_ratios": None,
                            "quality_levels": {
                                "draft": "half resolution",
                                "standard": "full resolution",
                                "high": "full resolution",
                                "auto": "full resolution",
                            },
                        },
                        "price_per_image_usd": 0.0,
                        "prices_by_quality": {
                            "draft": {"min_usd": 0.0, "max_usd": 0.0},
                            "standard": {"min_usd": 0.0, "max_usd": 0.0},
                            "high": {"min_usd": 0.0, "max_usd": 0.0},
                            "auto": {"min_usd": 0.0, "max_usd": 0.0},
                        },
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
