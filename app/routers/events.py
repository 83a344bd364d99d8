"""GET /v1/jobs/{id}/events: a job's lifecycle as server-sent events, from whichever process
runs it. The stream starts with the job's current state, follows it live, and ends with its
final event."""

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Receive, Scope, Send

from app.db import Session
from app.deps import AppSettings, Context, Sessionmaker, Tenant
from app.errors import NotFound, ServiceUnavailable, TooManyStreams
from app.models import JobEventType, JobStatus
from app.routers import problems
from app.runtime.progress import Broadcaster, Subscription
from app.schemas.events import JobEvent
from app.services import jobs

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

EVENT_STREAM = "text/event-stream"
HEARTBEAT = ": heartbeat\n\n"
FINAL_EVENTS = frozenset({JobEventType.SUCCEEDED, JobEventType.FAILED, JobEventType.CANCELED})
# The status a job is in after each event, and the event that announces a stored status.
EVENT_STATUS = {
    JobEventType.QUEUED: JobStatus.QUEUED,
    JobEventType.STARTED: JobStatus.RUNNING,
    JobEventType.PROGRESS: JobStatus.RUNNING,
}
STATUS_EVENT = {JobStatus.QUEUED: JobEventType.QUEUED, JobStatus.RUNNING: JobEventType.STARTED}
# Events only move forward: a repeat or a step back (a re-run job's second `started`, an event
# that was also read from the database) is not sent again.
EVENT_RANK = {
    JobEventType.QUEUED: 0,
    JobEventType.STARTED: 1,
    JobEventType.PROGRESS: 2,
    **dict.fromkeys(FINAL_EVENTS, 3),
}

STREAM_EXAMPLE = (
    'event: progress\nid: 3\ndata: {"job_id": "job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P", '
    '"status": "running", "completed": 1, "total": 2}\n\n'
)
STREAM_RESPONSE = {
    200: {
        "content": {EVENT_STREAM: {"schema": {"type": "string"}, "example": STREAM_EXAMPLE}},
        "description": (
            "Server-sent events: `queued`, `started`, `progress`, then one of `succeeded`, "
            "`failed` or `canceled`, after which the stream ends. Each event has `event`, "
            "`id` and `data`: JSON with `job_id` and `status`, `completed` and `total` on "
            "`progress` (and, for a self-hosted model, the denoising `step` of `steps`), and "
            "the whole `job` on final events. Comment lines are heartbeats. "
            "The stream first repeats the job's current state, so a reconnecting client "
            "loses nothing and a finished job answers with its final event at once."
        ),
    }
}
TOO_MANY_STREAMS = {
    429: {
        "description": (
            "The tenant already holds as many open event streams on this server as it "
            "may; close one first."
        )
    }
}


class StreamSlots:
    """The event streams each tenant holds open in this process, against a cap. Counted per
    process: behind a load balancer of N API processes a tenant may hold up to N times the cap."""

    def __init__(self) -> None:
        self.open: Counter[str] = Counter()

    @contextmanager
    def take(self, tenant_id: str, limit: int) -> Iterator[None]:
        """Hold one of the tenant's `limit` slots (0: no cap) until exit; TooManyStreams if
        they are all taken."""
        if limit and self.open[tenant_id] >= limit:
            raise TooManyStreams(
                f"This tenant already has {limit} event streams open on this server, the "
                "most allowed; close one before opening another (or poll GET /v1/jobs/{id}).",
                max_streams=limit,
            )
        self.open[tenant_id] += 1
        try:
            yield
        finally:
            self.open[tenant_id] -= 1
            if not self.open[tenant_id]:
                del self.open[tenant_id]


async def get_stream_slots(request: Request) -> StreamSlots:
    """The app's open streams, counted from its first stream on."""
    slots = getattr(request.app.state, "event_stream_slots", None)
    if slots is None:
        slots = request.app.state.event_stream_slots = StreamSlots()
    return slots


