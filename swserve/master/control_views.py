"""What the control socket reports: the master's state as plain JSON-able dicts.

Read on the master's loop, from the objects that own the state (the reactor's
worker links and sessions, the master's :class:`Stats`, /proc), never copied
into a second table.  The figures of ``stats`` come from the same collector
as /metrics (``swserve/metrics/collect.py``).

With ``--reactors N`` the current request of a worker is known only for the
requests of reactor 0 (the master's own); the others' show in the counts.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Protocol

from swserve import __version__
from swserve.control import procinfo
from swserve.metrics.collect import collect
from swserve.metrics.exposition import METRICS, REQUESTS, SEP

if TYPE_CHECKING:
    from swserve.config import Config
    from swserve.master.stats import Stats
    from swserve.reactor.core import Reactor
    from swserve.reactor.host import ReactorHost
    from swserve.reactor.process import ReactorChild
    from swserve.reactor.worker_link import WorkerLink
    from swserve.tasks.server import TaskServer

# what the title of a child we did not fork ourselves says it is
_ROLES = (("swserve: task", "task-worker"), ("swserve: reloader", "reloader"))


class ControlledMaster(Protocol):
    """What the views read from the master (swserve/master/main.py: Master)."""

    config: Config
    stats: Stats
    announced: bool
    stopping: bool
    manager_pid: int
    tasks: TaskServer | None  # --task-workers N (read by metrics.collect)
    user_process_restarts: int

    children: list[ReactorChild]  # reactors 1 … N-1

    @property
    def reactor(self) -> Reactor: ...

    @property
    def host(self) -> ReactorHost: ...


def labelled(snapshot: dict[str, int]) -> dict[str, int]:
    """Snapshot keys ``name|a|b`` → the exposition's ``name{label="a",…}``."""
    labels = {m.name: m.labels for m in METRICS}
    out = {}
    for k, v in sorted(snapshot.items()):
        name, *values = k.split(SEP)
        names = labels.get(name, ())
        if values and len(names) != len(values):
            names = ("le",) * len(values)  # histogram buckets
        inner = ",".join(f'{n}="{x}"' for n, x in zip(names, values, strict=True))
        out[f"{name}{{{inner}}}" if inner else name] = v
    return out


def errors(snapshot: dict[str, int]) -> int | None:
    """5xx answers so far, when request metrics are kept (--metrics-bind)."""
    keys = [k for k in snapshot if k.startswith(REQUESTS + SEP)]
    if not keys:
        return None
    return sum(snapshot[k] for k in keys if k.endswith(SEP + "5xx"))


def stats(master: ControlledMaster) -> dict[str, Any]:
    snap = master.stats.snapshot(master.reactor)
    metrics = collect(master)
    config = master.config
    return {
        "pid": os.getpid(),
        "version": __version__,
        "mode": config.mode,
        "app": config.app,
        "started_at": master.stats.started_at,
        "uptime": round(time.time() - master.stats.started_at, 3),
        "ready": master.announced and not master.stopping,
        "requests": snap["requests"],
        "errors": errors(metrics),
        "in_flight": snap["in_flight"],
        "queued": snap["queued"],
        "connections": master.host.connections(),
        "workers": sum(
            1 for w in worker_links(master.reactor) if not w.slot or not w.slot.retiring
        ),
        "reloads": master.stats.reloads,
        "crashes": master.stats.crashes,
        "timeouts": master.stats.timeouts,
        "recycled": dict(master.stats.recycled),
        "worker_exits": master.stats.exits,
        # reactor 0's; in base mode the workers hold them (see /metrics)
        "websocket_sessions": None if config.mode == "base" else len(master.reactor.ws),
        "task_queue": None,  # no task workers in this build
        "slowlog_timeout": config.slowlog_timeout,
        "metrics": labelled(metrics),
    }


def worker_links(reactor: Reactor) -> list[WorkerLink]:
    """Every worker linked to reactor 0 (booting ones too), by slot then pid."""
    return sorted(reactor.links.values(), key=lambda link: (link.worker_id, link.pid))


def current_request(link: WorkerLink, now: float) -> dict[str, Any] | None:
    """The oldest request this worker holds from reactor 0: method, path, age."""
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


def _state(link: WorkerLink, base_mode: bool) -> str:
    slot = link.slot
    if slot is None:
        return "starting"
    if slot.retiring:
        return "retiring"
    if base_mode:  # the worker serves its own clients: the master sees no requests
        return "serving"
    return "busy" if slot.inflight else "idle"


