"""Parser glue for the pure-Python fallback: swserve's framing, h11's grammar.

h11 is a full client/server state machine, and on its own it differs from
llhttp where it matters: it unfolds obs-fold lines, merges repeated
Content-Length values, accepts control characters in field values and
whitespace after a chunk size, waits for any chunk size, refuses empty lines
before a request line, cannot carry on after an HTTP/1.0 keep-alive request,
and fails on CONNECT.  So this glue frames the stream itself, with the rules
the httptools glue shares (``syntax``, ``framing``, ``chunked``): it cuts the
buffer into the request line, the field lines and the body, looking at each
byte once, and gives each complete head to a fresh h11 connection, which
checks its grammar.  The body never reaches h11.
"""

from __future__ import annotations

from typing import Final

import h11

from swserve.errors import ProtocolError
from swserve.protocol.chunked import DONE, ChunkedReader
from swserve.protocol.head_checks import check_head
from swserve.protocol.limits import Limits
from swserve.protocol.request import FRAMING_HEADERS, Request
from swserve.protocol.syntax import (
    check_request_line_prefix,
    parse_field_line,
    parse_request_line,
    skip_empty_lines,
)
from swserve.protocol.target import check_target

# parser states
_LINE: Final = 0  # before a request line (empty lines are skipped)
_FIELDS: Final = 1  # in the header section
_LENGTH: Final = 2  # in a Content-Length body
_CHUNKED: Final = 3  # in a chunked body
_STOPPED: Final = 4  # after a request that is not persistent: the rest is ignored

# An incomplete request line is checked on every feed while short, then each
# time it grows by _RECHECK bytes (the checks look at the whole line so far).
_SHORT_LINE: Final = 64
_RECHECK: Final = 256


