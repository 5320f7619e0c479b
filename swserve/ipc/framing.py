"""Frame layout between reactors and workers, with one decoder for every shell.

Every message is one frame: a fixed 20-byte header, then ``length`` bytes of
payload.  Integers are little-endian (every platform we run on is).

::

     0        1        2        3        4                 8                                 16                20
    +--------+--------+--------+--------+-----------------+---------------------------------+-----------------+
    | magic  | version|  type  | flags  |  length (u32)   |        session id (u64)         | request id (u32)|
    | 0x53   |   1    |        |        |  payload bytes  |  the client connection, never   | n-th request on |
    |  'S'   |        |        |        |                 |  its fd: ids are never reused   | that session    |
    +--------+--------+--------+--------+-----------------+---------------------------------+-----------------+
    | payload ...                                                                                             |

``(session id, request id)`` names one request.  A reply whose pair is no
longer in the reactor's table (the client left, or a timeout answered it) is
dropped: Swoole's ``connection_verify``.

:class:`FrameDecoder` is the only reader of this format: the asyncio shell
(reactor, ASGI worker) and the blocking shell (WSGI worker) both feed it.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from typing import Final, TypeVar

from swserve.errors import IPCError

MAGIC: Final = 0x53
VERSION: Final = 1
HEADER: Final = struct.Struct("<BBBBIQI")
HEADER_SIZE: Final = HEADER.size  # 20
# The largest payload one frame may carry.  Bodies larger than this travel as
# several frames (Swoole's PACKAGE_START … PACKAGE_END), so a corrupt length
# cannot make a reader allocate gigabytes.
MAX_PAYLOAD: Final = 16 * 1024 * 1024

# Frame types: one table.  R→W is reactor to worker, W→R worker to reactor.
HELLO: Final = 1  # W→R  a worker connected: worker id, pid (payload: codec.hello)
READY: Final = 2  # W→R  the app is loaded: dispatch to me (payload: codec.hello)
BOOT_ERROR: Final = 3  # W→R  the app failed to load (payload: utf-8 message)
REQUEST: Final = 4  # R→W  a request head and the first part of its body; flag MORE
REQUEST_BODY: Final = 5  # R→W  more body; flag MORE on all but the last
RESPONSE_START: Final = 6  # W→R  status, headers, maybe body; flags END and serializer flags
RESPONSE_BODY: Final = 7  # W→R  body bytes; flag END on the last
DISCONNECT: Final = 8  # R→W  the client of this request went away
SERVED: Final = 9  # W→R  base mode: requests served so far (u32); flags SERVED_*
STOP: Final = 10  # R→W  you are drained and retired: finish and exit
CANCEL: Final = 11  # R→W  this request ran past --timeout: cancel it (ASGI)
BUFFER_FULL: Final = 12  # R→W  this request's client reads slowly: stop sending its body
BUFFER_EMPTY: Final = 13  # R→W  its client caught up: send on (Swoole's onBufferEmpty)
HEARTBEAT: Final = 14  # W→R  the worker's loop is alive (sent from that loop, about once a second)
METRICS: Final = 15  # W→R  base mode, --metrics-bind: the worker's counters (JSON object of ints)
# 24-27: file responses (static/handoff.py)
FILE_RESPONSE: Final = 24  # W→R  status, headers; the body is a file passed on the inbox; END
# Task frames (28-35) travel on the task socket only (swserve/tasks/); the session
# field carries a task id: the caller's own on the caller's link, the broker's on a
# task worker's link.  Payload layouts: swserve/tasks/codec.py.
TASK_HELLO: Final = 28  # →B   who connects: a caller or a task worker (role, slot, pid)
TASK_SUBMIT: Final = 29  # C→B  run this task (flag TASK_NOWAIT: no answer wanted)
TASK_RUN: Final = 30  # B→T  run this task, answer with TASK_RESULT
TASK_RESULT: Final = 31  # T→B, B→C  the outcome (flags: one of the TASK_* outcomes)
TASK_CANCEL: Final = 32  # C→B  the caller stopped waiting (drop it if still queued)
TASK_STOP: Final = 33  # B→T  retired and idle: exit
# WebSocket sessions (16-23); the request id is the upgrade request's.  BUFFER_FULL and
# BUFFER_EMPTY also flow W→R for a session: the app holds --ws-max-queue unread messages.
WS_CONNECT: Final = 16  # R→W  a valid upgrade request: run the app's websocket session
WS_ACCEPT: Final = 17  # W→R  the app accepted (payload: codec.ws_accept): send the 101
WS_MESSAGE: Final = 18  # both  one whole message; flag WS_TEXT; MORE on all parts but the last
WS_CLOSE: Final = 19  # both  code and reason: R→W the session ended, W→R the app closes it
# Server push (36-43): any process with a link to a reactor (ipc/push.py) → the reactor that
# owns the session, which writes to the client itself.  The request id is the caller's own
# (0: no reply wanted); the session id is the target (base mode: pid << 40 | local id).
PUSH: Final = 36  # C→R  one message to a session; flag WS_TEXT; payload: the message
PUSH_CLOSE: Final = 37  # C→R  close a session (payload: codec.ws_close)
PUSH_JOIN: Final = 38  # C→R  the session joins a group (payload: the group's name, UTF-8)
PUSH_LEAVE: Final = 39  # C→R  the session leaves a group (payload: the group's name)
PUSH_BROADCAST: Final = 40  # C→R  one message to a group's members (payload: codec.broadcast)
PUSH_IS_OPEN: Final = 41  # C→R  is the session open?
PUSH_REPLY: Final = 42  # R→C  the outcome of a request id: flags PUSH_*; payload u32 count

FRAME_NAMES: Final = {
    HELLO: "HELLO",
    READY: "READY",
    BOOT_ERROR: "BOOT_ERROR",
    REQUEST: "REQUEST",
    REQUEST_BODY: "REQUEST_BODY",
    RESPONSE_START: "RESPONSE_START",
    RESPONSE_BODY: "RESPONSE_BODY",
    DISCONNECT: "DISCONNECT",
    SERVED: "SERVED",
    STOP: "STOP",
    CANCEL: "CANCEL",
    BUFFER_FULL: "BUFFER_FULL",
    BUFFER_EMPTY: "BUFFER_EMPTY",
    HEARTBEAT: "HEARTBEAT",
    METRICS: "METRICS",
    FILE_RESPONSE: "FILE_RESPONSE",
    TASK_HELLO: "TASK_HELLO",
    TASK_SUBMIT: "TASK_SUBMIT",
    TASK_RUN: "TASK_RUN",
    TASK_RESULT: "TASK_RESULT",
    TASK_CANCEL: "TASK_CANCEL",
    TASK_STOP: "TASK_STOP",
    WS_CONNECT: "WS_CONNECT",
    WS_ACCEPT: "WS_ACCEPT",
    WS_MESSAGE: "WS_MESSAGE",
    WS_CLOSE: "WS_CLOSE",
    PUSH: "PUSH",
    PUSH_CLOSE: "PUSH_CLOSE",
    PUSH_JOIN: "PUSH_JOIN",
    PUSH_LEAVE: "PUSH_LEAVE",
    PUSH_BROADCAST: "PUSH_BROADCAST",
    PUSH_IS_OPEN: "PUSH_IS_OPEN",
    PUSH_REPLY: "PUSH_REPLY",
}
PUSH_FRAMES: Final = frozenset(range(PUSH, PUSH_IS_OPEN + 1))

# Flags.  MORE/END belong to request/response streams; the low nibble of a
# RESPONSE_START carries serializer.HAS_CONTENT_LENGTH … HAS_SERVER.
WS_TEXT: Final = 0x01  # on a WS_MESSAGE: a text message (UTF-8), else binary
SPOOLED: Final = 0x20  # on a REQUEST: the body part is the path of a file holding the body
MORE: Final = 0x40  # more frames of this request body follow
SERVED_WATCHED: Final = 0x01  # on a SERVED: the count reached the one I was told to report at
SERVED_TIMED_OUT: Final = 0x02  # on a SERVED: a request ran past --timeout (I answered 504)
END: Final = 0x80  # this frame ends the response
TASK_NOWAIT: Final = 0x01  # on a TASK_SUBMIT: fire and forget, send no TASK_RESULT
# on a PUSH_REPLY: what became of the request
PUSH_DONE: Final = 0  # delivered (written to the client's buffer), joined, left, open
PUSH_GONE: Final = 1  # no such session (it has closed, or never was)
PUSH_DROPPED: Final = 2  # the client reads too slowly: this message was dropped for it

K = TypeVar("K", bound=Hashable)

_pack = HEADER.pack
_unpack_from = HEADER.unpack_from


def encode(kind: int, flags: int, session: int, request: int, payload: bytes = b"") -> bytes:
    """One frame as bytes.  Payloads over MAX_PAYLOAD must be split by the caller."""
    return _pack(MAGIC, VERSION, kind, flags, len(payload), session, request) + payload


def encode_header(kind: int, flags: int, session: int, request: int, length: int) -> bytes:
    """Only the header, for writers that send the payload as a separate buffer."""
    return _pack(MAGIC, VERSION, kind, flags, length, session, request)


# Payloads of BIG bytes or more are never copied into a ``bytes`` of their own:
# writers send header and payload as separate buffers (writev/sendmsg), and the
# decoder hands them out as a ``memoryview`` of the read that carried them, or
# as the ``bytearray`` it assembled them in.  A 1 MiB echo crossed ~10 user-space
# copies of its body in process mode, each ~50-100 µs on the benchmark VM.
BIG: Final = 64 * 1024

Buffer = bytes | bytearray | memoryview
Frame = tuple[int, int, int, int, Buffer]  # (type, flags, session, request, payload)
# small payloads are always ``bytes``; only RESPONSE_START/RESPONSE_BODY/REQUEST/
# REQUEST_BODY ever carry BIG ones


class FrameDecoder:
    """Incremental decoder: ``feed(bytes)`` returns the frames completed so far.

    Holds back at most one incomplete frame: a cut header or a small frame in a
    bytearray, or a BIG frame's payload in a bytearray of its exact size, which
    a blocking reader may fill straight from the socket (``target``/``advance``).

    Raises:
        IPCError: bad magic or version, unknown type, or an oversized length.
            The peer is then treated as crashed: nothing it sends can be trusted.
    """

    __slots__ = ("_big", "_buf", "_filled", "_head", "_length")

    def __init__(self) -> None:
        self._buf = bytearray()  # a cut header, or a cut frame under BIG bytes
        self._big: bytearray | None = None  # the payload of a cut BIG frame
        self._filled = 0  # bytes of _big received so far
        self._length = 0  # _big's payload length
        self._head = (0, 0, 0, 0)  # _big's type, flags, session, request

    def feed(self, data: Buffer, reused: bool = False) -> list[Frame]:
        """``reused``: ``data`` is a view of a buffer the reader will read into again, so no
        frame may keep a view of it (a BIG payload is copied out)."""
        frames: list[Frame] = []
        pos = 0
        if self._big is not None:
            pos = self._fill(data, pos, frames)
        if self._buf and pos < len(data):
            pos = self._complete(data, pos, frames)
        if pos < len(data):
            self._scan(data, pos, frames, reused)
        return frames

    def _scan(self, data: Buffer, pos: int, frames: list[Frame], reused: bool = False) -> None:
        """Whole frames of ``data`` from ``pos`` on; keep what is cut at the end."""
        end = len(data)
        while end - pos >= HEADER_SIZE:
            magic, version, kind, flags, length, session, request = _unpack_from(data, pos)
            if (
                magic != MAGIC
                or version != VERSION
                or kind not in FRAME_NAMES
                or length > MAX_PAYLOAD
            ):
                _check(data, pos)  # raises, with the reason
            start = pos + HEADER_SIZE
            stop = start + length
            if stop > end:
                if length >= BIG:
                    first = memoryview(data)[start:end]
                    self._start_big((kind, flags, session, request), length, first)
                    return
                break
            if length < BIG or reused:
                # the common case: small frames whole in one read, one copy each
                frames.append((kind, flags, session, request, bytes(data[start:stop])))
            else:  # a view of the read's own buffer: bytes are immutable, so it stays valid
                frames.append((kind, flags, session, request, memoryview(data)[start:stop]))
            pos = stop
        if pos < end:
            self._buf += data[pos:end]

    def _complete(self, data: Buffer, pos: int, frames: list[Frame]) -> int:
        """Finish the small frame (or header) held in _buf from ``data``; → new pos."""
        buf = self._buf
        if len(buf) < HEADER_SIZE:
            take = min(HEADER_SIZE - len(buf), len(data) - pos)
            buf += data[pos : pos + take]
            pos += take
            if len(buf) < HEADER_SIZE:
                return pos
        kind, flags, length, session, request = _check(buf, 0)
        if length >= BIG:  # only its header was held: the payload goes to a buffer of its own
            buf.clear()
            self._start_big((kind, flags, session, request), length, b"")
            return self._fill(data, pos, frames)
        take = min(HEADER_SIZE + length - len(buf), len(data) - pos)
        buf += data[pos : pos + take]
        pos += take
        if len(buf) == HEADER_SIZE + length:
            frames.append((kind, flags, session, request, bytes(buf[HEADER_SIZE:])))
            buf.clear()
        return pos

    def _start_big(self, head: tuple[int, int, int, int], length: int, first: Buffer) -> None:
        # grown by appends: a bytearray(length) would first zero the whole MiB
        self._big = bytearray(first)
        self._filled = len(first)
        self._length = length
        self._head = head

    def _fill(self, data: Buffer, pos: int, frames: list[Frame]) -> int:
        big = self._big
        assert big is not None
        take = min(self._length - self._filled, len(data) - pos)
        part = memoryview(data)[pos : pos + take]  # a slice of bytes would be a copy
        if len(big) == self._filled:
            big += part
        else:  # target() sized it for recv_into
            big[self._filled : self._filled + take] = part
        frames.extend(self.advance(take))
        return pos + take

    def target(self) -> memoryview | None:
        """Where a blocking reader may ``recv_into`` the rest of a cut BIG frame, if any."""
        big = self._big
        if big is None:
            return None
        if len(big) < self._length:
            big.extend(bytes(self._length - len(big)))  # room to receive into
        return memoryview(big)[self._filled :]

    def advance(self, count: int) -> list[Frame]:
        """``count`` more bytes of the BIG frame are in place: → the frame, once whole."""
        big = self._big
        assert big is not None
        self._filled += count
        if self._filled < self._length:
            return []
        self._big = None
        self._filled = 0
        kind, flags, session, request = self._head
        return [(kind, flags, session, request, big)]

    @property
    def missing(self) -> int:
        """Bytes still to come of a cut BIG frame (0: none is cut)."""
        return self._length - self._filled if self._big is not None else 0

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf) + self._filled


def _check(data: Buffer, pos: int) -> tuple[int, int, int, int, int]:
    """The header at ``pos``, checked → (type, flags, length, session, request)."""
    magic, version, kind, flags, length, session, request = _unpack_from(data, pos)
    if magic != MAGIC or version != VERSION or kind not in FRAME_NAMES:
        raise IPCError(
            f"bad frame header at byte {pos}: magic={magic} version={version} type={kind}"
        )
    if length > MAX_PAYLOAD:
        raise IPCError(f"frame of {length} bytes exceeds {MAX_PAYLOAD}")
    return kind, flags, length, session, request


def body_frames(session: int, request: int, data: Buffer, end: bool) -> list[Buffer]:
    """Buffers of RESPONSE_BODY frames for ``data``, split at MAX_PAYLOAD; END on the last if
    ``end``.  Write them with one writev/sendmsg: a BIG part travels as its own buffer.

    Empty ``data`` gives one empty frame (how a response is ended on its own).
    """
    size = len(data)
    if size < BIG:
        return [
            _pack(MAGIC, VERSION, RESPONSE_BODY, END if end else 0, size, session, request) + data
        ]
    view = memoryview(data)
    out: list[Buffer] = []
    for start in range(0, size, MAX_PAYLOAD):
        part = view[start : start + MAX_PAYLOAD]
        flags = END if end and start + MAX_PAYLOAD >= size else 0
        out += (encode_header(RESPONSE_BODY, flags, session, request, len(part)), part)
    return out


def message_frames(session: int, request: int, text: bool, data: Buffer) -> list[Buffer]:
    """Buffers of one WS_MESSAGE, split at MAX_PAYLOAD (MORE on all parts but the last)."""
    flags = WS_TEXT if text else 0
    size = len(data)
    if size < BIG:
        return [_pack(MAGIC, VERSION, WS_MESSAGE, flags, size, session, request) + data]
    view = memoryview(data)
    out: list[Buffer] = []
    for start in range(0, size, MAX_PAYLOAD):
        part = view[start : start + MAX_PAYLOAD]
        more = MORE if start + MAX_PAYLOAD < size else 0
        out += (encode_header(WS_MESSAGE, flags | more, session, request, len(part)), part)
    return out


def assemble(parts: dict[K, list[bytes]], key: K, flags: int, payload: Buffer) -> bytes | None:
    """One WS_MESSAGE frame → the whole message once its last part is in (else None);
    ``parts`` holds the earlier parts of cut messages, by ``key``."""
    if flags & MORE:
        parts.setdefault(key, []).append(bytes(payload))
        return None
    held = parts.pop(key, None)
    return b"".join((*held, payload)) if held else bytes(payload)


def assemble_buffer(
    parts: dict[K, list[bytes]], key: K, flags: int, payload: Buffer
) -> Buffer | None:
    """:func:`assemble` for a reader that takes any buffer: a message that came whole in one
    frame is returned as the decoder gave it, not copied into a ``bytes`` of its own."""
    if flags & MORE or key in parts:
        return assemble(parts, key, flags, payload)
    return payload
