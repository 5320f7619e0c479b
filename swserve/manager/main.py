"""The manager process: forks workers and carries out the supervisor's decisions.

Forked by the master before any thread exists (forking a threaded process is
unsafe), it forks every worker, so the application is imported only in
workers and each new worker loads the code as it is on disk now.  The
decisions (respawn, recycle after --max-requests, --max-worker-lifetime or
--max-worker-memory, timeout replacement, reload, crash-loop back-off, halt) are
made by the sans-IO :class:`~swserve.manager.policy.Supervisor` from what it is
fed; this shell forks, signals, reaps, samples memory and talks to the master.

Master and manager talk over a socketpair in the typed control messages of
:mod:`swserve.ipc.control` (``docs/control-plane.md`` lists them): the master
passes on what its reactors observe (a worker is ready, has served the count
it was told to watch, ran past --timeout) and the operator's commands; the
manager answers with what the supervisor decided (retire, watch, halt, …).

Task workers are supervised by a second :class:`~swserve.manager.policy.Supervisor`
(the same rules: respawn, recycle with a replacement first, reload, crash
loop); user processes by :class:`~swserve.manager.user_processes.UserProcesses`.

EOF on the socket means the master died: every worker is stopped at once.
Signals only enqueue (``signal.set_wakeup_fd``): the loop does the work.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import gc
import importlib
import logging
import os
import selectors
import signal
import socket
import time
from typing import Final

from swserve.config import Config
from swserve.errors import EXIT_ERROR, EXIT_OK
from swserve.hooks import Hooks, Server as HookServer
from swserve.ipc import busy, control
from swserve.ipc.control import Mode
from swserve.logs.setup import forward_reopen
from swserve.manager import policy
from swserve.manager.other_kinds import HANDLED, OtherKinds
from swserve.manager.user_processes import UserProcesses
from swserve.net.listeners import Listener
from swserve.process import shared as _process
from swserve.process.shared import ignore_master_signals, reap_nowait
from swserve.process.title import set_title

log = logging.getLogger("swserve.error")

_HANDLED = HANDLED


def exit_status(status: int) -> tuple[int | None, int | None]:
    """A ``waitpid`` status → (exit code, None) or (None, signal)."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status), None


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


