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
  Upgrade (RFC 9110 §7.8), so the body is read by a second llhttp parser
  primed with a head that frames the body the same way.
* llhttp reports no byte offsets.  To answer a refused request line with the
  status the h11 glue gives (``syntax.parse_request_line``: 400, 414, 501 for
  an unknown method, 505), the error path finds the raw line again by walking
  over the requests completed earlier in the same feed (``_line_start``).
  That walk needs to know where the feed started: the head of a request split
  across feeds is kept (``_carry``, bounded), and a chunked body split across
  feeds is followed by a callback-free llhttp parser one feed behind
  (``_shadow``).  Requests that arrive whole in one read pay nothing for this.
"""

from __future__ import annotations

from typing import Final, Protocol

import httptools

from swserve.errors import ProtocolError
from swserve.protocol.chunked import DONE, ChunkedReader
from swserve.protocol.framing import Head, check_head
from swserve.protocol.limits import Limits
from swserve.protocol.request import FRAMING_HEADERS, Request
from swserve.protocol.syntax import (
    SUPPORTED_METHODS,
    check_request_line_prefix,
    parse_request_line,
    skip_empty_lines,
)

# Where the parser is between two feed() calls.
_IDLE: Final = 0  # between requests (empty lines may have been skipped)
_HEAD: Final = 1  # inside a request line or header section
_BODY: Final = 2  # head complete; body, trailers or end of message to come
_CHUNKED: Final = 3  # a feed that starts inside a chunked body

_OWS: Final = (0x20, 0x09)
_VERSIONS: Final = {"1.1": b"1.1", "1.0": b"1.0"}
_RECHECK: Final = 256  # a deferred request line is re-checked as it grows by this much
_CHUNKED_HEAD: Final = b"PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
# walking over bodies llhttp already accepted: no limit may fire again
_HUGE: Final = 1 << 62
_NO_LIMITS: Final = Limits(_HUGE, _HUGE, _HUGE, _HUGE, _HUGE)


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


class _UpgradeBody:
    """Callbacks of the llhttp parser that reads the body of an Upgrade request."""

    __slots__ = ("on_body", "on_message_complete")

    def __init__(self, owner: HttptoolsParser) -> None:
        self.on_body = owner.on_body
        self.on_message_complete = owner._upgrade_body_complete


class _Shadow:
    """A callback-free llhttp parser that follows a chunked body one feed behind."""

    __slots__ = ("done", "parser")

    def __init__(self, data: memoryview) -> None:
        self.done = False
        self.parser = httptools.HttpRequestParser(self)
        self.parser.feed_data(_CHUNKED_HEAD)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.done = True


class HttptoolsParser:
    """The fast parser: llhttp through httptools, held to swserve's strictness."""

    __slots__ = (
        "_body_at_start",
        "_carry",
        "_chunked",
        "_done",
        "_framing",
        "_head_bytes",
        "_headers",
        "_limits",
        "_line",
        "_line_checked",
        "_parser",
        "_req",
        "_shadow",
        "_start",
        "_state",
        "_stopped",
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
        self._chunked = False  # the body being read is chunked
        self._upgrade: Head | None = None  # framing of an Upgrade request's body, until read
        self._stopped = False  # a non-persistent request was completed: ignore the rest
        self._line: bytearray | None = None  # a refused request line, until its LF arrives
        self._line_checked = 0
        # for finding a request line again (see _line_start)
        self._start = _IDLE  # the state the current feed started in
        self._body_at_start = 0
        self._carry = bytearray()  # the head so far, when a feed ends inside one
        self._shadow: _Shadow | None = None  # when a feed ends inside a chunked body
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
        if state == _BODY:
            if self._chunked:
                state = _CHUNKED
            else:
                self._body_at_start = len(self._req.body)
        self._start = state
        try:
            self._parse(data)
            if self._state or self._carry or self._shadow is not None:
                self._end_of_feed(data)
        except ProtocolError as error:
            error.completed, self._done = self._done, []
            raise
        done = self._done
        if done:
            self._done = []
        return done

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
        req.method = method
        req.version = version
        head = check_head(version, self._framing, self._limits)
        req.keep_alive = head.keep_alive
        req.expect_continue = head.expect_continue
        req.websocket = head.websocket
        self._state = _BODY
        self._chunked = head.chunked
        if head.chunked:
            # trailer fields are discarded, never merged into the headers
            # (RFC 9110 §6.5.2); they are held to the header limits
            self._headers = []
            self._head_bytes = 0
        if head.upgrade and (head.chunked or head.content_length) and parser.should_upgrade():
            # llhttp stops after an Upgrade request's head; swserve ignores the
            # upgrade (RFC 9110 §7.8), so the body is still this request's
            self._upgrade = head
        self.head_pending = req

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

    def _parse(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0]
        except httptools.HttpParserError as exc:
            self._failed(exc, data)
            return
        else:
            return
        # outside the handler, where a callback's exception keeps its __context__
        self._read_upgrade_body(data[offset:])

    def _read_upgrade_body(self, rest: bytes) -> None:
        head = self._upgrade
        assert head is not None
        framing = (
            b"transfer-encoding: chunked"
            if head.chunked
            else b"content-length: %d" % (head.content_length or 0)
        )
        self._parser = httptools.HttpRequestParser(_UpgradeBody(self))
        self._chunked = False  # nothing is parsed after this body: no _shadow needed
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
        elif state == _BODY and self._chunked:
            self._follow_chunked(data)
        if state != _BODY or not self._chunked:
            self._shadow = None
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

    def _follow_chunked(self, data: bytes) -> None:
        """The feed ended inside a chunked body: bring the shadow parser to its end."""
        if self._start == _CHUNKED and not self._done:
            shadow = self._shadow
            assert shadow is not None
            shadow.parser.feed_data(data)  # the same body, one more feed
            return
        # the body began in this feed
        try:
            if self._start == _HEAD and not self._done:
                body = self._head_end(data)
            else:
                body = data.index(b"\r\n\r\n", self._line_start(data, len(self._done))) + 4
        except ValueError:  # pragma: no cover - the walk relies on llhttp's checks
            raise ProtocolError(400, "malformed request") from None
        self._shadow = _Shadow(memoryview(data)[body:])

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
                    pos = self._body_end(data, self._head_end(data), first)
                elif start == _CHUNKED:
                    pos = self._chunk_end(data)
                else:
                    pos = len(first.body) - self._body_at_start
                requests = requests[1:completed]
            else:
                requests = requests[:completed]
            for req in requests:
                pos = skip_empty_lines(data, pos)
                pos = data.index(b"\r\n\r\n", pos) + 4
                pos = self._body_end(data, pos, req)
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

    def _chunk_end(self, data: bytes) -> int:
        """End of the chunked body the feed started in, from the shadow parser.

        A chunked body ends with CRLF CRLF, so the shadow is fed up to each
        place where one ends (the first three offsets: one may have begun in
        the previous feed) until it completes the body.
        """
        shadow = self._shadow
        assert shadow is not None
        self._shadow = None
        view = memoryview(data)
        pos = 0
        found = -1
        while not shadow.done:
            if pos < 3:
                cut = pos + 1
            else:
                found = data.find(b"\r\n\r\n", max(found + 1, pos - 3))
                if found < 0:
                    raise ValueError("chunked body not in this feed")
                cut = found + 4
            shadow.parser.feed_data(view[pos:cut])
            pos = cut
        return pos

    @staticmethod
    def _body_end(data: bytes, pos: int, req: Request) -> int:
        if any(name == b"transfer-encoding" for name, _ in req.headers):
            reader = ChunkedReader(_NO_LIMITS)
            pos = reader.read(data, pos, None)
            if reader.state != DONE:
                raise ValueError("chunked body not in this feed")
            return pos
        return pos + len(req.body)
