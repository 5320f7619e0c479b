"""Static files and file responses on a client connection: the thin I/O shell.

:class:`StaticFiles` answers ``--static`` paths on the loop that owns the
connection (the reactor in process mode, the worker's own loop in base mode)
without calling the app.  :func:`send_file` streams an open file as the body
of a response that has already been decided: a static file, or a file
response handed over by the app (``wsgi.file_wrapper``, ASGI
``http.response.pathsend``; see ``static/handoff.py``).

:class:`FileSender` follows the client's pace: ``os.sendfile`` into the
socket while the transport's buffer is empty (or, over TLS, writes while it is
under its high-water mark), resuming on ``resume_writing``, so a download
holds at most a small piece of the file in memory whatever its size, and a
client that stops reading is cut by ``--write-timeout`` (the reactor's sweep).
Small static files are kept in memory by the open-file cache
(``static/cache.py``) and written with the head in one call.

Measured on the 2-core development VM (``loadtests/static_files.py``, 10 MiB
file): the server's CPU per request was 1.2-1.5 ms with ``sendfile`` and
4.1 ms with reads and transport writes; on 64 KiB, 28-36 µs against 37-38.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, ClassVar, Final

from swserve.protocol import serializer
from swserve.protocol.head_checks import origin_form
from swserve.static.cache import Entry, FileCache
from swserve.static.files import Forbidden, IsDirectory, NotFound, OpenFile, open_file
from swserve.static.resolve import (
    Decision,
    Mount,
    Refused,
    Rules,
    accepted_encodings,
    decide,
    locate,
    method_not_allowed,
    parse_mount,
    redirect,
)

if TYPE_CHECKING:
    from swserve.config import Config
    from swserve.reactor.http_conn import HttpConnection

SMALL: Final = 16 * 1024  # read whole and written with the head (app file responses)
CHUNK: Final = 256 * 1024  # one read of a larger file (the connection's HIGH_WATER)
STREAM_CHUNK: Final = 64 * 1024  # one read for an HTTP/2 stream (4 DATA frames of 16 KiB)
NUDGE: Final = 16 * 1024  # what goes through the transport when sendfile finds the socket full
USE_SENDFILE: Final = hasattr(os, "sendfile")
_LENGTH: Final = serializer.HAS_CONTENT_LENGTH


def rules_from(config: Config) -> Rules | None:
    """The static rules of a server, or None without ``--static``.

    The directories were resolved (absolute, symlinks followed) at start-up by
    :func:`resolve_roots`, before any process was forked.
    """
    if not config.static:
        return None
    mounts = []
    for text in config.static:
        prefix, directory = parse_mount(text)
        mounts.append(Mount(prefix.encode("latin-1"), directory))
    # the longest prefix first: /static/admin wins over /static
    mounts.sort(key=lambda m: len(m.prefix), reverse=True)
    return Rules(
        tuple(mounts),
        max_age=config.static_max_age,
        immutable=config.static_immutable,
        index=config.static_index,
        fallthrough=config.static_fallthrough,
        follow_symlinks=config.static_follow_symlinks,
        allow_dotfiles=config.static_allow_dotfiles,
    )


def resolve_roots(entries: tuple[str, ...]) -> tuple[str, ...]:
    """``--static`` entries with each directory made absolute and real; ValueError if one
    is malformed or not a directory (a one-line start-up error)."""
    out = []
    for text in entries:
        prefix, directory = parse_mount(text)
        real = os.path.realpath(directory)
        if not os.path.isdir(real):
            raise ValueError(f"--static {text}: {directory!r} is not a directory")
        out.append(f"{prefix}={real}")
    return tuple(out)


_CONDITIONAL: Final = frozenset({b"if-none-match", b"if-modified-since", b"range", b"if-range"})


class StaticFiles:
    """The ``--static`` answerer of one reactor (or base-mode worker)."""

    __slots__ = ("cache", "rules")

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.cache = FileCache()

    def serve(self, conn: HttpConnection) -> bool:
        """Answer ``conn.current`` if it names a static file; False: it is the app's."""
        req = conn.current
        assert req is not None
        method = req.method
        if method == b"GET" or method == b"HEAD":  # bytes: == is fastest
            accept = b""
            conditional = False
            for name, value in req.headers:
                if name == b"accept-encoding":
                    accept = value
                elif name in _CONDITIONAL:
                    conditional = True
            target = req.target
            if target[:1] != b"/":  # absolute-form (a proxy's, RFC 9112 §3.2.2): its path
                target = origin_form(target)
            key = (target.partition(b"?")[0], accept)
            entry = self.cache.get(key, conn.reactor.now, self._open, target)
            if entry is None:
                return self._lookup(conn, target, key)
            decision: Decision | None
            if conditional:
                decision = decide(method, req.headers, entry.file.info, self.rules)
            else:
                decision = entry.plain
                if decision is None:
                    decision = entry.plain = decide(b"GET", [], entry.file.info, self.rules)
            _respond(conn, decision, entry)
            return True
        return self._lookup(conn, origin_form(req.target), None)

    def _open(self, target: bytes, accept: bytes) -> OpenFile:
        found = locate(self.rules.mounts, target)
        if found is None:
            raise NotFound
        mount, segments, slash = found
        headers = [(b"accept-encoding", accept)] if accept else []
        return open_file(mount, segments, slash, self.rules, accepted_encodings(headers))

    def _lookup(self, conn: HttpConnection, target: bytes, key: tuple[bytes, bytes] | None) -> bool:
        """The first request for ``target`` (origin-form; or not a GET): every rule, then
        the cache."""
        req = conn.current
        assert req is not None
        rules = self.rules
        try:
            found = locate(rules.mounts, target)
        except Refused as exc:
            _answer(conn, Decision(exc.status, b""), -1, text=True)
            return True
        if found is None:
            return False
        mount, segments, slash = found
        try:
            opened = open_file(
                mount,
                segments,
                slash,
                rules,
                accepted_encodings(req.headers) if key is not None else frozenset(),
            )
        except NotFound:
            if rules.fallthrough:
                return False
            _answer(conn, Decision(404, b""), -1, text=True)
            return True
        except Forbidden:
            _answer(conn, Decision(404, b""), -1, text=True)
            return True
        except IsDirectory:
            path, _, query = target.partition(b"?")
            _answer(conn, redirect(path + b"/" + (b"?" + query if query else b"")), -1)
            return True
        if key is None:
            os.close(opened.fd)
            _answer(conn, method_not_allowed(), -1)
            return True
        entry = self.cache.put(key, opened, conn.reactor.now)
        _respond(conn, decide(req.method, req.headers, opened.info, rules), entry)
        return True


