"""Parser behaviour across feed() calls: head_pending, EOF, limits, keep-alive, cost."""

from __future__ import annotations

import time
from typing import cast

import pytest

from swserve.errors import ProtocolError
from swserve.protocol.limits import Limits
from swserve.protocol.parser import Parser
from swserve.protocol.request import Request
from tests.unit.protocol.support import PARSER_IDS, PARSERS, bytewise, run

parsers = pytest.mark.parametrize("parser_cls", PARSERS, ids=PARSER_IDS)

HEAD_100 = b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"


@parsers
def test_head_pending_lifecycle(parser_cls: type) -> None:
    parser = parser_cls()
    assert parser.head_pending is None
    assert parser.feed(HEAD_100[:20]) == []
    assert parser.head_pending is None  # the head is not complete yet
    parser = cast(Parser, parser)  # feed() changes head_pending: undo mypy's narrowing
    assert parser.feed(HEAD_100[20:]) == []
    pending = parser.head_pending
    assert isinstance(pending, Request)
    assert (pending.method, pending.target, pending.expect_continue) == (b"POST", b"/up", True)
    assert parser.feed(b"hel") == []
    assert parser.head_pending is pending
    assert bytes(pending.body) == b"hel"
    (done,) = parser.feed(b"lo")
    assert done is pending
    assert bytes(done.body) == b"hello"
    assert parser.head_pending is None


@parsers
def test_head_pending_chunked(parser_cls: type) -> None:
    parser = parser_cls()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    assert parser.head_pending is not None
    assert bytes(parser.head_pending.body) == b"abc"
    (done,) = parser.feed(b"0\r\n\r\n")
    assert bytes(done.body) == b"abc"
    assert parser.head_pending is None


@parsers
def test_request_types(parser_cls: type) -> None:
    (req,) = parser_cls().feed(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Y: z\r\n\r\n")
    assert isinstance(req.body, bytearray)
    assert isinstance(req.headers, list)
    for name, value in req.headers:
        assert type(name) is bytes
        assert type(value) is bytes
    assert type(req.method) is bytes
    assert type(req.target) is bytes
    assert req.version == b"1.1"


@parsers
@pytest.mark.parametrize(
    "data",
    [b"", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"\r\n"],
    ids=["idle", "after-request", "after-empty-line"],
)
def test_eof_between_requests_is_not_an_error(parser_cls: type, data: bytes) -> None:
    """A client may close an idle connection; an empty line is no request (RFC 9112 §2.2)."""
    parser = parser_cls()
    parser.feed(data)
    assert parser.feed(b"") == []


@parsers
@pytest.mark.parametrize(
    "data",
    [b"G", b"GET / HTTP/1.1\r\nHost: a\r\n", HEAD_100, HEAD_100 + b"hel"],
    ids=["request-line", "header-section", "before-body", "mid-body"],
)
def test_eof_mid_request_is_400(parser_cls: type, data: bytes) -> None:
    parser = parser_cls()
    parser.feed(data)
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"")
    assert info.value.status_hint == 400


@parsers
def test_http10_keep_alive_across_feeds(parser_cls: type) -> None:
    """ab -k: HTTP/1.0 keep-alive requests, each sent after the previous response."""
    parser = parser_cls()
    request = b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n"
    for _ in range(3):
        (req,) = parser.feed(request)
        assert req.keep_alive


@parsers
def test_keep_alive_across_feeds(parser_cls: type) -> None:
    parser = parser_cls()
    for i in range(3):
        (req,) = parser.feed(
            b"POST /%d HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n%d" % (i, i)
        )
        assert (req.target, bytes(req.body)) == (b"/%d" % i, b"%d" % i)


@parsers
def test_completed_requests_travel_with_the_error(parser_cls: type) -> None:
    good = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
    with pytest.raises(ProtocolError) as info:
        parser_cls().feed(good + good + b"GET / HTTP/1.1\r\n\r\n")
    assert info.value.status_hint == 400
    assert [r.target for r in info.value.completed] == [b"/1", b"/1"]


# Small limits, so both sides of each boundary are cheap to build.
SMALL = Limits(request_line=16, header_count=4, header_field=24, header_block=200, body=4)


def _get(target: bytes = b"/", *fields: bytes) -> bytes:
    return b"\r\n".join([b"GET " + target + b" HTTP/1.1", b"Host: a", *fields]) + b"\r\n\r\n"


LIMIT_CASES = {
    "target-at-limit": (_get(b"/" + b"a" * 15), None),
    "target-over-limit": (_get(b"/" + b"a" * 16), 414),
    "headers-at-limit": (_get(b"/", b"A: 1", b"B: 2", b"C: 3"), None),
    "headers-over-limit": (_get(b"/", b"A: 1", b"B: 2", b"C: 3", b"D: 4"), 431),
    "field-at-limit": (_get(b"/", b"X-Field: " + b"v" * 17), None),
    "field-over-limit": (_get(b"/", b"X-Field: " + b"v" * 18), 431),
    "body-at-limit": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd",
        None,
    ),
    "body-over-limit": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabcde", 413),
}


