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
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, BinaryIO, Final, Protocol
from urllib.parse import unquote_to_bytes

from swserve.apps.wsgi import split_target
from swserve.ipc.codec import HEAD_FIELDS
from swserve.protocol import serializer
from swserve.proxy import Frontend

log = logging.getLogger("swserve.error")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ASGI: Final = {"version": "3.0", "spec_version": "2.4"}
_FLAG_HEADERS: Final = {
    b"content-length": serializer.HAS_CONTENT_LENGTH,
    b"date": serializer.HAS_DATE,
    b"server": serializer.HAS_SERVER,
}
_HOP_BY_HOP: Final = frozenset(
    {b"connection", b"transfer-encoding", b"keep-alive", b"upgrade", b"te", b"trailer"}
)
_ERROR_BODY: Final = b"500 Internal Server Error\n"
_ERROR_HEADERS: Final = b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(
    _ERROR_BODY
)
_BAD_NAME: Final = frozenset(b"\x00\r\n:\t ")
SPOOL_READ: Final = 256 * 1024  # receive() part size for a spooled body


class AsyncSink(Protocol):
    def send_start(
        self, status: int, flags: int, headers: bytes, body: bytes, end: bool
    ) -> None: ...
    def send_body(self, data: bytes, end: bool) -> None: ...
    def send_abort(self) -> None: ...
    def drain(self) -> Awaitable[None] | None: ...


def build_scope(
    fields: list[bytes], state: dict[str, Any] | None, frontend: Frontend | None = None
) -> dict[str, Any]:
    method, target, version, scheme, chost, cport, shost, sport = fields[:HEAD_FIELDS]
    raw_path, query = split_target(target)
    path = unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path
    it = iter(fields[HEAD_FIELDS:])
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
        "headers": list(zip(it, it, strict=True)),
        "client": (chost.decode(), int(cport)) if chost else None,
        "server": (shost.decode(), int(sport)) if shost else None,
    }
    if state is not None:
        scope["state"] = state.copy()
    if frontend is not None:
        frontend.scope(scope)  # proxy headers and --root-path (swserve/proxy.py)
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
_HEADER_LINES: dict[tuple[bytes, bytes], tuple[bytes, int, int]] = {}
_CACHE_LIMIT: Final = 4096


def _header_line(pair: Any) -> tuple[bytes, int, int]:
    """One response header → (b"name: value\\r\\n" or b"" if dropped, serializer flags,
    the declared length for Content-Length, else -1)."""
    name, value = pair
    lname = bytes(name).lower()
    if (
        not lname
        or _BAD_NAME.intersection(lname)
        or b"\r" in value
        or b"\n" in value
        or b"\0" in value
    ):
        raise ValueError(f"invalid response header {name!r}")
    if lname in _HOP_BY_HOP:  # the server's business, not the app's
        close = lname == b"connection" and b"close" in bytes(value).lower()
        hit = (b"", serializer.APP_CLOSE if close else 0, -1)
    elif lname == b"content-length":
        text = bytes(value).strip()
        if not text.isdigit():
            raise ValueError(f"invalid Content-Length {value!r}")
        hit = (b"%s: %s\r\n" % (name, text), serializer.HAS_CONTENT_LENGTH, int(text))
    else:
        hit = (b"%s: %s\r\n" % (name, value), _FLAG_HEADERS.get(lname, 0), -1)
    if (
        len(_HEADER_LINES) < _CACHE_LIMIT
        and type(pair) is tuple
        and type(name) is bytes
        and type(value) is bytes
    ):
        _HEADER_LINES[pair] = hit
    return hit


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
        raise RuntimeError(f"unexpected ASGI message type {kind!r} in an http scope")

    def _start(self, message: Message) -> None:
        status = message["status"]
        if not isinstance(status, int) or not 200 <= status <= 999:
            raise ValueError(f"invalid status {status!r}")
        flags = 0
        lines = []
        for pair in message.get("headers", ()):
            hit = _HEADER_LINES.get(pair) if type(pair) is tuple else None
            if hit is None:
                hit = _header_line(pair)
            line, flag, declared = hit
            flags |= flag
            if declared >= 0:
                if self.length >= 0 and declared != self.length:
                    raise ValueError("two different Content-Length headers")
                self.length = declared
            if line:
                lines.append(line)
        self.status = status
        self.flags = flags
        self.headers = b"".join(lines)
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
