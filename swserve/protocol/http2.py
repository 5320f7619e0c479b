"""A sans-IO HTTP/2 server connection: bytes and ``now`` in; events and bytes out.

It wraps ``h2.connection.H2Connection`` (python-hyper's state machine: frames,
HPACK, stream states, flow-control windows) and adds what a server in front of
workers needs on top of it:

- **Complete requests.** A stream's HEADERS and DATA are gathered into one
  :class:`~swserve.protocol.request.Request` (version ``b"2"``, ``:authority``
  as ``host``); :class:`RequestReady` comes when the client ends the stream.
  Bodies are acknowledged (WINDOW_UPDATE) as they arrive, bounded by
  ``max_body_size`` (413 past it) and may be spooled by the shell's ``spool``.
- **Responses with flow control as the back-pressure.** :meth:`send_body`
  queues a stream's data and sends what its window and the connection's allow;
  it returns True when the stream holds more than ``HIGH`` bytes unsent (the
  shell tells that stream's worker BUFFER_FULL); :class:`WindowOpened` comes
  when the peer's WINDOW_UPDATE brings it under ``LOW`` again (BUFFER_EMPTY).
- **Limits and floods**, each answered as RFC 9113 names it:

  ============================== ===============================================
  max concurrent streams          SETTINGS_MAX_CONCURRENT_STREAMS; a stream past
                                  it: h2 ends the connection (PROTOCOL_ERROR)
  header list size (HPACK bombs)  SETTINGS_MAX_HEADER_LIST_SIZE, enforced on the
                                  decoded list: GOAWAY ENHANCE_YOUR_CALM
  header block across
  CONTINUATION (CVE-2024-27316)   counted here from the frame headers, before
                                  HPACK: GOAWAY ENHANCE_YOUR_CALM
  frame size                      SETTINGS_MAX_FRAME_SIZE: GOAWAY FRAME_SIZE_ERROR
  rapid reset (CVE-2023-44487)    client RST_STREAMs per second: GOAWAY
                                  ENHANCE_YOUR_CALM
  PING and SETTINGS floods        each per second: GOAWAY ENHANCE_YOUR_CALM
  zero-window stalls              :meth:`stalled`: RST_STREAM CANCEL on a stream
                                  whose window stayed shut past the write timeout
  ============================== ===============================================

- **Graceful GOAWAY.** :meth:`goaway` announces the last stream id the server
  will answer without closing h2's state machine, so streams in flight finish
  (their DATA still flows); streams opened after it are refused.

No sockets, no asyncio, no clock: the shell passes ``now``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from swserve.protocol.http2_fields import request_from_fields
from swserve.protocol.request import Request

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# A stream holding more than HIGH bytes its window does not let out has its worker
# wait (BUFFER_FULL); under LOW it may go on (BUFFER_EMPTY).
HIGH: Final = 256 * 1024
LOW: Final = 64 * 1024


_HEADERS: Final = 0x1
_CONTINUATION: Final = 0x9
_END_HEADERS: Final = 0x4


@dataclass(frozen=True, slots=True)
class Limits:
    max_concurrent_streams: int = 100
    max_header_list_size: int = 64 * 1024
    max_frame_size: int = 16384
    initial_window_size: int = 1024 * 1024
    max_body_size: int = 16 * 1024 * 1024
    per_second: int = 200  # client resets, PINGs, SETTINGS: each, per second


# -- events ------------------------------------------------------------------------------


@dataclass(slots=True)
class RequestReady:
    stream_id: int
    request: Request


@dataclass(slots=True)
class RequestRejected:
    """A stream the core answers itself (``status``: 400 or 413): the shell writes it."""

    stream_id: int
    status: int


@dataclass(slots=True)
class StreamReset:
    """The client reset the stream, or the core did (stall): its exchange is over."""

    stream_id: int


@dataclass(slots=True)
class WindowOpened:
    stream_id: int


@dataclass(slots=True)
class ConnectionEnded:
    """GOAWAY went out with ``error_code`` (or came in): close once the bytes are out."""

    error_code: int


Event = RequestReady | RequestRejected | StreamReset | WindowOpened | ConnectionEnded


class _Out:
    """A stream's response data that its window has not let out yet."""

    __slots__ = ("blocked", "end", "parts", "since", "size")

    def __init__(self) -> None:
        self.parts: collections.deque[memoryview] = collections.deque()
        self.size = 0
        self.end = False
        self.blocked = False  # over HIGH: its worker was told to wait
        self.since = 0.0  # when the window last shut with data waiting (0: it is open)


