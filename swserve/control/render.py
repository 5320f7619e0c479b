"""What ``swserve ctl`` and ``swserve top`` print: pure functions from results to lines.

No terminal, no socket, no clock: a :class:`Snapshot` (two looks at the
server, ``interval`` apart) goes in, lines of text (with a style for
``top``'s curses shell) come out, so the view is unit-tested as text.

``top``'s screen, top to bottom: the server line, the totals (req/s,
errors, queue, connections, WebSocket sessions, task queue), the column
header, one row per process (the server's own processes first, then
workers and the rest in the chosen order), and a line of keys.  A worker
whose current request has run past the slowlog limit shows ``stuck`` and is
highlighted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

NORMAL: Final = "normal"
HEADER: Final = "header"
STUCK: Final = "stuck"
SELECTED: Final = "selected"

Line = tuple[str, str]  # (text, style)

# sort keys: the key pressed in top → the order (largest first)
SORTS: Final = {
    "c": "cpu",
    "m": "mem",
    "a": "age",
    "n": "reqs",
}
_INFRA: Final = ("master", "reactor", "manager")
# control characters (a terminal would act on them) shown as "?"
_CONTROL: Final = dict.fromkeys((*range(32), 127), "?")
# stuck when the server keeps no slowlog limit and top is given none
DEFAULT_STUCK: Final = 5.0


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}G"  # unreachable: the loop returns at G


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def number(value: Any) -> str:
    return "-" if value is None else str(value)


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Columns as wide as their widest cell; the last one is not padded."""
    rows = [[cell.translate(_CONTROL) for cell in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    out = []
    for cells in [headers, *rows]:
        padded = [
            c.ljust(w) if i < len(cells) - 1 else c
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        out.append("  ".join(padded).rstrip())
    return out


# -- swserve ctl ----------------------------------------------------------------------


def _current(row: dict[str, Any]) -> str:
    cur = row.get("current")
    return f"{cur['method']} {cur['path']}" if cur else "-"


def _age(row: dict[str, Any]) -> float | None:
    cur = row.get("current")
    return float(cur["age"]) if cur else None


def workers_table(rows: list[dict[str, Any]]) -> list[str]:
    headers = [
        "SLOT",
        "PID",
        "STATE",
        "REQS",
        "INFL",
        "CPU%",
        "RSS",
        "STARTED",
        "RECYCLE",
        "AGE",
        "REQUEST",
    ]
    body = [
        [
            number(r.get("slot")),
            str(r["pid"]),
            r.get("state") or r["role"],
            number(r.get("requests")),
            number(r.get("in_flight")),
            number(r.get("cpu")),
            size(r.get("rss")),
            _clock(r.get("started_at")),
            r.get("recycle") or "-",
            duration(_age(r)),
            _current(r),
        ]
        for r in rows
    ]
    return table(headers, body)


def _clock(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S")  # local time, as ps shows


def processes_table(rows: list[dict[str, Any]]) -> list[str]:
    headers = ["ROLE", "SLOT", "PID", "STATE", "CPU%", "RSS", "TITLE"]
    body = [
        [
            r["role"],
            number(r.get("slot")),
            str(r["pid"]),
            r.get("state") or "-",
            number(r.get("cpu")),
            size(r.get("rss")),
            r.get("title") or "-",
        ]
        for r in rows
    ]
    return table(headers, body)


def stats_lines(stats: dict[str, Any]) -> list[str]:
    skip = {"metrics", "recycled"}
    shown = {
        **stats,
        "started_at": _clock(stats.get("started_at")),
        "uptime": duration(stats.get("uptime")),
    }
    width = max(len(k) for k in stats)
    lines = [f"{k.ljust(width)}  {number(v)}" for k, v in shown.items() if k not in skip]
    recycled = ", ".join(f"{k} {v}" for k, v in sorted(stats.get("recycled", {}).items()))
    lines.append(f"{'recycled'.ljust(width)}  {recycled or 'none'}")
    return lines


def ctl_text(cmd: str, result: Any) -> list[str]:
    """The readable form of one command's result."""
    if cmd == "stats":
        return stats_lines(result)
    if cmd == "workers":
        return workers_table(result)
    if cmd == "processes":
        return processes_table(result)
    if cmd == "slowlog":
        cur = result.get("current")
        what = (
            f"{cur['method']} {cur['path']} (running {duration(cur['age'])})"
            if cur
            else "no request"
        )
        return [
            f"worker {result['slot']} (pid {result['pid']}), {what}:",
            *result["stack"].rstrip("\n").split("\n"),
        ]
    if cmd == "sessions":
        lines = table(
            ["SLOT", "PID", "SESSIONS"],
            [[str(w["slot"]), str(w["pid"]), str(w["sessions"])] for w in result["per_worker"]],
        )
        return [*lines, result["note"]] if result.get("note") else lines
    if cmd == "recycle":
        return [
            f"recycling worker {result['slot']} (pid {result['pid']}): its replacement starts first"
        ]
    if cmd == "scale":
        if "to" in result:
            return [f"scaling to {result['to']} worker(s)"]
        return [f"scaling by {result['by']:+d} worker(s)"]
    if cmd == "reload":
        what = result["reloading"]
        return [f"reloading {what} worker(s)" if isinstance(what, int) else f"reloading the {what}"]
    return [str(result)]


# -- swserve top ----------------------------------------------------------------------


@dataclass
class Snapshot:
    """Two looks at a server: ``before`` (may be None) and now, ``interval`` seconds apart."""

    stats: dict[str, Any]
    processes: list[dict[str, Any]]
    before: dict[str, Any] | None = None
    interval: float = 1.0


@dataclass
class View:
    """What the user chose: the order, the selected pid, the stuck limit, a message."""

    sort: str = "cpu"
    selected: int | None = None
    stuck_after: float = 0.0  # 0: the server's --slowlog-timeout, else DEFAULT_STUCK
    message: str = ""
    extra: list[str] = field(default_factory=list)  # a stack shown under the rows


def rate(snap: Snapshot, key: str) -> float | None:
    if snap.before is None or snap.interval <= 0:
        return None
    now, then = snap.stats.get(key), snap.before.get(key)
    if now is None or then is None:
        return None
    return max(0.0, float(now - then) / snap.interval)


def stuck_limit(snap: Snapshot, view: View) -> float:
    return view.stuck_after or float(snap.stats.get("slowlog_timeout") or 0) or DEFAULT_STUCK


def is_stuck(row: dict[str, Any], limit: float) -> bool:
    age = _age(row)
    return age is not None and age >= limit


def _sort_value(row: dict[str, Any], sort: str) -> float:
    if sort == "mem":
        return float(row.get("rss") or 0)
    if sort == "age":
        return _age(row) or -1.0
    if sort == "reqs":
        return float(row.get("requests") or 0)
    return float(row.get("cpu") or 0)


def ordered(snap: Snapshot, view: View) -> list[dict[str, Any]]:
    """The server's own processes first (as the server lists them), then the rest by the sort."""
    infra = [r for r in snap.processes if r["role"] in _INFRA]
    rest = [r for r in snap.processes if r["role"] not in _INFRA]
    rest.sort(key=lambda r: (-_sort_value(r, view.sort), r.get("slot") or 0, r["pid"]))
    return infra + rest


def _fit(text: str, width: int) -> str:
    text = text.translate(_CONTROL)
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


_COLUMNS: Final = "ROLE     SLOT     PID STATE     CPU%     RSS   REQS INFL    AGE REQUEST"


def _row(r: dict[str, Any], limit: float) -> str:
    state = r.get("state") or "-"
    if state == "busy" and is_stuck(r, limit):
        state = "stuck"
    cpu = r.get("cpu")
    return (
        f"{r['role'][:8]:<8} {number(r.get('slot')):>4} {r['pid']:>7} {state:<8} "
        f"{'-' if cpu is None else f'{cpu:.1f}':>5} {size(r.get('rss')):>7} "
        f"{number(r.get('requests')) if r['role'] == 'worker' else '-':>6} "
        f"{number(r.get('in_flight')) if r['role'] == 'worker' else '-':>4} "
        f"{duration(_age(r)):>6} {_current(r) if r.get('current') else ''}"
    ).rstrip()


def top_lines(snap: Snapshot, view: View, width: int = 80, height: int = 24) -> list[Line]:
    """The whole ``top`` screen as (text, style) lines, at most ``height`` of them."""
    s = snap.stats
    req_rate, err_rate = rate(snap, "requests"), rate(snap, "errors")
    limit = stuck_limit(snap, view)
    head = [
        (
            f"swserve {s.get('version', '?')}  pid {s.get('pid')}  up {duration(s.get('uptime'))}  "
            f"{s.get('mode', '?')} mode  {s.get('app', '')}",
            HEADER,
        ),
        (
            f"req/s {'-' if req_rate is None else f'{req_rate:.1f}'}  "
            f"requests {number(s.get('requests'))}  "
            f"errors {number(s.get('errors'))}"
            f"{'' if err_rate is None else f' ({err_rate:.1f}/s)'}  "
            f"queued {number(s.get('queued'))}  in flight {number(s.get('in_flight'))}",
            NORMAL,
        ),
        (
            f"conns {number(s.get('connections'))}  ws {number(s.get('websocket_sessions'))}  "
            f"tasks {number(s.get('task_queue'))}  workers {number(s.get('workers'))}  "
            f"reloads {number(s.get('reloads'))}  crashes {number(s.get('crashes'))}  "
            f"stuck after {duration(limit)}",
            NORMAL,
        ),
        ("", NORMAL),
        (_COLUMNS, HEADER),
    ]
    footer: list[Line] = [
        (
            view.message
            or f"sort {view.sort} (c m a n)  ↑↓ select  s stack  k recycle  R reload  q quit",
            NORMAL,
        )
    ]
    rows = ordered(snap, view)
    room = max(0, height - len(head) - len(footer) - len(view.extra))
    body: list[Line] = []
    for r in rows:
        style = STUCK if r.get("state") == "busy" and is_stuck(r, limit) else NORMAL
        if view.selected is not None and r["pid"] == view.selected:
            style = SELECTED
        body.append((_row(r, limit), style))
    if len(body) > room:
        hidden = len(body) - room + 1
        body = [*body[: room - 1], (f"… {hidden} more", NORMAL)] if room else []
    extra = [(line, NORMAL) for line in view.extra]
    return [(_fit(text, width), style) for text, style in [*head, *body, *extra, *footer]][:height]


def plain(lines: list[Line]) -> str:
    return "\n".join(text for text, _ in lines) + "\n"
