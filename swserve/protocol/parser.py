"""Parser glue: ``feed(bytes) -> list[Request]`` over httptools (llhttp).

The httptools callback object is private to :class:`HttptoolsParser`; the rest
of swserve sees only complete :class:`Request` objects and
:class:`~swserve.errors.ProtocolError`.  ``feed(b"")`` means EOF.

Theory of operation: llhttp calls ``on_message_begin``, ``on_url`` (possibly
several times), ``on_header`` once per complete field, ``on_headers_complete``,
``on_body`` (zero or more times, already de-chunked) and
``on_message_complete``.  We build the Request as they arrive and hand it out
when complete.  ``head_pending`` is the request whose head is complete but
whose body is not, so the shell can answer ``Expect: 100-continue``.
"""

from __future__ import annotations

from typing import Protocol

import httptools

from swserve.errors import ProtocolError
from swserve.protocol.framing import check_head
from swserve.protocol.limits import Limits
from swserve.protocol.request import FRAMING_HEADERS, Request


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


class HttptoolsParser:
    """The fast parser: llhttp through httptools, held to swserve's strictness."""

    __slots__ = (
        "_done",
        "_framing",
        "_head_bytes",
        "_limits",
        "_parser",
        "_req",
        "_upgraded",
        "head_pending",
    )

    def __init__(self, limits: Limits | None = None) -> None:
        self._limits = limits or Limits()
        self._parser = httptools.HttpRequestParser(self)
        self._req = Request()
        self._framing: list[tuple[bytes, bytes]] = []
        self._done: list[Request] = []
        self._head_bytes = 0
        self._upgraded = False
        self.head_pending: Request | None = None

    def feed(self, data: bytes) -> list[Request]:
        if self._upgraded:
            # We serve no upgraded protocols: the request that asked is answered
            # as plain HTTP with Connection: close, and what follows is ignored.
            return []
        if not data:
            if self._head_bytes or self.head_pending is not None:
                raise ProtocolError(400, "connection closed mid-request")
            return []
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgraded = True
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            error = (
                cause
                if isinstance(cause, ProtocolError)
                else ProtocolError(400, f"malformed request: {exc}")
            )
            error.completed, self._done = self._done, []
            raise error from None
        done = self._done
        if done:
            self._done = []
        return done

    # -- llhttp callbacks (private) -------------------------------------------------

    def on_message_begin(self) -> None:
        self._req = Request()
        self._framing = []
        self._head_bytes = 1

    def on_url(self, url: bytes) -> None:
        req = self._req
        req.target += url
        if len(req.target) > self._limits.request_line:
            raise ProtocolError(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        req = self._req
        req.headers.append((name, value))
        size = len(name) + len(value)
        self._head_bytes += size + 4
        limits = self._limits
        if (
            size > limits.header_field
            or len(req.headers) > limits.header_count
            or self._head_bytes > limits.header_block
        ):
            raise ProtocolError(431, "request header fields too large")
        if name in FRAMING_HEADERS:
            self._framing.append((name, value))

    def on_headers_complete(self) -> None:
        req = self._req
        parser = self._parser
        req.method = parser.get_method()
        req.version = parser.get_http_version().encode()
        head = check_head(req.version, self._framing, self._limits)
        req.keep_alive = head.keep_alive
        req.expect_continue = head.expect_continue
        self.head_pending = req

    def on_body(self, body: bytes) -> None:
        req = self._req
        req.body += body
        if len(req.body) > self._limits.body:
            raise ProtocolError(413, "request body too large")

    def on_message_complete(self) -> None:
        self._done.append(self._req)
        self.head_pending = None
        self._head_bytes = 0
