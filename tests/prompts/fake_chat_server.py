"""A fake OpenAI-compatible chat completions server on 127.0.0.1 that records what it receives.

It speaks just enough HTTP/1.1 for one request per connection, and answers each with the reply a
test set: a chat completion carrying some content, an error status, or either after a delay.
"""

import asyncio
import json
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self


@dataclass
class Reply:
    """What the server answers: a status, a body, and how long it waits first."""

    status: int = 200
    body: bytes = b"{}"
    delay_seconds: float = 0.0


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def chat_completion(content: str | None) -> bytes:
    """A chat completion response body whose first choice's message carries `content`."""
    return json.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "fake-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }
    ).encode()


@dataclass
class FakeChatServer:
    """The server; use it as an async context manager and set `reply` before each call."""

    reply: Reply = field(default_factory=Reply)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        """Where an OpenAI-compatible client should point, `/v1` included."""
        return f"http://127.0.0.1:{self.port}/v1"

    def answer(self, content: str | None, *, delay_seconds: float = 0.0) -> None:
        """Answer the next requests with a chat completion carrying `content`."""
        self.reply = Reply(200, chat_completion(content), delay_seconds)

    def answer_slots(self, **slots: str | None) -> None:
        """Answer with a JSON object of slot values, as a well-behaved LLM would."""
        self.answer(json.dumps(slots))

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
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
        # A slow reply may still be sleeping for a client that gave up; it has nobody to answer.
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            self.received.append(await read_request(reader))
            reply = self.reply
            await asyncio.sleep(reply.delay_seconds)
            head = (
                f"HTTP/1.1 {reply.status} Fake\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(reply.body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + reply.body)
            await writer.drain()
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
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Received(method, path, headers, json.loads(body) if body else {})
