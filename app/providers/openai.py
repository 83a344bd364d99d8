"""The `openai` provider: OpenAI's GPT Image models over the Images API
(`POST /v1/images/generations`), spoken with httpx, with timeouts, retries and typed failures."""

import asyncio
import base64
import binascii
import email.utils
import io
import logging
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from PIL import Image

from app.errors import (
    DarkroomError,
    InvalidForModel,
    ModerationBlocked,
    ProviderAuthFailed,
    ProviderError,
    ProviderMalformedResponse,
    ProviderOverloaded,
    ProviderQuotaExhausted,
)
from app.imaging.codecs import inspect_image
from app.providers.base import GenerateCall, GenerateResult, ModelCapabilities, ModelSpec

logger = logging.getLogger(__name__)

PROVIDER = "openai"


# Sizes: the standard sizes that image_generate_params.py (openai 3.57.0) says every GPT image
# model takes. gpt-image-2 and gpt-image-2.5 also take any WxH in multiples of 16 up to
# 3840x2160, which ModelCapabilities cannot express yet.
STANDARD_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))

# The largest image the API documents (3840x2160); anything bigger is not a real answer.
MAX_OUTPUT_PIXELS = 3840 * 2160

# Model ids from openai 3.57.0, types/image_model.py (ImageModel), checked against the `model`
# docs in types/image_generate_params.py on 2026-11-28. Left out: gpt-image-1 (shut down
# 2026-10-23), dall-e-2 and dall-e-3 (retired 2026-05-12), and chatgpt-image-latest (a moving
# alias whose limits the types do not state). The middle column is transparent-background
# support: the types name only the gpt-image-2.5 family; for gpt-image-2 it is "in preview".
MODEL_TABLE: tuple[tuple[str, bool, str], ...] = (
    ("gpt-image-2", False, "OpenAI GPT Image 2: strong prompt following and text rendering."),
    ("gpt-image-2-2026-04-21", False, "GPT Image 2 pinned to its 2026-04-21 snapshot."),
    ("gpt-image-2.5-flare", True, "OpenAI GPT Image 2.5 Flare: the faster 2.5 model."),
    ("gpt-image-2.5-flare-2026-09-08", True, "GPT Image 2.5 Flare pinned to 2026-09-08."),
    ("gpt-image-2.5-sunburst", True, "OpenAI GPT Image 2.5 Sunburst: slower, finer detail."),
    ("gpt-image-2.5-sunburst-2026-09-08", True, "GPT Image 2.5 Sunburst pinned to 2026-09-08."),
    ("gpt-image-2.6-flare", False, "OpenAI GPT Image 2.6 Flare: the faster 2.6 model."),
    ("gpt-image-2.6-sunburst", False, "OpenAI GPT Image 2.6 Sunburst: slower, finer detail."),
    ("gpt-image-1.5", False, "OpenAI GPT Image 1.5, the generation before GPT Image 2."),
    ("gpt-image-1-mini", False, "OpenAI GPT Image 1 mini: low cost; OpenAI marks it deprecated."),
)

MODELS = [
    ModelSpec(
        provider=PROVIDER,
        name=name,
        description=f"{description} No seed: reruns of one prompt differ.",
        capabilities=ModelCapabilities(
            sizes=STANDARD_SIZES,
            transparent_background=transparent,
            # The Images API takes neither a seed nor a negative prompt.
            seed=False,
            negative_prompt=False,
            max_n=10,
        ),
        # OpenAI bills these models per token and we ask for quality "auto", so no fixed
        # per-image price exists; the cost of each image comes from its usage instead.
        price_per_image_usd=None,
    )
    for name, transparent, description in MODEL_TABLE
]


@dataclass(frozen=True)
class TokenPrices:
    """A model's list prices in USD per million tokens."""

    text_input: float
    image_input: float
    image_output: float


# From OpenAI's model pages, developers.openai.com/api/docs/models/<id> (as indexed, read
# 2026-11-28). Only models whose page showed prices are here: the others cost None, not a guess.
TOKEN_PRICES = {
    "gpt-image-2.6-sunburst": TokenPrices(text_input=5.00, image_input=8.00, image_output=30.00),
    "gpt-image-1-mini": TokenPrices(text_input=2.00, image_input=2.50, image_output=8.00),
}

# Retries: jittered exponential backoff from BACKOFF_BASE_SECONDS up to BACKOFF_CAP_SECONDS,
# unless the server names a wait, which is honoured up to MAX_RETRY_AFTER_SECONDS.
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
MAX_RETRY_AFTER_SECONDS = 60.0

