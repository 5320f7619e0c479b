"""Parser glue over h11: the pure-Python fallback, with httptools' strictness.

h11 is a full client/server state machine; we use only its reading half.  To
let it read the next pipelined request we complete each cycle with a dummy
response whose bytes are thrown away (the real response is serialised by
``serializer.py``).  h11 on its own is more lenient than llhttp in two ways
that matter for request smuggling: it lets Transfer-Encoding win over
Content-Length, and it unfolds obs-fold continuation lines.  The first is
caught by the shared ``check_head``; the second by scanning the raw head.
"""

from __future__ import annotations

import re
from typing import Final

import h11

from swserve.errors import ProtocolError
from swserve.protocol.framing import check_head
from swserve.protocol.limits import Limits
from swserve.protocol.request import FRAMING_HEADERS, Request

_OBS_FOLD: Final = re.compile(rb"\r?\n[ \t]")
_HEAD_END: Final = re.compile(rb"\r?\n\r?\n")
_BARE_LF: Final = re.compile(rb"(?<!\r)\n")
_CONTENT_LENGTH: Final = re.compile(rb"\ncontent-length[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_DUMMY_RESPONSE: Final = h11.Response(status_code=200, headers=[(b"content-length", b"0")])


class H11Parser:
    """Same interface and results as :class:`~swserve.protocol.parser.HttptoolsParser`."""

    def __init__(self, limits: Limits | None = None) -> None:
        self._limits = limits or Limits()
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._limits.header_block)
        self._req: Request | None = None
        self._head = bytearray()  # raw bytes of the head being read, for the obs-fold scan
        self._closed = False
        self.head_pending: Request | None = None

    def feed(self, data: bytes) -> list[Request]:
        if self._closed:
            return []
        done: list[Request] = []
        try:
            if self._req is None and data:
                self._head += data
                self._scan_head()
            self._conn.receive_data(data)
            self._drain(done)
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            if "too long" in str(exc).lower():
                status = 431
            error = ProtocolError(status, f"malformed request: {exc}")
            error.completed = done
            raise error from None
        except ProtocolError as exc:
            exc.completed = done
            raise
        return done

    def _scan_head(self) -> None:
        """Reject what h11 would accept but llhttp does not, in the raw head bytes."""
        end = _HEAD_END.search(self._head)
        head = bytes(self._head if end is None else self._head[: end.end()])
        line_end = head.find(b"\n")
        if line_end == -1:
            if len(head) > self._limits.request_line:
                raise ProtocolError(414, "request line too long")
            return
        if _BARE_LF.search(head):
            raise ProtocolError(400, "bare LF line ending")
        # the request line cannot be folded, so any fold after it is obs-fold
        if _OBS_FOLD.search(head, line_end - 1):
            raise ProtocolError(400, "obsolete line folding in header")
        if end is not None:
            lengths = _CONTENT_LENGTH.findall(head)
            # h11 merges "5, 5" and repeated equal values into one; llhttp refuses both
            if len(lengths) > 1 or (lengths and not lengths[0].strip().isdigit()):
                raise ProtocolError(400, "invalid or repeated Content-Length")
            self._head = bytearray()

    def _drain(self, done: list[Request]) -> None:
        conn = self._conn
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._start(event)
            elif isinstance(event, h11.Data):
                req = self._req
                assert req is not None
                req.body += event.data
                if len(req.body) > self._limits.body:
                    raise ProtocolError(413, "request body too large")
            elif isinstance(event, h11.EndOfMessage):
                assert self._req is not None
                done.append(self._req)
                self._req = None
                self.head_pending = None
                self._next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                self._closed = True
                return

    def _start(self, event: h11.Request) -> None:
        limits = self._limits
        if len(event.target) > limits.request_line:
            raise ProtocolError(414, "request line too long")
        req = Request()
        req.method = event.method
        req.target = event.target
        req.version = event.http_version
        framing = []
        headers = req.headers
        for name, value in event.headers.raw_items():
            lname = name.lower()
            if len(lname) + len(value) > limits.header_field:
                raise ProtocolError(431, "request header fields too large")
            headers.append((lname, value))
            if lname in FRAMING_HEADERS:
                framing.append((lname, value))
        if len(headers) > limits.header_count:
            raise ProtocolError(431, "request header fields too large")
        head = check_head(req.version, framing, limits)
        req.keep_alive = head.keep_alive
        req.expect_continue = head.expect_continue
        self._req = req
        self.head_pending = req

    def _next_cycle(self) -> None:
        conn = self._conn
        if conn.our_state is not h11.SEND_RESPONSE:
            return
        conn.send(_DUMMY_RESPONSE)
        conn.send(h11.EndOfMessage())
        state: object = conn.our_state  # changed by send(); mypy cannot see that
        if state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            self._head = bytearray(conn.trailing_data[0])
            if self._head:
                self._scan_head()
        else:
            self._closed = True  # the client asked to close: nothing more to read
