"""Stored assets: their facts and lineage."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import AssetFormat

AssetSource = Literal["upload", "generated", "reference", "export"]


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
    "content_credentials": False,
    "parents": [],
    "created_at": "2026-11-28T09:30:00.070Z",
    "deleted_at": None,
}


class Asset(BaseModel):
    """Stored image bytes with their dimensions and lineage."""

    model_config = ConfigDict(json_schema_extra={"example": ASSET_EXAMPLE})

    id: str = Field(description="Opaque asset id.", examples=["ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"])
    object: Literal["asset"] = Field("asset", description="Always `asset`.")
    source: AssetSource = Field(description="How it came to be.")
    format: AssetFormat = Field(description="Encoding of the bytes.")
    media_type: str = Field(description="MIME type of the bytes.", examples=["image/png"])
    width: int | None = Field(
        description="Width in pixels; null for an export's zip bundle, which is not an image.",
        examples=[1360],
    )
    height: int | None = Field(
        description="Height in pixels; null for an export's zip bundle, which is not an image.",
        examples=[765],
    )
    bytes: int = Field(description="Size of the content in bytes.")
    content_hash: str = Field(description="SHA-256 of the content, hex; also its ETag.")
    url: str = Field(description="Path of the image bytes.")
    job_id: str | None = Field(description="The job that produced it, if any.")
    seed: int | None = Field(description="Seed it was generated with, if any.")
    content_credentials: bool = Field(
        False,
        description="Whether the bytes carry Content Credentials (a C2PA manifest): signed by "
        "the job that made it (`content_credentials: true`), or already in an upload.",
    )
    parents: list[AssetParentRef] = Field(description="The assets it was made from.")
    created_at: datetime = Field(description="When it was stored.")
    deleted_at: datetime | None = Field(
        None,
        description="When it was deleted; only a lineage shows a deleted asset (an ancestor of a "
        "live one), whose bytes are gone: its content and signed URLs answer 404.",
    )


class AssetList(BaseModel):
    """Assets, oldest first."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"object": "list", "data": [ASSET_EXAMPLE]}}
    )

    object: Literal["list"] = Field("list", description="Always `list`.")
    data: list[Asset] = Field(description="The assets.")


class AssetPage(BaseModel):
    """A page of assets, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "object": "list",
                "data": [ASSET_EXAMPLE],
                "has_more": True,
                "next_cursor": "ast_01JD7Z8QAB5X2W1V0T9S8R7Q6P",
            }
        }
    )

    object: Literal["list"] = Field("list", description="Always `list`.")
    data: list[Asset] = Field(description="The assets on this page.")
    has_more: bool = Field(description="Whether another page follows.")
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")