class Http2Core:
    def __init__(
        self,
        limits: Limits,
        *,
        spool_size: int = 0,
        spool: Callable[[bytearray], bytearray] | None = None,
    ) -> None:
        self.limits = limits
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            # request_from_fields (http2_fields.py) checks the request's fields in one pass.
            # Both settings here: loadtests/micro/h2_core.py, CPU per exchange through this
            # core, 152 -> 117 µs with h2load's fields and 205 -> 154 µs with a browser's
            validate_inbound_headers=False,
            # Our responses' fields are valid already: the WSGI/ASGI layers check every
            # name (a token) and value (no CR, LF or NUL), ``header_lines`` lower-cases them,
            # strips the values and drops the connection-specific ones, and the reactor's own
            # are constants.  h2's second pass over them cost ~6 % of the core per request.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._h2 = h2.connection.H2Connection(config=config)
        self._h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: limits.max_frame_size,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: limits.initial_window_size,
                h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 0,
            },
        )
        # h2 enforces the decoded list from the start, not only once SETTINGS are acked
        self._h2.decoder.max_header_list_size = limits.max_header_list_size
        self._h2.max_inbound_frame_size = limits.max_frame_size
        self._out = bytearray()
        self._requests: dict[int, Request] = {}  # streams whose request is still arriving
        self._sending: dict[int, _Out] = {}  # streams whose response is not all out
        self._spool_size = spool_size
        self._spool = spool
        self.last_stream_id = 0  # the highest stream the client opened
        self.goaway_sent = False
        self.goaway_id = 0  # streams above it are refused after a graceful GOAWAY
        self.ended = False  # a GOAWAY with an error went out, or the peer's came in
        # flood counters: (window start, resets, pings, settings)
        self._window = 0.0
        self._counts = [0, 0, 0]
        # CONTINUATION flood: the frame scanner's state
        self._scan = bytearray()
        self._skip = len(PREFACE)  # bytes of the current frame (or preface) still to pass
        self._block = 0  # header block bytes so far (HEADERS + CONTINUATION)

    # -- start -------------------------------------------------------------------------

    def start(self, upgrade_settings: bytes | None = None) -> None:
        """Send our SETTINGS (and, after ``Upgrade: h2c``, answer stream 1's request)."""
        if upgrade_settings is not None:
            self._h2.initiate_upgrade_connection(upgrade_settings)
            self.last_stream_id = 1  # the request that asked is stream 1, half-closed
        else:
            self._h2.initiate_connection()
        # a wider connection window than the 64 KiB default: uploads need not wait for it
        extra = self.limits.initial_window_size - 65535
        if extra > 0:
            self._h2.increment_flow_control_window(extra)
        self._pull()

    # -- input -------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Event]:
        if self.ended:
            return []
        if not self._scan_frames(data):
            return self._die(ErrorCodes.ENHANCE_YOUR_CALM, "header block too large")
        try:
            h2_events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.ended = True  # h2 has queued the GOAWAY naming the error
            self._pull()
            return [ConnectionEnded(0)]
        out: list[Event] = []
        for ev in h2_events:
            self._handle(ev, now, out)
            if out and isinstance(out[-1], ConnectionEnded):
                break
        self._pull()
        return out

    def _handle(self, ev: h2.events.Event, now: float, out: list[Event]) -> None:
        if isinstance(ev, h2.events.RequestReceived):
            self._headers(ev, now, out)
        elif isinstance(ev, h2.events.DataReceived):
            self._data(ev, out)
        elif isinstance(ev, h2.events.StreamEnded):
            sid = ev.stream_id
            req = self._requests.pop(sid, None)
            if req is not None:
                out.append(RequestReady(sid, req))
        elif isinstance(ev, h2.events.StreamReset):
            self._forget(ev.stream_id)
            out.append(StreamReset(ev.stream_id))
            if ev.remote_reset and self._count(0, now):
                out.append(self._die_event("rapid reset"))
        elif isinstance(ev, h2.events.WindowUpdated):
            self._window_opened(ev.stream_id, now, out)
        elif isinstance(ev, h2.events.PingReceived):
            if self._count(1, now):
                out.append(self._die_event("PING flood"))
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            if self._count(2, now):
                out.append(self._die_event("SETTINGS flood"))
            elif h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:
                self._window_opened(0, now, out)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.ended = True
            out.append(ConnectionEnded(ev.error_code or 0))
        elif isinstance(ev, h2.events.TrailersReceived) and any(
            name[:1] == b":" for name, _ in ev.headers or ()
        ):
            # request trailers are dropped: the worker IPC carries none (docs/http2.md); a
            # pseudo-header in them makes the request malformed (RFC 9113 §8.1)
            self._malformed(ev.stream_id, now, out)

    def _headers(self, ev: h2.events.RequestReceived, now: float, out: list[Event]) -> None:
        sid = ev.stream_id
        self.last_stream_id = max(self.last_stream_id, sid)
        if self.goaway_sent and sid > self.goaway_id:
            self._h2.reset_stream(sid, ErrorCodes.REFUSED_STREAM)  # retried elsewhere
            return
        req = request_from_fields(ev.headers or [])
        if isinstance(req, str):
            self._malformed(sid, now, out)
            return
        if req.method == b"CONNECT":  # not served (no :path to give an app)
            out.append(RequestRejected(sid, 405))
            return
        if ev.stream_ended is not None:
            out.append(RequestReady(sid, req))
        else:
            self._requests[sid] = req

    def _malformed(self, sid: int, now: float, out: list[Event]) -> None:
        """RST_STREAM PROTOCOL_ERROR (RFC 9113 §8.1.1).  Resets we are made to send count
        with the client's own (the "MadeYouReset" variant of the rapid-reset flood)."""
        self._forget(sid)
        self._h2.reset_stream(sid, ErrorCodes.PROTOCOL_ERROR)
        if self._count(0, now):
            out.append(self._die_event("malformed requests"))

    def _data(self, ev: h2.events.DataReceived, out: list[Event]) -> None:
        sid = ev.stream_id
        # every byte counts against the connection's window: give it back at once (the
        # request is bounded by max_body_size, not by the window)
        self._h2.acknowledge_received_data(ev.flow_controlled_length, sid)
        req = self._requests.get(sid)
        if req is None:
            return
        req.body += ev.data or b""
        size = len(req.body)
        if size > self.limits.max_body_size:
            del self._requests[sid]
            out.append(RequestRejected(sid, 413))
            return
        spool = self._spool
        if spool and self._spool_size and size > self._spool_size and type(req.body) is bytearray:
            req.body = spool(req.body)

    def _count(self, which: int, now: float) -> bool:
        """Count one reset / PING / SETTINGS; True when this second has too many."""
        if now - self._window >= 1.0:
            self._window = now
            self._counts = [0, 0, 0]
        self._counts[which] += 1
        return self._counts[which] > self.limits.per_second

    def _die_event(self, why: str) -> ConnectionEnded:
        self._die(ErrorCodes.ENHANCE_YOUR_CALM, why)
        return ConnectionEnded(ErrorCodes.ENHANCE_YOUR_CALM)

    def _die(self, code: int, why: str) -> list[Event]:
        if not self.ended:
            self.ended = True
            self._pull()
            frame = GoAwayFrame(
                stream_id=0,
                last_stream_id=self.last_stream_id,
                error_code=code,
                additional_data=why.encode(),
            )
            self._out += frame.serialize()
        return [ConnectionEnded(code)]

    def _scan_frames(self, data: bytes) -> bool:
        """Count header block bytes across HEADERS and CONTINUATION frames (CVE-2024-27316):
        h2 gathers them until END_HEADERS, so the bound must come before it."""
        view = memoryview(data)
        limit = self.limits.max_header_list_size
        while view:
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                view = view[n:]
                continue
            need = 9 - len(self._scan)
            self._scan += view[:need]
            view = view[need:]
            if len(self._scan) < 9:
                return True
            head = self._scan
            length = (head[0] << 16) | (head[1] << 8) | head[2]
            kind, flags = head[3], head[4]
            self._scan.clear()
            self._skip = length
            if kind in (_HEADERS, _CONTINUATION):
                self._block += length
                if self._block > limit:
                    return False
                if flags & _END_HEADERS:
                    self._block = 0
        return True

    # -- output ------------------------------------------------------------------------

    def _pull(self) -> None:
        self._out += self._h2.data_to_send()

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def respond(
        self, stream_id: int, status: int, headers: list[tuple[bytes, bytes]], end: bool
    ) -> None:
        if self.ended or stream_id not in self._h2.streams:
            return
        try:
            self._h2.send_headers(
                stream_id, [(b":status", b"%d" % status), *headers], end_stream=end
            )
        except h2.exceptions.StreamClosedError:
            return
        if not end:
            self._sending[stream_id] = _Out()
        self._pull()

    def send_body(
        self, stream_id: int, data: bytes | bytearray | memoryview, end: bool, now: float
    ) -> bool:
        """Queue ``data`` on the stream and send what the windows allow.  → is it blocked?"""
        pending = self._sending.get(stream_id)
        if pending is None or self.ended:
            return False  # reset meanwhile, a response with no body, or the connection ended
        if data:
            pending.parts.append(memoryview(data).cast("B"))
            pending.size += len(data)
        pending.end = pending.end or end
        self._flush(stream_id, pending, now)
        self._pull()
        if pending.size > HIGH and not pending.blocked:
            pending.blocked = True
            return True
        return pending.blocked

    def _flush(self, sid: int, pending: _Out, now: float) -> None:
        h2c = self._h2
        ended = False
        try:
            while pending.parts:
                room = min(h2c.local_flow_control_window(sid), h2c.max_outbound_frame_size)
                if room <= 0:
                    if not pending.since:
                        pending.since = now
                    return
                part = pending.parts[0]
                chunk = part[:room]
                if len(chunk) == len(part):
                    pending.parts.popleft()
                else:
                    pending.parts[0] = part[room:]
                pending.size -= len(chunk)
                ended = pending.end and not pending.parts
                h2c.send_data(sid, chunk.tobytes(), end_stream=ended)
            pending.since = 0.0
            if pending.end:
                del self._sending[sid]
                if not ended:
                    h2c.end_stream(sid)
        except h2.exceptions.ProtocolError:  # StreamClosedError: the client reset it
            self._sending.pop(sid, None)

    def _window_opened(self, stream_id: int, now: float, out: list[Event]) -> None:
        targets = list(self._sending) if stream_id == 0 else [stream_id]
        for sid in targets:
            pending = self._sending.get(sid)
            if pending is None:
                continue
            self._flush(sid, pending, now)
            if pending.blocked and pending.size < LOW:
                pending.blocked = False
                out.append(WindowOpened(sid))

    def reset(self, stream_id: int, code: int = ErrorCodes.CANCEL) -> None:
        self._forget(stream_id)
        if self.ended:
            return
        with _ClosedOk():
            self._h2.reset_stream(stream_id, code)
        self._pull()

    def _forget(self, stream_id: int) -> None:
        self._requests.pop(stream_id, None)
        self._sending.pop(stream_id, None)

    def goaway(self) -> None:
        """Graceful: no stream after the last one opened will be answered; the rest finish."""
        if self.goaway_sent or self.ended:
            return
        self.goaway_sent = True
        self.goaway_id = self.last_stream_id
        self._pull()
        self._out += GoAwayFrame(stream_id=0, last_stream_id=self.goaway_id).serialize()

    def stalled(self, now: float, timeout: float) -> list[Event]:
        """Reset (CANCEL) every stream whose window has been shut for ``timeout``."""
        out: list[Event] = []
        for sid, pending in list(self._sending.items()):
            if pending.since and now - pending.since >= timeout:
                self.reset(sid, ErrorCodes.CANCEL)
                out.append(StreamReset(sid))
        return out

    def expire_arriving(self) -> list[int]:
        """Give up on every request still arriving (the shell answers them 408)."""
        ids = list(self._requests)
        self._requests.clear()
        return ids

    def arriving(self) -> list[Request]:
        """Requests whose stream has not ended yet (the shell discards their spooled bodies)."""
        return list(self._requests.values())

    @property
    def open_streams(self) -> int:
        """Streams not closed yet (requests arriving, answers in progress)."""
        return len(self._requests) + len(self._sending)

    def quiet(self) -> bool:
        """Nothing more to send or receive on any stream."""
        return not self._requests and not self._sending


class _ClosedOk:
    """Ignore h2 telling us a stream is closed already (the client reset it meanwhile)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> bool:
        return isinstance(exc, (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError))
