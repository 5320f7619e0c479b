"""ASGI websocket sessions (spec 2.4): messages in, ``receive``/``send`` → a sink.

The reactor frames, masks, reassembles and answers pings; this side sees only
whole messages.  One :class:`WebSocketCycle` per session, in process mode fed
by WS_* frames (``worker/runner_asgi.py``), in base mode by the worker's own
reactor (``base/server.py``): the same class either way.

Message order (the spec): ``websocket.connect`` first; then the app accepts
(``websocket.accept``: subprotocol, extra headers), or denies with an HTTP
response (``websocket.http.response.start``/``body``, the extension advertised
in the scope), or closes (403).  After the accept: ``websocket.receive`` /
``websocket.send`` until ``websocket.close`` or ``websocket.disconnect``.

Back-pressure both ways: the sink is told ``hold(True)`` when more than
``max_queue`` messages wait for the app's ``receive`` (the reactor stops
reading from the client), ``hold(False)`` once the app has caught up; a
``send`` waits while the client is behind (BUFFER_FULL/BUFFER_EMPTY).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Final, Protocol

from swserve.apps.asgi import (
    HEADERS,
    ASGIApp,
    AsyncSink,
    Message,
    RequestCycle,
    Scope,
    build_scope,
    write_gate,
)
from swserve.ipc import codec, framing
from swserve.ipc.framing import Buffer
from swserve.net.proxy import Frontend
from swserve.protocol.request import RequestHead

log = logging.getLogger("swserve.error")

_SCHEMES: Final = {"http": "ws", "https": "wss"}
_DENIED: Final = b"403 Forbidden\n"
_CONNECTING, _ACCEPTED, _RESPONSE, _CLOSED = range(4)


class WebSocketGone(OSError):
    """``send`` on a session whose client has gone (the spec asks for an OSError)."""


class WsSink(AsyncSink, Protocol):
    def accept(self, subprotocol: str | None, headers: bytes) -> None: ...
    def send_message(self, text: bool, data: bytes) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def hold(self, full: bool) -> None: ...


def build_ws_scope(
    head: RequestHead,
    state: dict[str, Any] | None,
    frontend: Frontend | None,
    session: str,
) -> dict[str, Any]:
    """The websocket scope: the HTTP one's, ``ws``/``wss``, subprotocols, extensions."""
    scope = build_scope(head, state, frontend)
    scope["type"] = "websocket"
    del scope["method"]
    scope["scheme"] = _SCHEMES.get(scope["scheme"], scope["scheme"])
    scope["subprotocols"] = [
        token.strip().decode("latin-1")
        for name, value in scope["headers"]
        if name == b"sec-websocket-protocol"
        for token in value.split(b",")
        if token.strip()
    ]
    scope["extensions"] = {
        "websocket.http.response": {},
        # the session's id, for server push (issue #13): opaque, never reused
        "swserve.session": {"id": session},
    }
    return scope


