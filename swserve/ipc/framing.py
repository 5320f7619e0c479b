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
from typing import Final

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
SERVED: Final = 9  # W→R  base mode: requests served so far (u32); flags SERVED_RECYCLE*
STOP: Final = 10  # R→W  you are drained and retired: finish and exit
CANCEL: Final = 11  # R→W  this request ran past --timeout: cancel it (ASGI)
BUFFER_FULL: Final = 12  # R→W  this request's client reads slowly: stop sending its body
BUFFER_EMPTY: Final = 13  # R→W  its client caught up: send on (Swoole's onBufferEmpty)
HEARTBEAT: Final = 14  # W→R  the worker's loop is alive (sent from that loop, about once a second)
METRICS: Final = 15  # W→R  base mode, --metrics-bind: the worker's counters (JSON object of ints)

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
}

# Flags.  MORE/END belong to request/response streams; the low nibble of a
# RESPONSE_START carries serializer.HAS_CONTENT_LENGTH … HAS_SERVER.
SPOOLED: Final = 0x20  # on a REQUEST: the body part is the path of a file holding the body
MORE: Final = 0x40  # more frames of this request body follow
SERVED_RECYCLE: Final = 0x01  # on a SERVED: my --max-requests is reached, replace me
SERVED_RECYCLE_TIMEOUT: Final = 0x02  # on a SERVED: a request ran past --timeout, replace me
END: Final = 0x80  # this frame ends the response

_pack = HEADER.pack
_unpack_from = HEADER.unpack_from


def encode(kind: int, flags: int, session: int, request: int, payload: bytes = b"") -> bytes:
    """One frame as bytes.  Payloads over MAX_PAYLOAD must be split by the caller."""
    return _pack(MAGIC, VERSION, kind, flags, len(payload), session, request) + payload


def encode_header(kind: int, flags: int, session: int, request: int, length: int) -> bytes:
    """Only the header, for writers that send the payload as a separate buffer."""
    return _pack(MAGIC, VERSION, kind, flags, length, session, request)


Frame = tuple[int, int, int, int, bytes]  # (type, flags, session, request, payload)


class FrameDecoder:
    """Incremental decoder: ``feed(bytes)`` returns the frames completed so far.

    Buffers at most one incomplete frame (≤ HEADER_SIZE + MAX_PAYLOAD bytes).

    Raises:
        IPCError: bad magic or version, unknown type, or an oversized length.
            The peer is then treated as crashed: nothing it sends can be trusted.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = data  # the common case: whole frames in one read, no copy
        frames: list[Frame] = []
        pos = 0
        end = len(view)
        while end - pos >= HEADER_SIZE:
            magic, version, kind, flags, length, session, request = _unpack_from(view, pos)
            if magic != MAGIC or version != VERSION or kind not in FRAME_NAMES:
                raise IPCError(
                    f"bad frame header at byte {pos}: magic={magic} version={version} type={kind}"
                )
            if length > MAX_PAYLOAD:
                raise IPCError(f"frame of {length} bytes exceeds {MAX_PAYLOAD}")
            stop = pos + HEADER_SIZE + length
            if stop > end:
                break
            frames.append((kind, flags, session, request, bytes(view[pos + HEADER_SIZE : stop])))
            pos = stop
        if pos < end:
            if buf:
                del buf[:pos]
            else:
                buf += view[pos:]
        elif buf:
            buf.clear()
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)


def body_frames(session: int, request: int, data: bytes, end: bool) -> list[bytes]:
    """RESPONSE_BODY frames for ``data``, split at MAX_PAYLOAD; END on the last if ``end``.

    Empty ``data`` gives one empty frame (how a response is ended on its own).
    """
    if len(data) <= MAX_PAYLOAD:
        return [encode(RESPONSE_BODY, END if end else 0, session, request, data)]
    view = memoryview(data)
    frames = []
    for start in range(0, len(data), MAX_PAYLOAD):
        last = start + MAX_PAYLOAD >= len(data)
        part = bytes(view[start : start + MAX_PAYLOAD])
        frames.append(encode(RESPONSE_BODY, END if (end and last) else 0, session, request, part))
    return frames
