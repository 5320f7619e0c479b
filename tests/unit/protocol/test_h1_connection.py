"""The sans-IO HTTP/1.1 server connection, driven without sockets or a loop.

Bytes go in one at a time or cut at random points (hypothesis); a fake clock
drives the deadlines; h11, as the client, writes the requests and reads the
responses back (the oracle), as h11's own tests do.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import h11
import pytest
from hypothesis import given, settings, strategies as st

from swserve.errors import ProtocolError
from swserve.protocol import h1_connection, serializer
from swserve.protocol.h1_connection import MAX_HELD, MAX_PIPELINED, PREFACE, H1Connection
from swserve.protocol.h1_events import (
    Close,
    Ended,
    Event,
    ReadingOff,
    Rejected,
    RequestReady,
    Settings,
    Switch,
    Write,
)
from swserve.protocol.limits import Limits
from swserve.protocol.request import Request

from .support import PARSER_IDS, PARSERS

DATE = b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\nserver: swserve\r\n"
LENGTH = serializer.HAS_CONTENT_LENGTH


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Shell:
    """What an I/O shell does with the events, recorded instead of done."""

    def __init__(
        self,
        parser: type = PARSERS[0],
        *,
        h2c: bool = False,
        websocket: bool = False,
        **timeouts: float,
    ) -> None:
        self.clock = Clock()
        self.settings = Settings(websocket=websocket, **timeouts)
        self.settings.date_server = DATE
        self.conn = H1Connection(parser(Limits()), self.settings, self.clock(), h2c=h2c)
        self.wire = bytearray()
        self.reading = True
        self.closed: str = ""  # "close" or "abort"
        self.ready: list[tuple[Request, int]] = []
        self.ended: list[Ended] = []
        self.rejected: list[ProtocolError] = []
        self.switched: list[Switch] = []
        self.events: list[Event] = []

    def apply(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.events.append(ev)
            if isinstance(ev, Write):
                assert not self.closed, "written after close"
                for part in ev.data:
                    self.wire += part
            elif isinstance(ev, ReadingOff):
                assert self.reading == ev.on, "redundant pause/resume"
                self.reading = not ev.on
            elif isinstance(ev, Close):
                assert not self.closed, "closed twice"
                self.closed = "abort" if ev.abort else "close"
            elif isinstance(ev, Ended):
                self.ended.append(ev)
            elif isinstance(ev, Rejected):
                self.rejected.append(ev.error)
            elif isinstance(ev, RequestReady):
                if isinstance(events, list):
                    assert ev is events[-1], "RequestReady must come last"
                self.ready.append((ev.request, ev.seq))
            elif isinstance(ev, Switch):
                self.switched.append(ev)

    def feed(self, data: bytes, cuts: Iterable[int] = ()) -> None:
        start = 0
        for cut in [*sorted(cuts), len(data)]:
            if cut > start:
                self.apply(self.conn.receive(data[start:cut], self.clock()))
                start = cut

    def bytewise(self, data: bytes) -> None:
        for i in range(len(data)):
            self.apply(self.conn.receive(data[i : i + 1], self.clock()))

    def respond(
        self, body: bytes = b"ok", status: int = 200, flags: int = LENGTH, headers: bytes = b""
    ) -> None:
        if flags & LENGTH and not headers:
            headers = b"content-length: %d\r\n" % len(body)
        self.apply(self.conn.respond(status, flags, headers, body, True, self.clock()))

    def take(self) -> bytes:
        out = bytes(self.wire)
        self.wire.clear()
        return out


def client_bytes(*requests: h11.Request | tuple[h11.Request, bytes]) -> bytes:
    """Requests as an h11 client writes them."""
    client = h11.Connection(h11.CLIENT)
    out = b""
    for item in requests:
        req, body = item if isinstance(item, tuple) else (item, b"")
        out += client.send(req) or b""
        if body:
            out += client.send(h11.Data(data=body)) or b""
        out += client.send(h11.EndOfMessage()) or b""
        if client.our_state is h11.DONE and client.their_state is h11.SEND_RESPONSE:
            # pipelining: h11 waits for the response; pretend it came
            client = h11.Connection(h11.CLIENT)
    return out


def get(target: str = "/", *headers: tuple[str, str]) -> h11.Request:
    return h11.Request(method="GET", target=target, headers=[("host", "a"), *headers])


def post(body: bytes, target: str = "/up", chunked: bool = False) -> tuple[h11.Request, bytes]:
    framing = ("transfer-encoding", "chunked") if chunked else ("content-length", str(len(body)))
    return h11.Request(method="POST", target=target, headers=[("host", "a"), framing]), body


def responses(wire: bytes, methods: Iterable[bytes] = ()) -> list[tuple[int, bytes, Any]]:
    """Read the server's bytes back with an h11 client: (status, body, headers) each."""
    out = []
    methods = list(methods)
    data = wire
    while data:
        client = h11.Connection(h11.CLIENT)
        method = methods.pop(0) if methods else b"GET"
        client.send(h11.Request(method=method, target="/", headers=[("host", "a")]))
        client.send(h11.EndOfMessage())
        client.receive_data(data)
        status, body, headers = 0, b"", cast(Any, [])
        while True:
            ev = client.next_event()
            if isinstance(ev, h11.InformationalResponse):
                out.append((ev.status_code, b"", ev.headers))
            elif isinstance(ev, h11.Response):
                status, headers = ev.status_code, ev.headers
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                break
            elif ev is h11.NEED_DATA:
                client.receive_data(b"")  # the close ends a body without framing
            else:
                raise AssertionError(ev)
        out.append((status, body, headers))
        data = client.trailing_data[0]
    return out


