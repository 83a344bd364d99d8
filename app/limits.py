"""Request body size limit as pure ASGI middleware: refuses early by Content-Length and stops
reading a streamed body once it passes the limit, so no route ever holds more than that."""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import problem, problem_response


class BodySizeLimit:
    """413 problem+json for bodies over `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = problem_response(
                problem(
                    413, "payload-too-large", "Payload too large", self._detail(), scope["path"]
                )
            )
            await response(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _detail(self) -> str:
        return f"The request body is larger than {self.max_bytes:,} bytes."

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes through FastAPI's body parsing untouched and is
                    # rendered as problem+json by the app's handler.
                    raise HTTPException(413, self._detail())
            return message

        return counted_receive
