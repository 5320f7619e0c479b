"""The manager's task workers and user processes: fork, reap, and carry out decisions.

A mixin of :class:`~swserve.manager.main.Manager`, kept apart so that the
worker path there stays as it was.  Task workers are decided by a second
``policy.Supervisor`` (``self.tasks``), user processes by
``user_processes.UserProcesses`` (``self.user``); both are None unless
``--task-workers`` / ``--process`` ask for them.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable

from swserve.config import Config
from swserve.errors import EXIT_ERROR, EXIT_OK
from swserve.hooks import Hooks, Server as HookServer
from swserve.ipc import control
from swserve.ipc.control import Reason
from swserve.manager import policy
from swserve.manager.user_processes import UserProcesses

log = logging.getLogger("swserve.error")

TICK = 0.5  # seconds between supervision ticks (escalation, memory and age checks)
_TASK_COMMANDS = frozenset(
    {
        control.Type.TASK_READY,
        control.Type.TASK_RECYCLE,
        control.Type.TASK_TIMEOUT,
        control.Type.TASK_RELOAD,
    }
)
HANDLED = (signal.SIGTERM, signal.SIGCHLD, signal.SIGQUIT)  # the manager's own signals


def relabel(action: policy.Action) -> policy.Action:
    """The supervisor's lines name "worker N": for the task supervisor, "task worker N"."""
    if isinstance(action, policy.Log):
        return policy.Log(action.level, _task_words(action.message))
    if isinstance(action, policy.Halt):
        return policy.Halt(action.code, _task_words(action.message))
    return action


def _task_words(message: str) -> str:
    if message.startswith("worker "):
        message = "task " + message
    return message.replace(" worker(s)", " task worker(s)")


