"""control/render.py: the ``top`` screen and ``ctl`` tables as text, from a snapshot."""

from __future__ import annotations

from typing import Any

from hypothesis import given, strategies as st

from swserve.control import render
from swserve.control.render import SELECTED, STUCK, Snapshot, View, top_lines


def worker(slot: int, pid: int, **extra: Any) -> dict[str, Any]:
    row = {
        "role": "worker", "slot": slot, "pid": pid, "state": "idle", "requests": 10 * slot,
        "in_flight": 0, "cpu": 1.0 * slot, "rss": 20_000_000 + slot, "current": None,
        "title": f"swserve: worker {slot}", "started_at": 0.0, "recycle": None,
    }  # fmt: skip
    row.update(extra)
    return row


def snapshot(processes: list[dict[str, Any]] | None = None, **stats: Any) -> Snapshot:
    base = {
        "version": "1.0", "pid": 100, "uptime": 75.0, "mode": "process", "app": "m:app",
        "requests": 150, "errors": 3, "queued": 2, "in_flight": 1, "connections": 7,
        "websocket_sessions": None, "task_queue": None, "workers": 2, "reloads": 0,
        "crashes": 0, "slowlog_timeout": 0.0,
    }  # fmt: skip
    base.update(stats)
    before = {**base, "requests": 100, "errors": 1}
    procs = processes or [
        {"role": "master", "slot": None, "pid": 100, "cpu": 0.5, "rss": 30_000_000},
        {"role": "manager", "slot": None, "pid": 101, "cpu": 0.0, "rss": 20_000_000},
        worker(1, 201),
        worker(
            2,
            202,
            state="busy",
            in_flight=1,
            current={"method": "GET", "path": "/sleep?s=9", "age": 6.5},
        ),
    ]
    return Snapshot(base, procs, before, interval=2.0)


def texts(snap: Snapshot, view: View, **kw: Any) -> list[str]:
    return [text for text, _ in top_lines(snap, view, **kw)]


def test_the_totals_come_first_with_rates_over_the_interval() -> None:
    lines = texts(snapshot(), View())
    assert lines[0].startswith("swserve 1.0  pid 100  up 1m15s  process mode  m:app")
    assert "req/s 25.0" in lines[1]  # (150 - 100) / 2 s
    assert "errors 3 (1.0/s)" in lines[1]
    assert "queued 2" in lines[1]
    assert "in flight 1" in lines[1]
    assert "conns 7  ws -  tasks -" in lines[2]


def test_without_a_first_look_the_rates_are_unknown() -> None:
    snap = snapshot()
    snap.before = None
    assert "req/s -" in texts(snap, View())[1]


def test_one_row_per_process_the_servers_own_first() -> None:
    lines = texts(snapshot(), View(sort="cpu"))
    rows = lines[lines.index(render._COLUMNS) + 1 : -1]
    assert [r.split()[0] for r in rows] == ["master", "manager", "worker", "worker"]
    assert rows[2].split()[1:3] == ["2", "202"]  # worker 2 uses more CPU: first of the workers
    assert rows[2].endswith("6.5s GET /sleep?s=9")


def test_a_request_past_the_limit_is_stuck_and_highlighted() -> None:
    view = View()  # the server has no slowlog limit: DEFAULT_STUCK (5 s)
    styled = top_lines(snapshot(), view)
    stuck = [text for text, style in styled if style == STUCK]
    assert len(stuck) == 1
    assert " stuck " in stuck[0]
    assert "/sleep?s=9" in stuck[0]
    assert "stuck after 5.0s" in styled[2][0]
    # a limit from the server, then one given to top, decide instead
    assert not [t for t, s in top_lines(snapshot(slowlog_timeout=10.0), view) if s == STUCK]
    assert [
        t for t, s in top_lines(snapshot(slowlog_timeout=10.0), View(stuck_after=6.0)) if s == STUCK
    ]


def test_the_sort_keys_order_the_workers() -> None:
    procs = [
        worker(1, 201, cpu=9.0, rss=1, requests=5),
        worker(2, 202, cpu=1.0, rss=9, requests=50),
        worker(
            3, 203, cpu=5.0, rss=5, requests=1, current={"method": "GET", "path": "/", "age": 1.0}
        ),
    ]
    snap = snapshot(procs)
    order = {
        sort: [r["slot"] for r in render.ordered(snap, View(sort=sort))]
        for sort in render.SORTS.values()
    }
    assert order == {"cpu": [1, 3, 2], "mem": [2, 3, 1], "age": [3, 1, 2], "reqs": [2, 1, 3]}


