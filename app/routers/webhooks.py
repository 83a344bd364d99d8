"""Webhook endpoints: register, list, read, change and delete them; see their deliveries and
send one again; see and resend every delivery of one job (a request's own `webhook_url`
included); read the default secret that signs per-request deliveries."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Session
from app.deps import AppSettings, Tenant
from app.models import WebhookDelivery
from app.routers import page_cursor, problems
from app.schemas.webhooks import (
    WebhookDelivery as WebhookDeliverySchema,
)
from app.schemas.webhooks import (
    WebhookDeliveryPage,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPage,
    WebhookEndpointUpdate,
    WebhookSigningSecret,
)
from app.webhooks import service as webhooks

# Full paths: the routes of one job's deliveries live under /v1/jobs.
router = APIRouter(tags=["webhooks"])

EndpointCursor = page_cursor("whe")
DeliveryCursor = page_cursor("msg")
Limit = Annotated[int, Query(ge=1, le=100, description="Items per page.")]
JobId = Annotated[
    str, Path(description="The job's id.", examples=["job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"])
]


@router.post(
    "/v1/webhooks",
    operation_id="create_webhook_endpoint",
    summary="Register a webhook endpoint",
    status_code=201,
    response_model=WebhookEndpointCreated,
    responses=problems(401, 415, 422),
)
async def create_webhook_endpoint(
    body: WebhookEndpointCreate,
    request: Request,
    response: Response,
    session: Session,
    tenant: Tenant,
    settings: AppSettings,
) -> WebhookEndpointCreated:
    """Send the tenant's job events to a URL. The answer carries the endpoint's signing secret,
    shown only this once; a URL that resolves to a private or loopback address is refused."""
    endpoint = await webhooks.create_endpoint(session, settings.url_policy, tenant, body)
    await session.commit()
    await _announce_change(request, tenant)
    response.headers["Location"] = f"/v1/webhooks/{endpoint.id}"
    return webhooks.created_endpoint_view(endpoint)


@router.get(
    "/v1/webhooks",
    operation_id="list_webhook_endpoints",
    summary="List webhook endpoints",
    response_model=WebhookEndpointPage,
    responses=problems(401, 422),
)
async def list_webhook_endpoints(
    session: Session, tenant: Tenant, cursor: EndpointCursor = None, limit: Limit = 20
) -> WebhookEndpointPage:
    """The tenant's endpoints, newest first, a page at a time."""
    return await webhooks.list_endpoints(session, tenant, cursor, limit)


@router.get(
    "/v1/webhooks/signing-secret",
    operation_id="get_webhook_signing_secret",
    summary="Get the default webhook signing secret",
    response_model=WebhookSigningSecret,
    responses=problems(401),
)
async def get_webhook_signing_secret(session: Session, tenant: Tenant) -> WebhookSigningSecret:
    """The secret that signs deliveries to a request's own `webhook_url` (registered endpoints
    have their own). Made on first use, then always the same."""
    secret = await webhooks.default_secret(session, tenant)
    await session.commit()
    return WebhookSigningSecret(secret=secret)


@router.get(
    "/v1/webhooks/{endpoint_id}",
    operation_id="get_webhook_endpoint",
    summary="Get a webhook endpoint",
    response_model=WebhookEndpoint,
    responses=problems(401, 404),
)
async def get_webhook_endpoint(
    endpoint_id: str, session: Session, tenant: Tenant
) -> WebhookEndpoint:
    """The endpoint, without its secret."""
    return webhooks.endpoint_view(await webhooks.get_endpoint(session, tenant, endpoint_id))


@router.patch(
    "/v1/webhooks/{endpoint_id}",
    operation_id="update_webhook_endpoint",
    summary="Change a webhook endpoint",
    response_model=WebhookEndpoint,
    responses=problems(401, 404, 415, 422),
)
async def update_webhook_endpoint(
    endpoint_id: str,
    body: WebhookEndpointUpdate,
    request: Request,
    session: Session,
    tenant: Tenant,
    settings: AppSettings,
) -> WebhookEndpoint:
    """Change its URL, events or description, or disable or re-enable it. Deliveries still
    pending go to the new URL."""
    endpoint = await webhooks.update_endpoint(
        session, settings.url_policy, tenant, endpoint_id, body
    )
    await session.commit()
    await _announce_change(request, tenant)
    return webhooks.endpoint_view(endpoint)


