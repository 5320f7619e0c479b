"""Parser glue: ``feed(bytes) -> list[Request]`` over httptools (llhttp).

The httptools callback object is private to :class:`HttptoolsParser`; the rest
of swserve sees only complete :class:`Request` objects and
:class:`~swserve.errors.ProtocolError`.  ``feed(b"")`` means EOF.

Theory of operation: llhttp calls ``on_message_begin``, ``on_url`` (possibly
several times), ``on_header`` once per complete field, ``on_headers_complete``,
``on_body`` (zero or more times, already de-chunked), ``on_header`` again for
trailer fields, and ``on_message_complete``.  We build the Request as they
arrive and hand it out when complete.  ``head_pending`` is the request whose
head is complete but whose body is not, so the shell can answer
``Expect: 100-continue``.

Where llhttp is not what swserve promises:

* After a request that is not persistent, parsing stops (RFC 9112 §9.6): the
  callback raises ``_Stop`` and nothing after it is read.
* llhttp stops at the end of the head of an Upgrade request.  swserve ignores
  Upgrade (RFC 9110 §7.8), so a Content-Length body is read by a second
  llhttp parser primed with a head that frames the body the same way.
* llhttp refuses the whitespace RFC 9112 §7.1.1 allows around the ``;`` of a
  chunk extension, and judges trailer fields as it judges header fields.  So
  a chunked body is read by ``chunked.ChunkedReader``, as in the h11 glue:
  ``on_headers_complete`` stops llhttp (``_ChunkedBody``), the reader takes
  the bytes after the head, and a fresh llhttp parser takes those after the
  body, as a new "sub-feed" (the offsets below count from its start).
* llhttp reports no byte offsets.  To answer a refused request line with the
  status the h11 glue gives (``syntax.parse_request_line``: 400, 414, 501 for
  an unknown method, 505), the error path finds the raw line again by walking
  over the requests completed earlier in the same (sub-)feed (``_line_start``).
  That walk needs to know where the feed started: the head of a request split
  across feeds is kept (``_carry``, bounded).  Requests that arrive whole in
  one read pay nothing for this.
* llhttp also takes ``RTSP/1.0`` and ``ICE/1.0`` for protocol versions (RFC
  9112 §2.3 names only HTTP).  When a feed holds ``TSP/`` or ``ICE/``, or a
  head arrived in pieces, ``on_headers_complete`` checks the raw request line
  with ``syntax.parse_request_line`` (``_check_protocol``).
"""

from __future__ import annotations

from typing import Final, Protocol

import httptools

from swserve.errors import ProtocolError
from swserve.protocol.chunked import DONE, ChunkedReader
from swserve.protocol.head_checks import Head, check_head
from swserve.protocol.limits import Limits
from swserve.protocol.request import FRAMING_HEADERS, Request
from swserve.protocol.syntax import (
    SUPPORTED_METHODS,
    check_request_line_prefix,
    parse_request_line,
    skip_empty_lines,
)
from swserve.protocol.target import check_target

# Where the parser is between two feed() calls.
_IDLE: Final = 0  # between requests (empty lines may have been skipped)
_HEAD: Final = 1  # inside a request line or header section
_BODY: Final = 2  # head complete; body, trailers or end of message to come

_OWS: Final = (0x20, 0x09)
_VERSIONS: Final = {"1.1": b"1.1", "1.0": b"1.0"}
_RECHECK: Final = 256  # a deferred request line is re-checked as it grows by this much


class Parser(Protocol):
    """What every HTTP/1.1 request parser offers the connection shell."""

    head_pending: Request | None

    def feed(self, data: bytes) -> list[Request]:
        """Parse ``data``; return the requests it completed (``b""`` means EOF).

        Raises:
            ProtocolError: the bytes are not valid HTTP/1.1; the connection must
                be answered with ``status_hint`` and closed.
        """
        ...


class _Stop(Exception):
    """Raised by a callback: the request just completed is the connection's last."""


class _CheckLine(Exception):
    """Raised by on_headers_complete: only the raw request line tells the status."""


class _ChunkedBody(Exception):
    """Raised by on_headers_complete: the body is chunked, and ChunkedReader reads it."""


class _UpgradeBody:
    """Callbacks of the llhttp parser that reads the body of an Upgrade request."""

    __slots__ = ("on_body", "on_message_complete")

    def __init__(self, owner: HttptoolsParser) -> None:
        self.on_body = owner.on_body
        self.on_message_complete = owner._upgrade_body_complete


