"""Chunked bodies through the httptools glue, which stops llhttp at the end of
a chunked request's head and reads the body with ChunkedReader (parser.py).

Every way of cutting a connection's bytes into three reads must give the same
requests: the glue hands the bytes after a chunked body to a fresh llhttp
parser, and must still know where each request line starts (for the error
path and the RTSP check) whatever read they arrive in.
"""

from __future__ import annotations

import pytest

from tests.unit.protocol.support import PARSER_IDS, PARSERS, load, run, split_at

CASES = {c.name: c for c in load("valid")}
NAMES = ["021-pipelined-bodies", "049-chunk-extension-bws"]


@pytest.mark.parametrize("parser_cls", PARSERS, ids=PARSER_IDS)
@pytest.mark.parametrize("name", NAMES)
def test_every_two_cuts(parser_cls: type, name: str) -> None:
    case = CASES[name]
    raw, expected = case.raw, case.requests
    for a in range(1, len(raw)):
        for b in range(a + 1 + a % 4, len(raw), 4):  # a quarter of the pairs, all offsets
            outcome = run(parser_cls, split_at(raw, [a, b]), case.limits)
            assert (outcome.status, outcome.requests) == (None, expected), (a, b, outcome.reason)


@pytest.mark.parametrize("parser_cls", PARSERS, ids=PARSER_IDS)
def test_rtsp_after_a_chunked_request_in_the_same_read(parser_cls: type) -> None:
    raw = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 ; x\r\na\r\n0\r\n\r\n"
        b"GET /x RTSP/1.1\r\nHost: a\r\n\r\n"
    )
    outcome = run(parser_cls, [raw])
    assert (outcome.status, len(outcome.requests)) == (400, 1)
    assert outcome.requests[0].body == b"a"
