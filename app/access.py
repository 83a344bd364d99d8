"""What every request leaves behind: a request id (the caller's `X-Request-ID`, or one made
here) on its log lines and in its response, one access log line, and its HTTP metrics. The
work is in memory: no query and no Redis call."""

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.errors import internal_error
from app.logs import request_id

logger = logging.getLogger("darkroom.access")

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is taken as is when it is short and plain; anything else (a line break that
# would forge a log line, a megabyte of text) is replaced by one made here.
ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class RequestObservability:
    """ASGI middleware, outermost, so its figures cover every other layer (rate limits and
    body limits included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        current = _request_id(scope)
        token = request_id.set(current)
        began = time.perf_counter()
        status = 500
        responding = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responding
            if message["type"] == "http.response.start":
                status, responding = message["status"], True
                headers = [*message.get("headers", []), (b"x-request-id", current.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here rather than by the app's Exception handler, which Starlette runs
            # outside every middleware: the 500 then carries the request id, and so does the
            # log line of the error.
            if responding:
                raise
            await internal_error(scope["method"], scope["path"])(scope, receive, send_with_id)
        finally:
            _record(scope, status, time.perf_counter() - began, current)
            request_id.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER.encode():
            sent = value.decode("latin-1")
            if ACCEPTED_REQUEST_ID.fullmatch(sent):
                return sent
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The path template of the route that answered (`/v1/jobs/{job_id}`), never the path
    itself, so a label has one value per route."""
    return getattr(scope.get("route"), "path", None) or metrics.UNMATCHED_ROUTE


def _record(scope: Scope, status: int, seconds: float, current_id: str) -> None:
    route, method = route_template(scope), scope["method"]
    metrics.http_requests.labels(route, method, str(status)).inc()
    metrics.http_request_seconds.labels(route, method).observe(seconds)
    query = scope.get("query_string", b"").decode("latin-1")
    path = scope["path"] + (f"?{query}" if query else "")
    duration_ms = round(seconds * 1000, 1)
    logger.info(
        "%s %s %d %.1f ms route=%s request_id=%s",
        method,
        path,
        status,
        duration_ms,
        route,
        current_id,
        extra={
            "route": route,
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
        },
    )
