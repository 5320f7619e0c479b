"""Response bytes from serializer.py, read back by h11 as a strict client.

h11 plays the client: it sends a matching request (so it knows, e.g., that a
HEAD response has no body), then must parse our bytes into exactly one
response with the right status and body, framed the way ``plan_response``
said, and with nothing left over.
"""

from __future__ import annotations

import itertools

import h11
import pytest

from swserve.errors import ProtocolError
from swserve.protocol import serializer
from swserve.protocol.parser import HttptoolsParser
from swserve.protocol.request import Request
from swserve.protocol.serializer import (
    APP_CLOSE,
    HAS_CONTENT_LENGTH,
    HAS_DATE,
    HAS_SERVER,
    LAST_CHUNK,
    chunk,
    error_response,
    plan_response,
    response_head,
)

DATE_SERVER = b"date: Sun, 06 Nov 1994 08:49:37 GMT\r\nserver: swserve\r\n"
BODY = b"hello, world"


def make_request(
    method: bytes = b"GET", version: bytes = b"1.1", keep_alive: bool = True
) -> Request:
    req = Request()
    req.method = method
    req.target = b"/"
    req.version = version
    req.headers = [(b"host", b"example.com")]
    req.keep_alive = keep_alive
    return req


def client_for(req: Request) -> h11.Connection:
    """An h11 client that has sent the equivalent of ``req``.

    h11 always speaks HTTP/1.1 on the wire; for an HTTP/1.0 request it still
    checks the response's framing, and keep-alive is checked from the headers.
    """
    client = h11.Connection(h11.CLIENT)
    headers = [("host", "example.com")]
    if not req.keep_alive and req.version == b"1.1":
        headers.append(("connection", "close"))
    client.send(h11.Request(method=req.method, target=req.target, headers=headers))
    client.send(h11.EndOfMessage())
    return client


def read_response(client: h11.Connection, wire: bytes) -> tuple[h11.Response, bytes, bool]:
    """Parse one response; returns (response, body, ended_before_eof).

    ``wire`` may be empty when an earlier call already handed h11 the bytes.
    """
    if wire:
        client.receive_data(wire)
    response = None
    body = b""
    eof_sent = False
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            assert not eof_sent, "response incomplete"
            client.receive_data(b"")  # the server closes after a close-delimited body
            eof_sent = True
        elif isinstance(event, h11.Response):
            assert response is None
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert response is not None
            return response, body, not eof_sent
        else:
            raise AssertionError(f"unexpected event {event!r}")


def header_lines(head: bytes) -> list[bytes]:
    lines = head.split(b"\r\n")
    assert lines[-2:] == [b"", b""], "head must end with an empty line"
    return [line.lower() for line in lines[1:-2]]


def build(
    req: Request, status: int, flags: int, *, shutting_down: bool = False
) -> tuple[serializer.ResponsePlan, bytes, bytes]:
    """Plan, head and full wire bytes for a response the app sends BODY with."""
    plan = plan_response(req, status, flags, shutting_down=shutting_down)
    app_headers = b"content-type: text/plain\r\n"
    if flags & HAS_CONTENT_LENGTH:
        app_headers += b"content-length: %d\r\n" % len(BODY)
    head = response_head(req, status, flags, app_headers, plan, DATE_SERVER)
    wire = head
    if plan.body_allowed:
        if plan.chunked:
            wire += b"".join([*chunk(BODY[:5]), *chunk(BODY[5:]), LAST_CHUNK])
        else:
            wire += BODY
    return plan, head, wire


MATRIX = [
    (method, version, keep_alive, status, flags, shutting_down)
    for method, version, keep_alive, status, flags, shutting_down in itertools.product(
        (b"GET", b"HEAD"),
        (b"1.1", b"1.0"),
        (True, False),
        (200, 204, 304, 404, 500),
        (0, HAS_CONTENT_LENGTH),
        (False, True),
    )
    # an app must not send Content-Length with 204 (RFC 9110 §8.6)
    if not (status == 204 and flags)
]


def _id(case: tuple[bytes, bytes, bool, int, int, bool]) -> str:
    method, version, keep_alive, status, flags, shutting_down = case
    return "-".join(
        [
            method.decode(),
            "http" + version.decode(),
            "ka" if keep_alive else "close",
            str(status),
            "cl" if flags else "nocl",
            *(["draining"] if shutting_down else []),
        ]
    )


@pytest.mark.parametrize("case", MATRIX, ids=[_id(c) for c in MATRIX])
def test_response_parses_with_h11(case: tuple[bytes, bytes, bool, int, int, bool]) -> None:
    method, version, keep_alive, status, flags, shutting_down = case
    req = make_request(method, version, keep_alive)
    plan, head, wire = build(req, status, flags, shutting_down=shutting_down)

    client = client_for(req)
    response, body, ended_before_eof = read_response(client, wire)
    assert response.status_code == status
    assert body == (BODY if plan.body_allowed else b"")
    assert client.trailing_data[0] == b"", "bytes after the response"

    lines = header_lines(head)
    names = [line.split(b":", 1)[0] for line in lines]
    assert names.count(b"date") == 1
    assert names.count(b"server") == 1
    assert names.count(b"content-length") <= 1
    assert not (b"content-length" in names and b"transfer-encoding" in names)
    # RFC 9112 §6.1: no Transfer-Encoding to HTTP/1.0, nor on 1xx/204 (or 304) responses
    if plan.chunked:
        assert version == b"1.1"
        assert plan.body_allowed
        assert b"transfer-encoding: chunked" in lines
    else:
        assert b"transfer-encoding" not in names

    # the plan's decisions
    assert plan.body_allowed == (method != b"HEAD" and status not in (204, 304))
    if shutting_down or not keep_alive:
        assert not plan.keep_alive
    if plan.keep_alive:
        # the body must end by its framing, never by the close
        assert ended_before_eof
        if version == b"1.1":
            assert client.their_state is h11.DONE
            assert b"connection: close" not in lines
        else:
            assert b"connection: keep-alive" in lines
    else:
        assert b"connection: keep-alive" not in lines
        if version == b"1.1":
            assert b"connection: close" in lines
            assert client.their_state is h11.MUST_CLOSE
        elif keep_alive:
            # the client asked to keep it open: tell it we will not
            assert b"connection: close" in lines


