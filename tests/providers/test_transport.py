"""The vendor transport every adapter shares, against a scripted server on 127.0.0.1: which
failures it retries and how long it waits, the time limit per attempt, and the circuit breaker.
Waits between attempts are recorded rather than slept; the breaker's pauses are a fraction of a
second, really waited."""

import asyncio
import gc
import gzip
import logging
import re
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from app.errors import (
    InvalidForModel,
    ProviderAuthFailed,
    ProviderMalformedResponse,
    ProviderOverloaded,
)
from app.providers.breaker import CircuitBreaker, fallback_available
from app.providers.transport import VendorHTTP
from tests.fakes.http_server import FakeHTTPServer, Received, Reply, write_response
from tests.providers.support import RecordedSleeps

HANG_UP = Reply(status=0)  # close the connection without answering


@dataclass
class ScriptedServer(FakeHTTPServer):
    """Answers each request with the next scripted reply, then 200 `{"ok": true}`."""

    replies: deque[Reply] = field(default_factory=deque)

    def respond(self, request: Received) -> Reply:
        return self.replies.popleft() if self.replies else Reply(200, b'{"ok": true}')

    async def send(self, request: Received, writer: asyncio.StreamWriter) -> None:
        reply = self.respond(request)
        if reply is HANG_UP:
            return  # the base class closes the socket: the client sees a dropped connection
        await asyncio.sleep(reply.delay_seconds)
        await write_response(writer, reply.status, reply.body or b"", reply.headers)


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    """A fresh scripted server for one test."""
    async with ScriptedServer() as scripted:
        yield scripted


def session(
    server: ScriptedServer, breaker: CircuitBreaker | None = None, **options: object
) -> VendorHTTP:
    """A transport to the server with a breaker of its own (unless given), two retries, and
    waits that are recorded, not slept."""
    values: dict = {"max_retries": 2, "timeout_seconds": 5.0, "sleep": RecordedSleeps()} | options
    return VendorHTTP(
        "acme", server.base_url, headers={}, breaker=breaker or CircuitBreaker(), **values
    )


