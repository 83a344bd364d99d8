"""A fake OpenAI-compatible chat completions server on 127.0.0.1 that records what it receives.

It answers each request with the reply a test set: a chat completion carrying some content, an
error status, or either after a delay.
"""

import json
from dataclasses import dataclass, field

from tests.fakes.http_server import FakeHTTPServer, Received, Reply


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
class FakeChatServer(FakeHTTPServer):
    """The server; use it as an async context manager and set `reply` before each call."""

    reply: Reply = field(default_factory=lambda: Reply(body=b"{}"))

    def answer(self, content: str | None, *, delay_seconds: float = 0.0) -> None:
        """Answer the next requests with a chat completion carrying `content`."""
        self.reply = Reply(body=chat_completion(content), delay_seconds=delay_seconds)

    def answer_slots(self, **slots: str | None) -> None:
        """Answer with a JSON object of slot values, as a well-behaved LLM would."""
        self.answer(json.dumps(slots))

    def respond(self, request: Received) -> Reply:
        """The reply the test set, whatever was asked."""
        return self.reply
