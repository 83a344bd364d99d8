"""What the queue vendors (bfl, replicate, fal) share: waiting for a submitted job under one
overall deadline with a growing pause between polls, then fetching and checking the image it
made. Each vendor says only how to read one poll; this module decides how long to keep asking.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from math import gcd
from typing import Any, TypeVar

import httpx
import pybase64
from PIL import Image

from app.cpu import run_cpu
from app.errors import DarkroomError, ProviderMalformedResponse, ProviderTimedOut
from app.providers.base import InputImage
from app.providers.transport import VendorHTTP, decode_vendor_image, input_media_type

logger = logging.getLogger(__name__)

Result = TypeVar("Result")

# Polls start at the adapter's interval and grow by this factor up to the cap, so a fast model
# is picked up quickly and a slow queue is not hammered.
POLL_BACKOFF_FACTOR = 1.5
MAX_POLL_INTERVAL_SECONDS = 5.0

# The largest image a queue vendor is believed to return (FLUX ultra makes about 4 megapixels;
# this leaves room); anything larger is not a real answer.
MAX_RESULT_PIXELS = 4096 * 4096

# How long a best-effort cancel of an abandoned job may take.
CANCEL_TIMEOUT_SECONDS = 5.0

DEFAULT_PORTS = {"http": 80, "https": 443}


async def poll_until_done(
    check: Callable[[], Awaitable[Result | None]],
    *,
    vendor: str,
    deadline_seconds: float,
    interval_seconds: float,
    on_deadline: Callable[[], Awaitable[object]] | None = None,
    **extensions: Any,
) -> Result:
    """Call `check` until it returns a result (None means still running; it raises on a
    failure), pausing between calls. Past `deadline_seconds` in all, `on_deadline` runs (a
    best-effort cancel) and ProviderOverloaded is raised, so fallbacks may take over."""
    deadline = asyncio.timeout(deadline_seconds)
    try:
        async with deadline:
            pause = interval_seconds
            while True:
                result = await check()
                if result is not None:
                    return result
                await asyncio.sleep(pause)
                pause = min(
                    pause * POLL_BACKOFF_FACTOR, max(interval_seconds, MAX_POLL_INTERVAL_SECONDS)
                )
    except TimeoutError:
        if not deadline.expired():
            raise
    if on_deadline is not None:
        await _cancel_quietly(vendor, on_deadline)
    raise ProviderTimedOut(
        f"{vendor} did not finish the image within {deadline_seconds:g} s.",
        provider=vendor,
        **extensions,
    )


async def _cancel_quietly(vendor: str, cancel: Callable[[], Awaitable[object]]) -> None:
    # An abandoned job may still be billed; a failed cancel must not hide the deadline.
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT_SECONDS):
            await cancel()
    except (DarkroomError, TimeoutError) as exc:
        logger.warning("%s: could not cancel an abandoned job: %s", vendor, exc)


async def fetch_result_image(http: VendorHTTP, url: object) -> tuple[Image.Image, bytes]:
    """Download the image a vendor hosts at `url` and decode it, checked like any untrusted
    image: the pixels and the file as downloaded. ProviderMalformedResponse if the URL is
    missing or the bytes are no usable image."""
    if not isinstance(url, str) or not url:
        raise ProviderMalformedResponse(
            f"{http.vendor}'s finished job names no result image.", provider=http.vendor
        )
    data = await http.download(url)
    image = await run_cpu(decode_vendor_image, data, http.vendor, MAX_RESULT_PIXELS)
    return image, data


def base64_image(image: InputImage) -> str:
    """The image's original bytes as plain base64, for vendors that take it in JSON."""
    return pybase64.b64encode(image.data).decode("ascii")


def data_uri(image: InputImage, vendor: str) -> str:
    """The image as a `data:` URI, which Replicate and fal accept wherever they take a URL."""
    media_type = input_media_type(image, vendor)
    return f"data:{media_type};base64,{base64_image(image)}"


def reduced_ratio(width: int, height: int) -> tuple[int, int]:
    """`width:height` in lowest terms."""
    divisor = gcd(width, height)
    return width // divisor, height // divisor


def nearest_ratio(width: int, height: int, ratios: tuple[str, ...]) -> str:
    """The `W:H` string among `ratios` closest to width/height."""
    wanted = width / height
    return min(ratios, key=lambda ratio: abs(_ratio_value(ratio) - wanted))


def _ratio_value(ratio: str) -> float:
    width, _, height = ratio.partition(":")
    return int(width) / int(height)


def snap(value: int, step: int, low: int, high: int) -> int:
    """`value` rounded (halves up) to a multiple of `step` within low..high (both multiples
    of `step`)."""
    return max(low, min(high, int(value / step + 0.5) * step))


def check_same_site(http: VendorHTTP, url: object, what: str) -> str:
    """`url` if the API key, which goes with every request to it, may be sent there: on the
    vendor's own site (the base URL's host or a sibling under the same parent domain, as
    regional hosts are), over https or the base URL's own scheme, at the base URL's port or the
    scheme's default. ProviderMalformedResponse otherwise, before anything is sent."""
    if isinstance(url, str) and _same_site(url, http.base_url):
        return url
    raise ProviderMalformedResponse(
        f"{http.vendor} named a {what} outside its own site.", provider=http.vendor
    )


def _same_site(url: str, base_url: str) -> bool:
    try:
        target, base = httpx.URL(url), httpx.URL(base_url)
    except httpx.InvalidURL:
        return False
    if target.scheme not in ("https", base.scheme):
        return False
    # httpx leaves out a port that is the scheme's default.
    default_port = DEFAULT_PORTS.get(target.scheme)
    base_port = base.port or DEFAULT_PORTS.get(base.scheme)
    if (target.port or default_port) not in (base_port, default_port):
        return False
    labels = base.host.split(".")
    parent = ".".join(labels[1:]) if len(labels) >= 3 and not base.host[0].isdigit() else None
    return target.host == base.host or bool(parent and target.host.endswith("." + parent))


def detail_message(response: httpx.Response, limit: int = 300) -> str:
    """The human part of an error body: `detail` as a string, or a FastAPI-style list of
    {loc, msg} joined; else the start of the raw text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:limit]
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                location = ".".join(str(part) for part in item.get("loc") or [] if part != "body")
                message = str(item.get("msg") or item.get("type") or "")
                parts.append(f"{location}: {message}" if location else message)
        return "; ".join(parts)[:limit]
    if detail is not None:
        return str(detail)[:limit]
    return response.text[:limit]
