"""Idempotency-Key on every POST under /v1, as ASGI middleware in front of the routes.

The first request with a key claims it for its tenant before its body is read; its response is
stored and, for 24 hours, a retry with the same key and the same request (method, path, query
and body bytes) gets that response again, status, headers and body, marked
`Idempotent-Replayed: true`. The same key with another request is 422; a retry while the first
is still running is 409. Answers that invite a retry (5xx, 408, 409, 425, 429, or a request that
died) are not stored: the claim is released so the retry runs for real. Other 4xx answers are
stored and replayed like successes, so a retry learns the same thing the first request did."""

import hashlib
import logging
import re
from datetime import timedelta
from typing import Any

import anyio
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import database_now
from app.errors import (
    Conflict,
    DarkroomError,
    IdempotencyKeyReused,
    InvalidInput,
    problem,
    problem_response,
)
from app.ids import new_id
from app.models import IdempotencyRecord
from app.ratelimit import enforce_rate_limit

logger = logging.getLogger(__name__)

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"
# A claim this old belongs to a request that died with its process; a retry may take it over.
ABANDONED_AFTER = timedelta(minutes=10)
# Answers that tell the caller to try again; a retry must not be stuck with them.
RETRY_STATUSES = frozenset({408, 409, 425, 429})
_BOUNDARY = re.compile(rb"boundary=\"?([^\";]+)\"?", re.IGNORECASE)
NEUTRAL_BOUNDARY = b"--darkroom-boundary"


class IdempotencyKeys:
    """Claims, stores and replays responses of POSTs that carry an Idempotency-Key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith("/v1/")
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        key = request.headers.get(HEADER, "")
        tenant_id = await _tenant_of(request) if key else None
        if tenant_id is None:
            # No key, or no valid API key (the route answers 401): nothing to claim.
            await self.app(scope, receive, send)
            return
        try:
            await _check(request, key)
        except DarkroomError as exc:
            await _problem(request, exc)(scope, receive, send)
            return
        lifetime = request.app.state.settings.idempotency_key_seconds
        record, claimed = await claim(_sessionmaker(request), tenant_id, key, lifetime)
        try:
            if claimed:
                await _run_claimed(self.app, request, record, receive, send)
            else:
                await _answer_duplicate(request, record, receive, send)
        except ClientDisconnect:
            # The caller left while its body was read; a claim was released, and no one is
            # there to answer.
            logger.info("idempotent request %s: the client disconnected", request.url.path)


async def _tenant_of(request: Request) -> str | None:
    scheme, credentials = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer" or not credentials:
        return
    async with _sessionmaker(request)() as session:
        live = await request.app.state.key_cache.live(session, credentials)
    # The route's own auth reads it from here instead of looking the key up again.
    request.state.api_key = live
    return None if live is None else live.tenant_id


async def _check(request: Request, key: str) -> None:
    """Refuse before claiming: an over-long key, or a key over its rate limit (never stored)."""
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters.")
    _, credentials = get_authorization_scheme_param(request.headers.get("authorization"))
    await enforce_rate_limit(request, credentials)


def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    return request.app.state.sessionmaker


def _problem(request: Request, exc: DarkroomError) -> Response:
    return problem_response(exc.to_problem(request.url.path), exc.headers)


async def _answer_duplicate(
    request: Request, record: IdempotencyRecord, receive: Receive, send: Send
) -> None:
    """A retry: 409 while the first request runs, else the stored response if the request is
    the same, or 422."""
    scope = request.scope
    if record.status != "done":
        conflict = Conflict("A request with this Idempotency-Key is still in progress.")
        await _problem(request, conflict)(scope, receive, send)
        return
    try:
        body = await _read_body(receive)
    except HTTPException as exc:
        await _too_large(request, exc)(scope, receive, send)
        return
    if record.request_hash != request_fingerprint(request, body):
        reused = IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request; use a new key."
        )
        await _problem(request, reused)(scope, receive, send)
        return
    await _stored_response(record)(scope, receive, send)


async def _run_claimed(
    app: ASGIApp, request: Request, record: IdempotencyRecord, receive: Receive, send: Send
) -> None:
    """The first request: run it and keep its response, or let go of the key if it failed."""
    sessionmaker = _sessionmaker(request)
    capture = _ResponseCapture(send)
    try:
        try:
            body = await _read_body(receive)
        except HTTPException as exc:
            await release(sessionmaker, record.id)
            await _too_large(request, exc)(request.scope, receive, send)
            return
        fingerprint = request_fingerprint(request, body)
        await app(request.scope, _replaying(body, receive), capture.send)
    except BaseException:
        await release(sessionmaker, record.id)
        raise
    if capture.storable():
        await store(sessionmaker, record.id, fingerprint, capture)
    else:
        await release(sessionmaker, record.id)


def _too_large(request: Request, exc: HTTPException) -> Response:
    # The body passed the size limit while this middleware read it, outside the app's handlers.
    body = problem(413, "payload-too-large", "Payload too large", exc.detail, request.url.path)
    return problem_response(body)


def _stored_response(record: IdempotencyRecord) -> Response:
    response = Response(record.response_body or b"", status_code=record.response_status or 200)
    response.raw_headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in record.response_headers or []
    ] + [
        (b"content-length", str(len(record.response_body or b"")).encode()),
        (REPLAYED_HEADER.lower().encode(), b"true"),
    ]
    return response


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then waits on the real one (for a
    disconnect)."""
    sent = False

    async def replaying_receive() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replaying_receive


