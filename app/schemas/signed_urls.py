"""Signed asset URLs: the request that mints one and the URL it returns."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# A minted URL works for an hour unless asked otherwise, and never for more than a week.
DEFAULT_EXPIRES_IN = 3600
MAX_EXPIRES_IN = 7 * 24 * 3600


class SignedUrlRequest(BaseModel):
    """How long a minted asset URL should work."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"expires_in": 3600}})

    expires_in: int = Field(
        DEFAULT_EXPIRES_IN,
        ge=1,
        le=MAX_EXPIRES_IN,
        description="Seconds the URL works for: at most 7 days; an hour if omitted.",
    )


class SignedUrl(BaseModel):
    """A URL of an asset's bytes that works without an API key until it expires."""

    object: Literal["signed_url"] = Field("signed_url", description="Always `signed_url`.")
    url: str = Field(
        description="GET it, with no Authorization header, for the bytes.",
        examples=[
            "https://darkroom.example.com/v1/assets/ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P/content"
            "?expires=1767225600&signature=3q2-7w..."
        ],
    )
    expires_at: datetime = Field(description="When the URL stops working.")
