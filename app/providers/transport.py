"""How every vendor adapter talks HTTP: a time limit per attempt, retries with jittered
exponential backoff (honouring Retry-After) on failures worth retrying, a circuit breaker per
vendor (app/providers/breaker.py), and downloads of vendor-hosted images under the fetcher's
address rules and limits.

An adapter supplies only what is its vendor's own: base URL, auth headers, and `read_error`,
which turns a non-2xx answer into a typed ProviderError (its vendor's own cases first, then
`error_for_status`). Whether an answer is retried follows the error's `retryable` flag, so a
rate limit (ProviderOverloaded) is retried and an exhausted quota or a moderation refusal is not.
A 2xx answer is read within its attempt (`call`), so an answer that is no usable result (cut-off
JSON, a missing field, an undecodable image: ProviderMalformedResponse) is retried like a 5xx and
counts as a failure for the breaker.

Also here, because every adapter needs them: the media type of an input image it uploads, and
the check and decoding of the image bytes a vendor sends back.
"""

import asyncio
import email.utils
import logging
import math
import random
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypedDict, TypeVar

import httpx
from PIL import Image

from app.cpu import thread_count
from app.errors import (
    DarkroomError,
    InvalidForModel,
    ProviderAuthFailed,
    ProviderError,
    ProviderMalformedResponse,
    ProviderOverloaded,
    ProviderTimedOut,
)
from app.fetcher import UrlPolicy, UrlRefused, fetch_image
from app.imaging.codecs import MEDIA_TYPES, open_checked
from app.providers.base import InputImage
from app.providers.breaker import CircuitBreaker

logger = logging.getLogger(__name__)

# Retries: jittered exponential backoff from the first wait (BACKOFF_BASE_SECONDS unless set) up
# to BACKOFF_CAP_SECONDS, unless the server names a wait, honoured up to MAX_RETRY_AFTER_SECONDS.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
MAX_RETRY_AFTER_SECONDS = 60.0

# Connections one process keeps to one vendor (DARKROOM_PROVIDER_MAX_CONNECTIONS): calls past it
# wait for a free one. Idle ones past the second figure are closed.
MAX_VENDOR_CONNECTIONS = 500
MAX_IDLE_VENDOR_CONNECTIONS = 100

# A half-open breaker's trial call holds its claim this much longer than its time limit, for
# reading the answer.
TRIAL_MARGIN_SECONDS = 10.0

# Vendor-hosted results: the largest file and the longest wait accepted for one image.
MAX_DOWNLOAD_BYTES = 50 * 1024 * 1024
DOWNLOAD_TIMEOUT_SECONDS = 60.0

# The formats an input image may have on its way to a vendor (what submission accepts).
INPUT_FORMATS = ("png", "jpeg", "webp")

ErrorReader = Callable[[httpx.Response], ProviderError]