class OtherKinds:
    config: Config
    hooks: Hooks
    server_info: HookServer
    supervisor: policy.Supervisor
    tasks: policy.Supervisor | None
    user: UserProcesses | None
    task_path: str
    _halted: bool

    def _tell(self, message: control.Message) -> None: ...  # Manager's

    def _reset_in_child(self, mask: set[int | signal.Signals]) -> None: ...  # Manager's

    # -- decisions → actions -------------------------------------------------------------------

    def apply_task(self, actions: list[policy.Action]) -> None:
        for action in map(relabel, actions):
            if isinstance(action, policy.Spawn):
                self._spawn_task(action.slot)
            elif isinstance(action, policy.Retire):
                self._tell(control.TaskRetire(action.pid, action.reason))
            elif isinstance(action, policy.Reloaded):
                self._tell(control.TaskReloaded())
            else:
                self._common(action)

    def apply_user(self, actions: list[policy.Action]) -> None:
        for action in actions:
            if isinstance(action, policy.Spawn):
                if action.reason == Reason.RESTART:
                    self._tell(control.ProcessRestart(action.slot))
                self._spawn_user(action.slot)
            else:
                self._common(action)

    def _common(self, action: policy.Action) -> None:
        if isinstance(action, policy.Kill):
            with contextlib.suppress(ProcessLookupError):
                os.kill(action.pid, action.sig)
        elif isinstance(action, policy.Halt):
            if not self._halted:
                self._halted = True
                self._tell(control.Halt(action.code, action.message))
        elif isinstance(action, policy.Log):
            getattr(log, action.level)("%s", action.message)
        elif isinstance(action, policy.Watch):
            pass  # task workers count for themselves (the broker's --task-max-requests)
        elif isinstance(action, policy.Retire | policy.Spawn | policy.Reloaded):
            raise TypeError(f"{action} is for the kind's own apply")

    def _on_task_command(self, message: control.Message, now: float) -> None:
        if message.TYPE not in _TASK_COMMANDS:  # a message for the master, or a reactor's
            log.warning("the master sent the manager %r: ignored", message)
            return
        tasks = self.tasks
        if tasks is None:
            return
        match message:
            case control.TaskReady(pid=pid):
                self.apply_task(tasks.ready(pid, now))
            case control.TaskRecycle(pid=pid, reason=reason):
                self.apply_task(tasks.recycle(pid, reason, now))
            case control.TaskTimeout(pid=pid):
                # the task cannot be interrupted and its caller has had its answer: no grace
                actions = tasks.timed_out(pid, now)
                self.apply_task(
                    [
                        policy.Kill(a.pid, signal.SIGKILL, a.reason)
                        if isinstance(a, policy.Kill)
                        else a
                        for a in actions
                    ]
                )
            case control.TaskReload():
                self.apply_task(tasks.reload(now))

    def _start_user_processes(self) -> None:
        """Once every worker and task worker has been ready once."""
        if self.user is None or self.user.started:
            return
        if self.supervisor.started and (self.tasks is None or self.tasks.started):
            self.apply_user(self.user.start())

    def _until_next_tick(self) -> float:
        """The select timeout: TICK, or sooner when a user process is due to restart."""
        due = self.user.next_due() if self.user is not None else None
        if due is None:
            return TICK
        return min(TICK, max(0.0, due - time.monotonic()))

    # -- processes -------------------------------------------------------------------------------

    def _children(self) -> list[int]:
        pids = list(self.supervisor.workers)
        if self.tasks is not None:
            pids += self.tasks.workers
        if self.user is not None:
            pids += self.user.pids()
        return pids

    def _name(self, pid: int) -> str:
        if self.tasks is not None and pid in self.tasks.workers:
            return f"task worker {self.tasks.workers[pid].slot} (pid {pid})"
        proc = self.user.by_pid(pid) if self.user is not None else None
        if proc is not None:
            return f"user process {proc.index} ({proc.spec}, pid {pid})"
        return f"worker (pid {pid})"

    def _forget(self, pid: int) -> None:
        self.supervisor.workers.pop(pid, None)
        if self.tasks is not None:
            self.tasks.workers.pop(pid, None)
        proc = self.user.by_pid(pid) if self.user is not None else None
        if proc is not None:
            proc.pid = 0

    def _reap_other(self, pid: int, code: int | None, sig: int | None) -> None:
        now = time.monotonic()
        if self.tasks is not None and pid in self.tasks.workers:
            self.apply_task(self.tasks.exited(pid, code, sig, now))
        elif self.user is not None and self.user.by_pid(pid) is not None:
            self.apply_user(self.user.exited(pid, code, sig, now))

    def _fork(self, what: str, child: Callable[[set[int | signal.Signals]], None]) -> int:
        """Fork a child of any kind; in the child, ``child(mask)`` runs and never returns.

        Signals are blocked across fork(): a SIGTERM that reaches the child before
        it has reset our handlers would otherwise run the manager's no-op handler
        and be lost, leaving a child that ignores the stop.  A failed fork (EAGAIN,
        ENOMEM) raises ``OSError``: the caller's policy decides when to try again,
        so the manager's loop never blocks on it.
        """
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        try:
            pid = os.fork()
            if pid == 0:
                child(blocked)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return pid

    def _spawn_task(self, slot: int) -> None:
        assert self.tasks is not None
        try:
            pid = self._fork(
                f"task worker {slot}", lambda mask: self._become_task_worker(slot, mask)
            )
        except OSError as exc:  # the task workers' supervisor backs off, as for workers
            error = exc.strerror or str(exc)
            self.apply_task(self.tasks.fork_failed(slot, error, time.monotonic()))
            return
        self.tasks.spawned(slot, pid, time.monotonic())

    def _spawn_user(self, index: int) -> None:
        assert self.user is not None
        manager = os.getpid()
        try:
            pid = self._fork(
                f"user process {index}", lambda mask: self._become_user(index, mask, manager)
            )
        except OSError as exc:
            error = exc.strerror or str(exc)
            self.apply_user(self.user.fork_failed(index, error, time.monotonic()))
            return
        self.user.spawned(index, pid, time.monotonic())

    def _become_task_worker(self, slot: int, mask: set[int | signal.Signals]) -> None:
        code = EXIT_ERROR
        try:
            self._reset_in_child(mask)
            from swserve.tasks.worker import run

            code = run(self.config, slot, self.task_path, self.hooks, self.server_info.master_pid)
            if code == EXIT_OK:
                atexit._run_exitfuncs()
        except BaseException:
            log.exception("task worker %d crashed", slot)
        finally:
            os._exit(code)

    def _become_user(self, index: int, mask: set[int | signal.Signals], manager: int) -> None:
        code = EXIT_ERROR
        try:
            self._reset_in_child(mask)
            from swserve.tasks.user_process import run

            assert self.user is not None
            code = run(self.config, index, self.user.procs[index - 1].spec, manager)
            atexit._run_exitfuncs()
        except BaseException:
            log.exception("user process %d crashed", index)
        finally:
            os._exit(code)