def test_the_selected_row_is_marked() -> None:
    styled = top_lines(snapshot(), View(selected=201))
    assert [t.split()[2] for t, s in styled if s == SELECTED] == ["201"]


def test_it_fits_80_by_24_however_many_workers() -> None:
    procs = [
        worker(i, 1000 + i, current={"method": "POST", "path": "/x" * 100, "age": 1.0})
        for i in range(1, 60)
    ]
    lines = top_lines(snapshot(procs), View(message="m"), width=80, height=24)
    assert len(lines) == 24
    assert all(len(text) <= 80 for text, _ in lines)
    assert lines[-2][0].startswith("… ")
    assert lines[-2][0].endswith(" more")
    assert lines[-1][0] == "m"


def test_a_stack_is_shown_under_the_rows() -> None:
    lines = texts(snapshot(), View(extra=["", "worker 2 (pid 202)", "  File x"]))
    assert lines[-3:-1] == ["worker 2 (pid 202)", "  File x"]


def test_ctl_tables() -> None:
    snap = snapshot()
    lines = render.ctl_text("workers", snap.processes[2:])
    header = lines[0].split()
    assert header[:3] == ["SLOT", "PID", "STATE"]
    assert header[-2:] == ["AGE", "REQUEST"]
    assert lines[2].split()[:5] == ["2", "202", "busy", "20", "1"]
    assert lines[2].endswith("6.5s  GET /sleep?s=9")
    assert render.ctl_text("recycle", {"slot": 2, "pid": 5}) == [
        "recycling worker 2 (pid 5): its replacement starts first"
    ]
    assert render.ctl_text("scale", {"by": -1}) == ["scaling by -1 worker(s)"]
    assert render.ctl_text("scale", {"to": 3}) == ["scaling to 3 worker(s)"]
    assert render.ctl_text("reload", {"reloading": 2}) == ["reloading 2 worker(s)"]
    stack = render.ctl_text(
        "slowlog",
        {
            "slot": 1,
            "pid": 5,
            "current": {"method": "GET", "path": "/a", "age": 2.0},
            "stack": "s1\ns2\n",
        },
    )
    assert stack == ["worker 1 (pid 5), GET /a (running 2.0s):", "s1", "s2"]
    stats = render.ctl_text("stats", {**snap.stats, "recycled": {"manual": 1}, "metrics": {}})
    assert "recycled      manual 1" in stats[-1] or stats[-1].split() == ["recycled", "manual", "1"]


def test_sizes_and_durations() -> None:
    assert [render.size(n) for n in (None, 512, 2048, 5 * 1024**2, 3 * 1024**3)] == [
        "-",
        "512B",
        "2.0K",
        "5.0M",
        "3.0G",
    ]
    assert [render.duration(s) for s in (None, 1.25, 75, 3725)] == ["-", "1.2s", "1m15s", "1h02m"]


_ROW = st.fixed_dictionaries(
    {
        "role": st.sampled_from(
            ["master", "reactor", "manager", "worker", "task-worker", "process"]
        ),
        "slot": st.none() | st.integers(0, 10_000),
        "pid": st.integers(1, 4_194_304),
        "state": st.sampled_from(["idle", "busy", "retiring", "starting", "serving"]),
        "requests": st.none() | st.integers(0, 10**12),
        "in_flight": st.integers(0, 10_000),
        "cpu": st.none() | st.floats(0, 10_000, allow_nan=False),
        "rss": st.none() | st.integers(0, 2**45),
        "current": st.none()
        | st.fixed_dictionaries(
            {
                "method": st.text(max_size=20),
                "path": st.text(max_size=600),
                "age": st.floats(0, 10**7),
            }
        ),
    }
)


@given(
    st.lists(_ROW, max_size=80),
    st.integers(20, 300),
    st.integers(1, 80),
    st.sampled_from(list(render.SORTS.values())),
)
def test_any_snapshot_fits_the_terminal(
    rows: list[dict[str, Any]], width: int, height: int, sort: str
) -> None:
    lines = top_lines(
        snapshot(rows or None),
        View(sort=sort, selected=rows[0]["pid"] if rows else None),
        width,
        height,
    )
    assert len(lines) <= height
    assert all(len(text) <= width and "\n" not in text for text, _ in lines)


def test_control_characters_never_reach_the_terminal() -> None:
    row = worker(
        1, 201, state="busy", current={"method": "GET", "path": "/a\x1b[2J\nb", "age": 1.0}
    )
    (line,) = [t for t in texts(snapshot([row]), View()) if t.startswith("worker")]
    assert line.endswith("GET /a?[2J?b")