parsers = pytest.mark.parametrize("parser", PARSERS, ids=PARSER_IDS)


# -- one exchange --------------------------------------------------------------------


@parsers
def test_a_request_fed_byte_by_byte_is_ready_once_complete(parser: type) -> None:
    shell = Shell(parser)
    data = client_bytes(get("/hello"))
    shell.bytewise(data[:-1])
    assert shell.ready == []
    shell.bytewise(data[-1:])
    assert [(r.target, seq) for r, seq in shell.ready] == [(b"/hello", 1)]
    assert shell.conn.current is shell.ready[0][0]
    shell.respond(b"hi")  # (current is None after it)
    [(status, body, headers)] = responses(shell.take())
    assert (status, body) == (200, b"hi")
    assert (b"date", b"Thu, 01 Jan 1970 00:00:00 GMT") in headers
    assert shell.closed == ""
    assert [(e.status, e.sent, e.complete) for e in shell.ended] == [(200, 2, True)]
    assert shell.conn.current is None


@parsers
def test_a_body_without_a_length_is_chunked_and_streamed(parser: type) -> None:
    shell = Shell(parser)
    shell.feed(client_bytes(get()))
    shell.apply(shell.conn.respond(200, 0, b"", b"ab", False, 0.0))
    shell.apply(shell.conn.send_body(b"", False, 0.0))
    shell.apply(shell.conn.send_body(b"cd", False, 0.0))
    assert shell.ready
    assert not shell.ended
    shell.apply(shell.conn.send_body(b"", True, 0.0))
    [(status, body, headers)] = responses(shell.take())
    assert (status, body) == (200, b"abcd")
    assert (b"transfer-encoding", b"chunked") in headers
    assert shell.ended[0].sent == 4


@pytest.mark.parametrize(
    ("method", "status"), [(b"HEAD", 200), (b"GET", 204), (b"GET", 304)], ids=str
)
def test_no_body_is_written_where_http_allows_none(method: bytes, status: int) -> None:
    shell = Shell()
    shell.feed(method + b" / HTTP/1.1\r\nhost: a\r\n\r\n")
    shell.apply(shell.conn.respond(status, 0, b"", b"body", False, 0.0))
    shell.apply(shell.conn.send_body(b"more", True, 0.0))
    wire = shell.take()
    assert wire.endswith(b"\r\n\r\n")
    assert b"body" not in wire
    assert b"more" not in wire
    assert shell.ended[0].sent == 0