class H11Parser:
    """Same interface and results as :class:`~swserve.protocol.parser.HttptoolsParser`."""

    __slots__ = (
        "_buf",
        "_checked",
        "_chunks",
        "_fields_start",
        "_framing",
        "_head_bytes",
        "_head_start",
        "_left",
        "_limits",
        "_pos",
        "_req",
        "_scanned",
        "_state",
        "head_pending",
    )

    def __init__(self, limits: Limits | None = None) -> None:
        self._limits = limits or Limits()
        self._buf = bytearray()
        self._pos = 0  # the first byte of _buf not yet parsed
        self._scanned = 0  # bytes after _pos known to hold no LF (each byte is scanned once)
        self._state = _LINE
        self._req = Request()
        self._head_start = 0  # offset in _buf of the request line being read
        self._fields_start = 0  # offset in _buf of its first field line
        self._framing: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0  # sum of (field size + 4), as in the httptools glue
        self._checked = 0  # length of the incomplete request line when last checked
        self._left = 0  # Content-Length bytes still to come
        self._chunks: ChunkedReader | None = None
        self.head_pending: Request | None = None

    def feed(self, data: bytes) -> list[Request]:
        if self._state == _STOPPED:
            return []
        done: list[Request] = []
        try:
            if not data:
                self._eof()
                return []
            self._buf += data
            self._run(done)
        except ProtocolError as exc:
            exc.completed = done
            raise
        except h11.ProtocolError as exc:  # nothing but ProtocolError leaves feed()
            error = ProtocolError(exc.error_status_hint, f"malformed request: {exc}")
            error.completed = done
            raise error from None
        return done

    def _run(self, done: list[Request]) -> None:
        while True:
            state = self._state
            if state == _LINE:
                progress = self._request_line()
            elif state == _FIELDS:
                progress = self._field_line(done)
            elif state == _LENGTH:
                progress = self._length_body(done)
            elif state == _CHUNKED:
                progress = self._chunked_body(done)
            else:
                return
            if not progress:
                break
        # drop what is parsed, but keep the head being read (h11 checks it whole)
        keep = self._head_start if self._state == _FIELDS else self._pos
        if keep:
            del self._buf[:keep]
            self._pos -= keep
            self._head_start -= keep
            self._fields_start -= keep

    def _find_lf(self) -> int:
        """The next LF from _pos, scanning only bytes not scanned before."""
        buf = self._buf
        pos = self._pos
        end = buf.find(b"\n", pos + self._scanned)
        if end < 0:
            self._scanned = len(buf) - pos
        else:
            self._scanned = 0
        return end

    def _request_line(self) -> bool:
        buf = self._buf
        pos = skip_empty_lines(buf, self._pos)
        if pos != self._pos:
            self._pos = pos
            self._scanned = 0
        end = self._find_lf()
        limits = self._limits
        if end < 0:
            pending = len(buf) - pos
            if pending and (pending <= _SHORT_LINE or pending - self._checked >= _RECHECK):
                self._checked = pending
                check_request_line_prefix(bytes(buf[pos:]), limits)
            return False
        self._checked = 0
        method, target, version = parse_request_line(bytes(buf[pos:end]), limits)
        req = Request()
        req.method = method
        req.target = target
        req.version = version
        self._req = req
        self._framing = []
        self._head_bytes = 0
        self._head_start = pos
        self._pos = self._fields_start = end + 1
        self._state = _FIELDS
        return True

    def _field_line(self, done: list[Request]) -> bool:
        buf = self._buf
        pos = self._pos
        limits = self._limits
        end = self._find_lf()
        # The raw head is bounded too (field sizes leave out OWS); the check
        # runs per line, in order, so where the input is cut does not matter.
        if (len(buf) if end < 0 else end + 1) - self._head_start > limits.head_backstop:
            raise ProtocolError(431, "request header fields too large")
        if end < 0:
            return False
        self._pos = end + 1
        if end == pos + 1 and buf[pos] == 13:  # the empty line: the head is complete
            self._end_of_head(end + 1, done)
            return True
        name, value = parse_field_line(bytes(buf[pos:end]))
        req = self._req
        req.headers.append((name, value))
        size = len(name) + len(value)
        self._head_bytes += size + 4
        if (
            size > limits.header_field
            or len(req.headers) > limits.header_count
            or self._head_bytes > limits.header_block
        ):
            raise ProtocolError(431, "request header fields too large")
        if name in FRAMING_HEADERS:
            self._framing.append((name, value))
        return True

    def _end_of_head(self, end: int, done: list[Request]) -> None:
        req = self._req
        limits = self._limits
        # The target and framing checks come first, in the httptools glue's
        # order: h11 would answer some of them differently (501 for
        # Transfer-Encoding: gzip, where 400 is right).
        target = req.target
        if target[:1] != b"/" or b"#" in target:
            req.target = check_target(req.method, target)
        head = check_head(req.version, self._framing, limits)
        # h11 wants single spaces in the request line; llhttp takes runs of them
        line = b"%s %s HTTP/%s\r\n" % (req.method, target, req.version)
        _check_grammar(line + bytes(self._buf[self._fields_start : end]))
        req.keep_alive = head.keep_alive
        req.expect_continue = head.expect_continue
        req.websocket = head.websocket
        self.head_pending = req
        if head.chunked:
            self._chunks = ChunkedReader(limits)
            self._state = _CHUNKED
        elif head.content_length:
            self._left = head.content_length
            self._state = _LENGTH
        else:
            self._complete(done)

    def _length_body(self, done: list[Request]) -> bool:
        buf = self._buf
        pos = self._pos
        take = min(self._left, len(buf) - pos)
        if not take:
            return False
        self._req.body += buf[pos : pos + take]
        self._pos = pos + take
        self._left -= take
        if self._left:
            return False
        self._complete(done)
        return True

    def _chunked_body(self, done: list[Request]) -> bool:
        reader = self._chunks
        assert reader is not None
        self._pos = reader.read(self._buf, self._pos, self._req.body)
        if reader.state != DONE:
            return False
        self._complete(done)
        return True

    def _complete(self, done: list[Request]) -> None:
        req = self._req
        done.append(req)
        self.head_pending = None
        self._chunks = None
        self._scanned = 0
        if req.keep_alive:
            self._state = _LINE
        else:
            # nothing after a non-persistent request is read (RFC 9112 §9.6)
            self._state = _STOPPED
            self._buf = bytearray()
            self._pos = self._head_start = 0

    def _eof(self) -> None:
        if self._state == _LINE:
            rest = bytes(self._buf[self._pos :])
            if not rest.strip(b"\r\n"):
                return  # a client may close an idle connection
            check_request_line_prefix(rest, self._limits)
        raise ProtocolError(400, "connection closed mid-request")


def _check_grammar(head: bytes) -> None:
    """Have h11 parse a complete head: its request-line and field grammar."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(head)
    event = conn.next_event()
    if not isinstance(event, h11.Request):  # pragma: no cover - a complete head is an event
        raise ProtocolError(400, "malformed request head")