def _respond(conn: HttpConnection, decision: Decision, entry: Entry) -> None:
    """Answer from a cached file: its kept body, or a stream of its own ``dup``."""
    req = conn.current
    assert req is not None
    length = decision.length
    if length and req.method == b"GET" and decision.status in (200, 206):
        body = entry.body
        if body is None:
            _answer(conn, decision, os.dup(entry.file.fd))
            return
        if length != len(body):
            body = body[decision.offset : decision.offset + length]
    else:
        body = b""  # HEAD, 304, 416
    conn.dispatched_at = time.monotonic()
    metrics = conn.reactor.metrics
    if metrics is not None:
        metrics.static_responses += 1
    conn.on_response_start(decision.status, _LENGTH, decision.headers, body, True)


def _answer(conn: HttpConnection, decision: Decision, fd: int, text: bool = False) -> None:
    """Write a decided response; stream ``decision``'s range of ``fd`` (which it closes)."""
    conn.dispatched_at = time.monotonic()
    metrics = conn.reactor.metrics
    if metrics is not None:
        metrics.static_responses += 1
    headers = decision.headers
    if text:  # a short error page of our own
        body = serializer.error_response(decision.status, b"").split(b"\r\n\r\n", 1)[1]
        headers += b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body)
        conn.on_response_start(decision.status, _LENGTH, headers, body, True)
        return
    send_file(conn, decision.status, _LENGTH, headers, fd, decision.offset, decision.length)


def send_file(
    conn: HttpConnection, status: int, flags: int, headers: bytes, fd: int, offset: int, length: int
) -> None:
    """Start a response whose body is ``length`` bytes of ``fd`` from ``offset``.

    Owns ``fd`` (closed once sent, or when the connection is lost).  ``fd`` may
    be -1 for a response without a body.
    """
    req = conn.current
    body_allowed = req is not None and req.method != b"HEAD" and status not in (204, 304)
    if fd < 0 or not body_allowed or length <= 0:
        if fd >= 0:
            os.close(fd)
        conn.on_response_start(status, flags, headers, b"", True)
        return
    if length <= SMALL:
        try:
            body = os.pread(fd, length, offset)
        finally:
            os.close(fd)
        if len(body) < length:  # the file shrank since it was measured
            conn.on_response_start(status, flags, headers, b"", False)
            conn.cut()
            return
        conn.on_response_start(status, flags, headers, body, True)
        return
    conn.on_response_start(status, flags, headers, b"", False)
    sender: FileSender | StreamSender
    if conn.multiplexed:  # an HTTP/2 stream: DATA frames of the connection, no sendfile
        sender = StreamSender(conn, fd, offset, length)
    else:
        sender = FileSender(conn, fd, offset, length)
    conn.sender = sender
    sender.pump()


