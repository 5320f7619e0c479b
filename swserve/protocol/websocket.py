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
  payload of our own so a pong can be matched;
* the common frame, whole (FIN) text or binary data, masked, no reserved bits,
  in an open session without extensions, is unmasked here straight from the
  read (:class:`_Walk`): the package's parser would copy its payload twice on
  the way (its stream buffer, then a slice of it) and run a generator per
  frame.  Every other frame, and every byte once the session is no longer
  open, goes to the package's protocol as before.

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

try:  # the package's C masking (what its own parser uses)
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - a build without the C extension
    from websockets.utils import apply_mask

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

Buffer = bytes | bytearray | memoryview
# the rest of a frame being gathered is read straight into its buffer from this size on
DIRECT_MIN: Final = 16 * 1024


class _Walk:
    """The fast path's view of the client's byte stream: where its frames begin.

    The stream is cut into frames here as it arrives.  A frame it may take (FIN text or
    binary, masked, no reserved bits, within ``max_size``, not amid a fragmented message,
    the session open) is unmasked here, from the read's own bytes when it came whole, else
    from one buffer its payload is gathered in; any other frame is passed, byte for byte, to
    the ``websockets`` protocol, which so sees the stream minus the frames taken, each
    boundary where it expects one.  Two copies of each 64 KiB message fewer than the
    package's parser (its stream buffer, its slice), and no generator step per frame:
    ``feed`` of one masked frame took 14.6 µs (64 KiB) and 7.3 µs (64 B) through
    ``websockets``, 7.2 and 3.7 µs here (/tmp micro-benchmark, best of 5, busy 2-core VM).
    """

    __slots__ = ("_big", "_cut", "_got", "_mask", "_max", "_need", "_owed", "_text")

    def __init__(self, max_size: int | None) -> None:
        self._max = max_size
        self._cut = b""  # the start of a frame whose header is not whole yet
        self._owed = 0  # bytes the protocol still needs to finish the frame it is in
        self._big: bytearray | None = None  # the masked payload of a frame we take
        self._need = 0  # ... its length
        self._got = 0  # ... and how much of it is in
        self._mask = b""
        self._text = False

    def spill(self) -> bytes:
        """What is held back (a cut header, a partial frame we took), as it came."""
        held = self._cut
        big = self._big
        if big is not None:
            held = _header(self._text, self._need, self._mask) + bytes(big[: self._got])
        self._cut, self._big = b"", None
        return held

    def target(self) -> memoryview | None:
        """Where the reader may receive the rest of a large frame being gathered, if one is."""
        big = self._big
        if big is not None and self._need - self._got >= DIRECT_MIN:
            return memoryview(big)[self._got :]
        return None

    def advance(self, core: WebSocketCore, count: int, events: list[Event]) -> None:
        """``count`` bytes were received into :meth:`target`."""
        self._got += count
        self._gathered(core, events)

    def _gathered(self, core: WebSocketCore, events: list[Event]) -> None:
        big = self._big
        if big is not None and self._got == self._need:
            self._big = None
            core._whole(self._text, apply_mask(big, self._mask), events)

    def feed(self, core: WebSocketCore, data: Buffer, events: list[Event]) -> None:
        view = memoryview(data)
        pos, end = 0, len(data)
        proto = core._proto
        while pos < end:
            if self._owed:  # the rest of a frame the protocol has begun
                take = min(self._owed, end - pos)
                self._owed -= take
                core._to_proto(view[pos : pos + take], events)
                pos += take
                continue
            big = self._big
            if big is not None:  # the rest of a payload we gather
                got = self._got
                take = min(self._need - got, end - pos)
                big[got : got + take] = view[pos : pos + take]
                self._got = got + take
                pos += take
                self._gathered(core, events)
                continue
            if proto.state is not OPEN:  # a close came (or we failed it): all to the protocol
                core._to_proto(view[pos:], events)
                return
            # a frame begins here, its header perhaps cut at the end of the last read
            cut = self._cut
            head = cut + view[pos : pos + 14] if cut else view[pos : pos + 14]
            size = _head_size(head)
            if size > len(head):
                self._cut = bytes(head)
                return
            self._cut = b""
            pos += size - len(cut)  # the header's bytes in this read
            first, second = head[0], head[1]
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(head[2:4], "big")
            elif length == 127:
                length = int.from_bytes(head[2:10], "big")
            opcode = first & 0x0F
            if (
                first & 0xF0 == 0x80  # FIN, no reserved bits
                and (opcode == 1 or opcode == 2)  # text, binary
                and second & 0x80  # masked
                and (self._max is None or length <= self._max)
                and proto.current_size is None  # not amid a fragmented message
            ):
                mask = bytes(head[size - 4 : size])
                if end - pos >= length:  # whole in this read: unmasked straight from it
                    core._whole(opcode == 1, apply_mask(view[pos : pos + length], mask), events)
                    pos += length
                else:  # gathered in a buffer of its size (the reader may fill it directly)
                    big = self._big = bytearray(length)
                    self._got = end - pos
                    big[: self._got] = view[pos:end]
                    self._need, self._mask, self._text = length, mask, opcode == 1
                    pos = end
                continue
            self._owed = length  # the protocol's: its header now, its payload as it comes
            core._to_proto(bytes(head[:size]), events)


