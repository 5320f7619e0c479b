"""Server push in base mode: the master routes push frames to the worker holding the session.

In base mode each worker owns its connections (its own loop is its reactor,
with a :class:`~swserve.reactor.push_hub.PushHub` of its own), and the
master holds none.  Every process pushes through the master, on the link the
master already keeps with each worker for control frames: a frame for one
session goes to the worker whose pid the session id names (``pid << 40 |
n``), a broadcast to every worker.  The master renumbers each request, so
that the workers' replies find their way back to the process that asked, and
answers "gone" for a worker that is not there or dies before it answers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from swserve.ipc import codec, framing
from swserve.ipc.push import BASE_SHIFT, Gather, settle
from swserve.reactor.push_hub import PushMetrics, Reply

if TYPE_CHECKING:
    from swserve.reactor.core import Reactor
    from swserve.reactor.worker_link import WorkerLink


class PushRouter:
    """The base-mode master's side of push: route, renumber, gather the replies."""

    def __init__(self, reactor: Reactor) -> None:
        self.reactor = reactor
        self.metrics = PushMetrics()  # the workers count deliveries; the master, broadcasts
        self.ids = itertools.count(1)
        self.pending: dict[int, Gather] = {}  # the master's request id → the asker's
        self.waiting: dict[int, set[int]] = {}  # link key → the master's ids it owes
        self.publish: Callable[[str, int, bool, bytes], None] | None = None
        self.extra: Callable[[], dict[str, int]] = dict

    def snapshot(self) -> dict[str, int]:
        return {**self.metrics.snapshot(), **self.extra()}

    def _workers(self) -> list[WorkerLink]:
        return [link for link in self.reactor.links.values() if link.slot is not None]

    def handle(
        self, kind: int, flags: int, session: int, request: int, payload: bytes, reply: Reply
    ) -> None:
        if kind == framing.PUSH_BROADCAST:
            group, exclude, data = codec.decode_broadcast(payload)  # checked before it spreads
            self.metrics.broadcasts += 1
            self._send(self._workers(), kind, flags, session, request, payload, reply)
            if self.publish is not None:
                self.publish(group, exclude, bool(flags & framing.WS_TEXT), data)
            return
        pid = session >> BASE_SHIFT
        targets = [link for link in self._workers() if link.pid == pid]
        self._send(targets, kind, flags, session, request, payload, reply)

    def relayed(self, group: str, text: bool, data: bytes) -> None:
        """A broadcast from another instance (through Redis): to every worker, no reply."""
        self.metrics.relayed += 1
        payload = codec.encode_broadcast(group, 0, data)
        flags = framing.WS_TEXT if text else 0
        frame = framing.encode(framing.PUSH_BROADCAST, flags, 0, 0, payload)
        for link in self._workers():
            link.writer.write(frame)

    def _send(
        self,
        targets: list[WorkerLink],
        kind: int,
        flags: int,
        session: int,
        request: int,
        payload: bytes,
        reply: Reply,
    ) -> None:
        if not targets:
            if request:
                reply(request, framing.PUSH_GONE, 0)
            return
        mine = 0
        if request:
            mine = next(self.ids) & 0xFFFFFFFF or next(self.ids)
            self.pending[mine] = Gather(reply, request, len(targets))
        frame = framing.encode(kind, flags, session, mine, payload)
        for link in targets:
            if mine:
                self.waiting.setdefault(link.key, set()).add(mine)
            link.writer.write(frame)

    def answer(self, link: WorkerLink, request: int, outcome: int, count: int) -> None:
        """A worker's PUSH_REPLY: pass it on once every worker asked has answered."""
        owed = self.waiting.get(link.key)
        if owed is not None:
            owed.discard(request)
        self._answer(request, outcome, count)

    def _answer(self, request: int, outcome: int, count: int) -> None:
        gather = self.pending.get(request)
        final = settle(self.pending, request, outcome, count)
        if gather is not None and final is not None:
            gather.target(gather.tag, final, gather.count)

    def link_lost(self, key: int) -> None:
        """A worker died: what it owed is answered "gone"."""
        for request in self.waiting.pop(key, ()):
            self._answer(request, framing.PUSH_GONE, 0)
