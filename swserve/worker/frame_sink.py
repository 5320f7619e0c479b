"""One response as frames on a worker's links to the reactors, for both runners.

The WSGI runner (``runner_wsgi.py``, blocking) and the ASGI runner
(``runner_asgi.py``, on a loop) frame a response the same way: RESPONSE_START
with as much of the body as fits, RESPONSE_BODY frames for the rest, END on the
last, a BIG body as its own buffer (no copy), an abort as ``END | MORE``, and a
file's descriptor handed over instead of its bytes (``static/handoff.py``).
They differ only in how they wait for a slow client, which this module takes
from them:

- a blocking runner passes its ``flow`` (``runner_wsgi.Flow``): each body part
  waits while the client is behind, and raises ``ClientDisconnected`` once it
  has left;
- the ASGI runner passes none: its request cycle waits on a gate before each
  ``send`` (``apps/asgi.py: write_gate``) and on :meth:`AsyncFrameSink.drain`.
"""

from __future__ import annotations

import asyncio
from typing import Final, Protocol

from swserve.ipc import codec, framing
from swserve.ipc.channel_set import AsyncChannelSet
from swserve.ipc.framing import Buffer
from swserve.static import handoff

_encode = framing.encode
_START: Final = framing.RESPONSE_START
_BODY: Final = framing.RESPONSE_BODY
_END: Final = framing.END
_MAX: Final = framing.MAX_PAYLOAD
_BIG: Final = framing.BIG


class FrameWriter(Protocol):
    def send(self, data: bytes) -> None: ...
    def sendv(self, buffers: list[Buffer]) -> None: ...


class Flow(Protocol):
    def wait_writable(self, key: tuple[int, int]) -> None: ...


class FrameSink:
    """Turns one request's response into frames on the channel."""

    __slots__ = ("channel", "flow", "request", "session")
    paused = False  # never: a blocking sink waits in send_body, an async one in drain()

    def __init__(
        self, channel: FrameWriter, session: int, request: int, flow: Flow | None = None
    ) -> None:
        self.channel = channel
        self.session = session
        self.request = request
        self.flow = flow

    def send_start(self, status: int, flags: int, headers: bytes, body: bytes, end: bool) -> None:
        if len(body) >= _BIG:  # header and body as separate buffers: no copy of the body
            if self.flow is not None:
                self.flow.wait_writable((self.session, self.request))
            frames = codec.response_start_frames(
                self.session, self.request, status, flags, headers, body, end
            )
            self.channel.sendv(frames)
            return
        if len(body) + len(headers) > _MAX - 16:  # the head first, the body after it
            payload = codec.encode_response_start(status, headers)
            self.channel.send(_encode(_START, flags, self.session, self.request, payload))
            if body or end:
                self.send_body(body, end)
            return
        payload = codec.encode_response_start(status, headers, body)
        self.channel.send(
            _encode(_START, flags | (_END if end else 0), self.session, self.request, payload)
        )

    def send_body(self, data: bytes, end: bool) -> None:
        if data and self.flow is not None:
            self.flow.wait_writable((self.session, self.request))
        self.channel.sendv(framing.body_frames(self.session, self.request, data, end))

    def send_abort(self) -> None:
        self.channel.send(_encode(_BODY, _END | framing.MORE, self.session, self.request))

    def send_file(
        self, status: int, flags: int, headers: bytes, fd: int, offset: int, length: int
    ) -> None:
        """The body is ``fd``'s: the reactor gets the descriptor, the frame carries none."""
        frame = handoff.hand_over(
            self.session, self.request, status, flags, headers, fd, offset, length
        )
        self.channel.send(frame)


class AsyncFrameSink(FrameSink):
    """The ASGI runner's: the same frames, and ``drain`` for the request cycle."""

    __slots__ = ()
    channel: AsyncChannelSet

    def __init__(self, channel: AsyncChannelSet, session: int, request: int) -> None:
        super().__init__(channel, session, request)

    def drain(self) -> asyncio.Future[None] | None:
        return self.channel.drain()


class AsyncWsSink(AsyncFrameSink):
    """A WebSocket session's side of the channel: WS_ACCEPT, WS_MESSAGE, WS_CLOSE, flow."""

    __slots__ = ()

    def accept(self, subprotocol: str | None, headers: bytes) -> None:
        payload = codec.encode_ws_accept(subprotocol, headers)
        self.channel.send(_encode(framing.WS_ACCEPT, 0, self.session, self.request, payload))

    def send_message(self, text: bool, data: bytes) -> None:
        self.channel.sendv(framing.message_frames(self.session, self.request, text, data))

    def close(self, code: int, reason: str) -> None:
        payload = codec.encode_ws_close(code, reason)
        self.channel.send(_encode(framing.WS_CLOSE, 0, self.session, self.request, payload))

    def hold(self, full: bool) -> None:
        kind = framing.BUFFER_FULL if full else framing.BUFFER_EMPTY
        self.channel.send(_encode(kind, 0, self.session, self.request))