def _head_size(head: Buffer) -> int:
    """A frame header's size, from its first bytes (15 when fewer than 2 are there)."""
    if len(head) < 2:
        return 15
    second = head[1]
    length = second & 0x7F
    size = 2 + (2 if length == 126 else 8 if length == 127 else 0)
    return size + 4 if second & 0x80 else size


def _header(text: bool, length: int, mask: bytes) -> bytes:
    """A masked FIN data frame's header (to hand a frame we began back to the protocol)."""
    first = 0x81 if text else 0x82
    if length < 126:
        return bytes((first, 0x80 | length)) + mask
    if length < 65536:
        return bytes((first, 0x80 | 126)) + length.to_bytes(2, "big") + mask
    return bytes((first, 0x80 | 127)) + length.to_bytes(8, "big") + mask


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
        "_walk",
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
        # the fast path, for sessions whose frames no extension rewrites
        self._walk: _Walk | None = None if extensions else _Walk(max_size or None)
        self.ping_sent = 0.0  # when our unanswered ping went out (0: none outstanding)
        self.closed: Closed | None = None  # set once, when the session ends
        self.fin_sent = False  # our close frame, or EOF, is queued

    # -- input --------------------------------------------------------------------

    def read_target(self) -> memoryview | None:
        """Where the next read may go directly: the rest of a large frame being gathered."""
        walk = self._walk
        return walk.target() if walk is not None and self._proto.state is OPEN else None

    def advance(self, count: int) -> list[Event]:
        """``count`` bytes were received into :meth:`read_target`."""
        events: list[Event] = []
        assert self._walk is not None
        self._walk.advance(self, count, events)
        self._check_end(events)
        return events

    def feed(self, data: Buffer) -> list[Event]:
        """The client's bytes (any buffer: nothing keeps a view of it) → events."""
        proto = self._proto
        events: list[Event] = []
        walk = self._walk
        if walk is not None and data and proto.state is OPEN:
            walk.feed(self, data, events)
        else:
            if walk is not None:  # the session is closing (or the stream ends): the
                self._walk = None  # protocol gets the bytes the fast path held back
                held = walk.spill()
                if held:
                    self._to_proto(held, events)
            if data:
                self._to_proto(data, events)
            else:
                proto.receive_eof()
        self._check_end(events)
        return events

    def _check_end(self, events: list[Event]) -> None:
        proto = self._proto
        if self.closed is None and (
            proto.close_rcvd is not None
            or proto.parser_exc is not None
            or self._failed
            or proto.state is CLOSED
        ):
            self._end(events)

    def _to_proto(self, data: Buffer, events: list[Event]) -> None:
        """Bytes for the ``websockets`` protocol, and the frames it completes."""
        proto = self._proto
        proto.receive_data(data)  # type: ignore[arg-type]  # its buffer takes any buffer
        for frame in proto.events_received():
            assert isinstance(frame, Frame)  # after the handshake, only frames
            if self._failed:  # we failed it (bad UTF-8): what came after is not processed
                break  # (RFC 6455 §7.1.7)
            self._frame(frame, events)

    def _whole(self, text: bool, data: bytes, events: list[Event]) -> None:
        """A whole message from the fast path (never amid a fragmented one)."""
        if text:
            try:
                data.decode()
            except UnicodeDecodeError as exc:
                self._failed = True
                self._proto.fail(1007, f"invalid UTF-8 at byte {exc.start}")
                return
        events.append(Message(text, data))

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
    def plain(self) -> bool:
        """Open, and no extension rewrites outgoing frames: ``ws_frames.server_frame`` bytes are what
        ``send`` would write."""
        proto = self._proto
        return proto.state is OPEN and not proto.extensions

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
