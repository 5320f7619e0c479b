"""ASGI 3.0 HTTP: request fields → scope; ``receive``/``send`` → a sink.

One :class:`RequestCycle` per request.  ``receive`` hands out the body (the
reactor dispatches complete requests, so there is one ``http.request``
message with ``more_body: False``), then waits for ``http.disconnect``.
``send`` checks the message order (start, then body parts until
``more_body`` is false) and passes the response to the sink; the start is
held back until the first body part so the two travel in one frame.

Error handling: an exception before the response starts becomes a 500 and a
logged traceback; after it started, the sink aborts the response.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, BinaryIO, Final, Protocol
from urllib.parse import unquote_to_bytes

from swserve.apps.wsgi import split_target
from swserve.net.proxy import Frontend
from swserve.protocol import response_headers, serializer
from swserve.protocol.request import RequestHead
from swserve.static.handoff import file_length

log = logging.getLogger("swserve.error")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ASGI: Final = {"version": "3.0", "spec_version": "2.4"}
_ERROR_BODY: Final = b"500 Internal Server Error\n"
_ERROR_HEADERS: Final = b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(
    _ERROR_BODY
)
SPOOL_READ: Final = 256 * 1024  # receive() part size for a spooled body


class AsyncSink(Protocol):
    def send_start(
        self, status: int, flags: int, headers: bytes, body: bytes, end: bool
    ) -> None: ...
    def send_body(self, data: bytes, end: bool) -> None: ...
    def send_abort(self) -> None: ...
    def drain(self) -> Awaitable[None] | None: ...


def build_scope(
    head: RequestHead, state: dict[str, Any] | None, frontend: Frontend | None = None
) -> dict[str, Any]:
    method, target, version = head.method, head.target, head.version
    scheme, chost, cport, shost, sport = head.conn
    raw_path, query = split_target(target)
    path = unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": _ASGI,
        "http_version": version.decode(),
        "method": method.decode("latin-1"),
        "scheme": scheme.decode(),
        "path": path.decode("utf-8", "surrogateescape"),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": head.headers,
        "client": (chost.decode(), int(cport)) if chost else None,
        "server": (shost.decode(), int(sport)) if shost else None,
        # the reactor streams the file; the worker only opens it (static/handoff.py)
        "extensions": {"http.response.pathsend": {}},
    }
    if state is not None:
        scope["state"] = state.copy()
    if frontend is not None:
        frontend.scope(scope)  # proxy headers and --root-path (swserve/net/proxy.py)
    return scope


def write_gate(gate: asyncio.Future[None] | None, writable: bool) -> asyncio.Future[None] | None:
    """The future a ``send`` waits on while its client is behind (BUFFER_FULL), released
    and dropped when it has caught up (BUFFER_EMPTY)."""
    if writable:
        if gate is not None and not gate.done():
            gate.set_result(None)
        return None
    return gate if gate is not None else asyncio.get_running_loop().create_future()


# Validated response header pairs, reused: an app sends the same few again and
# again (bounded: the app chooses them).  RequestCycle.send of a hello response's
# start and body (2 headers): 6.0 -> 2.8 µs (best of 11 runs of 100k, process time).
HEADERS: Final = response_headers.Headers(text=False)


class RequestCycle:
    """One request's receive/send pair and the rules of message order."""

    __slots__ = (
        "_body_sent",
        "_start_pending",
        "_unyielded",
        "_writable",
        "body",
        "disconnected",
        "ended",
        "flags",
        "head",
        "headers",
        "length",
        "sent",
        "sink",
        "started",
        "status",
    )

    def __init__(self, sink: AsyncSink, body: bytes | BinaryIO, head: bool) -> None:
        self.sink = sink
        self.body = body
        self.head = head
        self._body_sent = False
        self.disconnected: asyncio.Event | None = None
        self._writable: asyncio.Future[None] | None = None  # pending while the client is behind
        self._unyielded = 0  # body bytes sent since send() last let the loop run
        self.started = False
        self._start_pending = False
        self.ended = False
        self.status = 0
        self.flags = 0
        self.headers = b""
        self.length = -1  # the app's Content-Length, which the body must match
        self.sent = 0

    async def receive(self) -> Message:
        if not self._body_sent:
            body = self.body
            if isinstance(body, bytes):
                self._body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            # a body the reactor spooled to disk: hand it out in parts
            part = body.read(SPOOL_READ)
            more = len(part) == SPOOL_READ
            if not more:
                self._body_sent = True
                body.close()
            return {"type": "http.request", "body": part, "more_body": more}
        if self.ended:
            # the spec: http.disconnect is "sent to the application if receive is
            # called after a response has been sent"
            return {"type": "http.disconnect"}
        if self.disconnected is None:
            self.disconnected = asyncio.Event()
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    def disconnect(self) -> None:
        if self.disconnected is None:
            self.disconnected = asyncio.Event()
        self.disconnected.set()
        self.set_writable(True)

    def set_writable(self, writable: bool) -> None:
        """BUFFER_FULL / BUFFER_EMPTY from the reactor: hold ``send`` while the client is behind."""
        self._writable = write_gate(self._writable, writable)

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self._start(message)
            return
        if kind == "http.response.body":
            if not self.started:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.ended:
                raise RuntimeError("http.response.body sent after the response ended")
            body = message.get("body", b"")
            if not isinstance(body, bytes | bytearray | memoryview):
                raise TypeError(
                    f"http.response.body 'body' must be bytes, not {type(body).__name__}"
                )
            more = bool(message.get("more_body", False))
            # Wait for the worker's channel *before* writing, as uvicorn waits for
            # its connection: a request that waits has not ended, so the reactor
            # sends this worker no more than its in-flight limit meanwhile.
            # Waiting *after* the last write let each finished request linger in
            # a task holding its body while the reactor, which had its END, sent
            # the next: under steady 1 MiB echoes no waiter was ever woken (other
            # requests kept the shared buffer full) and RSS grew by 1 GiB in 8 s.
            waiter = self.sink.drain()
            if waiter is not None:
                await waiter
            length = len(body)
            if self.head or self.status in (204, 304):
                body = b""
            elif self.length >= 0:
                # a body that does not match the app's Content-Length would desync
                # the connection: refuse it, as uvicorn does (the response is aborted)
                self.sent += length
                if self.sent > self.length:
                    raise RuntimeError("Response content longer than Content-Length")
                if not more and self.sent < self.length:
                    raise RuntimeError("Response content shorter than Content-Length")
            self.ended = not more
            if self._start_pending:
                self._start_pending = False
                flags = self.flags
                if (
                    not more
                    and not flags & serializer.HAS_CONTENT_LENGTH
                    and self.status not in (204, 304)
                    and (length or not self.head)
                ):
                    # the whole body is known: send a length instead of chunking (a
                    # HEAD response gets the length its GET would have, RFC 9110 §9.3.2)
                    self.headers += b"content-length: %d\r\n" % length
                    flags |= serializer.HAS_CONTENT_LENGTH
                self.sink.send_start(self.status, flags, self.headers, bytes(body), not more)
            else:
                self.sink.send_body(bytes(body), not more)
            if more:
                if self._writable is not None:
                    await self._writable
                else:
                    # An app that streams without ever really awaiting would starve
                    # the loop: our frames would pile up unsent and BUFFER_FULL would
                    # never be read.  Let the loop run every 64 KiB.
                    self._unyielded += length
                    if self._unyielded >= 65536:
                        self._unyielded = 0
                        await asyncio.sleep(0)
            return
        if kind == "http.response.pathsend":
            self._pathsend(message)
            return
        raise RuntimeError(f"unexpected ASGI message type {kind!r} in an http scope")

    def _pathsend(self, message: Message) -> None:
        """``http.response.pathsend``: open the file here (the app's permissions), and let the
        sink hand its descriptor to whoever writes to the client."""
        if not self._start_pending:
            raise RuntimeError("http.response.pathsend needs http.response.start, and no body")
        path = message.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ValueError(f"http.response.pathsend 'path' must be an absolute path: {path!r}")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            length = file_length(fd, 0, self.length)
            if length < 0:
                raise RuntimeError(f"http.response.pathsend: {path!r} does not fit the response")
            flags = self.flags
            headers = self.headers
            if not flags & serializer.HAS_CONTENT_LENGTH:
                headers += b"content-length: %d\r\n" % length
                flags |= serializer.HAS_CONTENT_LENGTH
            self._start_pending = False
            self.ended = True
            no_body = self.head or self.status in (204, 304)
            send_file = getattr(self.sink, "send_file", None)
            if no_body or send_file is None:
                body = b"" if no_body else os.pread(fd, length, 0)  # a sink without hand-over
                self.sink.send_start(self.status, flags, headers, body, True)
                return
            owned, fd = fd, -1  # the sink owns (and closes) it from here on
            try:
                send_file(self.status, flags, headers, owned, 0, length)
            except BaseException:
                self._start_pending = True  # nothing was sent: the app's error becomes a 500
                self.ended = False
                raise
        finally:
            if fd >= 0:
                os.close(fd)

    def _start(self, message: Message) -> None:
        status = message["status"]
        if not isinstance(status, int) or not 200 <= status <= 999:
            raise ValueError(f"invalid status {status!r}")
        self.headers, flags, self.length = HEADERS.encode(message.get("headers", ()), status)
        self.status = status
        self.flags = flags
        self.started = True
        self._start_pending = True

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        try:
            await self._run(app, scope)
        finally:
            if not isinstance(self.body, bytes):
                self.body.close()

    async def _run(self, app: ASGIApp, scope: Scope) -> None:
        try:
            await app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            log.warning("cancelled %s %s (ran past --timeout)", scope["method"], scope["path"])
            if not self.ended:
                self.ended = True
                self.sink.send_abort()  # frees the worker's slot in the reactor
            return
        except Exception:
            log.exception("error in ASGI app handling %s %s", scope["method"], scope["path"])
            self._fail()
            return
        if not self.started:
            log.error(
                "ASGI app returned without sending a response for %s %s",
                scope["method"],
                scope["path"],
            )
            self._fail()
        elif not self.ended:
            if self._start_pending:
                self.sink.send_start(self.status, self.flags, self.headers, b"", True)
            else:
                self.sink.send_body(b"", True)
            self.ended = True

    def _fail(self) -> None:
        if self.ended:
            return
        self.ended = True
        if self.started and not self._start_pending:
            self.sink.send_abort()
        else:
            body = b"" if self.head else _ERROR_BODY
            self.sink.send_start(500, serializer.HAS_CONTENT_LENGTH, _ERROR_HEADERS, body, True)