class _ResponseCapture:
    """Passes the app's response on, keeping a copy to store."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None
        self.headers: list[list[str]] = []
        self.chunks: list[bytes] = []
        self.complete = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [
                [name.decode("latin-1"), value.decode("latin-1")]
                for name, value in message.get("headers", [])
                if name.lower() != b"content-length"
            ]
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        await self._send(message)

    def storable(self) -> bool:
        """Whether the response is whole and final enough to replay."""
        status = self.status or 500
        return self.complete and status < 500 and status not in RETRY_STATUSES


def request_fingerprint(request: Request, body: bytes) -> str:
    """SHA-256 of method, path, query and body. A multipart body's boundary is random per
    request, so it is replaced by a fixed one: a client that rebuilds the same upload for its
    retry still sends the same request."""
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}?{request.url.query}\n".encode())
    match = _BOUNDARY.search(request.headers.get("content-type", "").encode("latin-1"))
    if match and request.headers.get("content-type", "").lower().startswith("multipart/"):
        body = body.replace(b"--" + match.group(1), NEUTRAL_BOUNDARY)
    digest.update(body)
    return digest.hexdigest()


async def claim(
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: str,
    key: str,
    lifetime_seconds: float,
) -> tuple[IdempotencyRecord, bool]:
    """Claim the tenant's key for a request now starting: the new record and True, or the
    record already there (in flight or done) and False. Expired records and abandoned claims
    are cleared first."""
    async with sessionmaker() as session:
        now = await database_now(session)
        await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now))
        await session.execute(
            delete(IdempotencyRecord).where(
                _same_key(tenant_id, key),
                IdempotencyRecord.status == "in_flight",
                IdempotencyRecord.created_at < now - ABANDONED_AFTER,
            )
        )
        record = IdempotencyRecord(
            id=new_id("idem"),
            tenant_id=tenant_id,
            key=key,
            status="in_flight",
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime_seconds),
        )
        session.add(record)
        try:
            # On Postgres a concurrent claim of the same key waits here for the other's commit.
            await session.commit()
            return record, True
        except IntegrityError:
            await session.rollback()
        existing = await session.scalar(select(IdempotencyRecord).where(_same_key(tenant_id, key)))
    # Gone between the two statements: its request was released; report it as in flight, and
    # the caller's retry will find the key free.
    return existing or record, False


def _same_key(tenant_id: str, key: str) -> Any:
    return (IdempotencyRecord.tenant_id == tenant_id) & (IdempotencyRecord.key == key)


async def store(
    sessionmaker: async_sessionmaker[AsyncSession],
    record_id: str,
    fingerprint: str,
    capture: _ResponseCapture,
) -> None:
    """Keep the first response for retries. Failing to is logged, not raised: the response is
    already sent, and the claim lapses after ABANDONED_AFTER."""
    with anyio.CancelScope(shield=True):
        try:
            await _store(sessionmaker, record_id, fingerprint, capture)
        except Exception:
            logger.exception("could not store the response of idempotency claim %s", record_id)


async def _store(
    sessionmaker: async_sessionmaker[AsyncSession],
    record_id: str,
    fingerprint: str,
    capture: _ResponseCapture,
) -> None:
    async with sessionmaker() as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == record_id)
            .values(
                status="done",
                request_hash=fingerprint,
                response_status=capture.status,
                response_headers=capture.headers,
                response_body=b"".join(capture.chunks),
            )
        )
        await session.commit()


async def release(sessionmaker: async_sessionmaker[AsyncSession], record_id: str) -> None:
    """Drop a claim whose request failed, so a retry runs again; shielded, so a request that
    was cancelled (a client gone) still lets go of its key."""
    with anyio.CancelScope(shield=True):
        try:
            async with sessionmaker() as session:
                await session.execute(
                    delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id)
                )
                await session.commit()
        except Exception:
            logger.exception("could not release idempotency claim %s", record_id)
