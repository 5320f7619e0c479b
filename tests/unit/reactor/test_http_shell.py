"""The HTTP/1.1 connection shell over its core, with fakes: a real Reactor (no loop started),
a fake client transport, fake worker links.  The shell only moves bytes and events; what the
reactor sees of a connection or an HTTP/2 stream is one Exchange."""

from __future__ import annotations

from typing import Any

from loadtests.fuzz_targets import FakeTransport
from swserve.protocol import serializer
from swserve.reactor.core import Reactor
from swserve.reactor.exchange import Exchange
from swserve.reactor.h2_conn import H2Stream
from swserve.reactor.http_conn import HttpConnection

from .test_h2_sessions import FakeLink, setup

LENGTH = serializer.HAS_CONTENT_LENGTH


class Transport(FakeTransport):
    """The fake client transport, with its pause/resume history."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 5000))
        self.pauses: list[bool] = []

    def pause_reading(self) -> None:
        super().pause_reading()
        self.pauses.append(True)

    def resume_reading(self) -> None:
        super().resume_reading()
        self.pauses.append(False)


def reactor_with(workers: int, **settings: Any) -> tuple[Reactor, list[FakeLink]]:
    reactor, links, _ = setup(workers, http2="off", **settings)
    return reactor, links


def connect(reactor: Reactor) -> tuple[HttpConnection, Transport]:
    conn = HttpConnection(reactor)
    transport = Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def test_pipelined_requests_reach_a_worker_one_at_a_time_and_answer_in_order() -> None:
    reactor, links = reactor_with(2)
    conn, transport = connect(reactor)
    conn.data_received(b"GET /1 HTTP/1.1\r\nhost: a\r\n\r\nGET /2 HTTP/1.1\r\nhost: a\r\n\r\n")
    assert [conn.session] == links[0].requests + links[1].requests  # one at a time
    assert conn.current is not None
    assert conn.current.target == b"/1"
    conn.on_response_start(200, LENGTH, b"content-length: 3\r\n", b"one", True)
    assert conn.current is not None
    assert conn.current.target == b"/2"
    assert conn.seq == 2
    conn.on_response_start(200, LENGTH, b"content-length: 3\r\n", b"two", True)
    wire = transport.take()
    assert wire.index(b"one") < wire.index(b"two")
    assert not transport.closed
    assert conn.core.idle()


def test_a_full_queue_is_answered_503_by_the_connection() -> None:
    reactor, _ = reactor_with(1, max_queued_requests=1)
    busy, _ = connect(reactor)
    busy.data_received(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")  # at the worker
    queued, _ = connect(reactor)
    queued.data_received(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")  # waits
    refused, transport = connect(reactor)
    refused.data_received(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
    wire = transport.take()
    assert wire.startswith(b"HTTP/1.1 503 ")
    assert b"retry-after: 1\r\n" in wire
    assert transport.closed
    assert refused.current is None


def test_a_lost_worker_gets_502_before_the_response_and_a_cut_after() -> None:
    reactor, _ = reactor_with(2)
    waiting, transport = connect(reactor)
    waiting.data_received(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
    waiting.on_worker_lost()
    assert transport.take().startswith(b"HTTP/1.1 502 ")
    streaming, transport = connect(reactor)
    streaming.data_received(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
    streaming.on_response_start(200, 0, b"", b"part", False)
    transport.take()
    streaming.on_worker_lost()
    assert transport.take() == b""  # no second status line: the connection is cut
    assert transport.closed


def test_the_sweep_answers_a_stalled_head_408() -> None:
    reactor, _ = reactor_with(1, header_timeout=2)
    conn, transport = connect(reactor)
    conn.data_received(b"GET / HTTP/1.1\r\nhos")
    assert not conn.sweep(conn.core.head_since + 1)
    assert conn.sweep(conn.core.head_since + 2)
    assert transport.take().startswith(b"HTTP/1.1 408 ")
    assert transport.closed


def test_a_client_that_left_is_abandoned_and_its_session_dropped() -> None:
    reactor, links = reactor_with(1)
    conn, _ = connect(reactor)
    conn.data_received(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
    conn.connection_lost(None)
    assert links[0].disconnects == [conn.session]
    assert conn.session not in reactor.sessions
    assert conn.current is None


def test_streams_and_connections_share_the_exchange_not_each_other() -> None:
    assert issubclass(HttpConnection, Exchange)
    assert issubclass(H2Stream, Exchange)
    assert not issubclass(H2Stream, HttpConnection)
    reactor, _, conn = setup(workers=1)
    conn.data_received(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # the preface, then SETTINGS and one GET
        b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        b"\x00\x00\x0f\x01\x05\x00\x00\x00\x01\x82\x84\x86\x41\x8a\xa0\xe4\x1d\x13\x9d\x09\xb8\xf0\x1e\x07"
    )
    [stream] = [s for s in reactor.sessions.values() if isinstance(s, H2Stream)]
    assert stream.session != conn.session  # an exchange of its own, with its own session id
    assert stream.seq == 1
    assert stream.current is not None
    assert stream.prefix is conn.prefix
