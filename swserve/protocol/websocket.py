"""WebSocket (RFC 6455) sessions, sans-IO (the handshake is ``protocol/ws_handshake.py``).

Free of sockets, clocks and event loops:

* :func:`negotiate` answers a permessage-deflate offer (RFC 7692) with the
  ``websockets`` package's extension factory;
* a **session**: :class:`WebSocketCore` wraps the ``websockets`` package's
  sans-IO :class:`~websockets.protocol.Protocol` (framing, masking, control
  frames, the close handshake, ``max_size`` over a whole message, and a
  decompressed size bounded *while* inflating, so a deflate bomb gets 1009),
  and adds what that class leaves to its callers: fragments reassembled into
  whole messages, text checked as UTF-8 as it arrives (1007), and pings with a
  payload of our own so a pong can be matched.

Only whole messages leave this module; the worker never sees a frame.  The
shell (``reactor/ws_conn.py``) moves bytes, and passes the time to
:meth:`WebSocketCore.ping`; it decides when to ping from the core's ``ping_sent``.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from typing import Final

from websockets.exceptions import InvalidHeader, NegotiationError
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import BINARY, CLOSE, CONT, PONG, TEXT, Frame
from websockets.headers import build_extension, parse_extension
from websockets.protocol import CLOSED, OPEN, SEND_EOF, Protocol, Side

from swserve.protocol.ws_handshake import ABNORMAL, NORMAL, Closed, Event, Message


class _Protocol(Protocol):
    """``websockets``' protocol, with one change: a close frame amid a fragmented message
    ends the session cleanly (RFC 6455 §5.4 lets control frames come between fragments;
    the unfinished message is dropped) where ``websockets`` fails it with 1002."""

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is CLOSE:
            self.current_size = None
        super().recv_frame(frame)


def deflate_factory() -> ServerPerMessageDeflateFactory:
    """permessage-deflate without context takeover either way (RFC 7692 §7.1.1): each
    message is compressed on its own, so an idle session holds no zlib state.  With
    takeover (websockets' own default) every session keeps ~48 KiB of it, which 10,000
    idle sessions would pay in full; small messages compress a little less this way."""
    return ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"memLevel": 5},
    )


def negotiate(offers: Sequence[bytes], deflate: bool) -> tuple[bytes, list[Extension]]:
    """The Sec-WebSocket-Extensions response value and the extensions to run.

    Only permessage-deflate is known; an offer we cannot parse or accept is
    declined (the session runs without it), as RFC 6455 §9.1 allows.
    """
    if not deflate or not offers:
        return b"", []
    factory = deflate_factory()
    accepted: list[Extension] = []
    response = []
    for value in offers:
        try:
            items = parse_extension(value.decode("latin-1"))
        except InvalidHeader:
            continue
        for name, params in items:
            if name != factory.name or accepted:
                continue
            try:
                reply, ext = factory.process_request_params(params, accepted)
            except NegotiationError:
                continue
            accepted.append(ext)
            response.append((name, reply))
    if not accepted:
        return b"", []
    return build_extension(response).encode(), accepted


# -- a session -------------------------------------------------------------------------


_PING_PREFIX: Final = b"swserve"
_SENDABLE: Final = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)


class WebSocketCore:
    """One server-side WebSocket session after the 101, bytes in, bytes and messages out.

    ``feed(data)`` → events; ``send``/``close``/``ping`` queue bytes; the shell
    writes :meth:`output` (``None`` in it means: half-close, then close, the
    TCP connection) after every call.
    """

    __slots__ = (
        "_decoder",
        "_failed",
        "_parts",
        "_pings",
        "_proto",
        "_size",
        "_text",
        "closed",
        "fin_sent",
        "ping_sent",
    )

    def __init__(self, max_size: int, extensions: list[Extension] | None = None) -> None:
        proto = _Protocol(Side.SERVER, state=OPEN, max_size=max_size or None)
        if extensions:
            proto.extensions = list(extensions)
        self._proto = proto
        self._parts: list[bytes] = []
        self._text = False
        self._size = 0
        self._decoder: codecs.IncrementalDecoder | None = None
        self._pings = 0
        self._failed = False  # we failed the connection ourselves (invalid UTF-8)
        self.ping_sent = 0.0  # when our unanswered ping went out (0: none outstanding)
        self.closed: Closed | None = None  # set once, when the session ends
        self.fin_sent = False  # our close frame, or EOF, is queued

    # -- input --------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        proto = self._proto
        if data:
            proto.receive_data(data)
        else:
            proto.receive_eof()
        events: list[Event] = []
        for frame in proto.events_received():
            assert isinstance(frame, Frame)  # after the handshake, only frames
            self._frame(frame, events)
        if self.closed is None and (
            proto.close_rcvd is not None
            or proto.parser_exc is not None
            or self._failed
            or proto.state is CLOSED
        ):
            self._end(events)
        return events

    def _frame(self, frame: Frame, events: list[Event]) -> None:
        op = frame.opcode
        if op is TEXT or op is BINARY:
            self._text = op is TEXT
            self._parts = []
            self._size = 0
            self._decoder = codecs.getincrementaldecoder("utf-8")() if self._text else None
        elif op is PONG:
            if bytes(frame.data).startswith(_PING_PREFIX):
                self.ping_sent = 0.0
            return
        elif op is not CONT:
            return  # PING (answered by the protocol), CLOSE (its state tells)
        data = bytes(frame.data)
        if self._decoder is not None:
            try:  # fail fast on invalid UTF-8 (RFC 6455 §8.1), not at the end of the message
                self._decoder.decode(data, frame.fin)
            except UnicodeDecodeError as exc:
                self._failed = True
                self._proto.fail(1007, f"invalid UTF-8 at byte {self._size + exc.start}")
                return
        if frame.fin and not self._parts:
            events.append(Message(self._text, data))
            return
        self._parts.append(data)
        self._size += len(data)
        if frame.fin:
            events.append(Message(self._text, b"".join(self._parts)))
            self._parts = []

    def _end(self, events: list[Event]) -> None:
        proto = self._proto
        # theirs if it came (the answer to ours, or their own); else ours (we failed the
        # connection: 1002, 1007, 1009 …); else the stream just ended (1006)
        close = proto.close_rcvd or proto.close_sent
        closed = Closed(close.code, close.reason) if close is not None else Closed(ABNORMAL, "")
        self.closed = closed
        events.append(closed)

    @property
    def error(self) -> Exception | str | None:
        """Why the connection failed (bad frames, too big, bad UTF-8 …), if it did."""
        if self._failed:
            return "invalid UTF-8"
        return self._proto.parser_exc

    @property
    def open(self) -> bool:
        return self._proto.state is OPEN

    @property
    def done(self) -> bool:
        """Both close frames passed, or the stream ended: the TCP connection may close."""
        return self._proto.state is CLOSED or self.fin_sent

    # -- output -------------------------------------------------------------------

    def send(self, text: bool, data: bytes) -> bool:
        """Queue a message; False if the session is no longer open (it is dropped)."""
        proto = self._proto
        if proto.state is not OPEN:
            return False
        if text:
            proto.send_text(data)
        else:
            proto.send_binary(data)
        return True

    def close(self, code: int, reason: str = "") -> None:
        """Start the close handshake (the app's close, or a drain's 1012/1001/1011)."""
        proto = self._proto
        if proto.state is not OPEN:
            return
        if code not in _SENDABLE and not 3000 <= code < 5000:
            code = NORMAL
        # a control frame's payload is at most 125 bytes: the code's 2, then the reason
        proto.send_close(code, reason.encode()[:123].decode(errors="ignore"))

    def ping(self, now: float) -> None:
        if self._proto.state is OPEN:
            self._pings += 1
            self._proto.send_ping(_PING_PREFIX + b"%d" % self._pings)
            self.ping_sent = now

    def output(self) -> list[bytes | None]:
        """Bytes to write, in order; ``None`` where the TCP stream must be half-closed."""
        out: list[bytes | None] = []
        for data in self._proto.data_to_send():
            if data is SEND_EOF or data == b"":
                self.fin_sent = True
                out.append(None)
            else:
                out.append(data)
        return out

    def finish(self) -> Closed:
        """The transport is gone: the session's end, whatever the handshake reached."""
        if self.closed is None:
            events: list[Event] = []
            self._end(events)
        assert self.closed is not None
        return self.closed