def _proc(pid: int, meter: procinfo.CpuMeter, now_wall: float) -> dict[str, Any]:
    s = procinfo.sample(pid)
    if s is None:
        return {"title": "", "rss": None, "cpu": None, "cpu_seconds": None, "started_at": None}
    return {
        "title": s.title,
        "rss": s.rss_bytes,
        "cpu": meter.percent(s, now_wall),
        "cpu_seconds": round(s.cpu_seconds, 2),
        "started_at": round(s.started_at, 2),
    }


def workers(
    master: ControlledMaster, meter: procinfo.CpuMeter, pending: dict[int, str]
) -> list[dict[str, Any]]:
    """One row per worker: what the reactor knows, plus RSS and CPU from /proc."""
    reactor = master.reactor
    now, now_wall = time.monotonic(), time.time()
    rows = []
    for link in worker_links(reactor):
        slot = link.slot
        # why it is being replaced: as the manager said (retiring), as asked here, or
        # the count the reactor reported for the manager's --max-requests watch
        recycle = master.stats.retiring.get(link.pid) or pending.get(link.pid)
        if slot is not None and slot.recycle_asked and recycle is None:
            recycle = "max-requests"
        rows.append(
            {
                "role": "worker",
                "slot": link.worker_id,
                "pid": link.pid,
                "state": _state(link, master.config.mode == "base"),
                "interface": link.interface,
                "requests": slot.served if slot else 0,
                "in_flight": slot.inflight if slot else 0,
                "capacity": slot.capacity if slot else 0,
                "current": current_request(link, now),
                "recycle": recycle,
                **_proc(link.pid, meter, now_wall),
            }
        )
    return rows


def processes(
    master: ControlledMaster, meter: procinfo.CpuMeter, pending: dict[int, str]
) -> list[dict[str, Any]]:
    """Every process of the server: master, reactors, manager, workers, and any other
    child of the master or the manager (a worker still booting, the reloader, task
    workers, user processes), named by its title."""
    now_wall = time.time()
    master_pid = os.getpid()
    rows: list[dict[str, Any]] = [
        {"role": "master", "slot": None, "pid": master_pid, **_proc(master_pid, meter, now_wall)}
    ]
    for child in master.children:
        pid = child.pid
        rows.append(
            {"role": "reactor", "slot": child.index, "pid": pid, **_proc(pid, meter, now_wall)}
        )
    manager = master.manager_pid
    rows.append(
        {"role": "manager", "slot": None, "pid": manager, **_proc(manager, meter, now_wall)}
    )
    worker_rows = workers(master, meter, pending)
    rows += worker_rows
    known = {row["pid"] for row in rows}
    for parent in (master_pid, manager):
        for pid in procinfo.children(parent):
            if pid in known:
                continue
            info = _proc(pid, meter, now_wall)
            role = next((r for prefix, r in _ROLES if info["title"].startswith(prefix)), "process")
            if info["title"].startswith("swserve: worker"):
                role, info["state"] = "worker", "starting"  # forked, not linked yet
            rows.append({"role": role, "slot": None, "pid": pid, **info})
    meter.forget({row["pid"] for row in rows})
    return rows


def sessions(master: ControlledMaster) -> dict[str, Any]:
    """WebSocket sessions per worker, and the oldest sessions one by one (reactor 0's
    session table: with --reactors N the others' are not listed; in base mode each
    worker holds its own, and /metrics counts them)."""
    table = master.reactor.ws
    per_worker = [
        {"slot": link.worker_id, "pid": link.pid, "sessions": table.count(link.key)}
        for link in worker_links(master.reactor)
        if link.slot
    ]
    now = time.monotonic()
    oldest = sorted(table.by_id.values(), key=lambda ws: ws.opened_at)[:SESSIONS_LISTED]
    listed = [
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
    out: dict[str, Any] = {"sessions": listed, "per_worker": per_worker, "total": len(table)}
    if master.config.mode == "base":
        out["note"] = "base mode: each worker holds its own sessions (see /metrics)"
    elif len(table) > SESSIONS_LISTED:
        out["note"] = f"the {SESSIONS_LISTED} oldest of {len(table)} sessions are listed"
    return out


SESSIONS_LISTED = 1000  # sessions a reply lists one by one
