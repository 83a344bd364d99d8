"""The HTTP/1.1 scaffolding the fake servers share: a server on 127.0.0.1 (https with an
`ssl_context`) that takes one request per connection, records it in `received`, and sends what
the subclass's `respond` returns (or writes its own answer in `send`)."""

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self


@dataclass
class Reply:
    """An answer: status, headers and body, sent after a delay. What a body of None means is up
    to the fake; it is sent as an empty body."""

    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


@dataclass
class Received:
    """One request as the server saw it; `body` is None when it was not a JSON object."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


# Keyword-only so that a subclass's own fields stay first in its constructor.
@dataclass(kw_only=True)
class FakeHTTPServer:
    """Use a subclass as an async context manager; read what it was sent in `received`."""

    received: list[Received] = field(default_factory=list)
    # Requests being answered now, and the most there ever were at once.
    in_flight: int = 0
    peak_in_flight: int = 0
    ssl_context: ssl.SSLContext | None = None
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        """Where an OpenAI-style client should point, `/v1` included."""
        return f"http://127.0.0.1:{self.port}/v1"

    def respond(self, request: Received) -> Reply:
        """The answer to `request`; each fake says what its vendor would answer."""
        raise NotImplementedError

    async def send(self, request: Received, writer: asyncio.StreamWriter) -> None:
        """Write the answer to `request`: by default `respond`'s reply, as JSON, after its delay.
        A fake that must shape the bytes on the wire (chunking, trickling) overrides this."""
        reply = self.respond(request)
        await asyncio.sleep(reply.delay_seconds)
        await write_response(writer, reply.status, reply.body or b"", reply.headers)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        # A slow answer may still be sleeping for a client that gave up; nobody waits for it.
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def counted_send(self, request: Received, writer: asyncio.StreamWriter) -> None:
        """Record the request and answer it, counting it in flight while it is answered."""
        self.received.append(request)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await self.send(request, writer)
        finally:
            self.in_flight -= 1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            request = await read_request(reader)
            await self.counted_send(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


async def read_request(reader: asyncio.StreamReader) -> Received:
    """Read one HTTP/1.1 request with a Content-Length body."""
    method, path, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raw_body = await reader.readexactly(int(headers.get("content-length", "0")))
    try:
        body = json.loads(raw_body)
    except ValueError:
        body = None
    return Received(method, path, headers, body if isinstance(body, dict) else None)


async def write_response(
    writer: asyncio.StreamWriter, status: int, body: bytes, headers: dict[str, str]
) -> None:
    """Send a JSON response and say the connection closes; `headers` add to or override ours."""
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "connection": "close",
    } | headers
    head = f"HTTP/1.1 {status} Fake\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write((head + "\r\n").encode("latin-1") + body)
    await writer.drain()
