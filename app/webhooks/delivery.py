"""One attempt at a delivery: claim it, POST it signed through the fetcher's address rules to
where its endpoint is now, record what happened and where, and schedule the next attempt or give
up. Only a 2xx answer delivers; 410 Gone disables the endpoint; anything else is retried on the
configured schedule."""

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import metrics
from app.config import Settings
from app.db import database_now
from app.fetcher import UrlRefused, post_checked
from app.logs import job_context
from app.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.runtime.context import TaskContext
from app.webhooks.directory import EndpointDirectory
from app.webhooks.service import default_secret, stop_pending
from app.webhooks.signing import signed_headers

if TYPE_CHECKING:
    from app.webhooks.scheduler import Dispatcher

logger = logging.getLogger(__name__)

# A claimed attempt holds its delivery this long past its timeout; if the process dies
# mid-attempt, the delivery becomes due again after it.
CLAIM_MARGIN_SECONDS = 30
# A message may run a little before its row's due time by another machine's clock.
DUE_TOLERANCE = timedelta(seconds=1)
# Each retry waits up to this fraction longer, so receivers that failed together are not all
# retried in the same instant.
JITTER = 0.1
MAX_ERROR_LENGTH = 1000
GONE = 410


@dataclass(frozen=True)
class Claimed:
    """A delivery this attempt holds: where to send it, with which secret, and when it began."""

    delivery: WebhookDelivery
    url: str
    secret: str
    attempted_at: datetime


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: the receiver's status, or why there was none."""

    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def deliver(
    context: TaskContext,
    dispatcher: "Dispatcher",
    endpoints: EndpointDirectory,
    delivery_id: str,
) -> None:
    """Make one attempt at a delivery if it is pending and due; never raises. An endpoint it
    disables is announced through `endpoints`."""
    try:
        claimed = await claim(context, delivery_id)
        if claimed is None:
            return
        delivery = claimed.delivery
        with job_context(job_id=delivery.job_id, tenant_id=delivery.tenant_id):
            outcome = await send(context.settings, claimed)
            status = await record(context, dispatcher, claimed, outcome)
            if status == DeliveryStatus.DISABLED:
                await endpoints.changed(delivery.tenant_id)
            logger.info(
                "webhook %s (%s, attempt %d): %s in %d ms",
                delivery.event,
                delivery.id,
                delivery.attempts,
                outcome.status_code or outcome.error,
                outcome.latency_ms,
                extra={"event": delivery.event, "delivery_status": status},
            )
        metrics.webhook_deliveries.labels(status).inc()
    except Exception:
        logger.exception("webhook delivery %s: the attempt failed unexpectedly", delivery_id)


async def claim(context: TaskContext, delivery_id: str) -> Claimed | None:
    """Take a pending, due delivery for one attempt, count the attempt and note where it goes;
    None if it is not due, already done, waiting behind an earlier event of its job (it is sent
    once that one is settled, without spending an attempt meanwhile), or its endpoint was
    disabled or deleted (it is then marked disabled or canceled)."""
    hold = timedelta(seconds=context.settings.webhook_timeout_seconds + CLAIM_MARGIN_SECONDS)
    async with context.sessionmaker() as session:
        now = await database_now(session)
        claimed = await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now + DUE_TOLERANCE,
                WebhookDelivery.first_in_line(),
            )
            .values(attempts=WebhookDelivery.attempts + 1, next_attempt_at=now + hold)
        )
        if claimed.rowcount == 0:
            return None
        delivery = await session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        if delivery.endpoint_id is None:
            url, secret = delivery.url, await default_secret(session, delivery.tenant_id)
        else:
            endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
            assert endpoint is not None  # deleting one only marks it
            stopped = _stopped_status(endpoint)
            if stopped is not None:
                delivery.status, delivery.next_attempt_at = stopped, None
                delivery.attempts -= 1
                await session.commit()
                return None
            # An endpoint's pending deliveries follow it to a new URL.
            url, secret = endpoint.url, endpoint.secret
            delivery.url = url
        await session.commit()
    return Claimed(delivery, url, secret, now)


def _stopped_status(endpoint: WebhookEndpoint) -> DeliveryStatus | None:
    """How a delivery to this endpoint ends without an attempt, or None if it may be sent."""
    if endpoint.deleted_at is not None:
        return DeliveryStatus.CANCELED
    if endpoint.disabled_at is not None:
        return DeliveryStatus.DISABLED
    return None


