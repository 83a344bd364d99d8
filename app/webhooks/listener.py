"""The job-event listener: on each lifecycle event, record one delivery per receiver that wants
it (the tenant's matching endpoints and the request's `webhook_url`) and hand them to the
dispatcher. It only writes rows and enqueues, so webhooks never slow or fail a job."""

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import database_now, insert_for
from app.ids import new_id
from app.models import DeliveryStatus, Job, JobEventType, WebhookDelivery
from app.runtime.context import TaskContext
from app.schemas.jobs import Job as JobSchema
from app.schemas.signed_urls import MAX_EXPIRES_IN
from app.schemas.webhooks import WEBHOOK_EVENTS
from app.services.jobs import job_view
from app.services.signing import expiry, signed_content_url
from app.webhooks.directory import EndpointDirectory

if TYPE_CHECKING:
    from app.webhooks.scheduler import Dispatcher

logger = logging.getLogger(__name__)

# Job events that become webhook event types; progress is for live streams only.
EVENT_TYPES = {event.removeprefix("job."): event for event in WEBHOOK_EVENTS}
REQUEST_RECEIVER = "request"


def job_event_listener(
    dispatcher: "Dispatcher", endpoints: EndpointDirectory
) -> Callable[..., Awaitable[None]]:
    """A TaskContext listener that records and dispatches the deliveries of each job event."""

    async def on_job_event(
        context: TaskContext, job: Job, event: JobEventType, data: dict[str, Any]
    ) -> None:
        for delivery_id in await record_deliveries(context, endpoints, job, event):
            await dispatcher.schedule(delivery_id, attempts=0, delay_seconds=0)

    return on_job_event


async def record_deliveries(
    context: TaskContext, endpoints: EndpointDirectory, told: Job, event: str
) -> list[str]:
    """Insert the deliveries of `event` for the job, once each however often the event is told
    (a re-run job starts again); the ids of those inserted now. Who receives it depends only on
    the job's tenant and request, which never change, so the job is read again (for the
    payload) only when someone does."""
    event_type = EVENT_TYPES.get(event)
    if event_type is None:
        return []
    # Most events have no receiver: finding that out usually reads nothing at all.
    receivers = await _receivers(endpoints, told, event_type)
    if not receivers:
        return []
    async with context.sessionmaker() as session:
        job = await session.get(Job, told.id)
        if job is None:
            return []
        now = await database_now(session)
        payload = payload_body(context.settings, await job_view(session, job), event_type, now)
        inserted = [
            delivery_id
            for endpoint_id, url in receivers
            if (
                delivery_id := await _insert_delivery(
                    session, job, event_type, endpoint_id, url, payload, now
                )
            )
        ]
        await session.commit()
    return inserted


def payload_body(settings: Settings, job: JobSchema, event_type: str, at: datetime) -> str:
    """The JSON body of an event: its type, time, and the job as GET /v1/jobs/{id} shows it,
    with each output's `url` signed so the receiver can download it without an API key."""
    data = job.model_dump(mode="json")
    expires_at = expiry(MAX_EXPIRES_IN)
    for output in data["outputs"]:
        output["url"] = signed_content_url(
            settings, output["asset_id"], expires_at, settings.public_url
        )
        output["url_expires_at"] = expires_at.isoformat().replace("+00:00", "Z")
    document = {
        "type": event_type,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"))


async def _receivers(
    endpoints: EndpointDirectory, job: Job, event_type: str
) -> list[tuple[str | None, str]]:
    """(endpoint id or None, url) of everyone who wants this event of this job."""
    receivers: list[tuple[str | None, str]] = [
        (endpoint.id, endpoint.url)
        for endpoint in await endpoints.active(job.tenant_id)
        if event_type in endpoint.events
    ]
    url = job.request.get("webhook_url")
    if url and event_type in (job.request.get("webhook_events") or WEBHOOK_EVENTS):
        receivers.append((None, url))
    return receivers


async def _insert_delivery(
    session: AsyncSession,
    job: Job,
    event_type: str,
    endpoint_id: str | None,
    url: str,
    payload: str,
    now: datetime,
) -> str | None:
    inserted = await session.execute(
        insert_for(session, WebhookDelivery)
        .values(
            id=new_id("msg"),
            tenant_id=job.tenant_id,
            endpoint_id=endpoint_id,
            job_id=job.id,
            event_key=f"{job.id}:{event_type}:{endpoint_id or REQUEST_RECEIVER}",
            url=url,
            event=event_type,
            payload=payload,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["event_key"])
        .returning(WebhookDelivery.id)
    )
    return inserted.scalar_one_or_none()