# Error codes OpenAI uses when its safety system refuses a prompt or the image it made.
MODERATION_CODES = {
    "moderation_blocked",
    "content_policy_violation",
    "image_content_policy_violation",
}


def problem_extensions(**found: object) -> dict[str, Any]:
    """The problem extensions of an OpenAI failure: the provider and whichever ids are known."""
    return {"provider": PROVIDER} | {name: value for name, value in found.items() if value}


@dataclass(frozen=True)
class RetryableFailure:
    """An attempt that failed in a way the next one may not: why, and any wait the server named."""

    reason: str
    retry_after: float | None = None
    extensions: dict[str, Any] = field(default_factory=problem_extensions)


@dataclass(frozen=True)
class VendorError:
    """An error answer, read from OpenAI's `{"error": {"message", "type", "param", "code"}}`,
    with the API key scrubbed from the message."""

    status: int
    message: str
    code: str | None
    param: str | None
    request_id: str | None

    @classmethod
    def from_response(cls, response: httpx.Response, api_key: str) -> "VendorError":
        """Whatever of the error body parses; a body that is not OpenAI's shape still maps."""
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            error = None
        error = error if isinstance(error, dict) else {}
        message = str(error.get("message") or "no error message")
        code, param = error.get("code"), error.get("param")
        return cls(
            status=response.status_code,
            message=message.replace(api_key, "[redacted]") if api_key else message,
            code=None if code is None else str(code),
            param=None if param is None else str(param),
            request_id=response.headers.get("x-request-id"),
        )

    @property
    def retryable(self) -> bool:
        """Rate limits, request timeouts and server errors, but not an exhausted quota."""
        if self.code == "insufficient_quota":
            return False
        return self.status in (408, 429) or self.status >= 500

    @property
    def summary(self) -> str:
        """Status and message, for details and logs."""
        return f"HTTP {self.status}: {self.message}"

    @property
    def extensions(self) -> dict[str, Any]:
        """Problem extensions that let an operator find this failure in OpenAI's records."""
        return problem_extensions(
            provider_status=self.status,
            provider_code=self.code,
            provider_request_id=self.request_id,
        )

    def to_exception(self) -> ProviderError:
        """The typed failure for an answer not worth retrying."""
        if self.status == 401:
            # OpenAI echoes part of the rejected key in this message, so it stays out.
            return ProviderAuthFailed(
                "OpenAI rejected this server's API key (HTTP 401).", **self.extensions
            )
        if self.status == 403:
            return ProviderAuthFailed(f"OpenAI refused access: {self.summary}", **self.extensions)
        if self.code == "insufficient_quota":
            return ProviderQuotaExhausted(f"OpenAI: {self.message}", **self.extensions)
        if self.code in MODERATION_CODES:
            return ModerationBlocked(f"OpenAI's safety system: {self.message}", **self.extensions)
        param = f" (parameter {self.param!r})" if self.param else ""
        return InvalidForModel(
            f"OpenAI rejected the request{param}: {self.message}", **self.extensions
        )


