"""Webhooks: the per-request webhook fields, registered endpoints and their deliveries."""

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from app.models import DeliveryStatus
from app.schemas.common import worded

WebhookEvent = Literal["job.queued", "job.started", "job.succeeded", "job.failed", "job.canceled"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = (
    "job.queued",
    "job.started",
    "job.succeeded",
    "job.failed",
    "job.canceled",
)
MAX_URL_LENGTH = 2048
# An absolute http(s) URL with a host name or IPv4 address (no user name or password, no IPv6
# literal, no underscore in the host), as the document states it; the validator below refuses
# the same shapes, and also a host that only looks like an IPv4 address (1.2.3.999). Where it
# points is checked at registration.
PORT_PATTERN = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
# A host name (an international one in its xn-- form) or an IPv4 address.
HOST_PATTERN = "[A-Za-z0-9.-]*[A-Za-z0-9]"
WEBHOOK_URL_PATTERN = f"^[hH][tT][tT][pP][sS]?://{HOST_PATTERN}(:{PORT_PATTERN})?([/?#][!-~]*)?$"

WebhookUrl = Annotated[
    str, Field(pattern=WEBHOOK_URL_PATTERN), worded("an absolute http or https URL")
]


_HOST = re.compile(HOST_PATTERN)


def check_webhook_url(value: str) -> str:
    """Refuse a webhook URL that is not absolute http(s) with a host name or IPv4 address, or
    that carries a user name or password (the shapes WEBHOOK_URL_PATTERN takes); where it points
    is checked against the address rules separately, since that needs DNS and the server's allow
    list."""
    if not value.isascii():
        raise ValueError("must be written in ASCII, an international host name in its xn-- form")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an absolute http or https URL")
    # raw_host is the host as written; httpx's `host` turns an xn-- name back into Unicode.
    if url.userinfo or not _HOST.fullmatch(url.raw_host.decode("ascii")):
        raise ValueError(
            "must name its host by a name or IPv4 address (letters, digits, dots and hyphens), "
            "with no user name or password"
        )
    return value


class WebhookOptions(BaseModel):
    """Where to send this job's events: mixed into every job-creating request."""

    webhook_url: WebhookUrl | None = Field(
        None,
        max_length=MAX_URL_LENGTH,
        description="POST this job's events here, signed with the tenant's default secret "
        "(GET /v1/webhooks/signing-secret) per the Standard Webhooks scheme.",
        examples=["https://example.com/hooks/darkroom"],
    )
    webhook_events: list[WebhookEvent] | None = Field(
        None,
        min_length=1,
        description="Which events go to `webhook_url`; every job event if omitted.",
        examples=[["job.succeeded", "job.failed"]],
    )

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url_shape(cls, value: str | None) -> str | None:
        return None if value is None else check_webhook_url(value)

    def webhook_fields(self) -> dict[str, Any]:
        """The webhook fields that were set, for the job's normalized request."""
        fields: dict[str, Any] = {}
        if self.webhook_url is not None:
            fields["webhook_url"] = self.webhook_url
        if self.webhook_events is not None:
            fields["webhook_events"] = list(dict.fromkeys(self.webhook_events))
        return fields


class WebhookEndpointCreate(BaseModel):
    """A URL to receive the tenant's job events."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "url": "https://example.com/hooks/darkroom",
                "events": ["job.succeeded", "job.failed"],
                "description": "Publishing pipeline",
            }
        },
    )

    url: WebhookUrl = Field(
        max_length=MAX_URL_LENGTH,
        description="Where events are POSTed; must reach a public address.",
    )
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list(WEBHOOK_EVENTS),
        min_length=1,
        description="Which events it receives; every job event if omitted.",
    )
    description: str | None = Field(None, max_length=500, description="A note for people.")

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str) -> str:
        return check_webhook_url(value)


class WebhookEndpointUpdate(BaseModel):
    """Changes to an endpoint; fields left out stay as they are."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"events": ["job.succeeded"]}}
    )

    url: WebhookUrl | None = Field(None, max_length=MAX_URL_LENGTH, description="A new URL.")
    events: list[WebhookEvent] | None = Field(None, min_length=1, description="New events.")
    description: str | None = Field(None, max_length=500, description="A new note.")
    disabled: StrictBool | None = Field(
        None, description="`true` stops deliveries; `false` re-enables an endpoint."
    )

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        return None if value is None else check_webhook_url(value)


ENDPOINT_EXAMPLE = {
    "id": "whe_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
    "object": "webhook_endpoint",
    "url": "https://hooks.example.com/darkroom",
    "events": ["job.succeeded", "job.failed"],
    "description": "Publishing pipeline",
    "disabled": False,
    "disabled_at": None,
    "created_at": "2026-11-28T09:00:00Z",
}


