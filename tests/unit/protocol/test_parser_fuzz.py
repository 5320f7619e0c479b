"""Property tests for both parsers: what holds for any input, not just the corpus.

* Nothing but ProtocolError ever escapes ``feed()`` (arbitrary bytes, mutated
  corpus requests, and streams built from a small request grammar).
* Where the input is cut into ``feed()`` calls does not change the outcome.
* No body buffered or handed out ever exceeds ``Limits.body``.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, strategies as st

from swserve.errors import ProtocolError
from swserve.protocol.limits import Limits
from tests.unit.protocol.support import PARSER_IDS, PARSERS, load, run, split_at

parsers = pytest.mark.parametrize("parser_cls", PARSERS, ids=PARSER_IDS)

SEEDS = [case.raw for case in load("valid") + load("invalid") if len(case.raw) <= 600]

CRLF = b"\r\n"

# fragments that move a parser between states when spliced into a request
TOKENS = [
    b"\r\n",
    b"\r\n\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b":",
    b";",
    b",",
    b"\x00",
    b"\x7f",
    b"\xff",
    b"0",
    b"ffffffffffffffffff",
    b"chunked",
    b"HTTP/1.0",
    b"HTTP/1.1",
    b"CONNECT",
    b"HEAD",
    b"Host: x\r\n",
    b"Content-Length: 4\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n",
    b"Connection: upgrade\r\nUpgrade: x\r\n",
    b"Expect: 100-continue\r\n",
    b"0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
]


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(raw)))
        op = draw(st.sampled_from(("flip", "insert", "delete", "token", "cut")))
        if op == "flip" and pos < len(raw):
            raw[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del raw[pos : pos + draw(st.integers(1, 8))]
        elif op == "token":
            raw[pos:pos] = draw(st.sampled_from(TOKENS))
        else:
            del raw[pos:]
    return bytes(raw)


# Choices repeat the ordinary values so that most generated requests are valid
# and the parser reaches the later states (bodies, pipelining, close, upgrade).
METHODS = [b"GET"] * 4 + [b"POST"] * 4 + [b"HEAD", b"PUT", b"OPTIONS", b"CONNECT", b"PRI", b"BREW"]
TARGETS = [b"/"] * 3 + [b"/a?b=c", b"*", b"example.com:443", b"http://example.com/x", b"/%7e"]
VERSIONS = [b" HTTP/1.1"] * 6 + [b" HTTP/1.0"] * 2 + [b" HTTP/2.0", b" HTTP/0.9", b""]
HOSTS = [[b"Host: example.com"]] * 8 + [[], [b"Host: a", b"Host: b"]]
CONNECTIONS: list[list[bytes]] = [[]] * 4 + [
    [b"Connection: close"],
    [b"Connection: keep-alive"],
    [b"Connection: upgrade", b"Upgrade: websocket"],
    [b"Upgrade: websocket"],
]
EXTRAS = [
    b"Expect: 100-continue",
    b"Expect: nothing",
    b"X-Value: a b",
    b"X-Empty:",
    b"X-Ctl: a\x01b",
    b"X-Ows: a \t",
    b" folded",
    b"Trailer: X-T",
]
CHUNKED_BODIES = [
    b"0\r\n\r\n",
    b"3\r\nabc\r\n0\r\n\r\n",
    b"3;x=y\r\nabc\r\n9\r\ndefghijkl\r\n0\r\nX-T: 1\r\n\r\n",
    b"c\r\nabcdefghijkl\r\n0\r\n\r\n",
    b"4\r\n\n0\r\n\r\n0\r\n0-T: \r\n\r\n",  # "\n0" and CRLF CRLF inside, a trailer from 0
    b"zz\r\n",
]


@st.composite
def one_request(draw: st.DrawFn) -> bytes:
    line = (
        draw(st.sampled_from(METHODS))
        + b" "
        + draw(st.sampled_from(TARGETS))
        + draw(st.sampled_from(VERSIONS))
    )
    fields = [*draw(st.sampled_from(HOSTS)), *draw(st.sampled_from(CONNECTIONS))]
    framing = draw(st.sampled_from(["none"] * 3 + ["length"] * 3 + ["chunked"] * 2 + ["odd"]))
    body = b""
    if framing == "length":
        body = draw(st.sampled_from([b"", b"abc", b"abcdefghijkl"]))
        fields.append(b"Content-Length: %d" % len(body))
    elif framing == "chunked":
        fields.append(b"Transfer-Encoding: chunked")
        body = draw(st.sampled_from(CHUNKED_BODIES))
    elif framing == "odd":
        fields += draw(
            st.sampled_from(
                [
                    [b"Content-Length: 3, 3"],
                    [b"Content-Length: 3", b"Content-Length: 3"],
                    [b"Content-Length: 3", b"Transfer-Encoding: chunked"],
                    [b"Transfer-Encoding: gzip, chunked"],
                    [b"Transfer-Encoding: gzip"],
                ]
            )
        )
        body = draw(st.sampled_from([b"abc", *CHUNKED_BODIES]))
    fields += draw(st.lists(st.sampled_from(EXTRAS), max_size=2))
    turn = draw(st.integers(0, len(fields)))  # cheaper than st.permutations
    fields = fields[turn:] + fields[:turn]
    tail = draw(st.sampled_from([b""] * 5 + [b"\r\n"]))
    return CRLF.join([line, *fields]) + CRLF + CRLF + body + tail


@st.composite
def grammar_requests(draw: st.DrawFn) -> bytes:
    """1-3 requests in sequence, mostly valid, framing and connection options mixed."""
    return b"".join(draw(st.lists(one_request(), min_size=1, max_size=3)))


@st.composite
def with_cuts(draw: st.DrawFn, inputs: st.SearchStrategy[bytes]) -> tuple[bytes, list[int]]:
    """An input and the offsets at which to cut it into feed() calls."""
    raw = draw(inputs)
    if len(raw) < 2:
        return raw, []
    return raw, draw(st.lists(st.integers(1, len(raw) - 1), max_size=8))


# Inputs the random search is unlikely to hit, tried on every run.
_CLOSE_THEN_MORE = (
    b"GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
)
_CONNECT = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"


# -- only ProtocolError escapes -----------------------------------------------------------


@parsers
@given(case=with_cuts(st.binary(max_size=400)))
def test_arbitrary_bytes(parser_cls: type, case: tuple[bytes, list[int]]) -> None:
    raw, points = case
    run(parser_cls, split_at(raw, points))


@parsers
@given(case=with_cuts(st.binary(max_size=200).map(b"POST / HTTP/1.1\r\nHost: x\r\n".__add__)))
def test_arbitrary_bytes_after_a_request_head(
    parser_cls: type, case: tuple[bytes, list[int]]
) -> None:
    raw, points = case
    run(parser_cls, split_at(raw, points))


@parsers
@given(case=with_cuts(mutated_requests()))
def test_mutated_requests(parser_cls: type, case: tuple[bytes, list[int]]) -> None:
    raw, points = case
    run(parser_cls, split_at(raw, points))


@parsers
@given(case=with_cuts(grammar_requests()))
@example(case=(_CONNECT, []))
@example(case=(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" + _CONNECT + b"\x16\x03\x01", [27]))
def test_grammar_requests(parser_cls: type, case: tuple[bytes, list[int]]) -> None:
    raw, points = case
    run(parser_cls, split_at(raw, points))


# -- segmentation does not matter ---------------------------------------------------------


@parsers
@given(case=with_cuts(grammar_requests()))
@example(case=(_CLOSE_THEN_MORE, [47]))
def test_chunking_invariance_grammar(parser_cls: type, case: tuple[bytes, list[int]]) -> None:
    raw, points = case
    whole = run(parser_cls, [raw])
    pieces = run(parser_cls, split_at(raw, points))
    assert pieces.summary() == whole.summary(), (whole.reason, pieces.reason)


@parsers
@given(case=with_cuts(mutated_requests()))
@example(case=(_CLOSE_THEN_MORE, [47]))
def test_chunking_invariance_mutated(parser_cls: type, case: tuple[bytes, list[int]]) -> None:
    raw, points = case
    whole = run(parser_cls, [raw])
    pieces = run(parser_cls, split_at(raw, points))
    assert pieces.summary() == whole.summary(), (whole.reason, pieces.reason)


# -- bodies stay within Limits.body ---------------------------------------------------------

SMALL = Limits(body=8)


@parsers
@given(case=with_cuts(grammar_requests()))
def test_body_never_exceeds_limit(parser_cls: type, case: tuple[bytes, list[int]]) -> None:
    raw, points = case
    parser = parser_cls(SMALL)
    for chunk in [*split_at(raw, points), b""]:
        try:
            done = parser.feed(chunk)
        except ProtocolError as exc:
            done = exc.completed
            failed = True
        else:
            failed = False
        for req in done:
            assert len(req.body) <= SMALL.body
        if failed:
            return
        pending = parser.head_pending
        assert pending is None or len(pending.body) <= SMALL.body