@parsers
@pytest.mark.parametrize("feed", ["whole", "bytewise"])
@pytest.mark.parametrize("name", list(LIMIT_CASES))
def test_limits_are_honoured(parser_cls: type, feed: str, name: str) -> None:
    raw, status = LIMIT_CASES[name]
    outcome = run(parser_cls, [raw] if feed == "whole" else bytewise(raw), SMALL)
    assert outcome.status == status, outcome.reason


@parsers
@pytest.mark.parametrize("feed", ["whole", "bytewise"])
def test_header_block_limit(parser_cls: type, feed: str) -> None:
    """Every field within its own limit, together well over header_block."""
    limits = Limits(header_count=100, header_field=100, header_block=256)
    raw = _get(b"/", *(b"X-Field-%d: %s" % (i, b"v" * 60) for i in range(8)))
    outcome = run(parser_cls, [raw] if feed == "whole" else bytewise(raw), limits)
    assert outcome.status == 431, outcome.reason


@parsers
def test_bytewise_head_costs_linear_time(parser_cls: type) -> None:
    """A head dribbled one byte per segment (slowloris) must not cost quadratic CPU.

    19 KB of head takes httptools ~0.02 s and h11 itself ~0.06 s; the budget
    leaves a wide margin for slow machines, and the loop stops at the budget.
    """
    head = (
        b"GET / HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-Field-%03d: %s\r\n" % (i, b"v" * 300) for i in range(60))
        + b"\r\n"
    )
    parser = parser_cls()
    budget = 1.0
    start = time.perf_counter()
    done = []
    for i in range(len(head)):
        done += parser.feed(head[i : i + 1])
        if i % 512 == 0:
            elapsed = time.perf_counter() - start
            assert elapsed < budget, f"{i} of {len(head)} bytes took {elapsed:.2f}s"
    assert len(done) == 1


@parsers
def test_nothing_after_a_non_persistent_request_is_read(parser_cls: type) -> None:
    """RFC 9112 §9.6: bytes after Connection: close are ignored, in this feed or later."""
    parser = parser_cls()
    (req,) = parser.feed(b"GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGARBAGE\r\n")
    assert not req.keep_alive
    assert parser.feed(b"\x16\x03\x01 more garbage\r\n\r\n") == []
    assert parser.feed(b"") == []


@parsers
def test_http10_keep_alive_then_close(parser_cls: type) -> None:
    parser = parser_cls()
    keep = b"GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    close = b"GET /c HTTP/1.0\r\n\r\n"
    done = parser.feed(keep + keep[:10])
    done += parser.feed(keep[10:] + close + keep)
    assert [(r.target, r.keep_alive) for r in done] == [
        (b"/k", True),
        (b"/k", True),
        (b"/c", False),
    ]


@parsers
def test_refused_request_line_is_answered_at_its_end(parser_cls: type) -> None:
    """Whether a refused line is 400 or 501 depends on all of it (RFC 9110 §9.1)."""
    parser = parser_cls()
    assert parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBR") != []
    assert parser.feed(b"EW /pot HTTP/1.") == []
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"1\r\nHost: a\r\n\r\n")
    assert info.value.status_hint == 501
    parser = parser_cls()
    parser.feed(b"BREW /pot")
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"")  # no version will come: a malformed line
    assert info.value.status_hint == 400


@parsers
def test_dribbled_huge_field_is_refused_before_it_ends(parser_cls: type) -> None:
    """A field that never ends must not be buffered without bound (slowloris)."""
    outcome = run(parser_cls, [b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ", *[b"v" * 1024] * 200])
    assert (outcome.status, outcome.error_before_eof) == (431, True)


@parsers
def test_chunked_body_across_feeds_then_pipelined_requests(parser_cls: type) -> None:
    """A chunked body split across reads, then requests in the same read as its end."""
    head = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"5\r\n\n0\r\n0\r\n0\r\n0-trailer: x\r\n\r\n"
    tail = b"GET /g HTTP/1.1\r\nHost: a\r\n\r\nget / HTTP/1.1\r\n"
    for cut in range(1, len(body)):
        parser = parser_cls()
        done = list(parser.feed(head + body[:cut]))
        with pytest.raises(ProtocolError) as info:
            parser.feed(body[cut:] + tail)
        done += info.value.completed
        assert info.value.status_hint == 501, cut
        assert [(r.target, bytes(r.body)) for r in done] == [(b"/c", b"\n0\r\n0"), (b"/g", b"")]
        assert [name for name, _ in done[0].headers] == [b"host", b"transfer-encoding"]