class WebhookEndpoint(BaseModel):
    """A registered webhook endpoint. Its secret is shown only when it is created."""

    model_config = ConfigDict(json_schema_extra={"example": ENDPOINT_EXAMPLE})

    id: str = Field(description="Endpoint id.", examples=["whe_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"])
    object: Literal["webhook_endpoint"] = Field(
        "webhook_endpoint", description="Always `webhook_endpoint`."
    )
    url: str = Field(description="Where events are POSTed.")
    events: list[WebhookEvent] = Field(description="Which events it receives.")
    description: str | None = Field(description="A note for people.")
    disabled: bool = Field(
        description="Whether deliveries are stopped (by you, or because it answered 410 Gone)."
    )
    disabled_at: datetime | None = Field(description="When it was disabled.")
    created_at: datetime = Field(description="When it was registered.")


class WebhookEndpointCreated(WebhookEndpoint):
    """A new endpoint, with the secret its deliveries are signed with."""

    secret: str = Field(
        description="Verify deliveries with it (Standard Webhooks); shown only now.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookEndpointPage(BaseModel):
    """A page of endpoints, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "object": "list",
                "data": [ENDPOINT_EXAMPLE],
                "has_more": False,
                "next_cursor": None,
            }
        }
    )

    object: Literal["list"] = Field("list", description="Always `list`.")
    data: list[WebhookEndpoint] = Field(description="The endpoints on this page.")
    has_more: bool = Field(description="Whether another page follows.")
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")


class WebhookSigningSecret(BaseModel):
    """The tenant's default secret, which signs deliveries to per-request `webhook_url`s."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "object": "webhook_signing_secret",
                "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            }
        }
    )

    object: Literal["webhook_signing_secret"] = Field(
        "webhook_signing_secret", description="Always `webhook_signing_secret`."
    )
    secret: str = Field(
        description="Verify per-request deliveries with it (Standard Webhooks).",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookAttempt(BaseModel):
    """One try at sending a delivery."""

    attempted_at: datetime = Field(description="When it was sent.")
    url: str | None = Field(
        description="Where it was sent: a registered endpoint's URL at that moment, so "
        "attempts made after the endpoint moved show the new one. Null only for an attempt to "
        "a registered endpoint made before Darkroom recorded each attempt's URL.",
        examples=["https://hooks.example.com/darkroom"],
    )
    status_code: int | None = Field(description="What the receiver answered; null if nothing.")
    latency_ms: int = Field(description="How long the try took.")
    error: str | None = Field(description="Why it failed without an answer, or null.")


DELIVERY_EXAMPLE = {
    "id": "msg_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
    "object": "webhook_delivery",
    "endpoint_id": "whe_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
    "endpoint_deleted": False,
    "job_id": "job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
    "event": "job.succeeded",
    "url": "https://hooks.example.com/darkroom",
    "status": "delivered",
    "next_attempt_at": None,
    "payload": {
        "type": "job.succeeded",
        "timestamp": "2026-11-28T09:30:01Z",
        "data": {"id": "job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P", "object": "job", "status": "succeeded"},
    },
    "attempts": [
        {
            "attempted_at": "2026-11-28T09:30:01Z",
            "url": "https://hooks.example.com/darkroom",
            "status_code": 200,
            "latency_ms": 84,
            "error": None,
        }
    ],
    "created_at": "2026-11-28T09:30:01Z",
}


class WebhookDelivery(BaseModel):
    """One event for one receiver, with every attempt so far."""

    model_config = ConfigDict(json_schema_extra={"example": DELIVERY_EXAMPLE})

    id: str = Field(
        description="The `webhook-id` header of every attempt.",
        examples=["msg_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"],
    )
    object: Literal["webhook_delivery"] = Field(
        "webhook_delivery", description="Always `webhook_delivery`."
    )
    endpoint_id: str | None = Field(description="The endpoint; null for a per-request URL.")
    endpoint_deleted: bool = Field(
        description="Whether its endpoint has been deleted; the delivery stays as a record. "
        "Always false for a per-request URL."
    )
    job_id: str = Field(description="The job the event is about.")
    event: WebhookEvent = Field(description="The event type.")
    url: str = Field(
        description="While pending, where the next attempt goes: a registered endpoint's "
        "current URL, so it follows the endpoint when its URL changes. Otherwise where the last "
        "attempt went (where it was to go, if it ended before any attempt). Each attempt "
        "records its own `url`."
    )
    status: DeliveryStatus = Field(
        description="pending (waiting for its next attempt), delivered (a 2xx answer), failed "
        "(out of retries), disabled (its endpoint was disabled) or canceled (its endpoint was "
        "deleted while it was pending)."
    )
    next_attempt_at: datetime | None = Field(description="When it is tried next, if pending.")
    payload: dict[str, Any] = Field(description="The body every attempt sends.")
    attempts: list[WebhookAttempt] = Field(description="Every attempt, oldest first.")
    created_at: datetime = Field(description="When the event happened.")


class WebhookDeliveryPage(BaseModel):
    """A page of deliveries, newest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "object": "list",
                "data": [DELIVERY_EXAMPLE],
                "has_more": False,
                "next_cursor": None,
            }
        }
    )

    object: Literal["list"] = Field("list", description="Always `list`.")
    data: list[WebhookDelivery] = Field(description="The deliveries on this page.")
    has_more: bool = Field(description="Whether another page follows.")
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")