class WebSocketCycle:
    """One session's receive/send pair and the rules of message order."""

    __slots__ = (
        "_connected",
        "_held",
        "_http",
        "_waiter",
        "_writable",
        "gone",
        "inbox",
        "max_queue",
        "sink",
        "state",
    )

    def __init__(self, sink: WsSink, max_queue: int) -> None:
        self.sink = sink
        self.max_queue = max_queue
        self.state = _CONNECTING
        self.inbox: collections.deque[Message] = collections.deque()
        self.gone: tuple[int, str] | None = None  # the session's end, once the reactor says so
        self._connected = False
        self._held = False
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._http: RequestCycle | None = None  # a denial's response

    # -- from the reactor ------------------------------------------------------------

    def on_message(self, text: bool, data: bytes) -> None:
        message: Message
        if text:
            message = {"type": "websocket.receive", "text": data.decode(), "bytes": None}
        else:
            message = {"type": "websocket.receive", "bytes": data, "text": None}
        self.inbox.append(message)
        if self.max_queue and len(self.inbox) >= self.max_queue and not self._held:
            self._held = True
            self.sink.hold(True)
        self._wake()

    def on_close(self, code: int, reason: str) -> None:
        if self.gone is None:
            self.gone = (code, reason)
        self._wake()
        self.set_writable(True)

    def set_writable(self, writable: bool) -> None:
        self._writable = write_gate(self._writable, writable)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the app's side --------------------------------------------------------------

    async def receive(self) -> Message:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        while not self.inbox and self.gone is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.inbox:
            message = self.inbox.popleft()
            if self._held and len(self.inbox) <= self.max_queue // 2:
                self._held = False
                self.sink.hold(False)
            return message
        code, reason = self.gone  # type: ignore[misc]  # the loop above ends on either
        return {"type": "websocket.disconnect", "code": code, "reason": reason}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        state = self.state
        if kind == "websocket.send":
            if state != _ACCEPTED:
                raise RuntimeError(
                    f"websocket.send before websocket.accept or after close ({kind})"
                )
            if self.gone is not None:
                raise WebSocketGone(f"the client has gone (close code {self.gone[0]})")
            data = message.get("bytes")
            text = message.get("text")
            if data is not None:
                payload, is_text = bytes(data), False
            elif text is not None:
                payload, is_text = text.encode(), True
            else:
                raise ValueError("websocket.send needs 'bytes' or 'text'")
            waiter = self.sink.drain()
            if waiter is not None:
                await waiter
            self.sink.send_message(is_text, payload)
            if self._writable is not None:
                await self._writable
            return
        if kind == "websocket.accept":
            if state != _CONNECTING:
                raise RuntimeError("websocket.accept sent twice, or after a response or close")
            headers = b"".join(self._lines(message.get("headers") or ()))
            self.state = _ACCEPTED
            self.sink.accept(message.get("subprotocol"), headers)
            return
        if kind == "websocket.close":
            if state == _CONNECTING:
                self.state = _CLOSED
                await self._respond(
                    {"type": "http.response.start", "status": 403, "headers": _plain()},
                    {"type": "http.response.body", "body": _DENIED},
                )
            elif state == _ACCEPTED:
                self.state = _CLOSED
                if self.gone is None:
                    self.sink.close(int(message.get("code") or 1000), message.get("reason") or "")
            else:
                raise RuntimeError("websocket.close after the session was closed or denied")
            return
        if kind == "websocket.http.response.start":
            if state != _CONNECTING:
                raise RuntimeError("websocket.http.response.start after accept or close")
            self.state = _RESPONSE
            self._http = RequestCycle(self.sink, b"", False)
            await self._http.send({**message, "type": "http.response.start"})
            return
        if kind == "websocket.http.response.body":
            if state != _RESPONSE or self._http is None:
                raise RuntimeError("websocket.http.response.body without a response start")
            await self._http.send({**message, "type": "http.response.body"})
            return
        raise RuntimeError(f"unexpected ASGI message type {kind!r} in a websocket scope")

    @staticmethod
    def _lines(headers: Any) -> list[bytes]:
        out = []
        for pair in headers:
            line = HEADERS.line(pair)[0]
            if line:
                out.append(line)
        return out

    async def _respond(self, start: Message, body: Message) -> None:
        self._http = RequestCycle(self.sink, b"", False)
        await self._http.send(start)
        await self._http.send(body)

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        path = scope["path"]
        try:
            await app(scope, self.receive, self.send)
        except asyncio.CancelledError:
            self._end(1011)
            raise
        except WebSocketGone:
            pass  # the app did not catch the disconnect: nothing more to say to anyone
        except Exception:
            log.exception("error in ASGI websocket app handling %s", path)
            self._end(1011)
            return
        else:
            if self.state == _CONNECTING:
                log.error("ASGI app returned without accepting or closing the websocket %s", path)
            self._end(1000)

    def _end(self, code: int) -> None:
        """The app is done: close what it left open (500 before accept, ``code`` after)."""
        if self.state == _CONNECTING:
            self.state = _CLOSED
            cycle = RequestCycle(self.sink, b"", False)
            cycle._fail()  # the same 500 as for an HTTP request
        elif self.state == _RESPONSE and self._http is not None:
            self.state = _CLOSED
            self._http._fail()
        elif self.state == _ACCEPTED:
            self.state = _CLOSED
            if self.gone is None:
                self.sink.close(code, "")


def _plain() -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(_DENIED)),
    ]


StartTask = Callable[[tuple[int, int], RequestHead, WebSocketCycle], "asyncio.Task[None]"]


class SessionRunner:
    """A worker's WebSocket sessions by (session, request id): start, feed, flow, end."""

    def __init__(self, start: StartTask, max_queue: int) -> None:
        self._start = start
        self.max_queue = max_queue
        self.cycles: dict[tuple[int, int], WebSocketCycle] = {}
        self.tasks: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._parts: dict[tuple[int, int], list[bytes]] = {}

    def connect(self, key: tuple[int, int], head: RequestHead, sink: WsSink) -> WebSocketCycle:
        cycle = WebSocketCycle(sink, self.max_queue)
        self.cycles[key] = cycle
        task = self._start(key, head, cycle)
        self.tasks[key] = task
        task.add_done_callback(partial(self._done, key))
        return cycle

    def frame(self, kind: int, flags: int, key: tuple[int, int], payload: Buffer) -> None:
        """A WS_MESSAGE or WS_CLOSE from the reactor."""
        cycle = self.cycles.get(key)
        if cycle is None:
            return  # the app has finished: nobody to tell
        if kind == framing.WS_MESSAGE:
            data = framing.assemble(self._parts, key, flags, payload)
            if data is not None:
                cycle.on_message(bool(flags & framing.WS_TEXT), data)
        elif kind == framing.WS_CLOSE:
            cycle.on_close(*codec.decode_ws_close(payload))

    def gone(self, key: tuple[int, int]) -> None:
        """The client left before the app accepted: its receive() says so (1006)."""
        cycle = self.cycles.get(key)
        if cycle is not None:
            cycle.on_close(1006, "")

    def flow(self, key: tuple[int, int], writable: bool) -> None:
        cycle = self.cycles.get(key)
        if cycle is not None:
            cycle.set_writable(writable)

    def _done(self, key: tuple[int, int], task: asyncio.Task[None]) -> None:
        self.cycles.pop(key, None)
        self.tasks.pop(key, None)
        self._parts.pop(key, None)
