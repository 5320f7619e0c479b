"""User processes (``--process module:callable``), sans-IO: exits and a clock in, actions out.

Swoole's ``addProcess``: long-running processes the manager supervises beside
the workers (a queue consumer, a scheduler).  The manager shell forks them
(``manager/main.py``); this module decides when.

- They start once every worker (and task worker) has been ready once.
- One that exits, for any reason, is started again after a back-off: 0.1 s,
  doubling with each exit in a row up to 10 s.  A run of ``STABLE`` seconds
  or more resets the back-off.
- ``CRASH_LOOP`` exits in a row, each after less than ``STABLE`` seconds, of a
  process that has never run ``STABLE`` seconds stop the server (exit code 3),
  as workers that cannot boot at start-up do.  Once it has run that long, it is
  only ever restarted (the back-off caps at 10 s), as workers are once the
  server has served (``manager/backoff.py``): a consumer that loses its broker
  for an hour must not take the web server down with it.
- A fork that fails (EAGAIN, ENOMEM) is tried again after a back-off too.
- A reload (SIGHUP) stops each one (SIGTERM, SIGKILL after the grace) and
  starts the new code as soon as it has exited: never two copies at once, as
  a consumer may hold a lock or a queue.

Actions are the supervisor's (``policy.Spawn`` names the process's index).
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Final

from swserve.errors import EXIT_APP_LOAD
from swserve.ipc.control import Reason
from swserve.manager.policy import Action, Halt, Kill, Log, Spawn

BACKOFF_FIRST: Final = 0.1
BACKOFF_MAX: Final = 10.0
STABLE: Final = 10.0  # a run at least this long is not part of a crash loop
CRASH_LOOP: Final = 5  # short runs in a row of a never-stable process that stop the server


@dataclass(slots=True)
class UserProcess:
    index: int  # 1-based, in --process order
    spec: str
    pid: int = 0
    started_at: float = 0.0
    failures: int = 0  # short runs in a row
    restart_at: float | None = None  # due to start (after a back-off)
    replacing: bool = False  # stopped by a reload: start again at once
    stop_sent: float | None = None  # when SIGTERM was sent
    restarts: int = 0
    proven: bool = False  # has run STABLE seconds once: a crash loop no longer halts


def describe_exit(code: int | None, sig: int | None) -> str:
    if sig is not None:
        try:
            return f"was killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"was killed by signal {sig}"
    return f"exited with code {code}"


class UserProcesses:
    def __init__(self, specs: tuple[str, ...], *, kill_grace: float = 30.0) -> None:
        self.procs = [UserProcess(i + 1, spec) for i, spec in enumerate(specs)]
        self.kill_grace = kill_grace
        self.started = False
        self.stopping = False

    def by_pid(self, pid: int) -> UserProcess | None:
        return next((p for p in self.procs if p.pid == pid and pid), None)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid]

    def start(self) -> list[Action]:
        if self.started or self.stopping:
            return []
        self.started = True
        return [Spawn(p.index, Reason.START) for p in self.procs]

    def spawned(self, index: int, pid: int, now: float) -> None:
        proc = self.procs[index - 1]
        proc.pid = pid
        proc.started_at = now
        proc.restart_at = None
        proc.stop_sent = None

    def exited(self, pid: int, code: int | None, sig: int | None, now: float) -> list[Action]:
        proc = self.by_pid(pid)
        if proc is None:
            return []
        proc.pid = 0
        who = f"user process {proc.index} ({proc.spec}, pid {pid})"
        if self.stopping:
            return []
        if proc.replacing:  # new code: a fresh count of short runs
            proc.replacing = False
            proc.failures = 0
            return [Spawn(proc.index, Reason.RELOAD)]
        ran = now - proc.started_at
        proc.proven = proc.proven or ran >= STABLE
        proc.failures = 1 if ran >= STABLE else proc.failures + 1
        if proc.failures >= CRASH_LOOP and not proc.proven:
            return [
                Halt(
                    EXIT_APP_LOAD,
                    f"{who} {describe_exit(code, sig)}; it exited {CRASH_LOOP} times in a row "
                    f"within {STABLE:g}s of starting: stopping instead of restarting forever",
                )
            ]
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (proc.failures - 1))
        proc.restart_at = now + delay
        return [Log("warning", f"{who} {describe_exit(code, sig)}; restarting in {delay:g}s")]

    def fork_failed(self, index: int, error: str, now: float) -> list[Action]:
        """The Spawn for ``index`` could not fork: try again after a back-off."""
        proc = self.procs[index - 1]
        if self.stopping or proc.pid:
            return []
        proc.restart_at = now + 1.0
        return [
            Log("error", f"cannot fork user process {index} ({proc.spec}): {error}; retrying in 1s")
        ]

    def next_due(self) -> float | None:
        """When the next restart is due (the manager wakes up for it), if any."""
        due = [p.restart_at for p in self.procs if p.restart_at is not None and not p.pid]
        return min(due) if due else None

    def tick(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for proc in self.procs:
            if self.stopping:
                break
            if proc.restart_at is not None and now >= proc.restart_at and not proc.pid:
                proc.restart_at = None
                proc.restarts += 1
                actions.append(Spawn(proc.index, Reason.RESTART))
            if proc.pid and now - proc.started_at >= STABLE:
                proc.proven = True  # a crash loop after this restarts, never halts
            if proc.pid and proc.stop_sent is not None and now - proc.stop_sent >= self.kill_grace:
                proc.stop_sent = float("inf")
                actions.append(Kill(proc.pid, signal.SIGKILL, Reason.RELOAD))
        return actions

    def reload(self, now: float) -> list[Action]:
        """Replace each one with the code on disk now: stop it, start it again once gone."""
        if self.stopping or not self.started:
            return []
        actions: list[Action] = []
        for proc in self.procs:
            if proc.pid and not proc.replacing:
                proc.replacing = True
                proc.stop_sent = now
                actions.append(Kill(proc.pid, signal.SIGTERM, Reason.RELOAD))
            elif not proc.pid and proc.restart_at is not None:
                proc.restart_at = now  # waiting out a back-off: the new code starts now
        return actions

    def stop(self) -> None:
        self.stopping = True