class HttptoolsParser:
    """The fast parser: llhttp through httptools, held to swserve's strictness."""

    __slots__ = (
        "_body_at_start",
        "_carry",
        "_chunk_buf",
        "_chunks",
        "_data",
        "_done",
        "_framing",
        "_head_bytes",
        "_headers",
        "_limits",
        "_line",
        "_line_checked",
        "_parser",
        "_req",
        "_start",
        "_state",
        "_stopped",
        "_suspect",
        "_upgrade",
        "head_pending",
    )

    def __init__(self, limits: Limits | None = None) -> None:
        self._limits = limits or Limits()
        self._parser = httptools.HttpRequestParser(self)
        self._req = Request()
        self._headers = self._req.headers  # where on_header puts fields (trailers: discarded)
        self._framing: list[tuple[bytes, bytes]] = []
        self._done: list[Request] = []
        self._head_bytes = 0  # sum of (field size + 4) for the header (then trailer) section
        self._state = _IDLE
        self._chunks: ChunkedReader | None = None  # reading a chunked body
        self._chunk_buf = b""  # an incomplete chunk-size or trailer line
        self._upgrade: Head | None = None  # framing of an Upgrade request's body, until read
        self._stopped = False  # a non-persistent request was completed: ignore the rest
        self._line: bytearray | None = None  # a refused request line, until its LF arrives
        self._line_checked = 0
        # for finding a request line again (see _line_start)
        self._start = _IDLE  # the state the current feed started in
        self._body_at_start = 0
        self._carry = bytearray()  # the head so far, when a feed ends inside one
        self._data = b""  # the (sub-)feed llhttp is parsing
        self._suspect: bool | None = None  # it holds "TSP/" or "ICE/" (None: not looked yet)
        self.head_pending: Request | None = None

    def feed(self, data: bytes) -> list[Request]:
        if self._stopped:
            return []
        if self._line is not None:
            return self._feed_line(data)
        state = self._state
        if not data:
            if state == _HEAD:
                self._check_carried_line()
            if state != _IDLE:
                raise ProtocolError(400, "connection closed mid-request")
            return []
        out: list[Request] = []
        try:
            if self._chunks is None:  # the usual case: llhttp takes the whole feed
                if state == _BODY:
                    self._body_at_start = len(self._req.body)
                self._start = state  # _sub_feed, inlined
                self._data = data
                self._suspect = None
                rest = self._parse(data)
                if rest is None and (self._state or self._carry):
                    self._end_of_feed(data)
                out = self._done
                if rest is None:
                    if out:
                        self._done = []
                    return out
                self._done = []  # out is no longer the list _line_start walks
            else:
                rest = data
            while rest:  # a chunked body, and what follows it
                if self._chunks is not None:
                    rest = self._chunked_body(rest, out)
                    continue
                rest = self._sub_feed(rest)  # starts between two requests
                if self._done:
                    out += self._done
                    self._done = []
        except ProtocolError as error:
            error.completed = out + self._done
            self._done = []
            raise
        return out

    def _sub_feed(self, data: bytes) -> bytes | None:
        """Give ``data`` to llhttp: the bytes after a chunked request's head, or None."""
        self._start = self._state
        self._data = data
        self._suspect = None
        rest = self._parse(data)
        if rest is None and (self._state or self._carry):
            self._end_of_feed(data)
        return rest

    def _chunked_body(self, data: bytes, out: list[Request]) -> bytes | None:
        """Read a chunked body from ``data``: the bytes after it, or None if it goes on."""
        reader = self._chunks
        assert reader is not None
        if self._chunk_buf:
            data = self._chunk_buf + data
        req = self._req
        pos = reader.read(data, 0, req.body)
        if reader.state != DONE:
            self._chunk_buf = data[pos:]  # bounded by the reader (_check_partial)
            return None
        self._chunk_buf = b""
        self._chunks = None
        self._parser = httptools.HttpRequestParser(self)  # the old one stopped at the head
        out.append(req)
        self.head_pending = None
        self._state = _IDLE
        if not req.keep_alive:
            self._stopped = True  # nothing after a non-persistent request is read
            return None
        return data[pos:]

    # -- llhttp callbacks (private) -------------------------------------------------

    def on_message_begin(self) -> None:
        self._req = req = Request()
        self._headers = req.headers
        self._framing = []
        self._head_bytes = 0
        self._state = _HEAD

    def on_url(self, url: bytes) -> None:
        req = self._req
        req.target += url
        if len(req.target) > self._limits.request_line:
            raise ProtocolError(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if value and value[-1] in _OWS:
            value = value.rstrip(b" \t")  # llhttp strips only the leading OWS (RFC 9112 §5)
        name = name.lower()
        headers = self._headers
        headers.append((name, value))
        size = len(name) + len(value)
        self._head_bytes += size + 4
        limits = self._limits
        if (
            size > limits.header_field
            or len(headers) > limits.header_count
            or self._head_bytes > limits.header_block
        ):
            raise ProtocolError(431, "request header fields too large")
        if name in FRAMING_HEADERS:
            self._framing.append((name, value))

    def on_headers_complete(self) -> None:
        req = self._req
        parser = self._parser
        version = _VERSIONS.get(parser.get_http_version())
        method = parser.get_method()
        if version is None or method not in SUPPORTED_METHODS:
            # 505 for HTTP/2.0, 400 for a line without a version (llhttp calls
            # it 0.9), 501 for CONNECT: the raw line decides, as in the h11 glue
            raise _CheckLine
        target = req.target
        data = self._data
        if self._done or self._start != _IDLE:
            if self._start == _HEAD and not self._done:
                self._check_protocol(bytes(self._carry) + data, 0)
            else:
                suspect = self._suspect
                if suspect is None:
                    suspect = self._suspect = b"TSP/" in data or b"ICE/" in data
                if suspect:
                    self._check_protocol(data, self._line_start(data, len(self._done)))
        elif data[len(method) + len(target) + 1 : len(method) + len(target) + 7] != b" HTTP/":
            # the first request of a feed that began between requests: one SP
            # after the target is the usual case; else look at the whole line
            self._check_protocol(data, skip_empty_lines(data, 0))
        req.method = method
        req.version = version
        if target[:1] != b"/" or b"#" in target:
            req.target = check_target(method, target)
        head = check_head(version, self._framing, self._limits)
        req.keep_alive = head.keep_alive
        req.expect_continue = head.expect_continue
        req.websocket = head.websocket
        self._state = _BODY
        self.head_pending = req
        if head.chunked:
            # read by ChunkedReader: trailer fields are discarded, never merged
            # into the headers (RFC 9110 §6.5.2), and held to the header limits
            self._chunks = ChunkedReader(self._limits)
            raise _ChunkedBody
        if head.upgrade and head.content_length and parser.should_upgrade():
            # llhttp stops after an Upgrade request's head; swserve ignores the
            # upgrade (RFC 9110 §7.8), so the body is still this request's
            self._upgrade = head

    def _check_protocol(self, buf: bytes, start: int) -> None:
        """Refuse a request line whose protocol is not HTTP (llhttp takes RTSP and ICE)."""
        end = buf.find(b"\n", start)
        parse_request_line(buf[start:end], self._limits)

    def on_body(self, body: bytes) -> None:
        req = self._req
        req.body += body
        if len(req.body) > self._limits.body:
            raise ProtocolError(413, "request body too large")

    def on_message_complete(self) -> None:
        if self._upgrade is not None:
            return  # the body follows: llhttp raises HttpParserUpgrade next
        req = self._req
        self._done.append(req)
        self.head_pending = None
        self._state = _IDLE
        if not req.keep_alive:
            raise _Stop  # nothing after a non-persistent request is read (RFC 9112 §9.6)

    def _upgrade_body_complete(self) -> None:
        self._upgrade = None
        self.on_message_complete()

    # -- feeding llhttp -------------------------------------------------------------

    def _parse(self, data: bytes) -> bytes | None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0]
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _ChunkedBody):
                return data[self._body_start(data) :]
            self._failed(exc, data)
            return None
        else:
            return None
        # outside the handler, where a callback's exception keeps its __context__
        self._read_upgrade_body(data[offset:])
        return None

    def _body_start(self, data: bytes) -> int:
        """Offset in ``data`` of the body of the request whose head just completed."""
        try:
            if self._start == _HEAD and not self._done:
                return self._head_end(data)
            return data.index(b"\r\n\r\n", self._line_start(data, len(self._done))) + 4
        except ValueError:  # pragma: no cover - the walk relies on llhttp's checks
            raise ProtocolError(400, "malformed request") from None

    def _read_upgrade_body(self, rest: bytes) -> None:
        head = self._upgrade
        assert head is not None
        framing = b"content-length: %d" % (head.content_length or 0)
        self._parser = httptools.HttpRequestParser(_UpgradeBody(self))
        try:
            self._parser.feed_data(b"PUT / HTTP/1.1\r\n" + framing + b"\r\n\r\n")
            if rest:
                self._parser.feed_data(rest)
        except httptools.HttpParserError as exc:
            self._failed(exc, b"")

    def _failed(self, exc: httptools.HttpParserError, data: bytes) -> None:
        cause = exc.__context__
        if isinstance(cause, _Stop):
            self._stopped = True
        elif isinstance(cause, ProtocolError | OSError):  # OSError: a spooled body's write
            raise cause from None
        elif isinstance(cause, _CheckLine) or self._state == _HEAD:
            self._line_error(data)
        else:
            raise ProtocolError(400, f"malformed request: {exc}") from None

    def _end_of_feed(self, data: bytes) -> None:
        """Keep what a later feed's _line_start needs to know where that feed starts."""
        state = self._state
        if self._stopped or self._line is not None:
            state = _IDLE
        elif state == _HEAD:
            self._keep_head(data)
        if state != _HEAD and self._carry:
            self._carry = bytearray()

    # -- the raw request line, for the error path ---------------------------------------

    def _line_error(self, data: bytes) -> None:
        """Raise the status for the request whose head llhttp refused.

        A refused request line gets what ``syntax`` says (400, 414, 501, 505),
        as in the h11 glue; a refused header section gets 400.  A line still
        incomplete is kept until its LF arrives (_feed_line).
        """
        limits = self._limits
        completed = len(self._done)
        if self._start == _HEAD and not completed:
            buf, start = bytes(self._carry) + data, 0
        else:
            buf, start = data, self._line_start(data, completed)
        end = buf.find(b"\n", start)
        if end < 0:
            line = buf[start:]
            check_request_line_prefix(line, limits)
            self._line = bytearray(line)
            self._line_checked = len(line)
            return
        parse_request_line(buf[start:end], limits)
        raise ProtocolError(400, "malformed request header")

    def _feed_line(self, data: bytes) -> list[Request]:
        """Read the rest of a refused request line, then raise its status."""
        line = self._line
        assert line is not None
        limits = self._limits
        if not data:
            check_request_line_prefix(bytes(line), limits)
            raise ProtocolError(400, "connection closed mid-request")
        start = len(line)
        line += data
        end = line.find(b"\n", start)
        if end >= 0:
            parse_request_line(bytes(line[:end]), limits)
            raise ProtocolError(400, "malformed request line")
        if len(line) - self._line_checked >= _RECHECK:
            self._line_checked = len(line)
            check_request_line_prefix(bytes(line), limits)
        return []

    def _check_carried_line(self) -> None:
        """At EOF inside a head: a bad request line gets its own status (as in h11)."""
        carry = bytes(self._carry)
        end = carry.find(b"\n")
        if end < 0:
            check_request_line_prefix(carry, self._limits)
        else:
            parse_request_line(carry[:end], self._limits)

    def _keep_head(self, data: bytes) -> None:
        """The feed ended inside a head: keep its bytes (bounded)."""
        if self._start == _HEAD and not self._done:
            self._carry += data
        else:
            start = self._line_start(data, len(self._done))
            self._carry = bytearray(memoryview(data)[start:])
        if len(self._carry) > self._limits.head_backstop:
            raise ProtocolError(431, "request header fields too large")

    def _line_start(self, data: bytes, completed: int) -> int:
        """Offset in ``data`` of the request after the first ``completed`` ones.

        llhttp has accepted all of them, so each head ends at the first empty
        line and each body is as long as its framing says.
        """
        try:
            requests = self._done
            start = self._start
            pos = 0
            if start != _IDLE:  # the first request began in an earlier feed
                first = requests[0]
                if start == _HEAD:
                    pos = self._head_end(data) + len(first.body)
                else:
                    pos = len(first.body) - self._body_at_start
                requests = requests[1:completed]
            else:
                requests = requests[:completed]
            for req in requests:
                pos = skip_empty_lines(data, pos)
                pos = data.index(b"\r\n\r\n", pos) + 4 + len(req.body)
            return skip_empty_lines(data, pos)
        except ValueError:  # pragma: no cover - the walk relies on llhttp's checks
            raise ProtocolError(400, "malformed request") from None

    def _head_end(self, data: bytes) -> int:
        """End of a head that began in an earlier feed (its start is in _carry)."""
        tail = bytes(self._carry[-3:])
        found = (tail + data[:4]).find(b"\r\n\r\n")
        if found >= 0:
            return found + 4 - len(tail)
        return data.index(b"\r\n\r\n") + 4