def retry_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The waits the transport logged before each retry."""
    return [
        float(match[1])
        for record in caplog.records
        if (match := re.search(r"in (\d+\.\d+) s$", record.getMessage()))
    ]


async def test_a_429_waits_exactly_as_long_as_retry_after_says(server, caplog) -> None:
    server.replies.extend([Reply(429, b"{}", {"retry-after": "0.6"})])
    caplog.set_level(logging.WARNING, "app.providers.transport")
    sleeps = RecordedSleeps()

    response = await session(server, sleep=sleeps).request("GET", "thing")

    assert response.status_code == 200
    assert len(server.received) == 2
    assert retry_delays(caplog) == [0.6]
    assert sleeps.waits == [0.6]


async def test_retry_after_ms_is_read_before_retry_after(server, caplog) -> None:
    server.replies.append(Reply(503, b"{}", {"retry-after-ms": "150", "retry-after": "30"}))
    caplog.set_level(logging.WARNING, "app.providers.transport")

    # The production sleep: a wait that is really slept, short enough to keep.
    await session(server, sleep=asyncio.sleep).request("GET", "thing")

    assert retry_delays(caplog) == [0.15]


async def test_without_retry_after_the_backoff_is_jittered_and_grows(server, caplog) -> None:
    server.replies.extend([Reply(500, b"{}"), Reply(502, b"{}")])
    caplog.set_level(logging.WARNING, "app.providers.transport")
    sleeps = RecordedSleeps()

    await session(server, sleep=sleeps).request("GET", "thing")

    first, second = sleeps.waits
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0
    assert retry_delays(caplog) == [float(f"{wait:.2f}") for wait in sleeps.waits]
    assert len(server.received) == 3


async def test_a_400_is_not_retried(server) -> None:
    server.replies.append(Reply(400, b'{"message": "bad width"}'))

    with pytest.raises(InvalidForModel) as caught:
        await session(server).request("POST", "thing", json={})

    assert "HTTP 400" in caught.value.detail
    assert len(server.received) == 1


async def test_a_401_is_not_retried_and_does_not_trip_the_breaker(server) -> None:
    breaker = CircuitBreaker(threshold=1)
    server.replies.append(Reply(401, b"{}"))

    with pytest.raises(ProviderAuthFailed):
        await session(server, breaker).request("GET", "thing")

    assert len(server.received) == 1
    assert not breaker.tripped


async def test_a_dropped_connection_is_retried(server) -> None:
    server.replies.extend([HANG_UP, HANG_UP])

    response = await session(server).request("GET", "thing")

    assert response.json() == {"ok": True}
    assert len(server.received) == 3


async def test_a_timeout_is_retried_and_the_budget_is_kept(server) -> None:
    server.replies.extend([Reply(delay_seconds=3), Reply(delay_seconds=3), Reply(delay_seconds=3)])
    transport = session(server, timeout_seconds=0.3, max_retries=1)

    started = time.monotonic()
    with pytest.raises(ProviderOverloaded) as caught:
        await transport.request("GET", "thing")

    assert "no answer within 0.3 s" in caught.value.detail
    assert "tried 2 times" in caught.value.detail
    assert len(server.received) == 2  # max_retries=1: two attempts, not three
    assert time.monotonic() - started < 2.0


async def test_an_unreachable_host_is_retried_then_overloaded() -> None:
    async with ScriptedServer() as gone:
        base_url = gone.base_url
    transport = VendorHTTP(
        "acme",
        base_url,
        headers={},
        max_retries=1,
        breaker=CircuitBreaker(),
        sleep=RecordedSleeps(),
    )

    with pytest.raises(ProviderOverloaded) as caught:
        await transport.request("GET", "thing")

    assert "could not reach 127.0.0.1" in caught.value.detail


async def test_an_open_breaker_delays_the_next_call_until_its_trial(server) -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_seconds=0.3)
    server.replies.extend([Reply(500, b"{}", {"retry-after": "0"})] * 3)
    transport = session(server, breaker)
    with pytest.raises(ProviderOverloaded):
        await transport.request("GET", "thing")  # three failed attempts open it
    assert breaker.tripped

    response = await transport.request("GET", "thing")  # waits out the pause, then the trial

    assert response.status_code == 200
    assert len(server.received) == 4  # the trial alone, not a burst
    assert (breaker.failures, breaker.tripped) == (0, False)


async def test_with_a_fallback_available_an_open_breaker_fails_at_once(server) -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_seconds=60)
    server.replies.extend([Reply(500, b"{}", {"retry-after": "0"})] * 3)
    transport = session(server, breaker)
    with pytest.raises(ProviderOverloaded):
        await transport.request("GET", "thing")

    with fallback_available(), pytest.raises(ProviderOverloaded) as fast:
        await transport.request("GET", "thing")

    assert len(server.received) == 3  # nothing sent while open
    assert fast.value.extensions["circuit"] == "open"


async def test_a_failed_trial_opens_the_breaker_again_and_spends_one_attempt(server) -> None:
    breaker = CircuitBreaker(threshold=2, cooldown_seconds=0.2)
    server.replies.extend([Reply(500, b"{}", {"retry-after": "0"})] * 3)
    transport = session(server, breaker, max_retries=1)
    with pytest.raises(ProviderOverloaded):
        await transport.request("GET", "thing")

    # The trial fails and opens it again; the second attempt is the next trial, which succeeds.
    response = await transport.request("GET", "thing")

    assert response.status_code == 200
    assert len(server.received) == 4
    assert not breaker.tripped


async def test_calls_waiting_on_an_open_breaker_send_one_trial_then_all_go(server) -> None:
    breaker = CircuitBreaker(threshold=2, cooldown_seconds=0.2)
    server.replies.extend([Reply(500, b"{}", {"retry-after": "0"})] * 2)
    transport = session(server, breaker, max_retries=1)
    with pytest.raises(ProviderOverloaded):
        await transport.request("GET", "thing")
    server.replies.append(Reply(200, b'{"ok": true}', delay_seconds=0.2))

    responses = await asyncio.gather(*(transport.request("GET", "thing") for _ in range(10)))

    assert [response.status_code for response in responses] == [200] * 10
    assert len(server.received) == 2 + 10  # one call each: no retries, no burst on the trial
    assert server.peak_in_flight >= 2  # once the trial closed it, the waiting calls went at once


async def test_a_call_waits_on_an_open_breaker_no_longer_than_its_bound(server) -> None:
    breaker = CircuitBreaker(threshold=1, cooldown_seconds=60, max_wait_seconds=0.1)
    server.replies.append(Reply(500, b"{}", {"retry-after": "0"}))
    transport = session(server, breaker, max_retries=0)
    with pytest.raises(ProviderOverloaded):
        await transport.request("GET", "thing")

    response = await transport.request("GET", "thing")  # sent anyway, as its own attempt

    assert response.status_code == 200
    assert len(server.received) == 2


async def test_a_cut_off_json_answer_is_retried_and_counts_as_a_failure(server) -> None:
    breaker = CircuitBreaker(threshold=2, cooldown_seconds=60)
    server.replies.extend([Reply(200, b'{"data": [{"b64'), Reply(200, b"<html>")])
    transport = session(server, breaker, max_retries=1)

    with pytest.raises(ProviderMalformedResponse) as caught:
        await transport.request_json("GET", "thing")

    assert "tried 2 times" in caught.value.detail
    assert len(server.received) == 2
    assert breaker.tripped  # two malformed answers in a row opened it


async def test_a_malformed_answer_then_a_good_one_is_the_good_one(server) -> None:
    server.replies.append(Reply(200, b'{"ok": tr'))

    answer = await session(server).request_json("GET", "thing")

    assert answer == {"ok": True}
    assert len(server.received) == 2


async def test_secrets_are_redacted_from_errors_and_logs(server, caplog) -> None:
    key = "sk-live-SECRET-4f9d2c"
    server.replies.extend([Reply(500, f'{{"message": "bad key {key}"}}'.encode())] * 2)
    transport = VendorHTTP(
        "acme",
        server.base_url,
        headers={"authorization": f"Bearer {key}"},
        secrets=(key,),
        max_retries=1,
        breaker=CircuitBreaker(),
        sleep=RecordedSleeps(),
    )
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ProviderOverloaded) as caught:
        await transport.request("GET", "thing")

    assert "[redacted]" in caught.value.detail
    assert key not in str(caught.value)
    assert key not in str(caught.value.to_problem())
    assert key not in caplog.text


async def test_json_of_a_non_json_answer_is_malformed(server) -> None:
    server.replies.append(Reply(200, b"<html>"))
    transport = session(server)

    response = await transport.request("GET", "thing")

    with pytest.raises(ProviderMalformedResponse):
        transport.json(response)


async def test_a_read_answer_is_freed_without_waiting_for_the_garbage_collector(server) -> None:
    # A burst of vendor answers is megabytes each: one left for the cycle collector stays in
    # memory for as long as the collector leaves it.
    server.replies.append(Reply(200, b'{"b64_json": "' + b"A" * 1_000_000 + b'"}'))
    transport = session(server)
    gc.disable()
    try:
        answer = weakref.ref(await transport.request("GET", "thing"))
        assert answer() is None
    finally:
        gc.enable()


async def test_a_compressed_answer_is_decoded_once(server) -> None:
    body = gzip.compress(b'{"ok": "unpacked"}')
    server.replies.append(Reply(200, body, headers={"content-encoding": "gzip"}))

    assert await session(server).request_json("GET", "thing") == {"ok": "unpacked"}


@dataclass
class KeepAliveServer:
    """An HTTP/1.1 server that answers every request on a connection until the client closes
    it, counting the connections it was opened on."""

    connections: int = 0
    port: int = 0
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> "KeepAliveServer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.readline():
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                body = b'{"ok": true}'
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
                writer.write(b"content-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        finally:
            writer.close()


async def test_calls_reuse_the_sessions_pooled_connections_until_it_closes() -> None:
    async with KeepAliveServer() as server:
        http = VendorHTTP("acme", f"http://127.0.0.1:{server.port}", headers={})

        answers = [await http.request("GET", "/ping") for _ in range(5)]
        await asyncio.gather(*(http.request("GET", "/ping") for _ in range(3)))
        await http.aclose()
        after_close = await http.request("GET", "/ping")
        await http.aclose()

    assert [answer.json() for answer in answers] == [{"ok": True}] * 5
    assert after_close.status_code == 200
    # One connection for the five calls in turn, at most three for the three at once (one
    # of them the first), and a new one after the session closed.
    assert server.connections <= 4