class Manager(OtherKinds):
    def __init__(
        self,
        config: Config,
        ipc_paths: list[str],
        channel: socket.socket,
        hooks: Hooks,
        listeners: list[Listener],
    ) -> None:
        self.config = config
        self.listeners = listeners  # base mode only: handed to every worker
        self.hooks = hooks
        self.server_info = HookServer(config, "manager", os.getpid(), os.getppid())
        self.ipc_paths = ipc_paths
        self.cells: dict[int, int] = {}  # pid → busy-table cell (ipc/busy.py)
        self._last_cell = -1  # cells are handed out in turn: busy.next_cell
        self.control = channel  # to the master
        self.supervisor = policy.Supervisor(
            config.workers,
            max_concurrent=config.max_concurrent_recycles,
            max_wait=config.retire_wait,  # WebSocket sessions drain first
            kill_grace=config.graceful_timeout,
            reload_mode=config.reload_mode,
            max_requests=config.max_requests,
            jitter=config.jitter,
            lifetime=config.max_worker_lifetime,
            memory=config.max_worker_memory,
        )
        self._decoder = control.Decoder()
        self._halted = False
        # how long stop_all waits before SIGKILL (a base-mode worker drains its WebSocket
        # sessions for --ws-drain-timeout before it says 1001)
        self.grace = config.stop_wait
        # task workers and user processes: nothing at all unless asked for
        self.task_path = ""
        self.tasks: policy.Supervisor | None = None
        if config.task_workers:
            self.task_path = os.path.join(os.path.dirname(ipc_paths[0]), _process.TASK_SOCKET_NAME)
            self.tasks = policy.Supervisor(
                config.task_workers,
                max_concurrent=config.max_concurrent_recycles,
                max_wait=config.max_wait_time,
                kill_grace=config.graceful_timeout,
            )
        self.user = (
            UserProcesses(config.process, kill_grace=config.graceful_timeout)
            if config.process
            else None
        )

    # -- actions ---------------------------------------------------------------------------

    def apply(self, actions: list[policy.Action]) -> None:
        for action in actions:
            if isinstance(action, policy.Spawn):
                self.spawn(action.slot, action.requests)
            elif isinstance(action, policy.Watch):
                self._tell(control.Watch(action.pid, action.count))
            elif isinstance(action, policy.Retire):
                self._tell(control.Retire(action.pid, action.reason))
            elif isinstance(action, policy.Reloaded):
                self._tell(control.Reloaded())
            elif isinstance(action, policy.BackingOff):
                self._tell(control.BackingOff(action.slot, action.failures, action.delay))
            else:  # Kill, Halt, Log: as for every kind of child
                self._common(action)

    def spawn(self, slot: int, requests: int = 0) -> None:
        cell = self._last_cell = busy.next_cell(set(self.cells.values()), self._last_cell)
        if busy.TABLE is not None:
            busy.TABLE.reset(cell)
        try:
            pid = self._fork(
                f"worker {slot}", lambda mask: self._become_worker(slot, mask, cell, requests)
            )
        except OSError as exc:  # EAGAIN/ENOMEM: the supervisor retries after a back-off
            self.apply(
                self.supervisor.fork_failed(slot, exc.strerror or str(exc), time.monotonic())
            )
            return
        self.cells[pid] = cell
        self.apply(self.supervisor.spawned(slot, pid, time.monotonic()))

    def _reset_in_child(self, mask: set[int | signal.Signals]) -> None:
        """A forked child: the manager's signal handling and descriptors are not its own."""
        for sig in _HANDLED:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending SIGTERM now ends us
        signal.set_wakeup_fd(-1)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        self.control.close()
        _process.TASK_SOCKET = self.task_path  # where swserve.task() goes ("" : nowhere)
        # where swserve.push() goes, for task workers and user processes too (a worker
        # sets it again itself); only a string: the push client is imported on first use
        os.environ["SWSERVE_PUSH"] = Mode(self.config.mode) + ":" + os.pathsep.join(self.ipc_paths)

    def _become_worker(
        self, slot: int, mask: set[int | signal.Signals], cell: int, requests: int
    ) -> None:
        code = EXIT_ERROR
        try:
            self._reset_in_child(mask)
            from swserve.worker.main import BaseServe, run

            serve_base: BaseServe | None = None
            if self.config.mode == "base":  # base/ sits above worker/: handed in from here
                from swserve.base import server as base_server

                serve_base = base_server.run
            code = run(
                self.config,
                slot,
                cell,
                self.ipc_paths,
                self.hooks,
                self.server_info.master_pid,
                self.listeners,
                serve_base,
                report_at=requests,
            )
            if code == EXIT_OK:
                # os._exit below skips interpreter shutdown; the app's atexit
                # handlers (flushing logs, closing pools) still get to run
                atexit._run_exitfuncs()
        except BaseException:
            log.exception("worker %d crashed", slot)
        finally:
            os._exit(code)

    def reap(self) -> None:
        for pid, status in reap_nowait():
            worker = self.supervisor.workers.get(pid)
            if worker is None:
                self._reap_other(pid, *exit_status(status))
                continue
            code, sig = exit_status(status)
            cell = self.cells.pop(pid, None)
            if cell is not None and busy.TABLE is not None:
                busy.TABLE.dead(cell)
            expected = worker.retiring or worker.killed or self.supervisor.stopping
            if (code != 0 or sig is not None) and not expected:
                self.hooks.call("on_worker_error", self.server_info, worker.slot, pid, code, sig)
            self._tell(control.Exit(worker.slot, pid, code if code is not None else -1, sig or 0))
            self.apply(self.supervisor.exited(pid, code, sig, time.monotonic()))

    def _tell(self, message: control.Message) -> None:
        with contextlib.suppress(OSError):
            self.control.sendall(control.encode(message))

    # -- main loop ----------------------------------------------------------------------------

    def run(self) -> int:
        set_title("swserve: manager")
        ignore_master_signals()
        forward_reopen(self._children)  # SIGRTMIN from the master
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for sig in _HANDLED:
            signal.signal(sig, lambda *_: None)  # the wakeup fd carries the signal number
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, "signal")
        self._selector.register(self.control, selectors.EVENT_READ, "control")
        if not self.hooks.call("on_manager_start", self.server_info):
            self._tell(control.Halt(3, "the on_manager_start hook failed"))
            self.supervisor.stop()
            return self.stop_all()
        _preload_worker_modules(self.config)
        self.apply(self.supervisor.start())
        if self.tasks is not None:
            self.apply_task(self.tasks.start())
        while not self.supervisor.stopping:
            timeout = self._until_next_tick()
            wake_at = self.supervisor.wake_at()
            if wake_at is not None:  # a back-off ends before the next tick: be on time
                timeout = max(0.0, min(timeout, wake_at - time.monotonic()))
            for key, _ in self._selector.select(timeout=timeout):
                if key.data == "signal":
                    self._on_signals()
                else:
                    self._on_control()
            self._tick()
        return self.stop_all()

    def _tick(self) -> None:
        now = time.monotonic()
        sup = self.supervisor
        if self.tasks is not None:
            self.apply_task(self.tasks.tick(now))
        if self.user is not None:
            self.apply_user(self.user.tick(now))
        actions = sup.tick(now)  # --max-worker-lifetime, escalations, back-offs
        if sup.memory:  # observed here, decided there
            for worker in sup.serving():
                actions += sup.sampled(worker.pid, rss_mib(worker.pid), now)
        self.apply(actions)

    def _on_signals(self) -> None:
        try:
            data = self._wake_r.recv(512)
        except BlockingIOError:
            return
        for signum in data:
            if signum == signal.SIGCHLD:
                self.reap()
            elif signum == signal.SIGTERM:
                # The master runs the shutdown (it must drain connections first), so a
                # SIGTERM sent to us, e.g. to the whole process group by systemd, is
                # passed on to it rather than acted on here.
                self._tell(control.Term())
            elif signum == signal.SIGQUIT:
                self._tell(control.Quit())  # the master's quick shutdown, as for SIGTERM

    def _on_control(self) -> None:
        try:
            data = self.control.recv(65536)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EINTR):
                return
            data = b""
        if not data:
            log.debug("the master is gone: stopping the workers")
            self.supervisor.stop()
            return
        try:
            messages = self._decoder.feed(data)
        except control.ControlError as exc:  # nothing the master says can be trusted now
            log.error("bad control message from the master: %s: stopping the workers", exc)
            self.supervisor.stop()
            return
        now = time.monotonic()
        sup = self.supervisor
        for message in messages:
            match message:
                case control.Stop(now=quick):
                    if quick:
                        self.grace = 1.0  # quick shutdown: in-flight requests are not waited for
                    sup.stop()
                case control.Ready(pid=pid):
                    self.apply(sup.ready(pid, now))
                case control.Served(pid=pid, count=count):
                    self.apply(sup.served(pid, count, now))
                case control.Timeout(pid=pid, graceful=graceful):
                    self.apply(sup.timed_out(pid, now, graceful))
                case control.Recycle(pid=pid, reason=reason):
                    self.apply(sup.recycle(pid, reason, now))
                case control.Reload():
                    self.apply(sup.reload(now))
                    if self.tasks is not None:
                        self.apply_task(self.tasks.reload(now))
                    if self.user is not None:
                        self.apply_user(self.user.reload(now))
                case control.Scale(delta=delta):
                    self.apply(sup.scale(delta, now))
                case control.ScaleTo(workers=workers):  # `swserve ctl scale N`: step by step
                    for step in policy.steps_to(sup.target, workers):
                        self.apply(sup.scale(step, now))
                case _:
                    self._on_task_command(message, now)
        self._start_user_processes()

    def stop_all(self) -> int:
        """SIGTERM every child, wait up to the graceful timeout, then SIGKILL the rest.

        Task workers finish the task under way (their SIGTERM handler waits for
        it), within the same graceful timeout.
        """
        sup = self.supervisor
        sup.stop()
        if self.tasks is not None:
            self.tasks.stop()
        if self.user is not None:
            self.user.stop()
        for pid in self._children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while self._children() and time.monotonic() < deadline:
            self._selector.select(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
            with contextlib.suppress(BlockingIOError):
                self._wake_r.recv(512)
            self.reap()
        for pid, worker in list(sup.workers.items()):
            log.warning("worker %d (pid %d) did not stop in time: killing it", worker.slot, pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self._children():
            if pid not in sup.workers:
                log.warning("%s did not stop in time: killing it", self._name(pid))
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        while self._children():
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self._forget(pid)
        self.hooks.call("on_manager_stop", self.server_info)
        return EXIT_OK


# What a worker runs on, by --mode and interface (worker/main.py picks one of them).
_WORKER_COMMON: Final = ("swserve.worker.main",)
_WORKER_MODULES: Final = {
    ("process", "wsgi"): (
        "swserve.apps.wsgi",
        "swserve.ipc.channel_sync",
        "swserve.worker.runner_wsgi",
    ),
    ("process", "asgi"): (
        "swserve.apps.asgi",
        "swserve.apps.lifespan",
        "swserve.ipc.channel_async",
        "swserve.process.loop",
        "swserve.worker.runner_asgi",
        "uvloop",
    ),
    # base mode serves either interface from base/server.py, on an event loop
    ("base", "wsgi"): ("swserve.base.server", "swserve.process.loop", "uvloop"),
    ("base", "asgi"): (
        "swserve.base.server",
        "swserve.apps.lifespan",
        "swserve.process.loop",
        "uvloop",
    ),
}


def worker_modules(mode: str, interface: str) -> tuple[str, ...]:
    """The modules a worker of ``mode`` serving ``interface`` ("auto": either) imports.

    A process-mode worker never needs base/server.py (~10 ms of the manager's
    start-up when compiled from source, ~1 ms from its .pyc), and an app declared
    with --interface needs only its own adapter (the ASGI ones: ~7 ms / ~1 ms).
    """
    interfaces = ("wsgi", "asgi") if interface == "auto" else (interface,)
    names = [*_WORKER_COMMON, *(m for i in interfaces for m in _WORKER_MODULES[mode, i])]
    return tuple(dict.fromkeys(names))  # in order, once each


def _preload_worker_modules(config: Config) -> None:
    """Import swserve's own worker code once, here, so every forked worker inherits it.

    Only swserve's modules (and the stdlib/uvloop they use), never the app: the
    app is imported in each worker, after the fork, so a reload loads new code.
    Measured with loadtests/run/ --scenario reload (2 workers, --max-requests
    200, SIGHUP every 2 s): a cold worker spent ~25 ms of CPU booting, mostly
    these imports.
    """
    for name in worker_modules(config.mode, config.interface):
        try:
            importlib.import_module(name)
        except ImportError:
            if name != "uvloop":  # optional: process/loop.py falls back to asyncio's loop
                raise

    # Everything allocated so far is shared with every worker: keep the cyclic
    # collector from touching (and so copying) those pages after each fork.
    gc.freeze()


def run(
    config: Config,
    ipc_paths: list[str],
    channel: socket.socket,
    hooks: Hooks,
    listeners: list[Listener],
) -> int:
    return Manager(config, ipc_paths, channel, hooks, listeners).run()
