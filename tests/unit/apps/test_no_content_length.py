"""RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field in any
response with a status code of 1xx (Informational) or 204 (No Content)."

Both adapters drop an app's Content-Length from a 204 (neither lets an app send
a 1xx; a 304 may carry the length of the 200 it stands for, so it is kept).
"""

from __future__ import annotations

import asyncio

import pytest

from swserve.apps.asgi import RequestCycle
from swserve.apps.wsgi import _Response

pytestmark = pytest.mark.timeout(10)


class Sink:
    paused = False

    def __init__(self) -> None:
        self.starts: list[tuple[int, bytes]] = []

    def send_start(self, status: int, flags: int, headers: bytes, body: bytes, end: bool) -> None:
        self.starts.append((status, headers))

    def send_body(self, data: bytes, end: bool) -> None:
        pass

    def send_abort(self) -> None:
        pass

    def drain(self) -> None:
        return None


@pytest.mark.parametrize(
    ("status", "kept"), [("204 No Content", False), ("304 Not Modified", True)]
)
def test_wsgi(status: str, kept: bool) -> None:
    sink = Sink()
    response = _Response(sink, False)
    response.start_response(status, [("Content-Length", "12"), ("X-A", "1")])
    assert response.begin([b""]) is None
    [(_, headers)] = sink.starts
    assert b"X-A: 1\r\n" in headers
    assert (b"Content-Length" in headers) is kept, headers


@pytest.mark.parametrize(("status", "kept"), [(204, False), (304, True)])
def test_asgi(status: int, kept: bool) -> None:
    sink = Sink()

    async def respond() -> None:
        cycle = RequestCycle(sink, b"", head=False)
        headers = [(b"content-length", b"12"), (b"x-a", b"1")]
        await cycle.send({"type": "http.response.start", "status": status, "headers": headers})
        await cycle.send({"type": "http.response.body", "body": b""})

    asyncio.run(respond())
    [(_, headers)] = sink.starts
    assert b"x-a: 1\r\n" in headers
    assert (b"content-length" in headers) is kept, headers