class OpenAIProvider:
    """OpenAI's image models, available when an API key is configured."""

    name = PROVIDER

    def __init__(
        self,
        api_key: str | None,
        base_url: str = "https://api.openai.com/v1",
        *,
        timeout_seconds: float = 120,
        max_retries: int = 3,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._timeout_seconds = timeout_seconds
        self._timeout = httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 10.0))
        self._max_retries = max_retries
        self._client = client

    def models(self) -> list[ModelSpec]:
        """The GPT image models."""
        return list(MODELS)

    def is_available(self) -> bool:
        """Only with an API key."""
        return bool(self._api_key)

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One image at the call's size. The API takes no seed or negative prompt, so neither
        is sent (the capabilities say so)."""
        if not self._api_key:
            raise ProviderAuthFailed("No OpenAI API key is configured on this server.")
        response = await self._post_with_retries(request_body(call))
        data, usage = read_image_payload(response)
        image = await asyncio.to_thread(decode_image, data)
        logger.debug("openai %s usage: %s", call.model, usage)
        return GenerateResult(image=image, cost_usd=cost_of(call.model, usage))

    async def _post_with_retries(self, body: dict[str, Any]) -> httpx.Response:
        """The first 2xx answer within `max_retries` retries; ProviderOverloaded after that."""
        attempts = self._max_retries + 1
        for attempt in range(1, attempts + 1):
            outcome = await self._attempt(body)
            if isinstance(outcome, httpx.Response):
                return outcome
            failure = outcome
            if attempt < attempts:
                delay = backoff_delay(attempt, failure.retry_after)
                logger.warning(
                    "openai: %s; retry %d of %d in %.2f s",
                    failure.reason,
                    attempt,
                    self._max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
        tried = "once" if attempts == 1 else f"{attempts} times"
        raise ProviderOverloaded(
            f"OpenAI did not make the image: {failure.reason} (tried {tried}).",
            **failure.extensions,
        )

    async def _attempt(self, body: dict[str, Any]) -> httpx.Response | RetryableFailure:
        """One request: the 2xx answer, or a failure worth retrying. Raises on the rest."""
        try:
            response = await self._send(body)
        except (httpx.TimeoutException, TimeoutError):
            return RetryableFailure(f"no answer within {self._timeout_seconds:g} s")
        except httpx.RequestError as exc:
            host = httpx.URL(self._base_url).host
            return RetryableFailure(f"could not reach {host} ({type(exc).__name__})")
        if response.is_success:
            return response
        error = VendorError.from_response(response, self._api_key or "")
        if not error.retryable:
            raise error.to_exception()
        return RetryableFailure(
            error.summary, retry_after_seconds(response.headers), error.extensions
        )

    async def _send(self, body: dict[str, Any]) -> httpx.Response:
        url = f"{self._base_url}/images/generations"
        headers = {"Authorization": f"Bearer {self._api_key}"}
        # httpx times each connect and read; this bounds the whole attempt.
        async with asyncio.timeout(self._timeout_seconds):
            if self._client is not None:
                return await self._client.post(
                    url, json=body, headers=headers, timeout=self._timeout
                )
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                return await client.post(url, json=body, headers=headers)


def request_body(call: GenerateCall) -> dict[str, Any]:
    """The JSON body of one generation, per openai's ImageGenerateParams. PNG, because the
    task re-encodes anyway; moderation is left at OpenAI's default."""
    return {
        "model": call.model,
        "prompt": call.prompt,
        "n": 1,
        "size": f"{call.width}x{call.height}",
        "output_format": "png",
        "quality": "auto",
    }


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """The wait the server asked for: OpenAI's `retry-after-ms`, else `Retry-After` as seconds
    or an HTTP date. None if absent or unreadable."""
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


def backoff_delay(retry: int, retry_after: float | None) -> float:
    """Seconds to wait before retry number `retry` (from 1): the server's wait if it named one,
    capped, else exponential backoff with jitter so that many workers do not retry in step."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER_SECONDS)
    ceiling = min(BACKOFF_BASE_SECONDS * 2 ** (retry - 1), BACKOFF_CAP_SECONDS)
    return ceiling * random.uniform(0.5, 1.0)


def read_image_payload(response: httpx.Response) -> tuple[bytes, object]:
    """The first image's bytes and the `usage` object from a 2xx answer."""
    extensions = problem_extensions(provider_request_id=response.headers.get("x-request-id"))
    try:
        payload = response.json()
    except ValueError as exc:
        raise ProviderMalformedResponse("OpenAI's answer is not JSON.", **extensions) from exc
    data = payload.get("data") if isinstance(payload, dict) else None
    first = data[0] if isinstance(data, list) and data else None
    encoded = first.get("b64_json") if isinstance(first, dict) else None
    if not isinstance(encoded, str) or not encoded:
        raise ProviderMalformedResponse("OpenAI's answer has no data[0].b64_json.", **extensions)
    try:
        data = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise ProviderMalformedResponse(
            "OpenAI's image is not valid base64.", **extensions
        ) from exc
    return data, payload.get("usage")


def decode_image(data: bytes) -> Image.Image:
    """Validate untrusted image bytes, then decode them to RGB, or RGBA if they carry alpha."""
    try:
        inspect_image(data, max_pixels=MAX_OUTPUT_PIXELS)
    except DarkroomError as exc:
        raise ProviderMalformedResponse(
            f"OpenAI's image is unusable: {exc.detail}", **problem_extensions()
        ) from exc
    with Image.open(io.BytesIO(data)) as image:
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")


def cost_of(model: str, usage: object) -> float | None:
    """What one image cost, from the usage OpenAI reported and the model's token prices; None
    when either is unknown."""
    prices = TOKEN_PRICES.get(model)
    if prices is None or not isinstance(usage, dict):
        return None
    try:
        inputs = usage["input_tokens_details"]
        text_tokens, image_tokens = int(inputs["text_tokens"]), int(inputs["image_tokens"])
        output_tokens = int(usage["output_tokens"])
    except (KeyError, TypeError, ValueError):
        return None
    total = (
        text_tokens * prices.text_input
        + image_tokens * prices.image_input
        + output_tokens * prices.image_output
    )
    return total / 1_000_000
