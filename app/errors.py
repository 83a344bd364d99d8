"""RFC 9457 problem+json: the error types callers can act on, rendered in one place."""

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
JSON_MEDIA_TYPE = "application/json"
PROBLEM_BASE = "https://darkroom.dev/problems/"

logger = logging.getLogger(__name__)


class DarkroomError(Exception):
    """Base of every error a caller sees; subclasses fix the status, slug and title."""

    status = 500
    slug = "internal-error"
    title = "Internal error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The problem object for this error."""
        return problem(self.status, self.slug, self.title, self.detail, instance, self.extensions)


class InvalidInput(DarkroomError):
    status, slug, title = 422, "invalid-input", "Invalid input"


class InvalidImage(DarkroomError):
    status, slug, title = 422, "invalid-image", "Invalid image"


class UnsupportedMediaType(DarkroomError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Unauthorized(DarkroomError):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": "Bearer"}


class NotFound(DarkroomError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(DarkroomError):
    status, slug, title = 409, "conflict", "Conflict"


class IdempotencyKeyReused(DarkroomError):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency key reused"


class ModelUnavailable(DarkroomError):
    status, slug, title = 422, "model-unavailable", "Model unavailable"


class ServiceUnavailable(DarkroomError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class ProviderError(DarkroomError):
    """A model provider failed; recorded on the failed job rather than raised to a request."""

    status, slug, title = 502, "provider-error", "Provider error"
    # Whether another model (a request's fallback_models) may succeed where this one failed.
    retryable = False


class ProviderAuthFailed(ProviderError):
    """The vendor refused this server's credentials: an operator must fix the key or the account."""

    status, slug, title = 502, "provider-auth-failed", "Provider authentication failed"


class ProviderQuotaExhausted(ProviderError):
    """The account behind the key is out of quota or credit; waiting will not help."""

    status, slug, title = 502, "provider-quota-exhausted", "Provider quota exhausted"


class ProviderOverloaded(ProviderError):
    """The vendor was rate limiting, failing or unreachable on every attempt; try again later."""

    status, slug, title = 503, "provider-overloaded", "Provider overloaded"
    retryable = True


class ProviderTimedOut(ProviderOverloaded):
    """The vendor sent no answer (or no finished image) in time. To a caller it is an overloaded
    vendor like any other; the metrics count it apart."""


class ModerationBlocked(ProviderError):
    """The vendor's safety system refused the prompt or the image it made."""

    status, slug, title = 422, "moderation-blocked", "Blocked by moderation"


class EveryModelFailed(ProviderError):
    """Every model a job compared failed; `failures` holds each failed output's problem."""

    status, slug, title = 502, "every-model-failed", "Every model failed"

    def __init__(self, failures: list[dict[str, Any]]) -> None:
        reasons = {failure["model"]: failure["error"]["detail"] for failure in failures}
        named = "; ".join(f"{model}: {reason}" for model, reason in reasons.items())
        super().__init__(f"Every compared model failed. {named}")
        self.failures = failures


class InvalidForModel(ProviderError):
    """The vendor rejected the request as invalid for this model (size, parameter, prompt)."""

    status, slug, title = 422, "invalid-for-model", "Invalid for this model"


class ProviderMalformedResponse(ProviderError):
    """The vendor answered 2xx with something that is not a usable image."""

    status, slug, title = 502, "provider-malformed-response", "Malformed provider response"
    retryable = True


class ExportBudgetExceeded(DarkroomError):
    """No encoding of a target fits the request's `max_bytes`."""

    status, slug, title = 422, "export-budget-exceeded", "Byte budget cannot be met"


class BudgetExceeded(DarkroomError):
    """The job's estimated cost would take the tenant's spend this month past its budget."""

    status, slug, title = 402, "budget-exceeded", "Monthly budget exceeded"


class SignatureInvalid(DarkroomError):
    """The URL's signature does not match its asset and expiry: altered, or signed elsewhere."""

    status, slug, title = 403, "signature-invalid", "Signature invalid"


class UrlExpired(DarkroomError):
    """The signed URL was genuine, but its time is up; mint a new one."""

    status, slug, title = 403, "url-expired", "URL expired"


class TooManyStreams(DarkroomError):
    """The tenant holds every event stream it may in this process; one must close first."""

    status, slug, title = 429, "too-many-streams", "Too many open event streams"


class RateLimited(DarkroomError):
    """The API key made more requests than its rate limit allows; wait for Retry-After."""

    status, slug, title = 429, "rate-limited", "Too many requests"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A problem object (RFC 9457) as a dict."""
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status}
    body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extensions or {})
    return body


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """A problem object as an HTTP response."""
    return JSONResponse(
        body, status_code=body["status"], headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


# Pydantic's words where they name Python's types rather than what a JSON body holds.
_JSON_MESSAGES = {
    "dict_type": "Input should be a JSON object",
    "model_type": "Input should be a JSON object",
    "model_attributes_type": "Input should be a JSON object",
}

_HTTP_SLUGS = {
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
}


def install_error_handlers(app: FastAPI) -> None:
    """Render every error raised by the app, FastAPI or Starlette as problem+json."""

    @app.exception_handler(DarkroomError)
    async def _darkroom(request: Request, exc: DarkroomError) -> JSONResponse:
        return problem_response(exc.to_problem(request.url.path), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if body_not_json(exc.errors()):
            sent = request.headers.get("content-type")
            error = UnsupportedMediaType(wrong_media_type(JSON_MEDIA_TYPE, sent))
            return problem_response(error.to_problem(request.url.path))
        errors = [_field_error(error, exc.body) for error in exc.errors()]
        detail = "; ".join(_detail_part(error) for error in errors)
        body = problem(
            422,
            "validation-error",
            "Validation error",
            detail,
            request.url.path,
            {"errors": errors},
        )
        return problem_response(body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
        title = slug.replace("-", " ").capitalize()
        body = problem(exc.status_code, slug, title, str(exc.detail), request.url.path)
        return problem_response(body, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        body = problem(500, "internal-error", "Internal error", "An unexpected error occurred.")
        return problem_response(body)


def body_not_json(errors: Sequence[Any]) -> bool:
    """Whether a route that takes JSON was sent a body of another media type: FastAPI parses
    only a JSON Content-Type, and hands any other body to validation as bytes."""
    return any(
        tuple(error.get("loc", ())) == ("body",) and isinstance(error.get("input"), bytes)
        for error in errors
    )


def validation_message(error: dict[str, Any]) -> str:
    """Pydantic's message for one validation error, in the words of a JSON API: a JSON object
    where it says dictionary, and a validator's own message without the "Value error, "
    pydantic puts before it."""
    message = _JSON_MESSAGES.get(error.get("type", ""), str(error.get("msg", "invalid")))
    return message.removeprefix("Value error, ")


def wrong_media_type(expected: str, sent: str | None) -> str:
    """What to tell a caller who sent a body as `sent` (a Content-Type header, or None) to a
    route that takes `expected`."""
    sent_as = f"was sent as {sent.partition(';')[0].strip()}" if sent else "had no Content-Type"
    return f"The body must be {expected}; this one {sent_as}."


def _field_error(error: dict[str, Any], body: Any) -> dict[str, Any]:
    if error.get("type") == "json_invalid":
        return _json_syntax_error(error, body)
    location = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
    return {
        "field": ".".join(location),
        "message": validation_message(error),
        "type": error.get("type", "value_error"),
    }


def _json_syntax_error(error: dict[str, Any], document: Any) -> dict[str, Any]:
    """FastAPI reports a body that is not JSON at its character offset, as if that were a field;
    this is the line and column a person looks for, and no field."""
    offset = error["loc"][-1]
    text = document if isinstance(document, str) else ""
    line = text.count("\n", 0, offset) + 1
    column = offset - text.rfind("\n", 0, offset)
    # The decoder's reason, such as "Expecting value" or "Unterminated string starting at".
    reason = str(error.get("ctx", {}).get("error", "Invalid JSON")).removesuffix(" at")
    message = (
        f"The body is not valid JSON: {reason[:1].lower()}{reason[1:]} "
        f"at line {line}, column {column}."
    )
    return {
        "field": None,
        "message": message,
        "type": "json_invalid",
        "line": line,
        "column": column,
    }


def _detail_part(error: dict[str, Any]) -> str:
    if error["field"] is None:
        return str(error["message"])
    return f"{error['field'] or 'body'}: {error['message']}"
