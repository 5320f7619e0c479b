"""The worker side of a reactor: an asyncio.Protocol per connected worker.

Frames from the worker are decoded here and routed to the client connection
they answer.  A reply is delivered only if its (session, request) pair is
still the one the connection waits for; anything else is dropped, which is
how a reply for a client that left, or for a request already answered, is
discarded.

Error handling: a malformed frame means the worker is broken; the link is
closed, which the reactor treats exactly like the worker's death (502 for its
requests) and the manager replaces the process when it exits.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

from swserve.errors import IPCError
from swserve.ipc import codec, framing
from swserve.ipc.buffers import widen
from swserve.ipc.channel_async import BatchWriter, FrameReader
from swserve.reactor.dispatcher import WorkerSlot
from swserve.reactor.http_conn import HttpConnection
from swserve.reactor.spool import SpooledBody
from swserve.static.handoff import on_file_frame

if TYPE_CHECKING:
    from swserve.reactor.core import Reactor
    from swserve.reactor.exchange import Exchange
    from swserve.reactor.ws_conn import WsConnection

log = logging.getLogger("swserve.error")

_START = framing.RESPONSE_START
_BODY = framing.RESPONSE_BODY
_END = framing.END
_ABORT = framing.MORE  # on a RESPONSE_BODY with END: the app failed mid-response
_WS_FRAMES = frozenset(
    {
        framing.WS_ACCEPT,
        framing.WS_MESSAGE,
        framing.WS_CLOSE,
        framing.BUFFER_FULL,
        framing.BUFFER_EMPTY,
    }
)


_PUSH_FRAMES = framing.PUSH_FRAMES | {framing.PUSH_REPLY}


class WorkerLink(asyncio.BufferedProtocol):
    def __init__(self, reactor: Reactor) -> None:
        self.reactor = reactor
        self.decoder = framing.FrameDecoder()
        self.reader = FrameReader(self.decoder)  # reads into a reused buffer (channel_async)
        self.slot: WorkerSlot | None = None
        self.worker_id = 0
        self.pid = 0
        self.cell = 0  # in the shared busy table (ipc/busy.py)
        self.key = reactor.new_link_key()
        self.interface = ""
        self.last_seen = reactor.now  # any frame, heartbeats included, proves the loop alive
        # (session, request) pairs this worker holds, for 502s when it dies
        self.inflight: dict[tuple[int, int], Exchange] = {}
        self.ws_parts: dict[int, list[bytes]] = {}  # messages cut at MAX_PAYLOAD
        self._disowned: set[tuple[int, int]] = set()  # sessions of a dead reactor, told once

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport
        self.transport = cast(asyncio.Transport, transport)
        widen(transport.get_extra_info("socket"))
        self.writer = BatchWriter(self.transport, asyncio.get_running_loop())

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.reader.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self._received(nbytes, None)

    def data_received(self, data: bytes) -> None:
        """The same for a caller that has bytes (the fuzz tests)."""
        self._received(len(data), data)

    def _received(self, nbytes: int, data: bytes | None) -> None:
        self.last_seen = self.reactor.now
        metrics = self.reactor.metrics
        if metrics is not None:
            metrics.ipc_bytes_in += nbytes
        try:
            frames = self.reader.frames(nbytes) if data is None else self.decoder.feed(data)
        except IPCError as exc:
            log.error(
                "worker %d (pid %d) sent a malformed frame: %s", self.worker_id, self.pid, exc
            )
            self.transport.abort()
            return
        sessions = self.reactor.sessions
        for kind, flags, session, request, payload in frames:
            if kind in (_START, _BODY):
                conn = sessions.get(session)
                end = bool(flags & _END)
                if end:
                    self._release(session, request)
                if conn is None or conn.seq != request or conn.slot is not self.slot:
                    if conn is None and not end and self.reactor.stale(session):
                        self._disown(session, request)
                    continue  # the client left, or this request was already answered
                if kind == _START:
                    try:
                        status, headers, body = codec.decode_response_start(payload)
                    except IPCError as exc:
                        log.error("worker %d sent a bad response head: %s", self.worker_id, exc)
                        self.transport.abort()
                        return
                    conn.on_response_start(status, flags, headers, body, end)
                elif end and flags & _ABORT:
                    conn.on_response_abort()
                else:
                    conn.on_response_body(payload, end)
            elif kind in _PUSH_FRAMES:
                try:
                    push = self.reactor.push
                    if kind == framing.PUSH_REPLY:  # base mode: a worker answers the master
                        push.answer(self, request, flags, codec.decode_count(payload))
                    else:
                        push.handle(kind, flags, session, request, bytes(payload), self.reply)
                except IPCError as exc:
                    log.error("a pushing process sent a bad frame: %s", exc)
                    self.transport.abort()
                    return
            elif kind in _WS_FRAMES:
                try:
                    self._websocket(kind, flags, session, request, payload)
                except IPCError as exc:
                    log.error("worker %d sent a bad WebSocket frame: %s", self.worker_id, exc)
                    self.transport.abort()
                    return
            elif kind == framing.FILE_RESPONSE:
                conn = sessions.get(session)
                self._release(session, request)  # the worker is free: the reactor sends the file
                if conn is not None and (conn.seq != request or conn.slot is not self.slot):
                    conn = None
                on_file_frame(self.reactor.files, conn, flags, payload, session, request)
            else:
                try:
                    self._control(kind, flags, payload)
                except IPCError as exc:  # a HELLO, READY or SERVED that does not decode
                    log.error(
                        "worker %d sent a bad %s frame: %s",
                        self.worker_id,
                        framing.FRAME_NAMES[kind],
                        exc,
                    )
                    self.transport.abort()
                    return
        if self.reactor.draining:
            self.reactor.check_idle()

    def _release(self, session: int, request: int) -> None:
        if self.inflight.pop((session, request), None) is None:
            return
        slot = self.slot
        if slot is not None:
            slot.inflight -= 1
            slot.served += 1
            self.reactor.dispatcher.sent(slot)
            self.reactor.on_slot_free(slot)
            if slot.retiring and slot.inflight == 0 and not self.reactor.ws.count(self.key):
                self.send_stop()

    # -- WebSocket sessions pinned to this worker ---------------------------------------

    def _websocket(
        self, kind: int, flags: int, session: int, request: int, payload: framing.Buffer
    ) -> None:
        reactor = self.reactor
        if kind == framing.WS_ACCEPT:
            subprotocol, headers = codec.decode_ws_accept(payload)
            conn = reactor.sessions.get(session)
            if (
                isinstance(conn, HttpConnection)
                and conn.seq == request
                and conn.slot is self.slot
                and conn.upgrade is not None
                and conn.ws is None
            ):
                conn.switch_to_websocket(subprotocol, headers, self)
            else:  # the client left during the handshake: the app hears so
                self.writer.write(
                    framing.encode(
                        framing.WS_CLOSE, 0, session, request, codec.encode_ws_close(1006, "")
                    )
                )
            self._release(session, request)  # the handshake held a slot; the session holds none
            return
        ws = reactor.ws.get(session)
        if ws is None or ws.key != self.key or ws.seq != request:
            self.ws_parts.pop(session, None)
            if ws is None and kind != framing.WS_CLOSE and reactor.stale(session):
                self._disown(session, request, websocket=True)
            return  # the session has ended: late frames are dropped
        if kind == framing.WS_MESSAGE:
            # a whole message is passed on as the decoder gave it (a large one: a view of the
            # read, or the bytearray it was assembled in): bytes() would copy it once more
            data = framing.assemble_buffer(self.ws_parts, session, flags, payload)
            if data is not None:
                ws.send_message(bool(flags & framing.WS_TEXT), data)
        elif kind == framing.WS_CLOSE:
            ws.close(*codec.decode_ws_close(payload))
        else:  # BUFFER_FULL / BUFFER_EMPTY: the app has --ws-max-queue messages unread
            ws.hold(kind == framing.BUFFER_FULL)

    def _disown(self, session: int, request: int, websocket: bool = False) -> None:
        """A frame for a session of the reactor we replaced: its client went with it.

        Tell the worker once, as for a client that left, so that a streamed
        response or a WebSocket session of the dead reactor stops.
        """
        if (session, request) in self._disowned:
            return
        if len(self._disowned) >= 1024:
            self._disowned.clear()
        self._disowned.add((session, request))
        if websocket:
            payload = codec.encode_ws_close(1006, "")
            self.writer.write(framing.encode(framing.WS_CLOSE, 0, session, request, payload))
        else:
            self.writer.write(framing.encode(framing.DISCONNECT, 0, session, request))

    def ws_message(self, ws: WsConnection, text: bool, data: bytes) -> None:
        self.writer.writelines(framing.message_frames(ws.session, ws.seq, text, data))

    def ws_closed(self, ws: WsConnection, code: int, reason: str) -> None:
        if not self.transport.is_closing():
            payload = codec.encode_ws_close(code, reason)
            self.writer.write(framing.encode(framing.WS_CLOSE, 0, ws.session, ws.seq, payload))

    def ws_flow(self, ws: WsConnection, kind: int) -> None:
        self.writer.write(framing.encode(kind, 0, ws.session, ws.seq))

    def _control(self, kind: int, flags: int, payload: framing.Buffer) -> None:
        if kind == framing.HELLO:
            self.worker_id, self.pid, self.cell = codec.decode_hello(payload)
            self.reactor.on_worker_hello(self)
        elif kind == framing.READY:
            worker_id, pid, capacity, interface = codec.decode_ready(payload)
            self.interface = interface
            self.slot = WorkerSlot(self.key, worker_id, pid, capacity)
            self.slot.cell = self.cell
            self.reactor.on_worker_ready(self, interface)
        elif kind == framing.BOOT_ERROR:
            self.reactor.on_boot_error(self, bytes(payload).decode(errors="replace"))
        elif kind == framing.HEARTBEAT:
            pass  # data_received already noted it
        elif kind == framing.METRICS:
            try:
                self.reactor.remote.update(self.key, codec.decode_metrics(payload))
            except IPCError as exc:
                log.error("worker %d sent bad metrics: %s", self.worker_id, exc)
                self.transport.abort()
        elif kind == framing.SERVED and self.slot is not None:
            self.reactor.on_worker_served(self.slot, codec.decode_served(payload), flags)
        else:
            log.error(
                "worker %d sent an unexpected %s frame", self.worker_id, framing.FRAME_NAMES[kind]
            )
            self.transport.abort()

    def send_request(self, conn: Exchange) -> None:
        """Frame ``conn.current`` to this worker (body split into ≤ MAX_PAYLOAD frames)."""
        req = conn.current
        assert req is not None
        assert self.slot is not None
        self.inflight[conn.session, conn.seq] = conn
        if conn.upgrade is not None:  # a WebSocket handshake: the head alone
            payload = codec.encode_request(
                req.method, req.target, req.version, conn.prefix, req.headers, b""
            )
            self.writer.write(
                framing.encode(framing.WS_CONNECT, 0, conn.session, conn.seq, payload)
            )
            return
        body = req.body
        spooled: object = body  # a SpooledBody stands in for the bytearray (spool.py)
        if isinstance(spooled, SpooledBody):
            path = spooled.finish().encode()
            conn.spooled = spooled
            payload = codec.encode_request(
                req.method, req.target, req.version, conn.prefix, req.headers, path
            )
            self.writer.write(
                framing.encode(framing.REQUEST, framing.SPOOLED, conn.session, conn.seq, payload)
            )
            return
        if len(body) < framing.BIG:
            payload = codec.encode_request(
                req.method, req.target, req.version, conn.prefix, req.headers, body
            )
            frame = framing.encode(framing.REQUEST, 0, conn.session, conn.seq, payload)
            if self.slot.capacity == 1 and not self.writer.pending:
                # a one-request-at-a-time worker: nothing to coalesce, so skip the
                # call_soon round of the batch writer
                self.transport.write(frame)
            else:
                self.writer.write(frame)
            return
        # a BIG body: its parts go out as views of the request's own buffer (framing.BIG)
        head = codec.encode_request_head(
            req.method, req.target, req.version, conn.prefix, req.headers
        )
        limit = framing.MAX_PAYLOAD // 2
        view = memoryview(body)
        first = view[:limit]
        more = framing.MORE if len(body) > limit else 0
        out: list[framing.Buffer] = [
            framing.encode_header(
                framing.REQUEST, more, conn.session, conn.seq, len(head) + len(first)
            ),
            head,
            first,
        ]
        for start in range(limit, len(body), limit):
            part = view[start : start + limit]
            more = framing.MORE if start + limit < len(body) else 0
            out += (
                framing.encode_header(
                    framing.REQUEST_BODY, more, conn.session, conn.seq, len(part)
                ),
                part,
            )
        self.writer.writelines(out)

    def retire(self) -> None:
        """Dispatch nothing more to this worker; STOP it once its requests are answered."""
        slot = self.slot
        if slot is None or slot.retiring:
            return
        slot.retiring = True
        self.reactor.leave_dispatch(slot)
        self.reactor.ws.retire(self.key)  # its sessions drain (--ws-drain-timeout), then 1012
        if slot.inflight == 0 and not self.reactor.ws.count(self.key):
            self.send_stop()

    def reply(self, request: int, outcome: int, count: int) -> None:
        """A push request's outcome, to the process that asked (``ipc/push.py``)."""
        if not self.transport.is_closing():
            payload = codec.encode_count(count) if count else b""
            self.writer.write(framing.encode(framing.PUSH_REPLY, outcome, 0, request, payload))

    def send_stop(self) -> None:
        self.writer.write(framing.encode(framing.STOP, 0, 0, 0))

    def send_cancel(self, conn: Exchange) -> None:
        self.writer.write(framing.encode(framing.CANCEL, 0, conn.session, conn.seq))

    def send_flow(self, kind: int, conn: Exchange) -> None:
        """BUFFER_FULL / BUFFER_EMPTY for the request ``conn`` is waiting on."""
        self.writer.write(framing.encode(kind, 0, conn.session, conn.seq))

    def send_disconnect(self, conn: Exchange) -> None:
        if not self.transport.is_closing():
            self.writer.write(framing.encode(framing.DISCONNECT, 0, conn.session, conn.seq))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.pid:  # a push link (ipc/push.py), never a worker: nothing to clean
            return
        self.reactor.on_worker_lost(self)
        for conn in list(self.inflight.values()):
            if conn.current is not None and conn.slot is self.slot:
                conn.on_worker_lost()
        self.inflight.clear()
        busy = self.reactor.dispatcher.busy
        if busy is not None and self.slot is not None:  # nothing of ours is on it now
            busy.release(self.reactor.index, self.slot.cell, 0)