def test_keep_alive_responses_back_to_back() -> None:
    """Several keep-alive responses on one connection leave h11 exactly in step."""
    client = h11.Connection(h11.CLIENT)
    cases = [
        (b"GET", 200, 0),
        (b"HEAD", 200, 0),
        (b"GET", 304, 0),
        (b"GET", 204, 0),
        (b"HEAD", 200, HAS_CONTENT_LENGTH),
        (b"GET", 404, HAS_CONTENT_LENGTH),
        (b"GET", 200, 0),
    ]
    wire = b""
    plans = []
    for method, status, flags in cases:
        req = make_request(method)
        plan, _, one = build(req, status, flags)
        assert plan.keep_alive
        plans.append(plan)
        wire += one
    for (method, status, _), plan in zip(cases, plans, strict=True):
        client.send(h11.Request(method=method, target="/", headers=[("host", "example.com")]))
        client.send(h11.EndOfMessage())
        response, body, ended_before_eof = read_response(client, wire)
        wire = b""  # all bytes were given to h11 at the first read
        assert (response.status_code, ended_before_eof) == (status, True)
        assert body == (BODY if plan.body_allowed else b"")
        client.start_next_cycle()
    assert client.trailing_data == (b"", False)


@pytest.mark.parametrize("flags", [HAS_DATE, HAS_SERVER, HAS_DATE | HAS_SERVER])
def test_app_date_and_server_replace_ours(flags: int) -> None:
    req = make_request()
    plan = plan_response(req, 200, flags | HAS_CONTENT_LENGTH)
    app = b"content-length: 0\r\n"
    if flags & HAS_DATE:
        app += b"date: Mon, 07 Nov 1994 00:00:00 GMT\r\n"
    if flags & HAS_SERVER:
        app += b"server: my-app\r\n"
    head = response_head(req, 200, flags | HAS_CONTENT_LENGTH, app, plan, DATE_SERVER)
    lines = header_lines(head)
    assert [line for line in lines if line.startswith(b"date:")] == [
        b"date: mon, 07 nov 1994 00:00:00 gmt"
        if flags & HAS_DATE
        else b"date: sun, 06 nov 1994 08:49:37 gmt"
    ]
    assert [line for line in lines if line.startswith(b"server:")] == [
        b"server: my-app" if flags & HAS_SERVER else b"server: swserve"
    ]
    response, body, _ = read_response(client_for(req), head)
    assert (response.status_code, body) == (200, b"")


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_app_close(version: bytes) -> None:
    req = make_request(version=version)
    plan, head, wire = build(req, 200, HAS_CONTENT_LENGTH | APP_CLOSE)
    assert not plan.keep_alive
    assert b"connection: close" in header_lines(head)
    client = client_for(req)
    response, body, _ = read_response(client, wire)
    assert (response.status_code, body) == (200, BODY)
    if version == b"1.1":
        assert client.their_state is h11.MUST_CLOSE


@pytest.mark.parametrize("status", [100, 103, 200, 201, 299, 301, 418, 426, 451, 599])
def test_status_line(status: int) -> None:
    line = serializer.status_line(status)
    assert line.startswith(b"HTTP/1.1 %d " % status)
    assert line.endswith(b"\r\n")
    assert line.count(b"\r\n") == 1
    if status >= 200:
        req = make_request()
        _, _, wire = build(req, status, HAS_CONTENT_LENGTH)
        response, _, _ = read_response(client_for(req), wire)
        assert response.status_code == status


def test_chunk_framing() -> None:
    assert b"".join(chunk(b"x" * 26)) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


# -- error responses ------------------------------------------------------------------------

ERROR_STATUSES = [400, 408, 413, 414, 417, 431, 500, 501, 502, 503, 505]


@pytest.mark.parametrize("status", ERROR_STATUSES)
@pytest.mark.parametrize("method", [b"GET", b"POST"])
def test_error_response_parses(status: int, method: bytes) -> None:
    wire = error_response(status, DATE_SERVER)
    client = client_for(make_request(method))
    response, body, ended_before_eof = read_response(client, wire)
    assert response.status_code == status
    assert ended_before_eof  # framed by Content-Length, not by the close
    assert body.startswith(b"%d " % status)
    assert client.their_state is h11.MUST_CLOSE
    assert client.trailing_data[0] == b""
    lines = header_lines(wire[: wire.index(b"\r\n\r\n") + 4])
    assert b"connection: close" in lines
    assert b"content-length: %d" % len(body) in lines


MARKER = b"<script>alert(1)</script>"
HOSTILE = [
    b"GET /" + MARKER + b" HTTP/1.1\r\n\r\n",
    b"GET /?q=" + MARKER + b" HTTP/1.1\r\nHost: a\r\nX: " + MARKER + b"\r\nX: \x00\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
    + MARKER,
    MARKER + b"\r\n\r\n",
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_error_response_never_echoes_the_request(raw: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        HttptoolsParser().feed(raw)
    wire = error_response(info.value.status_hint, DATE_SERVER)
    assert MARKER not in wire
    assert b"script" not in wire.lower()
    assert info.value.reason.encode() not in wire