# -- keep-alive ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "flags", "no_keep_alive", "closes"),
    [
        (b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", LENGTH, False, False),
        (b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n", LENGTH, False, True),
        (b"GET / HTTP/1.0\r\n\r\n", LENGTH, False, True),
        (b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n", LENGTH, False, False),
        (b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n", 0, False, True),  # no length
        (b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", LENGTH | serializer.APP_CLOSE, False, True),
        (b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", LENGTH, True, True),  # draining
    ],
)
def test_the_keep_alive_decision(
    request_bytes: bytes, flags: int, no_keep_alive: bool, closes: bool
) -> None:
    shell = Shell()
    shell.feed(request_bytes)
    headers = b"content-length: 2\r\n" if flags & LENGTH else b""
    shell.apply(shell.conn.respond(200, flags, headers, b"ok", True, 0.0, no_keep_alive))
    wire = shell.take()
    assert (shell.closed == "close") is closes
    if closes and (b"HTTP/1.1" in request_bytes or b"keep-alive" in request_bytes):
        assert b"connection: close\r\n" in wire


def test_nothing_after_a_non_persistent_request_is_read() -> None:
    shell = Shell()
    shell.feed(client_bytes(get("/1", ("connection", "close"))) + b"GET /2 HTTP/1.1\r\n\r\n")
    assert not shell.reading
    assert [r.target for r, _ in shell.ready] == [b"/1"]
    shell.respond()
    assert shell.closed == "close"
    assert [r.target for r, _ in shell.ready] == [b"/1"]


# -- pipelining ------------------------------------------------------------------------


@parsers
def test_pipelined_requests_are_answered_one_at_a_time_in_order(parser: type) -> None:
    shell = Shell(parser)
    shell.feed(client_bytes(get("/1"), post(b"xyz"), get("/3")))
    assert [seq for _, seq in shell.ready] == [1]
    for i in range(3):
        assert len(shell.ready) == i + 1
        shell.respond(b"r%d" % i)
    assert [(r.target, bytes(r.body)) for r, _ in shell.ready] == [
        (b"/1", b""),
        (b"/up", b"xyz"),
        (b"/3", b""),
    ]
    assert [body for _, body, _ in responses(shell.take())] == [b"r0", b"r1", b"r2"]


def test_a_full_pipeline_stops_reading_and_resumes_as_it_empties() -> None:
    shell = Shell()
    shell.feed(client_bytes(*[get(f"/{i}") for i in range(MAX_PIPELINED + 1)]))
    assert not shell.conn.reading
    while len(shell.conn.pending) >= MAX_PIPELINED // 2:
        shell.respond()
        assert len(shell.conn.pending) < MAX_PIPELINED // 2 or not shell.reading
    assert shell.reading is True
    for _ in range(len(shell.conn.pending) + 1):
        shell.respond()
    assert len(shell.ready) == MAX_PIPELINED + 1
    assert [seq for _, seq in shell.ready] == list(range(1, MAX_PIPELINED + 2))


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[bytes, list[bytes], list[int]]:
    kinds = draw(st.lists(st.sampled_from(["get", "post", "chunked"]), min_size=1, max_size=5))
    items: list[h11.Request | tuple[h11.Request, bytes]] = []
    bodies = []
    for i, kind in enumerate(kinds):
        body = draw(st.binary(max_size=40)) if kind != "get" else b""
        items.append(get(f"/{i}") if kind == "get" else post(body, f"/{i}", kind == "chunked"))
        bodies.append(body)
    data = client_bytes(*items)
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=12))
    return data, bodies, cuts


@settings(max_examples=150, deadline=None)
@given(case=pipelines(), parser_index=st.sampled_from([0, 1]), answer_early=st.booleans())
def test_any_split_of_a_pipeline_gives_the_same_exchanges(
    case: tuple[bytes, list[bytes], list[int]], parser_index: int, answer_early: bool
) -> None:
    data, bodies, cuts = case
    shell = Shell(PARSERS[parser_index])
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        shell.feed(data[start:cut])
        start = max(start, cut)
        if answer_early:  # answer as soon as a request is ready, while the rest arrives
            while shell.conn.current is not None:
                shell.respond(b"#%d" % shell.conn.seq)
    while shell.conn.current is not None:
        shell.respond(b"#%d" % shell.conn.seq)
    assert [r.target for r, _ in shell.ready] == [b"/%d" % i for i in range(len(bodies))]
    assert [bytes(r.body) for r, _ in shell.ready] == bodies
    got = responses(shell.take())
    assert [body for _, body, _ in got] == [b"#%d" % (i + 1) for i in range(len(bodies))]
    assert shell.closed == ""


# -- 100 (Continue) --------------------------------------------------------------------


@parsers
def test_continue_is_sent_once_when_no_response_is_ahead_of_it(parser: type) -> None:
    shell = Shell(parser)
    head = b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n"
    shell.bytewise(head)
    assert shell.take() == serializer.CONTINUE
    shell.feed(b"ab")
    assert shell.take() == b""
    shell.feed(b"c")
    assert bytes(shell.ready[0][0].body) == b"abc"


def test_continue_waits_for_the_responses_before_it() -> None:
    shell = Shell()
    shell.feed(
        client_bytes(get("/1"))
        + b"POST /2 HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n"
    )
    assert shell.take() == b""  # /1 is being answered: its response comes first
    shell.respond(b"one")
    wire = shell.take()
    assert wire.startswith(b"HTTP/1.1 200 OK\r\n")
    assert wire.endswith(b"one" + serializer.CONTINUE)


# -- errors ----------------------------------------------------------------------------


@parsers
def test_an_error_after_complete_requests_is_answered_after_them(parser: type) -> None:
    shell = Shell(parser)
    shell.feed(client_bytes(get("/1"), get("/2")) + b"NOT HTTP AT ALL\r\n\r\n")
    assert not shell.reading
    assert len(shell.rejected) == 1
    shell.respond(b"one")
    shell.respond(b"two")
    got = responses(shell.take())
    assert [(s, b) for s, b, _ in got[:2]] == [(200, b"one"), (200, b"two")]
    assert got[2][0] == 400
    assert shell.closed == "close"
    assert shell.ended[-1].request is None  # the request that never parsed


def test_a_bad_request_alone_is_answered_at_once() -> None:
    shell = Shell()
    shell.bytewise(b"GET / HTTP/1.1\r\nhost: a\r\ncontent-length: x\r\n\r\n")
    assert shell.closed == "close"
    assert responses(shell.take())[0][0] == 400
    shell.feed(b"GET / HTTP/1.1\r\n\r\n")  # ignored: the connection is closing
    assert shell.ready == []


def test_fail_answers_the_current_request_and_closes() -> None:
    shell = Shell()
    shell.feed(client_bytes(get()))
    shell.apply(shell.conn.fail(503, retry_after=1))
    [(status, _, headers)] = responses(shell.take())
    assert status == 503
    assert (b"retry-after", b"1") in headers
    assert shell.closed == "close"
    assert shell.conn.current is None
    assert shell.ended[0].request is shell.ready[0][0]


def test_fail_after_the_response_started_cuts_it() -> None:
    shell = Shell()
    shell.feed(client_bytes(get()))
    shell.apply(shell.conn.respond(200, 0, b"", b"part", False, 0.0))
    shell.take()
    shell.apply(shell.conn.fail(504))
    assert shell.take() == b""
    assert shell.closed == "close"
    assert (shell.ended[0].status, shell.ended[0].complete) == (200, False)


def test_nothing_is_written_once_closed() -> None:
    shell = Shell()
    shell.feed(client_bytes(get()))
    shell.apply(shell.conn.close())
    shell.apply(shell.conn.fail(502))
    assert shell.take() == b""


class FailingStore:
    def __init__(self) -> None:
        self.settled: list[int] = []

    def settle(self, requests: list[Request], head: Request | None) -> ProtocolError | None:
        if len(requests) > 1:
            del requests[1:]
            return ProtocolError(507, "disk full")
        self.settled.append(len(requests))
        return None

    def failed(self, exc: OSError, head: Request | None) -> ProtocolError:
        return ProtocolError(503, str(exc))


def test_a_body_store_failure_is_answered_after_what_precedes_it() -> None:
    shell = Shell()
    shell.conn.store = FailingStore()
    shell.feed(client_bytes(get("/1"), get("/2")))
    assert [r.target for r, _ in shell.ready] == [b"/1"]
    assert shell.rejected == []  # not the client's fault: nothing to log as a bad request
    shell.respond()
    assert [s for s, _, _ in responses(shell.take())] == [200, 507]


# -- deadlines ------------------------------------------------------------------------


def test_a_head_that_stalls_gets_408_after_the_header_timeout() -> None:
    shell = Shell(header_timeout=10, keep_alive=60)
    shell.feed(b"GET / HTTP/1.1\r\nhos")
    shell.clock.now += 9.9
    shell.apply(shell.conn.expire(shell.clock.now))
    assert shell.closed == ""
    shell.clock.now += 0.1
    shell.apply(shell.conn.expire(shell.clock.now))
    assert responses(shell.take())[0][0] == 408
    assert shell.closed == "close"


def test_the_header_timeout_runs_from_the_first_byte_not_the_last() -> None:
    shell = Shell(header_timeout=10, keep_alive=60)
    for piece in (b"GET / HT", b"TP/1.1\r\n", b"host: a\r\n"):  # slowloris: a byte now and then
        shell.feed(piece)
        shell.clock.now += 4
        shell.apply(shell.conn.expire(shell.clock.now))
    assert shell.closed == "close"


def test_a_body_that_stalls_gets_408_after_the_body_timeout() -> None:
    shell = Shell(header_timeout=1, body_timeout=30, keep_alive=5)
    shell.feed(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 10\r\n\r\nabc")
    shell.clock.now += 29
    shell.apply(shell.conn.expire(shell.clock.now))
    assert shell.closed == ""  # neither the header nor the keep-alive timeout applies
    shell.clock.now += 1
    shell.apply(shell.conn.expire(shell.clock.now))
    assert responses(shell.take())[0][0] == 408


def test_an_idle_keep_alive_connection_closes_after_keep_alive() -> None:
    shell = Shell(keep_alive=5)
    shell.feed(client_bytes(get()))
    shell.clock.now += 100  # a request at the app has no idle deadline
    shell.apply(shell.conn.expire(shell.clock.now))
    assert shell.closed == ""
    shell.respond()
    shell.clock.now += 4.9
    shell.apply(shell.conn.expire(shell.clock.now))
    assert shell.closed == ""
    shell.clock.now += 0.1
    shell.apply(shell.conn.expire(shell.clock.now))
    assert shell.closed == "close"
    assert shell.take().count(b"HTTP/1.1") == 1  # no 408 for an idle connection


def test_a_client_that_stops_reading_is_aborted_after_the_write_timeout() -> None:
    shell = Shell(write_timeout=30)
    shell.feed(client_bytes(get()))
    shell.conn.pause_writing(shell.clock.now)
    shell.clock.now += 29
    shell.apply(shell.conn.expire(shell.clock.now))
    assert shell.closed == ""
    shell.conn.resume_writing()
    shell.clock.now += 10
    shell.apply(shell.conn.expire(shell.clock.now))
    assert shell.closed == ""
    shell.conn.pause_writing(shell.clock.now)
    shell.clock.now += 30
    shell.apply(shell.conn.expire(shell.clock.now))
    assert shell.closed == "abort"


def test_a_fresh_connection_is_fresh_until_its_first_byte() -> None:
    shell = Shell()
    assert shell.conn.fresh()
    shell.feed(b"G")
    assert not shell.conn.fresh()


# -- the protocol switch ------------------------------------------------------------------

WS_HEAD = (
    b"GET /chat HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
    b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
)


@parsers
def test_an_accepted_websocket_gets_the_bytes_that_follow(parser: type) -> None:
    shell = Shell(parser, websocket=True)
    shell.bytewise(WS_HEAD + b"\x81\x85early")
    assert shell.conn.upgrade is not None
    assert shell.reading  # to see the client leave during the handshake
    shell.bytewise(b"-more")
    shell.apply(shell.conn.accept_upgrade(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"))
    assert shell.take() == b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    [switch] = shell.switched
    assert (switch.protocol, switch.data) == ("websocket", b"\x81\x85early-more")
    assert switch.request is shell.ready[0][0]
    assert shell.conn.current is None
    shell.apply(shell.conn.receive(b"later", 0.0))  # the shell sends these elsewhere now
    assert len(shell.ready) == 1


def test_a_websocket_the_app_refuses_is_answered_and_closed() -> None:
    shell = Shell(websocket=True)
    shell.feed(WS_HEAD)
    shell.feed(b"GET /next HTTP/1.1\r\nhost: a\r\n\r\n")  # held, then dropped
    shell.respond(b"no", status=403)
    assert [r.target for r, _ in shell.ready] == [b"/chat"]  # an upgrade is never persistent
    assert [s for s, _, _ in responses(shell.take())] == [403]
    assert shell.closed == "close"


def test_a_bad_websocket_handshake_is_refused_here() -> None:
    shell = Shell(websocket=True)
    shell.feed(WS_HEAD.replace(b"version: 13", b"version: 8"))
    [(status, _, headers)] = responses(shell.take())
    assert status == 426
    assert (b"sec-websocket-version", b"13") in headers
    assert shell.ready == []


def test_an_upgrade_is_plain_http_when_websockets_are_off() -> None:
    shell = Shell(websocket=False)
    shell.feed(WS_HEAD)
    assert shell.conn.upgrade is None
    assert len(shell.ready) == 1


def test_too_many_bytes_during_a_handshake_stop_reading() -> None:
    shell = Shell(websocket=True)
    shell.feed(WS_HEAD)
    shell.feed(b"x" * (MAX_HELD + 1))
    assert not shell.reading


@pytest.mark.parametrize("cut", range(len(PREFACE) + 1))
def test_h2c_prior_knowledge_switches_at_any_split(cut: int) -> None:
    shell = Shell(h2c=True)
    frames = PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    shell.feed(frames[:cut])
    shell.feed(frames[cut:])
    [switch] = shell.switched
    assert (switch.protocol, switch.data) in {("h2", frames), ("h2", frames[:cut] or frames)}
    assert b"".join([frames[:cut], frames[cut:]]).startswith(switch.data)
    assert shell.ready == []


def test_without_h2c_the_preface_is_a_bad_http1_request() -> None:
    shell = Shell(h2c=False)
    shell.feed(PREFACE)
    assert shell.switched == []
    assert responses(shell.take())[0][0] >= 400


def test_http1_on_an_h2c_connection_stays_http1() -> None:
    shell = Shell(h2c=True)
    shell.bytewise(b"PUT / HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n")
    assert shell.switched == []
    assert shell.ready[0][0].method == b"PUT"


def test_upgrade_h2c_answers_101_and_hands_over_the_request() -> None:
    shell = Shell(h2c=True)
    shell.bytewise(
        b"GET /s HTTP/1.1\r\nhost: a\r\nconnection: upgrade, http2-settings\r\n"
        b"upgrade: h2c\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n\r\n"
    )
    assert shell.take().startswith(b"HTTP/1.1 101 ")
    [switch] = shell.switched
    assert switch.protocol == "h2c"
    assert switch.settings == b"AAMAAABkAAQAAP__"
    assert switch.request is not None
    assert switch.request.version == b"2"
    assert all(n not in (b"upgrade", b"connection") for n, _ in switch.request.headers)
    assert shell.ready == []


def test_alpn_switches_before_the_first_byte() -> None:
    shell = Shell()
    shell.apply(shell.conn.switch("h2"))
    assert [s.protocol for s in shell.switched] == ["h2"]


# -- the shell contract --------------------------------------------------------------------


def test_request_ready_is_the_last_event_of_every_call() -> None:
    shell = Shell()
    events = shell.conn.receive(client_bytes(get("/1"), get("/2")), 0.0)
    assert isinstance(events[-1], RequestReady)
    events = shell.conn.respond(200, LENGTH, b"content-length: 0\r\n", b"", True, 0.0)
    assert isinstance(events[-1], RequestReady)
    assert [type(e) for e in events[:2]] == [Write, Ended]


CORE = Path(h1_connection.__file__)


@pytest.mark.parametrize("name", ["h1_connection.py", "h1_events.py"])
def test_the_core_imports_no_io(name: str) -> None:
    for node in ast.walk(ast.parse((CORE.parent / name).read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for imported in names:
            assert imported.split(".")[0] not in {"asyncio", "socket", "time", "os"}, imported


def test_importing_the_core_loads_neither_asyncio_nor_socket() -> None:
    code = (
        "import sys; import swserve.protocol.h1_connection; "
        "print(sorted({'asyncio', 'socket'} & set(sys.modules)))"
    )
    # without coverage's start-up hook (CI measures the unit tests): coverage imports socket
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env=env,
    )
    assert out.stdout.strip() == "[]"
