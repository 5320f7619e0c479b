"""A spooled body takes the place of a request's bytearray between two feeds.

reactor/spool.py's SpooledBody replaces ``head_pending.body`` once a body passes
--body-spool-size, and the parser goes on appending to it.  Compiled by mypyc
(docs/compiled.md), a ``bytearray``-typed attribute or argument would reject it
with a TypeError: these run on both builds in CI.
"""

from __future__ import annotations

from typing import Self, cast

import pytest

from swserve.protocol.parser import Parser
from tests.unit.protocol.support import PARSER_IDS, PARSERS

parsers = pytest.mark.parametrize("parser_cls", PARSERS, ids=PARSER_IDS)


class Spool:
    """Stands in for SpooledBody: ``+=`` and ``len()``, the bytes kept in a list."""

    def __init__(self, initial: bytes | bytearray) -> None:
        self.parts = [bytes(initial)]

    def __iadd__(self, data: bytes | bytearray) -> Self:
        self.parts.append(bytes(data))
        return self

    def __len__(self) -> int:
        return sum(map(len, self.parts))


HEADS = {
    "length": b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n",
    "chunked": b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
}
BODIES = {
    "length": (b"hello", b"world"),
    "chunked": (b"5\r\nhello\r\n", b"5\r\nworld\r\n0\r\n\r\n"),
}


@parsers
@pytest.mark.parametrize("framing", sorted(HEADS))
def test_parser_appends_to_a_spooled_body(parser_cls: type, framing: str) -> None:
    parser = cast(Parser, parser_cls())
    first, rest = BODIES[framing]
    assert parser.feed(HEADS[framing] + first) == []
    pending = parser.head_pending
    assert pending is not None
    assert bytes(pending.body) == b"hello"
    spool = Spool(pending.body)
    pending.body = spool  # what HttpConnection._spool does
    (done,) = parser.feed(rest)
    assert done is pending
    assert done.body is spool
    assert b"".join(spool.parts) == b"helloworld"
    assert len(done.body) == 10
