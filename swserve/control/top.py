"""``swserve top``: the curses shell around ``render.top_lines``.

The standard library's ``curses`` is enough here: one full-screen table
redrawn once a second and a handful of keys, over SSH in 80x24.  A TUI
framework (textual, urwid) would add a dependency and a start-up cost to a
tool whose whole screen is one pure function (control/render.py) away.

Keys: ``c`` ``m`` ``a`` ``n`` sort by CPU, memory, current request age,
requests served; ``↑``/``↓`` select a
row; ``R`` reload every worker; ``k`` recycle the selected worker; ``s`` show
its stack (``x`` hides it); ``q`` quit.
"""

from __future__ import annotations

import curses
import shutil
import time
from pathlib import Path
from typing import Any

from swserve.control import render
from swserve.control.client import Client
from swserve.control.protocol import ControlError

_POLL_MS = 100  # how often keys are read between refreshes


def _look(client: Client) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return client.call("stats"), client.call("processes")


def once(path: Path, interval: float, view: render.View) -> str:
    """One plain table: two looks ``interval`` apart, so req/s and CPU% are of that interval."""
    with Client(path) as client:
        before, _ = _look(client)
        started = time.monotonic()
        time.sleep(interval)  # the rates need a second look: not a synchronisation
        stats, processes = _look(client)
        elapsed = time.monotonic() - started
    snap = render.Snapshot(stats, processes, before, elapsed)
    width = max(80, shutil.get_terminal_size((120, 24)).columns)
    return render.plain(render.top_lines(snap, view, width=width, height=1 << 20))


def run(path: Path, interval: float, view: render.View) -> None:
    with Client(path) as client:
        curses.wrapper(_Screen(client, interval, view).loop)


class _Screen:
    def __init__(self, client: Client, interval: float, view: render.View) -> None:
        self.client = client
        self.interval = interval
        self.view = view
        self.snap: render.Snapshot | None = None
        self._before: dict[str, Any] | None = None
        self._before_at = 0.0

    def loop(self, screen: Any) -> None:
        self.screen = screen
        self._colours()
        screen.timeout(_POLL_MS)
        next_at = 0.0
        while True:
            now = time.monotonic()
            if now >= next_at:
                self._refresh(now)
                next_at = now + self.interval
                self._draw()
            key = screen.getch()
            if key == -1:
                continue
            if key in (ord("q"), ord("Q")):
                return
            self._key(key)
            self._draw()

    def _colours(self) -> None:
        self.styles = {
            render.NORMAL: curses.A_NORMAL,
            render.HEADER: curses.A_BOLD,
            render.SELECTED: curses.A_REVERSE,
            render.STUCK: curses.A_BOLD,
        }
        try:
            curses.curs_set(0)
        except curses.error:
            pass  # a terminal that cannot hide the cursor
        if curses.has_colors():
            curses.start_color()
            curses.use_default_colors()
            curses.init_pair(1, curses.COLOR_RED, -1)
            self.styles[render.STUCK] = curses.color_pair(1) | curses.A_BOLD

    def _refresh(self, now: float) -> None:
        stats, processes = _look(self.client)
        self.snap = render.Snapshot(stats, processes, self._before, now - self._before_at)
        self._before, self._before_at = stats, now
        rows = render.ordered(self.snap, self.view)
        pids = [r["pid"] for r in rows]
        if self.view.selected not in pids:
            workers = [r["pid"] for r in rows if r["role"] == "worker"]
            self.view.selected = workers[0] if workers else (pids[0] if pids else None)

    def _draw(self) -> None:
        if self.snap is None:
            return
        height, width = self.screen.getmaxyx()
        self.screen.erase()
        for y, (text, style) in enumerate(render.top_lines(self.snap, self.view, width, height)):
            try:
                self.screen.addnstr(y, 0, text, max(0, width - 1), self.styles[style])
            except curses.error:
                pass  # the bottom-right cell, or a terminal shrunk under us
        self.screen.refresh()

    def _selected_row(self) -> dict[str, Any] | None:
        if self.snap is None:
            return None
        return next((r for r in self.snap.processes if r["pid"] == self.view.selected), None)

    def _key(self, key: int) -> None:
        view = self.view
        char = chr(key) if 0 <= key < 256 else ""
        if char in render.SORTS:
            view.sort = render.SORTS[char]
            view.message = ""
        elif key in (curses.KEY_UP, curses.KEY_DOWN) and self.snap is not None:
            pids = [r["pid"] for r in render.ordered(self.snap, view)]
            if pids:
                at = pids.index(view.selected) if view.selected in pids else 0
                step = -1 if key == curses.KEY_UP else 1
                view.selected = pids[max(0, min(len(pids) - 1, at + step))]
        elif char == "R":
            view.message = self._act("reload")
        elif char in ("k", "s"):
            row = self._selected_row()
            if row is None or row["role"] != "worker" or row.get("slot") is None:
                view.message = "select a worker (↑/↓) first"
            elif char == "k":
                view.message = self._act("recycle", slot=row["slot"])
            else:
                self._stack(row["slot"])
        elif char == "x":
            view.extra, view.message = [], ""

    def _act(self, cmd: str, **args: Any) -> str:
        try:
            result = self.client.call(cmd, **args)
        except ControlError as exc:
            return f"error: {exc}"
        return render.ctl_text(cmd, result)[0]

    def _stack(self, slot: int) -> None:
        try:
            result = self.client.call("slowlog", slot=slot)
        except ControlError as exc:
            self.view.message = f"error: {exc}"
            return
        lines = render.ctl_text("slowlog", result)
        height, _ = self.screen.getmaxyx()
        room = max(3, height // 2)
        self.view.extra = ["", lines[0], *lines[1:][-(room - 2) :]]  # the innermost frames
        self.view.message = "x hides the stack"
