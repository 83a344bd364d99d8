"""A fake image host on 127.0.0.1 for the URL fetcher: serves scripted pages (images, redirects,
errors, slow, trickling or oversized bodies, with or without a length) and records every request,
its Host header included, so a test can see where the fetcher connected and what it said."""

import asyncio
from dataclasses import dataclass, field
from http import HTTPStatus

from tests.fakes.http_server import FakeHTTPServer, Received


@dataclass
class Page:
    """What the host sends for one path. A chunked page has no Content-Length and sends its body
    `chunk_size` bytes at a time, waiting `chunk_delay_seconds` before each chunk. With `held`,
    the answer waits until the test sets that event."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    chunked: bool = False
    chunk_size: int = 4096
    chunk_delay_seconds: float = 0.0
    held: asyncio.Event | None = None


NOT_FOUND = Page(b"<h1>Not found</h1>", status=404, headers={"content-type": "text/html"})


@dataclass
class ImageHost(FakeHTTPServer):
    """Use as an async context manager; add `pages` by path (before or after it starts). With an
    `ssl_context` it speaks https."""

    pages: dict[str, Page] = field(default_factory=dict)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """The URL of `path` on this host, reached by the name or address `host`."""
        scheme = "http" if self.ssl_context is None else "https"
        return f"{scheme}://{host}:{self.port}{path}"

    @property
    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        return [request.path for request in self.received]

    async def send(self, request: Received, writer: asyncio.StreamWriter) -> None:
        """Write the page for the requested path, or a 404."""
        await write_page(writer, self.pages.get(request.path, NOT_FOUND))


async def write_page(writer: asyncio.StreamWriter, page: Page) -> None:
    """Send `page` as an HTTP/1.1 response and say the connection closes."""
    await asyncio.sleep(page.delay_seconds)
    if page.held is not None:
        await page.held.wait()
    length = (
        {"transfer-encoding": "chunked"}
        if page.chunked
        else {"content-length": str(len(page.body))}
    )
    headers = {"content-type": "image/png", "connection": "close"} | length | page.headers
    head = f"HTTP/1.1 {page.status} {HTTPStatus(page.status).phrase}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write((head + "\r\n").encode("latin-1"))
    if not page.chunked:
        writer.write(page.body)
        await writer.drain()
        return
    for start in range(0, len(page.body), page.chunk_size):
        await asyncio.sleep(page.chunk_delay_seconds)
        chunk = page.body[start : start + page.chunk_size]
        writer.write(f"{len(chunk):x}\r\n".encode("latin-1") + chunk + b"\r\n")
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()
