"""The manager process: start the pool, wait for exits, respawn, stop on command.

Forked by the master before any thread exists (forking a threaded process is
unsafe), it forks every worker, so the application is imported only in
workers, and new code is loaded by each new worker.

Control: the master sends lines over a socketpair (``stop``); the manager
reports each worker exit as ``exit ID PID CODE SIGNAL``, and a SIGTERM it
received as ``term`` (the master then stops the server gracefully).  EOF on that socket
means the master died: stop every worker at once.

Signals only enqueue (``signal.set_wakeup_fd``): the loop does the work.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import signal
import socket
import time

from swserve.config import Config
from swserve.errors import EXIT_APP_LOAD, EXIT_ERROR, EXIT_OK
from swserve.manager import policy
from swserve.procname import set_title

log = logging.getLogger("swserve.error")

_HANDLED = (signal.SIGTERM, signal.SIGCHLD, signal.SIGQUIT)


class Manager:
    def __init__(self, config: Config, ipc_path: str, control: socket.socket) -> None:
        self.config = config
        self.ipc_path = ipc_path
        self.control = control
        self.workers: dict[int, int] = {}  # pid → worker id
        self.expected: set[int] = set()  # pids we signalled on purpose
        self.stopping = False
        self._control_buf = b""

    # -- process mechanics ---------------------------------------------------------------

    def spawn(self, worker_id: int) -> None:
        # Signals are blocked across fork(): a SIGTERM that reaches the child before
        # it has reset our handlers would otherwise run the manager's no-op handler
        # and be lost, leaving a worker that ignores the stop.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        pid = -1
        try:
            while pid == -1:
                try:
                    pid = os.fork()
                except OSError as exc:  # EAGAIN/ENOMEM: as Swoole does, retry every 100 ms
                    log.error("cannot fork worker %d: %s; retrying", worker_id, exc)
                    time.sleep(0.1)
            if pid == 0:
                self._become_worker(worker_id, blocked)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self.workers[pid] = worker_id

    def _become_worker(self, worker_id: int, mask: set[int | signal.Signals]) -> None:
        code = EXIT_ERROR
        try:
            for sig in _HANDLED:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending SIGTERM now ends us
            signal.set_wakeup_fd(-1)
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()
            self.control.close()
            from swserve.worker.main import run

            code = run(self.config, worker_id, self.ipc_path)
        except BaseException:
            log.exception("worker %d crashed", worker_id)
        finally:
            os._exit(code)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker_id = self.workers.pop(pid, None)
            if worker_id is None:
                continue
            ex = policy.from_status(worker_id, pid, status, pid in self.expected)
            self.expected.discard(pid)
            action = policy.decide(ex, stopping=self.stopping)
            if action == policy.HALT_BOOT or ex.code == EXIT_APP_LOAD:
                log.debug("%s", policy.describe(ex))  # the master prints the reason once
            elif ex.code == 0:
                log.info("%s", policy.describe(ex))
            elif action == policy.RESPAWN or not ex.expected:
                log.warning("%s", policy.describe(ex))
            self._tell(
                f"exit {worker_id} {pid} {ex.code if ex.code is not None else -1} {ex.signal or 0}"
            )
            if action == policy.RESPAWN:
                self.spawn(worker_id)

    def _tell(self, line: str) -> None:
        with contextlib.suppress(OSError):
            self.control.sendall(line.encode() + b"\n")

    # -- main loop ----------------------------------------------------------------------------

    def run(self) -> int:
        set_title("swserve: manager")
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the master's to handle
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, signal.SIG_IGN)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        for sig in _HANDLED:
            signal.signal(sig, lambda *_: None)  # the wakeup fd carries the signal number
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, "signal")
        self._selector.register(self.control, selectors.EVENT_READ, "control")
        for worker_id in range(1, self.config.workers + 1):
            self.spawn(worker_id)
        while not self.stopping:
            for key, _ in self._selector.select(timeout=1.0):
                if key.data == "signal":
                    self._on_signals()
                else:
                    self._on_control()
        return self.stop_all()

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
                self._tell("term")
            elif signum == signal.SIGQUIT:
                self.stopping = True

    def _on_control(self) -> None:
        try:
            data = self.control.recv(4096)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EINTR):
                return
            data = b""
        if not data:
            log.debug("the master is gone: stopping the workers")
            self.stopping = True
            return
        self._control_buf += data
        *lines, self._control_buf = self._control_buf.split(b"\n")
        for line in lines:
            if line == b"stop":
                self.stopping = True

    def stop_all(self) -> int:
        """SIGTERM every worker, wait up to the graceful timeout, then SIGKILL the rest."""
        self.stopping = True
        for pid in self.workers:
            self.expected.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.graceful_timeout
        while self.workers and time.monotonic() < deadline:
            self._selector.select(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
            with contextlib.suppress(BlockingIOError):
                self._wake_r.recv(512)
            self.reap()
        for pid in list(self.workers):
            log.warning(
                "worker %d (pid %d) did not stop in time: killing it", self.workers[pid], pid
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while self.workers:
            with contextlib.suppress(ChildProcessError):
                pid, _ = os.waitpid(-1, 0)
                self.workers.pop(pid, None)
                continue
            break
        return EXIT_OK


def run(config: Config, ipc_path: str, control: socket.socket) -> int:
    return Manager(config, ipc_path, control).run()
