"""What one reactor holds, as plain JSON-able dicts, for `swserve ctl`.

Read by the master for reactor 0 (``master/control_views.py``) and, with
``--reactors N``, by each reactor 1 … N-1 for itself: its answer to the
master's ``View`` is a ``ViewReply`` carrying :func:`reactor_view`, which the
master adds to reactor 0's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from swserve.reactor.core import Reactor
    from swserve.reactor.worker_link import WorkerLink

SESSIONS_LISTED: Final = 1000  # sessions a reply lists one by one


def reactor_view(reactor: Reactor) -> dict[str, Any]:
    """What one reactor holds, for the master to add up (run in reactors 1 … N-1)."""
    now = time.monotonic()
    table = reactor.ws
    workers = {
        str(link.pid): {
            "in_flight": link.slot.inflight if link.slot else 0,
            "sessions": table.count(link.key),
            "current": current_request(link, now),
        }
        for link in reactor.links.values()
    }
    return {"workers": workers, "sessions": listed_sessions(reactor, now), "total": len(table)}


def listed_sessions(reactor: Reactor, now: float) -> list[dict[str, Any]]:
    """The reactor's oldest WebSocket sessions, one row each."""
    oldest = sorted(reactor.ws.by_id.values(), key=lambda ws: ws.opened_at)[:SESSIONS_LISTED]
    return [
        {
            "id": str(ws.session),
            "slot": ws.worker_id,
            "pid": ws.worker_pid,
            "path": ws.request.target.decode("latin-1")[:200],
            "age": round(now - ws.opened_at, 3),
            "messages_in": ws.messages_in,
            "messages_out": ws.messages_out,
        }
        for ws in oldest
    ]


def current_request(link: WorkerLink, now: float) -> dict[str, Any] | None:
    """The oldest request this worker holds from this reactor: method, path, age."""
    oldest = None
    for conn in link.inflight.values():
        if (
            conn.current is not None
            and conn.slot is link.slot
            and (oldest is None or conn.dispatched_at < oldest.dispatched_at)
        ):
            oldest = conn
    if oldest is None or oldest.current is None:
        return None
    return {
        "method": oldest.current.method.decode("latin-1"),
        "path": oldest.current.target[:500].decode("latin-1"),
        "age": round(now - oldest.dispatched_at, 3),
    }
