"""API keys as the operator API shows them: never the secret, except once when a key is made."""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import JsonInt

# A rotated key's old self works at most this long beside its successor.
MAX_GRACE_SECONDS = 30 * 24 * 3600
DEFAULT_GRACE_SECONDS = 3600


class KeyStatus(StrEnum):
    """Whether a key works: `active`; `expiring` (rotated, working until `expires_at`);
    `expired` (its grace is over); `revoked`."""

    ACTIVE = "active"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    REVOKED = "revoked"


KEY_EXAMPLE = {
    "id": "key_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
    "object": "api_key",
    "prefix": "dk_4f9x2k8m3q7z",
    "tenant": "acme",
    "status": "active",
    "created_at": "2026-12-04T09:00:00Z",
    "last_used_at": "2026-12-04T09:12:00Z",
    "expires_at": None,
    "revoked_at": None,
}


class ApiKey(BaseModel):
    """An API key, named by its id and its visible prefix; the secret is never shown again."""

    model_config = ConfigDict(json_schema_extra={"example": KEY_EXAMPLE})

    id: str = Field(description="Key id.", examples=["key_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"])
    object: Literal["api_key"] = Field("api_key", description="Always `api_key`.")
    prefix: str = Field(
        description="The key's first characters, not secret: what logs and lists name it by. "
        "Keys made before prefixes were separate show their first 10 characters.",
        examples=["dk_4f9x2k8m3q7z"],
    )
    tenant: str = Field(description="The tenant the key acts for.", examples=["acme"])
    status: KeyStatus = Field(description="Whether the key works now.", examples=["active"])
    created_at: datetime = Field(description="When it was made.")
    last_used_at: datetime | None = Field(
        description="When it last authenticated a request, to within about a minute; null if never."
    )
    expires_at: datetime | None = Field(
        description="When a rotated key stops working; null for a key not rotated."
    )
    revoked_at: datetime | None = Field(description="When it was revoked; null if it was not.")


class ApiKeyCreated(ApiKey):
    """A new API key, with the key itself: shown only in this answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": KEY_EXAMPLE | {"key": "dk_4f9x2k8m3q7z_Zq8yV0m3tR5w..."},
        }
    )

    key: str = Field(
        description="The key to send as `Authorization: Bearer <key>`; only its hash is kept, "
        "so it cannot be shown again.",
        examples=["dk_4f9x2k8m3q7z_Zq8yV0m3tR5w..."],
    )


class ApiKeyCreate(BaseModel):
    """A key to mint."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"tenant": "acme"}})

    tenant: str = Field(
        min_length=1,
        max_length=200,
        description="The tenant's name; a tenant not seen before is created.",
        examples=["acme"],
    )


class ApiKeyRotate(BaseModel):
    """How long the old key keeps working beside the new one."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"grace_seconds": 3600}}
    )

    grace_seconds: JsonInt = Field(
        DEFAULT_GRACE_SECONDS,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="Seconds the old key stays valid; 0 revokes it now.",
        examples=[3600],
    )


class ApiKeyRotation(BaseModel):
    """A rotation's result: the new key (shown once) and the old one, now expiring."""

    key: ApiKeyCreated = Field(description="The new key, with its secret.")
    previous_key: ApiKey = Field(
        description="The rotated key: `expiring` until its `expires_at`, or `revoked`."
    )


class ApiKeyPage(BaseModel):
    """A page of API keys, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "object": "list",
                "data": [KEY_EXAMPLE],
                "has_more": False,
                "next_cursor": None,
            }
        }
    )

    object: Literal["list"] = Field("list", description="Always `list`.")
    data: list[ApiKey] = Field(description="The keys on this page.")
    has_more: bool = Field(description="Whether another page follows.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last."
    )