Slots = Annotated[StreamSlots, Depends(get_stream_slots)]


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` response, so the spec names the media type. What the stream holds
    (its subscription and its slot) is released when sending ends, however it ends."""

    media_type = EVENT_STREAM

    def __init__(
        self,
        content: AsyncIterator[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        held: AsyncExitStack | None = None,
    ) -> None:
        super().__init__(content, status_code, headers)
        self.held = held or AsyncExitStack()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.held.aclose()


@router.get(
    "/{job_id}/events",
    operation_id="stream_job_events",
    summary="Stream a job's events",
    response_class=EventStreamResponse,
    responses=STREAM_RESPONSE | problems(401, 404) | TOO_MANY_STREAMS | problems(503),
)
async def stream_job_events(
    job_id: str,
    session: Session,
    sessionmaker: Sessionmaker,
    tenant: Tenant,
    context: Context,
    settings: AppSettings,
    slots: Slots,
) -> EventStreamResponse:
    """Follow a job live as server-sent events until it finishes: the current state first,
    then each event as it happens. Every event's data is a JobEvent, `{"job_id", "status"}`,
    with `completed` and `total` on `progress`; the final event (`succeeded`, `failed` or
    `canceled`) also carries the whole job, as GET /v1/jobs/{id} answers it, under `job`, and
    ends the stream. A tenant may hold only so many streams open at once on one server; past
    that the answer is 429."""
    job = await jobs.get_job(session, tenant, job_id)
    # A stream can last minutes: give the request's database connection back now.
    await session.close()
    held = AsyncExitStack()
    try:
        held.enter_context(slots.take(tenant, settings.events_max_streams_per_tenant))
        subscription = await _subscribe(held, context.broadcaster, job.id)
    except BaseException:
        await held.aclose()
        raise
    frames = job_event_frames(
        subscription, sessionmaker, tenant, job.id, settings.events_heartbeat_seconds
    )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return EventStreamResponse(frames, held=held, headers=headers)


async def _subscribe(held: AsyncExitStack, broadcaster: Broadcaster, job_id: str) -> Subscription:
    try:
        return await held.enter_async_context(broadcaster.subscribe(job_id))
    except ConnectionError as error:
        raise ServiceUnavailable(
            f"Live job events are unavailable right now; retry, or poll GET /v1/jobs/{job_id}."
        ) from error


class EventOrder:
    """Lets through only events that move the job forward, so a stream never repeats itself."""

    def __init__(self) -> None:
        self.rank = -1
        self.progress = (-1, -1)

    def advances(self, message: dict[str, Any]) -> bool:
        """Whether `message` is news; if so, remember it. Progress moves by outputs made, then
        by the denoising step of those being made."""
        rank = EVENT_RANK.get(message["event"], -1)
        progress = (message.get("completed", -1), message.get("step", -1))
        is_news = rank > self.rank or (rank == self.rank == 2 and progress > self.progress)
        if is_news:
            self.rank, self.progress = rank, max(progress, self.progress)
        return is_news


async def job_event_frames(
    subscription: Subscription,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: str,
    job_id: str,
    heartbeat_seconds: float,
) -> AsyncIterator[str]:
    """The SSE frames of one job, from a subscription already confirmed: the job's state is
    read after it, so an event in between is seen twice (and sent once) rather than lost. On
    every heartbeat the database is read again, so a stream whose final event never arrived
    (lost while Redis was unreachable) still ends, as does the stream of a deleted job."""
    order = EventOrder()
    number = 0
    message = await _current_state(sessionmaker, tenant_id, job_id)
    while message is not None:
        if order.advances(message):
            number += 1
            data = await _event_data(sessionmaker, tenant_id, message)
            yield f"event: {message['event']}\nid: {number}\ndata: {data}\n\n"
            if message["event"] in FINAL_EVENTS:
                return
        message = await subscription.next_message(heartbeat_seconds)
        if message is None:
            yield HEARTBEAT
            message = await _current_state(sessionmaker, tenant_id, job_id)


async def _current_state(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str, job_id: str
) -> dict[str, Any] | None:
    """The job's status as an event; None once the job is deleted."""
    async with sessionmaker() as session:
        try:
            job = await jobs.get_job(session, tenant_id, job_id)
        except NotFound:
            return None
    return {"event": STATUS_EVENT.get(job.status, job.status), "job_id": job.id}


async def _event_data(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str, message: dict[str, Any]
) -> str:
    event = message["event"]
    data = JobEvent(
        job_id=message["job_id"],
        status=EVENT_STATUS.get(event, event),  # type: ignore[arg-type]
        completed=message.get("completed"),
        total=message.get("total"),
        step=message.get("step"),
        steps=message.get("steps"),
    )
    if event in FINAL_EVENTS:
        # Published after the commit, so the database already holds what the event announces,
        # unless the job was deleted since (its deletion cancels it first): then without `job`.
        async with sessionmaker() as session:
            with contextlib.suppress(NotFound):
                job = await jobs.get_job(session, tenant_id, data.job_id)
                data.job = await jobs.job_view(session, job)
    fields = data.model_dump(mode="json")
    return json.dumps({name: value for name, value in fields.items() if value is not None})