# How the transport waits between attempts: asyncio.sleep, unless a caller (a test) passes its own.
Sleep = Callable[[float], Awaitable[None]]


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """The wait the server asked for: `retry-after-ms` (OpenAI's), else `Retry-After` as
    seconds or an HTTP date. None if absent or unreadable."""
    milliseconds = _non_negative_number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _non_negative_number(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _non_negative_number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def backoff_delay(
    retry: int, retry_after: float | None, base_seconds: float = BACKOFF_BASE_SECONDS
) -> float:
    """Seconds to wait before retry number `retry` (from 1): the server's wait if it named one,
    capped, else exponential backoff from `base_seconds` with jitter so that many workers do not
    retry in step."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER_SECONDS)
    ceiling = min(base_seconds * 2 ** (retry - 1), BACKOFF_CAP_SECONDS)
    return ceiling * random.uniform(0.5, 1.0)


def default_error(vendor: str) -> ErrorReader:
    """A reader for vendors whose error bodies carry nothing an adapter must act on: the status
    alone decides."""

    def read(response: httpx.Response) -> ProviderError:
        return error_for_status(vendor, response.status_code, response.text[:300])

    return read


def error_for_status(
    vendor: str,
    status: int,
    message: str,
    *,
    label: str | None = None,
    retryable: bool | None = None,
    **extensions: Any,
) -> ProviderError:
    """The typed failure for a vendor's HTTP status, the last step of every error reader once
    its vendor's own cases (moderation, quota) are ruled out: 401/403 the operator's
    credentials, 408/429/5xx worth retrying, any other status invalid for the model.

    `label` names the vendor in the detail (its provider name by default). `retryable` is the
    vendor's own word, where it sends one, on whether the same request may succeed; it overrides
    the status for anything but an auth failure. `extensions` join `provider` and
    `provider_status` in the problem."""
    name = label or vendor
    extensions = {"provider": vendor, "provider_status": status} | extensions
    if status == 401:
        # Some vendors echo part of the rejected key in the message, so it stays out.
        return ProviderAuthFailed(
            f"{name} rejected this server's credentials (HTTP 401).", **extensions
        )
    message = message or "no message"
    if status == 403:
        return ProviderAuthFailed(f"{name} refused access (HTTP 403): {message}", **extensions)
    summary = f"{name} answered HTTP {status}: {message}"
    server_side = status in (408, 429) or status >= 500
    if retryable or (retryable is None and server_side):
        return ProviderOverloaded(summary, **extensions)
    if server_side:
        # The vendor says this failure would repeat: not worth a retry, nor the request's fault.
        return ProviderError(summary, **extensions)
    return InvalidForModel(summary, **extensions)


def input_media_type(image: InputImage, vendor: str) -> str:
    """The media type to upload an input image as; InvalidForModel for a format no vendor
    adapter sends (submission accepts only INPUT_FORMATS)."""
    if image.format not in INPUT_FORMATS:
        raise InvalidForModel(
            f"{vendor} takes PNG, JPEG or WebP input images, not {image.format!r}.",
            provider=vendor,
        )
    return MEDIA_TYPES[image.format]


# Vendor answers read and made sense of at once by a process, across vendors. Their bodies (a
# base64 image is megabytes) and the decodes that check them are what a burst of finished calls
# holds in memory, and the decodes wait for the pixel threads anyway; the answers past these
# wait unread in their connections.
ANSWERS_PER_THREAD = 2
_answer_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def answer_slots() -> asyncio.Semaphore:
    """The running event loop's answer slots: a few per pixel thread."""
    loop = asyncio.get_running_loop()
    slots = _answer_slots.get(loop)
    if slots is None:
        slots = _answer_slots[loop] = asyncio.Semaphore(ANSWERS_PER_THREAD * thread_count())
    return slots


async def read_whole(response: httpx.Response) -> httpx.Response:
    """A streamed answer read to the end, as a response of its own. httpx's streamed response
    and its stream refer to each other, so a body read into it stays in memory until the
    garbage collector next visits that cycle (megabytes a vendor answer, hundreds of them in a
    burst); this copy is freed as soon as the reader lets go of it."""
    # Raw bytes: the copy undoes any content encoding as it is made.
    body = b"".join([chunk async for chunk in response.aiter_raw()])
    return httpx.Response(
        response.status_code, headers=response.headers, content=body, request=response.request
    )


def decode_vendor_image(
    data: bytes, vendor: str, max_pixels: int, label: str | None = None
) -> Image.Image:
    """Image bytes a vendor sent, checked like any untrusted upload (a supported format, at most
    `max_pixels`, decodable to the end), as an RGB image, or RGBA if they carry alpha. An RGB or
    RGBA PNG or JPEG is decoded only when its pixels are first used, off the event loop, so an
    image stored as the vendor sent it is never decoded. ProviderMalformedResponse naming the
    vendor (`label`, else its provider name) when they are no usable image. CPU-bound: call it
    in a thread."""
    try:
        _, image = open_checked(data, max_pixels=max_pixels)
    except DarkroomError as exc:
        raise ProviderMalformedResponse(
            f"{label or vendor}'s image is unusable: {exc.detail}", provider=vendor
        ) from exc
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "RGBA" if has_alpha else "RGB"
    return image if image.mode == mode else image.convert(mode)


class TransportOptions(TypedDict, total=False):
    """The VendorHTTP options an adapter passes through from the settings (or a test): the time
    limit per request, the retry budget and first backoff, the cap on connections, the address
    rules for downloads, the circuit breaker, and the first pause between polls of a queued job."""

    timeout_seconds: float
    max_retries: int
    backoff_seconds: float
    max_connections: int
    download_policy: UrlPolicy | None
    breaker: CircuitBreaker | None
    poll_interval_seconds: float


T = TypeVar("T")

# What an adapter makes of a 2xx answer; ProviderMalformedResponse when it is no usable result.
AnswerReader = Callable[[httpx.Response], Awaitable[T]]


async def _as_sent(response: httpx.Response) -> httpx.Response:
    return response


@dataclass(frozen=True)
class _Retry:
    """An attempt that failed in a way the next one may not, and any wait the server named."""

    error: ProviderError
    retry_after: float | None = None


class VendorHTTP:
    """An HTTP session with one vendor's API. Queue vendors poll under its time limit, starting
    at its poll interval; `sleep` is how it waits before a retry."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        headers: dict[str, str],
        read_error: ErrorReader | None = None,
        secrets: tuple[str, ...] = (),
        timeout_seconds: float = 120.0,
        max_retries: int = 3,
        max_connections: int = MAX_VENDOR_CONNECTIONS,
        backoff_seconds: float = BACKOFF_BASE_SECONDS,
        breaker: CircuitBreaker | None = None,
        download_policy: UrlPolicy | None = None,
        poll_interval_seconds: float = 0.5,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self._headers = headers
        self._read_error = read_error or default_error(vendor)
        self._secrets = tuple(secret for secret in secrets if secret)
        self.timeout_seconds = timeout_seconds
        self._timeout = httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0))
        self.max_retries = max_retries
        self._limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=min(max_connections, MAX_IDLE_VENDOR_CONNECTIONS),
        )
        self.backoff_seconds = backoff_seconds
        self.breaker = breaker or CircuitBreaker()
        self._download_policy = download_policy or UrlPolicy()
        self.poll_interval_seconds = poll_interval_seconds
        self._sleep = sleep
        self._pool: httpx.AsyncClient | None = None

    def url(self, path: str) -> str:
        """An absolute URL for a path under the base URL (absolute URLs pass through)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The first 2xx answer within the retry budget (see `call`). `kwargs` go to httpx
        (json, data, files, params, headers)."""
        return await self.call(method, path, _as_sent, **kwargs)

    async def request_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON of the first 2xx answer that is JSON, within the retry budget."""
        return await self.call(method, path, self._read_json, **kwargs)

    async def call(self, method: str, path: str, read: AnswerReader[T], **kwargs: Any) -> T:
        """What `read` makes of the first 2xx answer it can use, within the retry budget. Each
        attempt first waits out an open breaker (see CircuitBreaker.admit). A failure not worth
        retrying raises its typed error at once; retryable ones, a ProviderMalformedResponse
        from `read` included, are retried and raise the last one's type once the budget is
        spent. `kwargs` go to httpx (json, data, files, params, headers)."""
        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            outcome = await self._attempt_under_breaker(method, path, kwargs, read)
            if not isinstance(outcome, _Retry):
                return outcome
            if attempt < attempts:
                delay = backoff_delay(attempt, outcome.retry_after, self.backoff_seconds)
                logger.warning(
                    "%s: %s; retry %d of %d in %.2f s",
                    self.vendor,
                    outcome.error.detail,
                    attempt,
                    self.max_retries,
                    delay,
                )
                await self._sleep(delay)
        tried = "once" if attempts == 1 else f"{attempts} times"
        error = outcome.error
        raise type(error)(f"{error.detail} (tried {tried}).", **error.extensions)

    async def _attempt_under_breaker(
        self, method: str, path: str, kwargs: dict[str, Any], read: AnswerReader[T]
    ) -> "T | _Retry":
        """One attempt once the breaker lets it go, its outcome counted by the breaker. An
        answer refused for the request's own sake (a 4xx) still shows the vendor is up."""
        trial = await self.breaker.admit(self.vendor, self.timeout_seconds + TRIAL_MARGIN_SECONDS)
        try:
            outcome = await self._attempt(method, path, kwargs, read)
        except ProviderError:
            await self.breaker.record(self.vendor, succeeded=True, trial=trial)
            raise
        except BaseException:
            if trial:
                # A trial that ended without an answer (canceled, or crashed) tells nothing of
                # the vendor; pausing again frees the trial for another caller after the pause,
                # rather than after the claim runs out.
                await asyncio.shield(self.breaker.record(self.vendor, succeeded=False, trial=True))
            raise
        await self.breaker.record(self.vendor, not isinstance(outcome, _Retry), trial)
        return outcome

    async def _attempt(
        self, method: str, path: str, kwargs: dict[str, Any], read: AnswerReader[T]
    ) -> "T | _Retry":
        """One request and the reading of its answer: the result, or a failure worth
        retrying. Raises on the rest. The answer is read, and made sense of, in one of the
        process's answer slots (see `answer_slots`)."""
        try:
            response = await self._send(method, path, dict(kwargs))
            try:
                async with answer_slots():
                    async with asyncio.timeout(self.timeout_seconds):
                        answer = await read_whole(response)
                    return await self._answered(answer, read)
            finally:
                await response.aclose()
        except (httpx.TimeoutException, TimeoutError):
            return _Retry(
                ProviderTimedOut(
                    f"{self.vendor} sent no answer within {self.timeout_seconds:g} s",
                    provider=self.vendor,
                )
            )
        except httpx.RequestError as exc:
            host = httpx.URL(self.url(path)).host
            return _Retry(
                ProviderOverloaded(
                    f"could not reach {host} ({type(exc).__name__})", provider=self.vendor
                )
            )

    async def _answered(self, response: httpx.Response, read: AnswerReader[T]) -> "T | _Retry":
        if response.is_success:
            return await self._read_answer(response, read)
        error = self._read_error(response)
        error.detail = self.redact(error.detail)
        # str(error), which tracebacks and logs print, is read from args, not from detail.
        error.args = (error.detail,)
        if not error.retryable:
            raise error
        return _Retry(error, retry_after_seconds(response.headers))

    async def _read_answer(self, response: httpx.Response, read: AnswerReader[T]) -> "T | _Retry":
        try:
            return await read(response)
        except ProviderError as error:
            if not error.retryable:
                raise
            return _Retry(error)

    async def _send(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        """The answer's status and headers; its body is still to be read."""
        headers = self._headers | kwargs.pop("headers", {})
        client = self._client()
        request = client.build_request(method, self.url(path), headers=headers, **kwargs)
        # httpx times each connect and read; this bounds the wait for the answer as a whole.
        async with asyncio.timeout(self.timeout_seconds):
            return await client.send(request, stream=True)

    def _client(self) -> httpx.AsyncClient:
        """The session's pooled client, made on first use: calls reuse its connections
        (keep-alive, and HTTP/2 where the vendor offers it over TLS) instead of paying for a
        new client, TLS context and handshake each."""
        if self._pool is None or self._pool.is_closed:
            self._pool = httpx.AsyncClient(
                timeout=self._timeout,
                http2=True,
                limits=self._limits,
            )
        return self._pool

    async def aclose(self) -> None:
        """Close the pooled connections (at the end of the process)."""
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def redact(self, text: str) -> str:
        """The text with every configured secret replaced, for details and logs."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    async def _read_json(self, response: httpx.Response) -> Any:
        return self.json(response)

    def json(self, response: httpx.Response) -> Any:
        """The JSON of a 2xx answer; ProviderMalformedResponse if it is not JSON."""
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderMalformedResponse(
                f"{self.vendor}'s answer is not JSON.", provider=self.vendor
            ) from exc

    async def download(self, url: str) -> bytes:
        """A vendor-hosted result image, under the fetcher's address rules, size and time
        limits; ProviderMalformedResponse when it cannot be had."""
        try:
            fetched = await fetch_image(
                url,
                self._download_policy,
                max_bytes=MAX_DOWNLOAD_BYTES,
                timeout_seconds=DOWNLOAD_TIMEOUT_SECONDS,
            )
        except UrlRefused as exc:
            error = ProviderMalformedResponse(
                f"{self.vendor}'s result could not be downloaded: {exc.detail}",
                provider=self.vendor,
            )
            # The same link would be refused again: asking the vendor anew would buy the image
            # again for nothing.
            error.retryable = False
            raise error from exc
        return fetched.data
