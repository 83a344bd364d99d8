"""Webhooks: registered endpoints, the tenant's default signing secret, and the deliveries made
to them and to requests' own `webhook_url`s (listed by endpoint or by job, and sent again on
request). A deleted endpoint is only marked so: its deliveries stay as the record of what was
sent."""

import json
from collections import defaultdict

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import database_now, insert_for
from app.errors import Conflict, InvalidInput, NotFound
from app.fetcher import UrlPolicy, check_url
from app.ids import is_id, new_id
from app.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSecret,
)
from app.schemas.webhooks import WebhookAttempt as WebhookAttemptSchema
from app.schemas.webhooks import WebhookDelivery as WebhookDeliverySchema
from app.schemas.webhooks import (
    WebhookDeliveryPage,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPage,
    WebhookEndpointUpdate,
)
from app.schemas.webhooks import WebhookEndpoint as WebhookEndpointSchema
from app.services.jobs import get_job
from app.webhooks.signing import new_secret


async def create_endpoint(
    session: AsyncSession, policy: UrlPolicy, tenant_id: str, body: WebhookEndpointCreate
) -> WebhookEndpoint:
    """Add an endpoint with a fresh secret; the caller commits."""
    await check_url(body.url, policy)
    endpoint = WebhookEndpoint(
        id=new_id("whe"),
        tenant_id=tenant_id,
        url=body.url,
        events=list(dict.fromkeys(body.events)),
        description=body.description,
        secret=new_secret(),
        created_at=await database_now(session),
    )
    session.add(endpoint)
    await session.flush()
    return endpoint


async def get_endpoint(session: AsyncSession, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    """The tenant's endpoint; NotFound for a missing or deleted one, a malformed id, or another
    tenant's."""
    endpoint = None
    if is_id(endpoint_id, "whe"):
        endpoint = await session.scalar(
            select(WebhookEndpoint).where(
                WebhookEndpoint.id == endpoint_id,
                WebhookEndpoint.tenant_id == tenant_id,
                WebhookEndpoint.deleted_at.is_(None),
            )
        )
    if endpoint is None:
        raise NotFound(f"No webhook endpoint {endpoint_id!r}.")
    return endpoint


async def list_endpoints(
    session: AsyncSession, tenant_id: str, cursor: str | None, limit: int
) -> WebhookEndpointPage:
    """A page of the tenant's endpoints, newest first, after `cursor` (an endpoint id)."""
    _check_cursor(cursor, "whe")
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.deleted_at.is_(None))
        .order_by(WebhookEndpoint.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(WebhookEndpoint.id < cursor)
    endpoints = list(await session.scalars(query))
    page, has_more = endpoints[:limit], len(endpoints) > limit
    return WebhookEndpointPage(
        data=[endpoint_view(endpoint) for endpoint in page],
        has_more=has_more,
        next_cursor=page[-1].id if has_more else None,
    )


async def update_endpoint(
    session: AsyncSession,
    policy: UrlPolicy,
    tenant_id: str,
    endpoint_id: str,
    body: WebhookEndpointUpdate,
) -> WebhookEndpoint:
    """Apply the fields `body` sets; pending deliveries follow a new URL. The caller commits."""
    endpoint = await get_endpoint(session, tenant_id, endpoint_id)
    if body.url is not None:
        await check_url(body.url, policy)
        endpoint.url = body.url
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.endpoint_id == endpoint.id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
            )
            .values(url=body.url)
        )
    if body.events is not None:
        endpoint.events = list(dict.fromkeys(body.events))
    if "description" in body.model_fields_set:
        endpoint.description = body.description
    if body.disabled is not None and body.disabled != (endpoint.disabled_at is not None):
        endpoint.disabled_at = await database_now(session) if body.disabled else None
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, tenant_id: str, endpoint_id: str) -> None:
    """Mark an endpoint deleted, so it is no longer shown or sent anything, and cancel its pending
    deliveries; they and the others stay, with their attempts. The caller commits."""
    endpoint = await get_endpoint(session, tenant_id, endpoint_id)
    endpoint.deleted_at = await database_now(session)
    await stop_pending(session, endpoint.id, DeliveryStatus.CANCELED)


