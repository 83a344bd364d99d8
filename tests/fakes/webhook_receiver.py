"""A fake webhook receiver on 127.0.0.1: answers each delivery with the next status of a script
(then 2xx), or with 503 while it is `down`, verifies every one with the `standardwebhooks`
package as a real receiver would, and keeps the raw body and headers of each and its answer, so
a test can see exactly what was sent and when."""

import asyncio
import time
from dataclasses import dataclass, field

from standardwebhooks import Webhook

from tests.fakes.http_server import FakeHTTPServer, Received, write_response


@dataclass
class Delivery:
    """One request as received: its headers, exact body, arrival time, whether it verified,
    and the status it was answered with."""

    headers: dict[str, str]
    raw_body: bytes
    arrived: float
    verified: bool
    status: int = 0


@dataclass
class WebhookReceiver(FakeHTTPServer):
    """Use as an async context manager. `statuses` answer the first requests in turn (a delay
    of `delay_seconds` before each answer); every later request gets 204. While `down`, every
    request gets 503 instead. `secret`, once set, verifies every delivery."""

    statuses: list[int] = field(default_factory=list)
    down: bool = False
    secret: str | None = None
    delay_seconds: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)

    def url(self, path: str = "/hooks") -> str:
        """Where deliveries should be sent."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait_for(self, count: int, seconds: float = 30) -> list[Delivery]:
        """Wait until at least `count` deliveries arrived; all of them."""
        deadline = time.monotonic() + seconds
        while len(self.deliveries) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.deliveries)} deliveries, not {count}")
            await asyncio.sleep(0.02)
        return self.deliveries

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        """Whether `standardwebhooks` accepts the delivery with the receiver's secret."""
        if self.secret is None:
            return False
        try:
            Webhook(self.secret).verify(body, headers)
        except Exception:
            return False
        return True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Reads the body itself: the shared request reader keeps only parsed JSON, and a
        # signature covers the exact bytes.
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request_line = await reader.readline()
            method, path, _ = request_line.decode("latin-1").split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            index = len(self.deliveries)
            status = self.statuses[index] if index < len(self.statuses) else 204
            if self.down:
                status = 503
            self.deliveries.append(
                Delivery(headers, body, time.monotonic(), self.verify(headers, body), status)
            )
            self.received.append(Received(method, path, headers, None))
            await asyncio.sleep(self.delay_seconds)
            await write_response(writer, status, b"", {})
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)