class FileSender:
    """Writes one file range to a connection, at the client's pace.

    On a plain socket the kernel copies the file (``os.sendfile`` on the
    socket's descriptor, non-blocking) whenever the transport's buffer is
    empty; when the socket is full, one ``NUDGE`` of the file goes through the
    transport instead, and the transport's watermarks, set to zero for the
    duration, call ``resume_writing`` once it has drained: the moment to
    ``sendfile`` again.  Over TLS (or without ``sendfile``), chunks are read
    and written through the transport, up to its high-water mark.
    """

    __slots__ = ("conn", "fd", "left", "pos", "sock")
    SENDFILE: ClassVar[bool] = USE_SENDFILE

    def __init__(self, conn: HttpConnection, fd: int, offset: int, length: int) -> None:
        self.conn = conn
        self.fd = fd
        self.pos = offset
        self.left = length
        self.sock = -1
        transport = conn.transport
        if self.SENDFILE and transport.get_extra_info("ssl_object") is None:
            raw = transport.get_extra_info("socket")
            if raw is not None:
                self.sock = raw.fileno()
                transport.set_write_buffer_limits(high=0, low=0)

    def pump(self) -> None:
        """Send until the socket is full (resume_writing calls again) or the file is sent."""
        conn = self.conn
        transport = conn.transport
        while self.left and not conn.write_paused:
            if transport.is_closing():
                return
            if self.sock >= 0 and not transport.get_write_buffer_size():
                try:
                    sent = os.sendfile(self.sock, self.fd, self.pos, self.left)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:  # the client is gone: connection_lost follows
                    return
                if sent:
                    self.pos += sent
                    self.left -= sent
                    conn.sent += sent
                    continue
                size = NUDGE  # the socket is full: let the transport wait for room
            else:
                size = CHUNK
            try:
                data = os.pread(self.fd, min(size, self.left), self.pos)
            except OSError:
                data = b""
            if not data:  # the file shrank under us: the framing is broken, close
                self.close()
                conn.cut()
                return
            self.pos += len(data)
            self.left -= len(data)
            conn.sent += len(data)
            transport.write(data)
        if not self.left and self.fd >= 0:
            self.close()
            conn.on_response_body(b"", True)

    def resume(self) -> None:
        if self.fd >= 0:
            self.pump()

    def close(self) -> None:
        """Release the file (sent, or the client left)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        conn = self.conn
        if conn.sender is self:
            conn.sender = None
            if self.sock >= 0 and not conn.transport.is_closing():
                conn.transport.set_write_buffer_limits(high=conn.HIGH_WATER, low=conn.LOW_WATER)


class StreamSender(FileSender):
    """Writes one file range to an HTTP/2 stream, at the client's pace.

    No ``sendfile``: the bytes travel inside the DATA frames the HTTP/2 core
    builds.  A ``STREAM_CHUNK`` is read and handed to the stream while neither
    its flow-control window nor the connection's socket buffer is full
    (``conn.blocked()``); the stream calls :meth:`resume` when the window opens
    or the socket drains.  So a download holds a chunk or two of the file in
    memory, and a client that stops reading meets ``--write-timeout`` (the
    HTTP/2 session's sweep).  ``resume`` and ``close`` are FileSender's (with
    no socket of its own, ``close`` leaves the connection's watermarks alone).
    """

    __slots__ = ()
    SENDFILE = False  # the connection's socket is the HTTP/2 session's

    def pump(self) -> None:
        conn = self.conn
        while self.left and self.fd >= 0 and not conn.blocked():
            try:
                data = os.pread(self.fd, min(STREAM_CHUNK, self.left), self.pos)
            except OSError:
                data = b""
            if not data:  # the file shrank under us: the length announced is a lie, reset
                self.close()
                conn.cut()
                return
            self.pos += len(data)
            self.left -= len(data)
            if not self.left:
                self.close()
            conn.on_response_body(data, not self.left)