async def stop_pending(session: AsyncSession, endpoint_id: str, status: DeliveryStatus) -> None:
    """End every pending delivery to an endpoint with `status`; the caller commits."""
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
        )
        .values(status=status, next_attempt_at=None)
    )


def endpoint_view(endpoint: WebhookEndpoint) -> WebhookEndpointSchema:
    """The public shape of an endpoint, without its secret."""
    return WebhookEndpointSchema(
        id=endpoint.id,
        url=endpoint.url,
        events=endpoint.events,  # type: ignore[arg-type]
        description=endpoint.description,
        disabled=endpoint.disabled_at is not None,
        disabled_at=endpoint.disabled_at,
        created_at=endpoint.created_at,
    )


def created_endpoint_view(endpoint: WebhookEndpoint) -> WebhookEndpointCreated:
    """The public shape of a new endpoint, with its secret."""
    return WebhookEndpointCreated(**endpoint_view(endpoint).model_dump(), secret=endpoint.secret)


async def default_secret(session: AsyncSession, tenant_id: str) -> str:
    """The tenant's default signing secret, made on first use; concurrent first uses agree on
    one. The caller commits."""
    await session.execute(
        insert_for(session, WebhookSecret)
        .values(tenant_id=tenant_id, secret=new_secret(), created_at=await database_now(session))
        .on_conflict_do_nothing(index_elements=["tenant_id"])
    )
    secret = await session.scalar(
        select(WebhookSecret.secret).where(WebhookSecret.tenant_id == tenant_id)
    )
    assert secret is not None
    return secret


async def list_deliveries(
    session: AsyncSession, tenant_id: str, endpoint_id: str, cursor: str | None, limit: int
) -> WebhookDeliveryPage:
    """A page of an endpoint's deliveries, newest first, after `cursor` (a delivery id)."""
    endpoint = await get_endpoint(session, tenant_id, endpoint_id)
    return await _delivery_page(session, WebhookDelivery.endpoint_id == endpoint.id, cursor, limit)


async def list_job_deliveries(
    session: AsyncSession, tenant_id: str, job_id: str, cursor: str | None, limit: int
) -> WebhookDeliveryPage:
    """A page of the deliveries of a job's events, to registered endpoints and to the request's
    own `webhook_url` alike, newest first, after `cursor` (a delivery id)."""
    job = await get_job(session, tenant_id, job_id)
    return await _delivery_page(session, WebhookDelivery.job_id == job.id, cursor, limit)


async def retry_delivery(
    session: AsyncSession, tenant_id: str, endpoint_id: str, delivery_id: str
) -> WebhookDelivery:
    """Make one of an endpoint's deliveries due now, to be sent once more (see `resend`)."""
    endpoint = await get_endpoint(session, tenant_id, endpoint_id)
    delivery = await _find_delivery(
        session, delivery_id, WebhookDelivery.endpoint_id == endpoint.id
    )
    if delivery is None:
        raise NotFound(f"No delivery {delivery_id!r} for endpoint {endpoint_id}.")
    return await resend(session, delivery)


async def retry_job_delivery(
    session: AsyncSession, tenant_id: str, job_id: str, delivery_id: str
) -> WebhookDelivery:
    """Make one of a job's deliveries due now, to be sent once more (see `resend`)."""
    job = await get_job(session, tenant_id, job_id)
    delivery = await _find_delivery(session, delivery_id, WebhookDelivery.job_id == job.id)
    if delivery is None:
        raise NotFound(f"No delivery {delivery_id!r} for job {job_id}.")
    return await resend(session, delivery)


