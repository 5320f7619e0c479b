"""A request's HTTP/2 fields checked in one pass (RFC 9113 §8.2-8.3), byte by byte."""

from __future__ import annotations

import h2.connection
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import Frame, HeadersFrame, RstStreamFrame
from hypothesis import given, strategies as st

from swserve.protocol.http2 import ConnectionEnded, Limits, RequestReady
from swserve.protocol.http2_fields import request_from_fields
from swserve.protocol.request import Request
from tests.unit.test_http2_core import REQ, feed, pair

Fields = list[tuple[bytes, bytes]]


def test_a_good_request_becomes_a_request_with_host_first() -> None:
    req = request_from_fields([*REQ, (b"accept", b"*/*"), (b"te", b"trailers")])
    assert isinstance(req, Request)
    assert (req.method, req.target, req.version) == (b"GET", b"/x?y=1", b"2")
    assert req.headers == [(b"host", b"ex"), (b"accept", b"*/*"), (b"te", b"trailers")]


def test_host_alone_stands_for_authority_and_may_equal_it() -> None:
    req = request_from_fields([*REQ[:3], (b"host", b"h"), (b"a", b"1")])
    assert isinstance(req, Request)
    assert req.headers == [(b"host", b"h"), (b"a", b"1")]
    req = request_from_fields([*REQ, (b"host", b"ex")])
    assert isinstance(req, Request)
    assert req.headers == [(b"host", b"ex")]


def test_an_empty_value_is_allowed() -> None:
    assert isinstance(request_from_fields([*REQ, (b"x-empty", b"")]), Request)


MALFORMED: dict[str, Fields] = {
    "upper-case name": [*REQ, (b"X-A", b"1")],
    "space in name": [*REQ, (b"x a", b"1")],
    "colon in name": [*REQ, (b"x:a", b"1")],
    "non-ASCII name": [*REQ, (b"x\xe9", b"1")],
    "empty name": [*REQ, (b"", b"1")],
    "NUL in value": [*REQ, (b"x-a", b"a\x00b")],
    "CR in value": [*REQ, (b"x-a", b"a\rb")],
    "LF in value": [*REQ, (b"x-a", b"a\nb")],
    "leading space": [*REQ, (b"x-a", b" a")],
    "trailing tab": [*REQ, (b"x-a", b"a\t")],
    "CR in a pseudo-header": [(b":method", b"GET"), (b":path", b"/\r\n"), *REQ[2:]],
    "connection": [*REQ, (b"connection", b"close")],
    "transfer-encoding": [*REQ, (b"transfer-encoding", b"chunked")],
    "upgrade": [*REQ, (b"upgrade", b"websocket")],
    "keep-alive": [*REQ, (b"keep-alive", b"5")],
    "te gzip": [*REQ, (b"te", b"gzip")],
    "pseudo after regular": [*REQ[:3], (b"a", b"1"), REQ[3]],
    "unknown pseudo": [*REQ, (b":foo", b"1")],
    "response pseudo": [*REQ, (b":status", b"200")],
    "protocol without extended CONNECT": [*REQ, (b":protocol", b"websocket")],
    "duplicate pseudo": [*REQ, (b":path", b"/again")],
    "no method": REQ[1:],
    "no scheme": [REQ[0], REQ[1], REQ[3]],
    "no path": [REQ[0], REQ[2], REQ[3]],
    "empty path": [REQ[0], (b":path", b""), *REQ[2:]],
    "CONNECT with a path": [(b":method", b"CONNECT"), *REQ[1:]],
    "no authority nor host": REQ[:3],
    "authority and host differ": [*REQ, (b"host", b"other")],
    "host twice": [*REQ[:3], (b"host", b"h"), (b"host", b"h")],
}


@pytest.mark.parametrize("fields", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_fields_are_told_why(fields: Fields) -> None:
    assert isinstance(request_from_fields(fields), str)


@given(st.binary(max_size=40))
def test_a_value_passes_exactly_when_rfc_9113_allows_it(value: bytes) -> None:
    allowed = not any(c in value for c in b"\0\r\n") and not (
        value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t")
    )
    assert isinstance(request_from_fields([*REQ, (b"x-v", value)]), Request) == allowed


@given(st.binary(min_size=1, max_size=20))
def test_a_name_passes_exactly_when_rfc_9113_allows_it(name: bytes) -> None:
    allowed = all(0x21 <= c <= 0x7E and not 0x41 <= c <= 0x5A and c != 0x3A for c in name)
    special = name in (b"host", b"te", b"connection", b"keep-alive", b"proxy-connection")
    special = special or name in (b"transfer-encoding", b"upgrade")
    if not special:
        assert isinstance(request_from_fields([*REQ, (name, b"v")]), Request) == allowed


def raw_headers(client: h2.connection.H2Connection, sid: int, fields: Fields) -> bytes:
    """A HEADERS frame the h2 client would refuse to send (it validates what it sends)."""
    block = client.encoder.encode(fields)
    return HeadersFrame(sid, data=block, flags=["END_STREAM", "END_HEADERS"]).serialize()


def sent_resets(data: bytes) -> list[tuple[int, int]]:
    """(stream id, error code) of every RST_STREAM in the server's bytes."""
    out = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        if isinstance(frame, RstStreamFrame):
            out.append((frame.stream_id, frame.error_code))
        data = data[9 + length :]
    return out


def test_a_malformed_request_resets_its_stream_only() -> None:
    server, client = pair()
    preface = client.data_to_send()
    raw = raw_headers(client, 1, [*REQ, (b"X-Upper", b"1")])
    raw += raw_headers(client, 3, REQ)
    events = feed(server, preface + raw)
    assert [e.stream_id for e in events if isinstance(e, RequestReady)] == [3]
    assert sent_resets(server.data_to_send()) == [(1, ErrorCodes.PROTOCOL_ERROR)]


def test_malformed_requests_count_toward_the_reset_flood() -> None:
    server, client = pair(Limits(per_second=10))
    raw = client.data_to_send()
    raw += b"".join(raw_headers(client, 1 + 2 * i, [*REQ, (b"Bad", b"1")]) for i in range(15))
    events = feed(server, raw, 0.0)
    assert ConnectionEnded(ErrorCodes.ENHANCE_YOUR_CALM) in events
