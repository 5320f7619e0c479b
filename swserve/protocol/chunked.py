"""The chunked transfer coding, read incrementally (RFC 9112 §7.1).

Both parser glues read chunked bodies with this reader (llhttp refuses the
whitespace RFC 9112 §7.1.1 allows in chunk extensions, so the httptools glue
stops llhttp at the end of a chunked request's head and reads the body here):
the same chunked body gets the same answer from either parser.
"""

from __future__ import annotations

import re
from typing import Final

from swserve.errors import ProtocolError
from swserve.protocol.limits import Limits
from swserve.protocol.request import BodyBuffer
from swserve.protocol.syntax import parse_field_line

_TOKEN: Final = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_QUOTED: Final = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_VALUE: Final = rb"(?:" + _TOKEN + rb"|" + _QUOTED + rb")?"
# RFC 9112 §7.1 and §7.1.1:
#   chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
#   chunk-ext  = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
# BWS is optional whitespace (RFC 9110 §5.6.3), which a recipient "MUST parse
# for such bad whitespace and remove it", so `5 ; a = b` is a valid size line.
# Nothing else may follow the size: `5 ` (no extension) and whitespace at the
# end of the line are refused.  What llhttp allows besides is kept: empty
# extensions between semicolons and an empty name or value.  Every whitespace
# run is possessive, so a line that fails costs linear time.
_BWS: Final = rb"[ \t]*+"
_EXT: Final = (
    _BWS + rb";" + _BWS + rb"(?:" + _TOKEN + rb"(?:" + _BWS + rb"=" + _BWS + _VALUE + rb")?"
    rb"|=" + _BWS + _VALUE + rb")?"
)
_SIZE_LINE: Final = re.compile(rb"([0-9A-Fa-f]+)(?:" + _EXT + rb")*\r")
# the same, matched in place with its LF: the fast path for many small chunks
_SIZE_CRLF: Final = re.compile(_SIZE_LINE.pattern + rb"\n")
# Trailer fields that would change how the message is framed are refused,
# not just discarded (RFC 9110 §6.5.1: framing fields cannot be processed
# outside the header section; a sender MUST NOT generate them there): an
# intermediary that merges trailers could frame the message differently.
_FRAMING_TRAILERS: Final = frozenset({b"content-length", b"transfer-encoding"})
_HEX: Final = b"0123456789abcdefABCDEF"
_MAX_CHUNK: Final = 1 << 64  # llhttp's chunk-size is a 64-bit integer: larger sizes are refused

# reader states
SIZE, DATA, DATA_END, TRAILER, DONE = range(5)


