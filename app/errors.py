"""RFC 9457 problem+json: the error types callers can act on, rendered in one place."""

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
JSON_MEDIA_TYPE = "application/json"
# Relative to the deployment, so each `type` resolves to the page this server serves for it.
PROBLEM_BASE = "/problems/"

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


# What each problem `type` means and what a caller should do about it: the page served at
# `/problems/<slug>`. Every slug the code can put in a problem has a row (a test checks it).
PROBLEM_TYPES: dict[str, tuple[str, str]] = {
    "validation-error": (
        "The request did not match the API's schema: a field is missing, of the wrong type or "
        "out of range, or the body is not valid JSON.",
        "Read `errors`: each entry names a `field` and what is wrong with it. Fix those fields "
        "and send the request again.",
    ),
    "invalid-input": (
        "The request is well formed but cannot be done as asked: for example an option the "
        "chosen model lacks, or a reference to an object that cannot be used here.",
        "Read `detail`, change the request and send it again; sending it unchanged fails again.",
    ),
    "invalid-image": (
        "An image in the request could not be used: not decodable, of an unsupported format, "
        "too many pixels, or not matching the image it goes with (a mask of another size).",
        "Send a PNG, JPEG or WebP within the pixel limit, and masks the size of their image.",
    ),
    "url-refused": (
        "An image URL in the request was not fetched: it is not http(s), it resolves to a "
        "loopback, private, link-local or metadata address, or the fetch failed or was too large.",
        "Use a public http(s) URL, or upload the image with `POST /v1/assets` and pass its id.",
    ),
    "unsupported-media-type": (
        "The body is not of the media type the route takes (JSON; multipart for uploads), or an "
        "uploaded file is not an image format Darkroom reads.",
        "Send `Content-Type: application/json` (multipart/form-data for uploads) and a PNG, JPEG "
        "or WebP image.",
    ),
    "unauthorized": (
        "The request has no API key, or its key is unknown, expired or revoked.",
        "Send `Authorization: Bearer <key>` with an active key; ask the operator for a new one "
        "if yours was revoked or has expired.",
    ),
    "not-found": (
        "No such object for this API key's tenant, or no such route. Objects of other tenants "
        "are reported as not found too.",
        "Check the id and the path; ids are only valid with the key of the tenant that made them.",
    ),
    "method-not-allowed": (
        "The route exists but does not take this HTTP method.",
        "Use one of the methods in the `Allow` header of the answer.",
    ),
    "payload-too-large": (
        "The request body is larger than the server accepts (`DARKROOM_MAX_BODY_BYTES`).",
        "Send a smaller body: upload large images once with `POST /v1/assets` and refer to them "
        "by id.",
    ),
    "http-error": (
        "The HTTP request itself could not be served as sent (for example a malformed "
        "multipart body).",
        "Read `detail` and `status`, fix the request and send it again.",
    ),
    "conflict": (
        "The request conflicts with the object's current state (a finished job cannot be "
        "canceled) or with a request under the same `Idempotency-Key` still in flight.",
        "Read the object again; for an idempotent retry, wait and send it again with the same key.",
    ),
    "idempotency-key-reused": (
        "The `Idempotency-Key` was already used for a different request (another method, path "
        "or body) within its lifetime.",
        "Use a fresh key for each distinct request; reuse a key only to retry the same request.",
    ),
    "model-unavailable": (
        "The model named in the request is unknown, or not available on this server (its "
        "provider has no key, or it lacks the mode asked for).",
        "Pick a model that `GET /v1/models` lists as available for this mode.",
    ),
    "budget-exceeded": (
        "The job's estimated cost would take the tenant's spend this month past its budget, or "
        "its cost cannot be estimated and the deployment refuses such jobs under a budget.",
        "Check `GET /v1/usage`; ask the operator to raise the budget, or wait for the next month.",
    ),
    "every-model-failed": (
        "A job comparing several models failed on every one of them; the problem names each "
        "model's reason, and the job's `groups` hold each model's failures.",
        "Read each model's reason: fix the request where it was refused, or try again later "
        "where a vendor was down.",
    ),
    "rate-limited": (
        "The API key made more requests than its rate limit allows.",
        "Wait the seconds in the `Retry-After` header, then send the request again.",
    ),
    "too-many-streams": (
        "The tenant holds as many open job event streams as it may in this process.",
        "Close a stream you no longer read, or poll `GET /v1/jobs/{id}` instead.",
    ),
    "signature-invalid": (
        "A signed asset URL's signature does not match its asset and expiry: it was altered, "
        "truncated or signed by another installation.",
        "Use the URL exactly as `POST /v1/assets/{id}/url` returned it, or mint a new one.",
    ),
    "url-expired": (
        "A signed asset URL was genuine, but its expiry has passed.",
        "Mint a new URL with `POST /v1/assets/{id}/url`.",
    ),
    "export-budget-exceeded": (
        "No encoding of an export target fits the request's `max_bytes`.",
        "Raise `max_bytes`, pick a smaller target or a more compact format (webp, avif).",
    ),
    "service-unavailable": (
        "A dependency of this server (the database or the queue) is not reachable.",
        "Retry later with backoff; if it persists, the operator must check the server.",
    ),
    "internal-error": (
        "The server failed in a way it did not expect. The request may not have been done.",
        "Retry with the same `Idempotency-Key`; if it persists, report it with the time and path.",
    ),
    "provider-error": (
        "The model's provider failed to make the images.",
        "Retry the job, or name `fallback_models` so another model takes over.",
    ),
    "provider-auth-failed": (
        "The model's vendor refused this server's credentials.",
        "The operator must fix the vendor key or account; meanwhile use another model.",
    ),
    "provider-quota-exhausted": (
        "The vendor account behind this server's key is out of quota or credit.",
        "The operator must top up the account; waiting will not help. Use another model.",
    ),
    "provider-overloaded": (
        "The vendor was rate limiting, failing, unreachable or too slow on every attempt.",
        "Retry later, or name `fallback_models` so another model takes over.",
    ),
    "provider-malformed-response": (
        "The vendor answered with something that is not a usable image.",
        "Retry the job, or use another model.",
    ),
    "moderation-blocked": (
        "The vendor's safety system refused the prompt or the image it made.",
        "Change the prompt or the input images; retrying unchanged is refused again.",
    ),
    "invalid-for-model": (
        "The vendor rejected the request as invalid for this model (a size, a parameter, the "
        "prompt).",
        "Read `detail`, and check the model's capabilities in `GET /v1/models`.",
    ),
    "job-timeout": (
        "The job ran longer than the server allows for one job (`DARKROOM_JOB_TIMEOUT_SECONDS`).",
        "Submit it again, with fewer or smaller outputs, or with a faster model.",
    ),
    "worker-lost": (
        "The worker running the job stopped (crashed or was killed) too many times; the job was "
        "not run again.",
        "Submit the job again; if it keeps failing, report it to the operator.",
    ),
}


