"""ChunkedReader (protocol/chunked.py): the size line and the trailer section.

Both parser glues read chunked bodies with this reader, so these rules hold
for both; the corpus replays them through each glue.
"""

from __future__ import annotations

import time

import pytest

from swserve.errors import ProtocolError
from swserve.protocol.chunked import DONE, ChunkedReader
from swserve.protocol.limits import Limits


def read(body: bytes) -> bytes:
    reader = ChunkedReader(Limits())
    out = bytearray()
    pos = reader.read(body, 0, out)
    assert (reader.state, pos) == (DONE, len(body))
    return bytes(out)


@pytest.mark.parametrize(
    "size_line",
    [
        b"5",
        b"5;a=b",
        b"5 ;a=b",  # RFC 9112 §7.1.1: BWS ";" BWS chunk-ext-name [ BWS "=" BWS value ]
        b"5; a=b",
        b"5 ; a=b",
        b"5\t;\ta\t=\tb",
        b'5;a = "q;x"',
        b"5 ; a ; b=c ;d",
        b"5;;a",  # llhttp's extras: empty extensions, empty names and values
        b"5;=x",
        b"5;a=",
    ],
)
def test_size_lines_accepted(size_line: bytes) -> None:
    assert read(size_line + b"\r\nhello\r\n0\r\n\r\n") == b"hello"


@pytest.mark.parametrize(
    "size_line",
    [
        b"5 ",  # whitespace only where an extension follows
        b"5;a=b ",
        b"5;a b",
        b" 5",
        b"5;a=b\rc",
        b"x",
        b'5;a="unterminated',
    ],
)
def test_size_lines_refused(size_line: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        read(size_line + b"\r\nhello\r\n0\r\n\r\n")
    assert caught.value.status_hint == 400


def test_long_whitespace_runs_fail_fast() -> None:
    """The BWS runs are possessive: a refused line costs linear time, not quadratic."""
    line = b"5" + b" ;" * 20_000 + b";a" + b" " * 100_000 + b"\x01"
    reader = ChunkedReader(Limits(header_field=1 << 20))
    started = time.process_time()
    with pytest.raises(ProtocolError):
        reader.read(line + b"\r\n", 0, bytearray())
    assert time.process_time() - started < 1.0


@pytest.mark.parametrize("name", [b"Content-Length", b"transfer-encoding"])
def test_framing_fields_in_trailers_are_refused(name: bytes) -> None:
    """RFC 9110 §6.5.1: framing fields are not processed outside the header section."""
    with pytest.raises(ProtocolError) as caught:
        read(b"1\r\na\r\n0\r\n" + name + b": 5\r\n\r\n")
    assert caught.value.status_hint == 400


def test_other_trailers_are_read_and_dropped() -> None:
    assert read(b"1\r\na\r\n0\r\nX-Checksum: abc\r\nServer-Timing: x\r\n\r\n") == b"a"


def feed_bytewise(reader: ChunkedReader, raw: bytes, out: bytearray) -> None:
    buf, pos = b"", 0
    for i in range(len(raw)):
        buf += raw[i : i + 1]
        pos = reader.read(buf, pos, out)


@pytest.mark.parametrize("whole", [True, False])
def test_a_long_extension_is_refused_in_one_read_or_many(whole: bool) -> None:
    """The in-place path (a whole line in the buffer) keeps the size-line limit."""
    raw = b"5;" + b"a" * 20 + b"\r\nhello\r\n0\r\n\r\n"
    reader = ChunkedReader(Limits(header_field=16))
    with pytest.raises(ProtocolError) as caught:
        (reader.read(raw, 0, bytearray()) if whole else feed_bytewise(reader, raw, bytearray()))
    assert caught.value.status_hint == 400


def test_hex_sizes_in_place_and_split_agree() -> None:
    raw = b"a\r\n0123456789\r\n0000000000000000001\r\nx\r\n1;e\r\ny\r\n0\r\n\r\n"
    assert read(raw) == b"0123456789xy"
    reader = ChunkedReader(Limits())
    out = bytearray()
    feed_bytewise(reader, raw, out)
    assert (reader.state, bytes(out)) == (DONE, b"0123456789xy")
