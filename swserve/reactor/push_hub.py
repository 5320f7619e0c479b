"""Server push in a reactor: frames from any linked process, written to clients here.

A PUSH frame names a session; the reactor that owns it (the session id names
its reactor, ``ipc/channel_set.py``) writes the message to the client
directly: the worker the session is pinned to is not involved.  Groups live
here too, in one table per reactor (:class:`Groups`): a broadcast is one frame
in, one write per member out.  A client whose output buffer is over its high
mark misses the message (``PUSH_DROPPED``): a slow reader never grows the
reactor's memory and never holds up the other members.

:class:`PushHub` is the same in a process-mode reactor and in a base-mode
worker (whose own loop is its reactor); ``local`` turns the session id on the
wire into this reactor's own (base mode: ``pid << 40 | id``, see
``ipc/push.py``).  The base-mode master, which holds no session, routes the
frames to the worker that does (``reactor/push_route.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from swserve.errors import IPCError
from swserve.ipc import codec, framing
from swserve.ipc.push import BASE_MASK, BASE_SHIFT
from swserve.metrics.exposition import PUSH_BROADCASTS, PUSH_MESSAGES, key
from swserve.protocol.ws_frames import server_frame

if TYPE_CHECKING:
    from swserve.reactor.ws_conn import WsConnection, WsSessions

log = logging.getLogger("swserve.error")

HIGH_WATER: Final = 256 * 1024  # HttpConnection.HIGH_WATER: past it, pushes are dropped

Reply = Callable[[int, int, int], None]  # (request id, PUSH_* outcome, count)


class Groups:
    """Group membership: group → sessions and session → groups, kept in step."""

    __slots__ = ("members", "of")

    def __init__(self) -> None:
        self.members: dict[str, set[int]] = {}
        self.of: dict[int, set[str]] = {}

    def join(self, session: int, group: str) -> None:
        self.members.setdefault(group, set()).add(session)
        self.of.setdefault(session, set()).add(group)

    def leave(self, session: int, group: str) -> bool:
        """False if the session was not in the group."""
        groups = self.of.get(session)
        if groups is None or group not in groups:
            return False
        groups.discard(group)
        if not groups:
            del self.of[session]
        members = self.members[group]
        members.discard(session)
        if not members:
            del self.members[group]
        return True

    def drop(self, session: int) -> None:
        """The session has closed: it leaves every group it was in."""
        for group in self.of.pop(session, ()):
            members = self.members[group]
            members.discard(session)
            if not members:
                del self.members[group]

    def get(self, group: str) -> set[int]:
        return self.members.get(group, set())


class PushMetrics:
    __slots__ = ("broadcasts", "delivered", "dropped", "gone", "relayed")

    def __init__(self) -> None:
        self.delivered = self.dropped = self.gone = self.broadcasts = self.relayed = 0

    def snapshot(self) -> dict[str, int]:
        return {
            key(PUSH_MESSAGES, "delivered"): self.delivered,
            key(PUSH_MESSAGES, "dropped"): self.dropped,
            key(PUSH_MESSAGES, "gone"): self.gone,
            key(PUSH_BROADCASTS, "local"): self.broadcasts,
            key(PUSH_BROADCASTS, "remote"): self.relayed,
        }


def identity(session: int) -> int:
    return session


def base_session(pid: int) -> Callable[[int], int]:
    """A base-mode worker's view of a session id on the wire (``pid << 40 | n``): n if the
    session is this worker's, else 0."""

    def local(session: int) -> int:
        return session & BASE_MASK if session >> BASE_SHIFT == pid else 0

    return local