async def send(settings: Settings, claimed: Claimed) -> Outcome:
    """POST the delivery's payload, signed, to a checked address; what came of it."""
    body = claimed.delivery.payload.encode()
    headers = signed_headers(claimed.secret, claimed.delivery.id, int(time.time()), body)
    timeout = settings.webhook_timeout_seconds
    started = time.monotonic()
    status_code, error = None, None
    try:
        response = await post_checked(
            claimed.url,
            settings.url_policy,
            content=body,
            headers=headers,
            timeout_seconds=timeout,
        )
        status_code = response.status_code
    except UrlRefused as exc:
        error = exc.detail
    except (TimeoutError, httpx.TimeoutException):
        error = f"No answer within {timeout:g} seconds."
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    latency_ms = round((time.monotonic() - started) * 1000)
    return Outcome(status_code, latency_ms, error and error[:MAX_ERROR_LENGTH])


async def record(
    context: TaskContext, dispatcher: "Dispatcher", claimed: Claimed, outcome: Outcome
) -> DeliveryStatus:
    """Keep the attempt and where it went, then settle the delivery: delivered, disabled, failed,
    or pending with its next attempt scheduled. The status it settled on."""
    delivery = claimed.delivery
    async with context.sessionmaker() as session:
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                attempted_at=claimed.attempted_at,
                url=claimed.url,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                error=outcome.error,
            )
        )
        now = await database_now(session)
        status, delay = _next_step(context.settings, delivery, outcome)
        if status == DeliveryStatus.DISABLED and delivery.endpoint_id is not None:
            await _disable_endpoint(session, delivery.endpoint_id, now)
        settled: dict[str, Any] = {
            "status": status,
            "next_attempt_at": now + timedelta(seconds=delay) if delay is not None else None,
        }
        if status != DeliveryStatus.PENDING:
            # Where this last attempt went, though its endpoint may have moved meanwhile.
            settled["url"] = claimed.url
        # Unless a manual retry, another attempt or a deletion has moved the delivery on meanwhile.
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery.id,
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.attempts == delivery.attempts,
            )
            .values(settled)
        )
        await session.commit()
    if delay is not None:
        await dispatcher.schedule(delivery.id, attempts=delivery.attempts, delay_seconds=delay)
    else:
        await _send_next_in_line(context, dispatcher, delivery)
    return status


async def _send_next_in_line(
    context: TaskContext, dispatcher: "Dispatcher", settled: WebhookDelivery
) -> None:
    """Schedule the job's next event for the same receiver, which waited for this one; should
    the message be lost, the scan finds it overdue."""
    async with context.sessionmaker() as session:
        following = (
            await session.execute(
                select(
                    WebhookDelivery.id, WebhookDelivery.attempts, WebhookDelivery.next_attempt_at
                )
                .where(
                    WebhookDelivery.job_id == settled.job_id,
                    WebhookDelivery.endpoint_id.is_not_distinct_from(settled.endpoint_id),
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.first_in_line(),
                )
                .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
                .limit(1)
            )
        ).first()
        now = await database_now(session)
    if following is None:
        return
    delivery_id, attempts, due = following
    delay = max(0.0, (due - now).total_seconds()) if due is not None else 0.0
    await dispatcher.schedule(delivery_id, attempts=attempts, delay_seconds=delay)


def _next_step(
    settings: Settings, delivery: WebhookDelivery, outcome: Outcome
) -> tuple[DeliveryStatus, float | None]:
    """The delivery's new status and, if it is to be retried, in how many seconds."""
    if outcome.delivered:
        return DeliveryStatus.DELIVERED, None
    if outcome.status_code == GONE:
        # A registered endpoint is disabled; a per-request URL is simply not tried again.
        if delivery.endpoint_id:
            return DeliveryStatus.DISABLED, None
        return DeliveryStatus.FAILED, None
    delays = settings.webhook_retry_delays
    if delivery.attempts > len(delays):
        return DeliveryStatus.FAILED, None
    return DeliveryStatus.PENDING, delays[delivery.attempts - 1] * (1 + random.uniform(0, JITTER))


async def _disable_endpoint(session: AsyncSession, endpoint_id: str, now: datetime) -> None:
    """Disable the endpoint and stop its other pending deliveries."""
    logger.info("webhook endpoint %s answered 410 Gone; disabling it", endpoint_id)
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.disabled_at.is_(None))
        .values(disabled_at=now)
    )
    await stop_pending(session, endpoint_id, DeliveryStatus.DISABLED)