async def resend(session: AsyncSession, delivery: WebhookDelivery) -> WebhookDelivery:
    """Make a delivery due now, whatever became of it, to be sent once more to where its endpoint
    is now; Conflict while its endpoint is disabled, or once it is deleted (a per-request URL has
    none). The caller commits, then dispatches it."""
    if delivery.endpoint_id is not None:
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        assert endpoint is not None  # deleting one only marks it
        if endpoint.deleted_at is not None:
            raise Conflict(f"Endpoint {delivery.endpoint_id} was deleted; nothing is sent to it.")
        if endpoint.disabled_at is not None:
            raise Conflict(
                f"Endpoint {delivery.endpoint_id} is disabled; enable it before retrying."
            )
        delivery.url = endpoint.url
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = await database_now(session)
    await session.flush()
    return delivery


async def delivery_views(
    session: AsyncSession, deliveries: list[WebhookDelivery]
) -> list[WebhookDeliverySchema]:
    """The public shape of deliveries, each with its attempts and whether its endpoint is
    deleted."""
    attempts = await _attempts_of(session, [delivery.id for delivery in deliveries])
    deleted = await _deleted_endpoints(
        session, {delivery.endpoint_id for delivery in deliveries if delivery.endpoint_id}
    )
    return [
        WebhookDeliverySchema(
            id=delivery.id,
            endpoint_id=delivery.endpoint_id,
            endpoint_deleted=delivery.endpoint_id in deleted,
            job_id=delivery.job_id,
            event=delivery.event,  # type: ignore[arg-type]
            url=delivery.url,
            status=delivery.status,  # type: ignore[arg-type]
            next_attempt_at=delivery.next_attempt_at,
            payload=json.loads(delivery.payload),
            attempts=attempts[delivery.id],
            created_at=delivery.created_at,
        )
        for delivery in deliveries
    ]


async def _attempts_of(
    session: AsyncSession, delivery_ids: list[str]
) -> dict[str, list[WebhookAttemptSchema]]:
    """The public shape of these deliveries' attempts, oldest first, by delivery id."""
    attempts: dict[str, list[WebhookAttemptSchema]] = defaultdict(list)
    if not delivery_ids:
        return attempts
    rows = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.id)
    )
    for row in rows:
        attempts[row.delivery_id].append(
            WebhookAttemptSchema(
                attempted_at=row.attempted_at,
                url=row.url,
                status_code=row.status_code,
                latency_ms=row.latency_ms,
                error=row.error,
            )
        )
    return attempts


async def _deleted_endpoints(session: AsyncSession, endpoint_ids: set[str]) -> set[str]:
    """Which of these endpoints are deleted."""
    if not endpoint_ids:
        return set()
    deleted = await session.scalars(
        select(WebhookEndpoint.id).where(
            WebhookEndpoint.id.in_(endpoint_ids), WebhookEndpoint.deleted_at.is_not(None)
        )
    )
    return set(deleted)


async def _delivery_page(
    session: AsyncSession, owner: ColumnElement[bool], cursor: str | None, limit: int
) -> WebhookDeliveryPage:
    """A page of the deliveries matching `owner`, newest first, after `cursor`."""
    _check_cursor(cursor, "msg")
    query = (
        select(WebhookDelivery).where(owner).order_by(WebhookDelivery.id.desc()).limit(limit + 1)
    )
    if cursor:
        query = query.where(WebhookDelivery.id < cursor)
    deliveries = list(await session.scalars(query))
    page, has_more = deliveries[:limit], len(deliveries) > limit
    return WebhookDeliveryPage(
        data=await delivery_views(session, page),
        has_more=has_more,
        next_cursor=page[-1].id if has_more else None,
    )


async def _find_delivery(
    session: AsyncSession, delivery_id: str, owner: ColumnElement[bool]
) -> WebhookDelivery | None:
    """The delivery with this id if it matches `owner`; None for a malformed id too."""
    if not is_id(delivery_id, "msg"):
        return None
    return await session.scalar(
        select(WebhookDelivery).where(WebhookDelivery.id == delivery_id, owner)
    )


def _check_cursor(cursor: str | None, prefix: str) -> None:
    if cursor is not None and not is_id(cursor, prefix):
        raise InvalidInput("cursor must be the next_cursor of a previous page.")