class PushHub:
    """One reactor's push frames: deliver, close, join/leave, broadcast, is-open."""

    def __init__(
        self, ws: WsSessions, local: Callable[[int], int] = identity, counts: bool = True
    ) -> None:
        self.ws = ws
        # broadcasts are counted once per instance: by reactor 0, or the base-mode master
        self.counts = counts
        self.groups = Groups()
        self.metrics = PushMetrics()
        self.local = local
        # set when --broadcast-url is on and this reactor publishes (push/redis_bridge.py)
        self.publish: Callable[[str, int, bool, bytes], None] | None = None
        # what the --broadcast-url bridge adds to the metrics (push/redis_bridge.py)
        self.extra: Callable[[], dict[str, int]] = dict
        ws.on_remove = self.groups.drop

    def snapshot(self) -> dict[str, int]:
        return {**self.metrics.snapshot(), **self.extra()}

    def handle(
        self, kind: int, flags: int, session: int, request: int, payload: bytes, reply: Reply
    ) -> None:
        """One frame from a pushing process (``IPCError`` on a malformed payload)."""
        if kind == framing.PUSH_BROADCAST:
            group, exclude, data = codec.decode_broadcast(payload)
            text = bool(flags & framing.WS_TEXT)
            count = self.broadcast(group, exclude, text, data)
            if self.publish is not None:
                self.publish(group, exclude, text, data)
            if request:
                reply(request, framing.PUSH_DONE, count)
            return
        local = self.local(session)
        ws = self.ws.get(local) if local else None
        if ws is None or not ws.core.open:
            if kind == framing.PUSH:
                self.metrics.gone += 1
            if request:
                reply(request, framing.PUSH_GONE, 0)
            return
        outcome = framing.PUSH_DONE
        if kind == framing.PUSH:
            outcome = self.deliver(ws, bool(flags & framing.WS_TEXT), payload)
        elif kind == framing.PUSH_CLOSE:
            code, reason = codec.decode_ws_close(payload)
            ws.go_away(code, reason=reason)  # the app's receive() gets websocket.disconnect
        elif kind == framing.PUSH_JOIN:
            self.groups.join(local, codec.decode_group(payload))
        elif kind == framing.PUSH_LEAVE and not self.groups.leave(
            local, codec.decode_group(payload)
        ):
            outcome = framing.PUSH_GONE  # it was not a member
        # PUSH_IS_OPEN: it is, or we would have answered above
        if request:
            reply(request, outcome, 0)

    def answer(self, link: object, request: int, outcome: int, count: int) -> None:
        raise IPCError("a PUSH_REPLY is for the base-mode master only")

    def link_lost(self, key: int) -> None:
        """Nothing to do: a reactor answers each request as it comes."""

    def deliver(self, ws: WsConnection, text: bool, data: bytes) -> int:
        metrics = self.metrics
        if ws.conn.transport.get_write_buffer_size() > HIGH_WATER:
            metrics.dropped += 1
            log.debug("push to websocket session %d dropped: the client reads slowly", ws.session)
            return framing.PUSH_DROPPED
        ws.send_message(text, data)
        metrics.delivered += 1
        return framing.PUSH_DONE

    def broadcast(self, group: str, exclude: int, text: bool, data: bytes) -> int:
        """Fan one message out to this reactor's members of ``group``: → messages written."""
        if self.counts:
            self.metrics.broadcasts += 1
        return self._fan_out(group, exclude, text, data)

    def _fan_out(self, group: str, exclude: int, text: bool, data: bytes) -> int:
        members = self.groups.members.get(group)
        if not members:
            return 0
        skip = self.local(exclude) if exclude else 0
        by_id = self.ws.by_id
        metrics = self.metrics
        # framed once for every member without an extension (no deflate); each member is then
        # one transport.write of the same bytes, and the counters are added up once: the
        # per-member Python work is what is left beside the kernel's send (see the commit)
        frame = server_frame(text, data)
        size = len(data)
        count = framed = dropped = 0
        for session in list(members):
            ws = by_id.get(session)
            if ws is None or session == skip:
                continue
            if ws.core.plain:
                transport = ws.transport
                if transport.get_write_buffer_size() > HIGH_WATER:
                    dropped += 1
                    continue
                transport.write(frame)
                ws.messages_out += 1
                ws.bytes_out += size
                framed += 1
            elif ws.core.open and self.deliver(ws, text, data) == framing.PUSH_DONE:
                count += 1
        if dropped:
            metrics.dropped += dropped
            log.debug("broadcast to %r: dropped for %d slow clients", group, dropped)
        metrics.delivered += framed  # deliver() counted the others
        ws_metrics = self.ws.metrics
        if ws_metrics is not None and framed:
            ws_metrics.messages_out += framed
            ws_metrics.bytes_out += framed * size
        return count + framed

    def relayed(self, group: str, text: bool, data: bytes) -> None:
        """A broadcast from another instance (through Redis): fan out, publish nothing.
        Its ``exclude`` names a session of that instance, not of this one."""
        if self.counts:
            self.metrics.relayed += 1
        self._fan_out(group, 0, text, data)