class ChunkedReader:
    """Reads one chunked body from a buffer that the caller keeps.

    ``read`` consumes what it can from ``buf[pos:]`` and returns the new
    position; an incomplete line is left in the buffer for the next call, so
    the caller must keep the bytes from the returned position on.
    """

    __slots__ = ("_left", "_limits", "_scanned", "_trailer_bytes", "_trailers", "state")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self.state = SIZE
        self._left = 0  # bytes of chunk-data still to come
        self._scanned = 0  # bytes of an incomplete line known to hold no LF
        self._trailers = 0
        self._trailer_bytes = 0

    def read(self, buf: bytes | bytearray, pos: int, body: BodyBuffer | None) -> int:
        """Read from ``buf[pos:]``; append chunk-data to ``body`` (None: skip it).

        Raises:
            ProtocolError: 400 for bad framing, 413 when ``body`` would exceed
                ``Limits.body``, 431 for an oversized trailer section.
        """
        limits = self._limits
        end = len(buf)
        while pos < end:
            state = self.state
            if state == DATA:
                take = min(self._left, end - pos)
                if body is not None:
                    body += buf[pos : pos + take]
                    if len(body) > limits.body:
                        raise ProtocolError(413, "request body too large")
                pos += take
                self._left -= take
                if not self._left:
                    self.state = DATA_END
            elif state == DATA_END:  # chunk-data must be followed by CRLF
                if buf[pos] != 13 or (pos + 1 < end and buf[pos + 1] != 10):
                    raise ProtocolError(400, "chunk data not followed by CRLF")
                if pos + 1 == end:
                    return pos
                pos += 2
                self.state = SIZE
            elif state == DONE:
                return pos
            elif state == SIZE and (whole := self._whole_size_line(buf, pos)) is not None:
                # a whole, valid size line, read in place; a chunk whose data and
                # CRLF are all here is taken at once (a client sending 1-byte
                # chunks costs one turn of this loop per chunk: keep it short)
                size, pos = whole
                self._scanned = 0
                if not size:
                    self.state = TRAILER
                    continue
                stop = pos + size
                if stop + 1 < end and buf[stop] == 13 and buf[stop + 1] == 10:
                    if body is not None:
                        body += buf[pos:stop]
                        if len(body) > limits.body:
                            raise ProtocolError(413, "request body too large")
                    pos = stop + 2
                else:
                    self._left = size
                    self.state = DATA
            else:
                nl = buf.find(b"\n", pos + self._scanned)
                if nl < 0:
                    self._scanned = end - pos
                    self._check_partial(end - pos)
                    return pos
                self._scanned = 0
                line = bytes(buf[pos:nl])
                pos = nl + 1
                if state == SIZE:
                    self._size_line(line)
                else:
                    self._trailer_line(line)
        return pos

    def _whole_size_line(self, buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
        """(chunk size, end of line) for a complete, valid size line at ``pos``.

        None when the line is incomplete or invalid: the line-by-line path
        then waits for it or refuses it.
        """
        crlf = buf.find(b"\r\n", pos, pos + 18)
        if crlf > pos and not buf[pos:crlf].strip(_HEX):  # bare hex digits: the usual line
            return int(buf[pos:crlf], 16), crlf + 2
        match = _SIZE_CRLF.match(buf, pos)
        if match is None:
            return None
        if match.end() - pos - 1 > self._limits.header_field:
            raise ProtocolError(400, "chunk extension too long")
        size = int(match.group(1), 16)
        if size >= _MAX_CHUNK:
            raise ProtocolError(400, "chunk size overflow")
        return size, match.end()

    def _size_line(self, line: bytes) -> None:
        if len(line) > self._limits.header_field:
            raise ProtocolError(400, "chunk extension too long")
        match = _SIZE_LINE.fullmatch(line)
        if match is None:
            raise ProtocolError(400, "malformed chunk size line")
        size = int(match.group(1), 16)
        if size >= _MAX_CHUNK:
            raise ProtocolError(400, "chunk size overflow")
        if size:
            self._left = size
            self.state = DATA
        else:
            self.state = TRAILER

    def _trailer_line(self, line: bytes) -> None:
        if line == b"\r":
            self.state = DONE
            return
        limits = self._limits
        if len(line) > limits.head_backstop:
            raise ProtocolError(431, "trailer fields too large")
        # RFC 9112 §7.1.2: trailer fields are read (and validated) like header
        # fields, then discarded, never merged into the header section
        # (RFC 9110 §6.5.2); the header limits apply to them as well.
        name, value = parse_field_line(line)
        if name in _FRAMING_TRAILERS:
            raise ProtocolError(400, "framing field in the trailer section")
        size = len(name) + len(value)
        self._trailers += 1
        self._trailer_bytes += size + 4
        if (
            size > limits.header_field
            or self._trailers > limits.header_count
            or self._trailer_bytes > limits.header_block
        ):
            raise ProtocolError(431, "trailer fields too large")

    def _check_partial(self, pending: int) -> None:
        """Bound the bytes buffered for one incomplete line."""
        if self.state == SIZE:
            if pending > self._limits.header_field + 1:
                raise ProtocolError(400, "chunk extension too long")
        elif pending > self._limits.head_backstop:
            raise ProtocolError(431, "trailer fields too large")