def problem_page(slug: str) -> str | None:
    """The plain-text page for one problem type, or None for a slug Darkroom never uses."""
    if slug not in PROBLEM_TYPES:
        return None
    meaning, action = PROBLEM_TYPES[slug]
    return f"{PROBLEM_BASE}{slug}\n\nWhat it means: {meaning}\n\nWhat to do: {action}\n"


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

HTTP_SLUGS = {
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
}
# The slug of any other HTTP error FastAPI or Starlette raise.
HTTP_ERROR_SLUG = "http-error"


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
        slug = HTTP_SLUGS.get(exc.status_code, HTTP_ERROR_SLUG)
        title = slug.replace("-", " ").capitalize()
        body = problem(exc.status_code, slug, title, str(exc.detail), request.url.path)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem_response(body, headers)

    # What RequestObservability does not catch (an error in that middleware itself).
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return internal_error(request.method, request.url.path)


def internal_error(method: str, path: str) -> JSONResponse:
    """Log the exception being handled as an unhandled error of the request; the 500 problem
    that answers it (which says nothing of the exception)."""
    logger.exception("unhandled error on %s %s", method, path)
    body = problem(500, "internal-error", "Internal error", "An unexpected error occurred.")
    return problem_response(body)


def allowed_methods(request: Request) -> list[str]:
    """The methods of the path template this path matches first, as Starlette routes it:
    its 405 names only those of the first route it matched, where a path has a route per
    method (and `/v1/webhooks/signing-secret` is not `/v1/webhooks/{endpoint_id}`)."""
    routes = list(_plain_routes(request.app.router.routes))
    path = request.scope["path"]
    template = next((route.path_format for route in routes if route.path_regex.match(path)), None)
    methods = {
        method for route in routes if route.path_format == template for method in route.methods
    }
    return sorted(methods)


def _plain_routes(routes: Sequence[Any]) -> Iterator[Any]:
    # FastAPI keeps an included router's routes behind one entry of the app's router.
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _plain_routes(included.routes)
        elif getattr(route, "methods", None) and hasattr(route, "path_regex"):
            yield route


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