@router.delete(
    "/v1/webhooks/{endpoint_id}",
    operation_id="delete_webhook_endpoint",
    summary="Delete a webhook endpoint",
    status_code=204,
    response_class=Response,
    responses=problems(401, 404),
)
async def delete_webhook_endpoint(
    endpoint_id: Annotated[str, Path(examples=["whe_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"])],
    request: Request,
    session: Session,
    tenant: Tenant,
) -> Response:
    """Delete the endpoint: from then on it is not listed, its routes answer 404, nothing more
    is sent to it, and its pending deliveries end as `canceled`. Its deliveries and
    their attempts are kept, listed under `GET /v1/jobs/{job_id}/webhook-deliveries` with
    `endpoint_deleted` true."""
    await webhooks.delete_endpoint(session, tenant, endpoint_id)
    await session.commit()
    await _announce_change(request, tenant)
    return Response(status_code=204)


@router.get(
    "/v1/webhooks/{endpoint_id}/deliveries",
    operation_id="list_webhook_deliveries",
    summary="List an endpoint's deliveries",
    response_model=WebhookDeliveryPage,
    responses=problems(401, 404, 422),
)
async def list_webhook_deliveries(
    endpoint_id: str,
    session: Session,
    tenant: Tenant,
    cursor: DeliveryCursor = None,
    limit: Limit = 20,
) -> WebhookDeliveryPage:
    """Events sent or to be sent to the endpoint, newest first, each with every attempt's URL,
    status code, latency and error. A deleted endpoint answers 404, as on its other routes; its
    deliveries stay listed under `GET /v1/jobs/{job_id}/webhook-deliveries`."""
    return await webhooks.list_deliveries(session, tenant, endpoint_id, cursor, limit)


@router.post(
    "/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry",
    operation_id="retry_webhook_delivery",
    summary="Send a delivery again",
    status_code=202,
    response_model=WebhookDeliverySchema,
    responses=problems(401, 404, 409),
)
async def retry_webhook_delivery(
    endpoint_id: str, delivery_id: str, request: Request, session: Session, tenant: Tenant
) -> WebhookDeliverySchema:
    """Send the delivery once more now, to the endpoint's current URL, with the same
    `webhook-id` and body, whether it was delivered, failed or still pending. A disabled
    endpoint answers 409."""
    delivery = await webhooks.retry_delivery(session, tenant, endpoint_id, delivery_id)
    return await _send_again(request, session, delivery)


@router.get(
    "/v1/jobs/{job_id}/webhook-deliveries",
    operation_id="list_job_webhook_deliveries",
    summary="List a job's webhook deliveries",
    response_model=WebhookDeliveryPage,
    responses=problems(401, 404),
)
async def list_job_webhook_deliveries(
    job_id: JobId,
    session: Session,
    tenant: Tenant,
    cursor: DeliveryCursor = None,
    limit: Limit = 20,
) -> WebhookDeliveryPage:
    """Every delivery of the job's events, to registered endpoints (`endpoint_id` set) and to
    the request's own `webhook_url` (`endpoint_id` null), newest first, each with every
    attempt's URL, status code, latency and error. Deliveries to a deleted endpoint stay here,
    with `endpoint_deleted` true."""
    return await webhooks.list_job_deliveries(session, tenant, job_id, cursor, limit)


@router.post(
    "/v1/jobs/{job_id}/webhook-deliveries/{delivery_id}/retry",
    operation_id="retry_job_webhook_delivery",
    summary="Send a job's webhook delivery again",
    status_code=202,
    response_model=WebhookDeliverySchema,
    responses=problems(401, 404, 409),
)
async def retry_job_webhook_delivery(
    job_id: JobId, delivery_id: str, request: Request, session: Session, tenant: Tenant
) -> WebhookDeliverySchema:
    """Send one of the job's deliveries once more now, with the same `webhook-id` and body,
    whether it was delivered, failed or still pending; a request's own `webhook_url` too. A
    delivery to a disabled or deleted endpoint answers 409."""
    delivery = await webhooks.retry_job_delivery(session, tenant, job_id, delivery_id)
    return await _send_again(request, session, delivery)


async def _send_again(
    request: Request, session: AsyncSession, delivery: WebhookDelivery
) -> WebhookDeliverySchema:
    """Commit a delivery made due by a retry, dispatch its manual attempt, and show it."""
    await session.commit()
    await request.app.state.webhooks.dispatcher.schedule(
        delivery.id, attempts=delivery.attempts, delay_seconds=0, manual=True
    )
    return (await webhooks.delivery_views(session, [delivery]))[0]


async def _announce_change(request: Request, tenant_id: str) -> None:
    """Every process reads the tenant's endpoints afresh for its next job event."""
    await request.app.state.webhooks.endpoints.changed(tenant_id)
