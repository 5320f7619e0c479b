"""What /proc says about one process: CPU seconds, RSS, start time, title, children.

Read-only and Linux-only, as the rest of swserve's process handling is.  A
process that exits between two reads gives ``None`` rather than an error: the
control socket describes a server whose workers come and go.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

_TICKS: Final = os.sysconf("SC_CLK_TCK")
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcSample:
    pid: int
    title: str
    cpu_seconds: float  # user + system, since the process started
    rss_bytes: int
    started_at: float  # seconds since the epoch


def _boot_time() -> float:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


_BOOT: Final = _boot_time()


def sample(pid: int) -> ProcSample | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/statm", "rb") as f:
            rss_pages = int(f.read().split()[1])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except (OSError, IndexError, ValueError):
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    fields = stat[stat.rfind(b")") + 2 :].split()
    utime, stime, start = int(fields[11]), int(fields[12]), int(fields[19])
    title = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return ProcSample(
        pid, title, (utime + stime) / _TICKS, rss_pages * _PAGE, _BOOT + start / _TICKS
    )


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list, as /proc keeps them per thread)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += (int(p) for p in f.read().split())
        except (OSError, ValueError):
            continue
    return out


class CpuMeter:
    """CPU% per pid from successive samples: busy time over wall time between two looks.

    The first look at a pid gives its average since it started.  A look within
    ``min_window`` of the previous one repeats the previous figure, so two
    clients polling at once do not see noise from a 1 ms window.
    """

    def __init__(self, min_window: float = 0.25) -> None:
        self.min_window = min_window
        self._last: dict[int, tuple[float, float, float]] = {}  # pid → (when, cpu s, percent)

    def percent(self, s: ProcSample, now_wall: float) -> float:
        last = self._last.get(s.pid)
        if last is not None and now_wall - last[0] < self.min_window:
            return last[2]
        if last is None:
            window, busy = now_wall - s.started_at, s.cpu_seconds
        else:
            window, busy = now_wall - last[0], s.cpu_seconds - last[1]
        value = round(100.0 * busy / window, 1) if window > 0 else 0.0
        self._last[s.pid] = (now_wall, s.cpu_seconds, value)
        return value

    def forget(self, alive: set[int]) -> None:
        for pid in set(self._last) - alive:
            del self._last[pid]
