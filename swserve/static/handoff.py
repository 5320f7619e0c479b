"""An app's file response, handed to the reactor as a file descriptor.

A WSGI ``wsgi.file_wrapper`` over a real file, or an ASGI
``http.response.pathsend``, is opened *in the worker* (so the app's
permissions and checks apply), and its descriptor crosses to the reactor with
``SCM_RIGHTS``; the reactor streams it like a static file and the worker is
free as soon as the frame is sent.  No body byte crosses the IPC socket.

The reactor's worker links are uvloop protocols, which read with ``read()``:
ancillary data sent on them would be dropped (and the descriptors closed).
So each reactor also binds a datagram socket beside its IPC socket
(``reactor-N.files`` next to ``reactor-N.sock``, in the private 0700
directory), read with ``recvmsg``:

1. the worker sends one datagram there: ``session u64 | request u32 | offset
   u64 | length u64`` with the descriptor attached;
2. then, on its ordinary link, a ``FILE_RESPONSE`` frame (status and headers,
   like ``RESPONSE_START``, flag ``END``).

Step 1 has returned before step 2 is written, so when the frame is read the
datagram is already queued on the reactor's socket: :meth:`Inbox.take`
drains the socket and finds it, with no wait and no ordering protocol.
"""

from __future__ import annotations

import array
import asyncio
import logging
import os
import socket
import struct
from typing import TYPE_CHECKING, Final

from swserve.ipc import codec, framing
from swserve.ipc.channel_set import SESSION_SHIFT
from swserve.protocol import serializer

if TYPE_CHECKING:
    from swserve.reactor.exchange import Exchange

log = logging.getLogger("swserve.error")

_DGRAM: Final = struct.Struct("<QIQQ")  # session, request, offset, length
_FDS: Final = socket.CMSG_SPACE(4 * 4)  # room for a few descriptors (only one is sent)
_FLAGS: Final = 0x0F  # the serializer flags of a FILE_RESPONSE

# The reactors' datagram sockets, bound by the master before anything forks
# (index = reactor index); every reactor process reads its own.
INBOX_SOCKETS: list[socket.socket] = []
# A worker's view: the inbox paths, one per reactor (set when it links up).
PATHS: list[str] = []
_out: socket.socket | None = None


def inbox_path(ipc_path: str) -> str:
    return ipc_path.removesuffix(".sock") + ".files"


def bind_inboxes(ipc_paths: list[str]) -> None:
    """In the master, before any fork: one datagram socket per reactor."""
    for path in ipc_paths:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(inbox_path(path))
        sock.setblocking(False)
        INBOX_SOCKETS.append(sock)


# -- the worker's side -------------------------------------------------------------------


def link(ipc_paths: list[str]) -> None:
    """In a worker: where its reactors' inboxes are."""
    PATHS[:] = [inbox_path(p) for p in ipc_paths]


def pass_fd(session: int, request: int, fd: int, offset: int, length: int) -> None:
    """Send ``fd`` to the reactor of ``session`` (blocking: a datagram, queued at once)."""
    global _out
    if _out is None:
        _out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = PATHS[session >> SESSION_SHIFT]
    _out.sendmsg(
        [_DGRAM.pack(session, request, offset, length)],
        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))],
        0,
        path,
    )


def hand_over(
    session: int,
    request: int,
    status: int,
    flags: int,
    headers: bytes,
    fd: int,
    offset: int,
    length: int,
) -> bytes:
    """Pass ``fd`` (closed here, whatever happens) to the session's reactor; → the
    FILE_RESPONSE frame to send after it on the ordinary link."""
    try:
        pass_fd(session, request, fd, offset, length)
    finally:
        os.close(fd)
    return file_frame(session, request, status, flags, headers)


def file_frame(session: int, request: int, status: int, flags: int, headers: bytes) -> bytes:
    payload = codec.encode_response_start(status, headers)
    return framing.encode(
        framing.FILE_RESPONSE, (flags & _FLAGS) | framing.END, session, request, payload
    )


def available() -> bool:
    """Can this worker hand files to its reactors (process mode, on Linux)?"""
    return bool(PATHS)


# -- the reactor's side ------------------------------------------------------------------


class Inbox:
    """A reactor's datagram socket: descriptors waiting for their FILE_RESPONSE frame."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending: dict[tuple[int, int], tuple[int, int, int]] = {}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.sock.fileno(), self.drain)

    def drain(self) -> None:
        sock = self.sock
        while True:
            try:
                data, ancdata, _, _ = sock.recvmsg(_DGRAM.size, _FDS)
            except (BlockingIOError, InterruptedError):
                return
            fds = array.array("i")
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(cdata[: len(cdata) - len(cdata) % fds.itemsize])
            if len(data) != _DGRAM.size or len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                log.error("a malformed file hand-over arrived on the reactor's inbox")
                continue
            session, request, offset, length = _DGRAM.unpack(data)
            old = self.pending.pop((session, request), None)
            if old is not None:
                os.close(old[0])
            self.pending[session, request] = (fds[0], offset, length)

    def take(self, session: int, request: int) -> tuple[int, int, int] | None:
        item = self.pending.pop((session, request), None)
        if item is None:
            self.drain()
            item = self.pending.pop((session, request), None)
        return item

    def discard(self, session: int, request: int) -> None:
        item = self.take(session, request)
        if item is not None:
            os.close(item[0])


def on_file_frame(
    inbox: Inbox | None,
    conn: Exchange | None,
    flags: int,
    payload: framing.Buffer,
    session: int,
    request: int,
) -> None:
    """A FILE_RESPONSE from a worker: stream its descriptor to ``conn`` (None: gone)."""
    item = inbox.take(session, request) if inbox is not None else None
    if conn is None:
        if item is not None:
            os.close(item[0])
        return
    if item is None:
        log.error("a file response arrived without its descriptor: closing the connection")
        conn.on_worker_lost()
        return
    from swserve.static.serve import send_file

    fd, offset, length = item
    status, headers, _ = codec.decode_response_start(payload)
    metrics = conn.reactor.metrics
    if metrics is not None:
        metrics.file_responses += 1
    send_file(conn, status, flags & _FLAGS, headers, fd, offset, length)


def file_length(fd: int, offset: int, declared: int) -> int:
    """The bytes a file response sends: the rest of the file from ``offset``, or the app's
    Content-Length if it is no more than that; -1 if the file cannot back the response."""
    import stat

    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return -1
    rest = max(st.st_size - offset, 0)
    if declared < 0:
        return rest
    return declared if declared <= rest else -1


CONTENT_LENGTH: Final = serializer.HAS_CONTENT_LENGTH
