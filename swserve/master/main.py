"""The master process: bind → fork the manager → run the reactor → shut down in order.

Order matters.  Listeners are bound first, so a bad address fails before any
process exists.  The manager is forked before the event loop or any thread
exists.  The reactor then serves on the master's loop, and workers connect to
it over a private unix socket (a worker replaced by the manager simply
connects again).  "Listening on …" is printed once every worker is ready.

Signals only enqueue commands; ``_handle`` runs them in the loop:

=================  ===========================================================
SIGTERM, SIGINT    graceful stop: stop accepting, finish in-flight requests (up
                   to --graceful-timeout), close keep-alive connections, stop
                   workers; a second SIGINT forces an immediate exit
SIGQUIT            quick stop: no drain
SIGHUP, SIGUSR1    reload every worker, task worker and user process (the manager
                   replaces them gracefully)
SIGTTIN, SIGTTOU   one worker more / one fewer
SIGUSR2            reload the task workers only (logged and ignored without any)
=================  ===========================================================

uvloop keeps SIGCHLD for itself: the manager's exit is watched through a
pidfd, and orphans (when we are PID 1 in a container) are reaped by a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import shutil
import signal
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from swserve import __version__
from swserve.config import Config
from swserve.errors import EXIT_APP_LOAD, EXIT_ERROR, EXIT_OK, ConfigError
from swserve.hooks import Hooks, Server as HookServer, load as load_hooks
from swserve.ipc import busy, control
from swserve.ipc.control import Mode
from swserve.logs.setup import forward_reopen, setup as setup_logging
from swserve.master.control import ControlServer, ControlSocket, bind as bind_control
from swserve.master.stats import Stats
from swserve.net.listeners import Listener, open_listeners
from swserve.process import malloc
from swserve.process.loop import new_event_loop
from swserve.process.setup import ProcessSetup
from swserve.process.shared import TASK_SOCKET_NAME, reap_nowait
from swserve.process.title import set_title
from swserve.reactor.host import make_host
from swserve.reactor.process import ReactorChild, fork_reactors, reactor_count
from swserve.static.handoff import bind_inboxes

if TYPE_CHECKING:
    from swserve.metrics.endpoint import MetricsEndpoint
    from swserve.tasks.server import TaskServer

log = logging.getLogger("swserve.error")


def _parser_name(config: Config) -> str:
    if config.http != "auto":
        return config.http
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def _static_roots(entries: tuple[str, ...]) -> tuple[str, ...]:
    from swserve.static.serve import resolve_roots

    try:
        return resolve_roots(entries)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


# The master's signals.  Until its loop handles them, they are kept and replayed
# (_early_signals): a SIGTERM while the hooks module imports, say, must stop the
# server cleanly, not kill the master by default and leave its children behind.
_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGQUIT,
    signal.SIGUSR2,
)
_early: list[int] = []


def _keep_early_signals() -> None:
    for sig in _SIGNALS:
        signal.signal(sig, lambda signum, frame: _early.append(signum))


def run(config: Config) -> int:
    """Run the server until it is stopped; return the process exit code."""
    _keep_early_signals()
    if not setup_logging(config):  # a bad --log-file or --log-config: one line, before any fork
        return EXIT_ERROR
    http = _parser_name(config)
    if http != config.http:
        config = _replace(config, http=http)
    malloc.tune()  # before any fork: every process inherits it (swserve/process/malloc.py)
    setup = ProcessSetup(config)
    try:
        setup.before_bind()  # --chdir, --umask, user lookup, pid file check, --reload/--chroot check
        config = setup.config  # (--chroot made absolute)
        if config.chroot and config.mode == "process":
            from swserve.reactor import spool

            spool.ROOT = config.chroot  # the reactor spools bodies into DIR/tmp
        hooks = load_hooks(config.hooks)  # before any fork: every process shares the module
        listeners = open_listeners(config)
        metrics = _bind_metrics(config.metrics_bind)
        if config.static:  # after --chdir: relative directories are the app's
            config = _replace(config, static=_static_roots(config.static))
        # --daemon, --pid-file, the control socket (as root, given to --user), then the drop
        control_sock = setup.after_bind(listeners, lambda who: bind_control(config, who))
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    reactors = reactor_count(config)
    if reactors > 1:
        busy.create()  # before any fork: every reactor and worker shares it (ipc/busy.py)
    _import_before_fork()
    ipc_dir = tempfile.mkdtemp(prefix="swserve-")
    setup.own(ipc_dir)  # --chroot with --user: we create it as root, and remove it as the user
    ipc_paths = [os.path.join(ipc_dir, f"reactor-{i}.sock") for i in range(reactors)]
    ipc_socks = []
    for path in ipc_paths:  # one per reactor: every worker links to each
        ipc_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ipc_sock.bind(path)
        ipc_sock.listen(1024)
        ipc_socks.append(ipc_sock)
    if config.mode == Mode.PROCESS:  # the app's file responses come back as descriptors
        bind_inboxes(ipc_paths)
    task_sock = None  # --task-workers N: callers and task workers connect here (tasks/)
    if config.task_workers:
        task_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        task_sock.bind(os.path.join(ipc_dir, TASK_SOCKET_NAME))
        task_sock.listen(1024)
    ours, theirs = socket.socketpair()
    try:
        try:
            pid = os.fork()
        except OSError as exc:  # EAGAIN (RLIMIT_NPROC, pid limit) or ENOMEM: one line, exit 1
            log.error("cannot fork the manager: %s", exc.strerror or exc)
            return EXIT_ERROR
        if pid == 0:  # the manager
            code = EXIT_ERROR
            try:
                ours.close()
                for ipc_sock in ipc_socks:
                    ipc_sock.close()
                if task_sock is not None:
                    task_sock.close()
                inherited = []  # base mode: every worker accepts on the same sockets
                for listener in listeners:
                    if config.mode == Mode.BASE:
                        inherited.append(listener)
                    else:
                        listener.sock.close()
                if metrics is not None:
                    metrics.close()
                if control_sock is not None:
                    control_sock.sock.close()
                from swserve.manager.main import run as run_manager

                code = run_manager(config, ipc_paths, theirs, hooks, inherited)
            except BaseException:
                log.exception("the manager crashed")
            finally:
                os._exit(code)
        theirs.close()
        try:
            setup.after_manager()  # --chroot with --user: the manager stays root, we do not
        except ConfigError as exc:
            log.error("%s", exc)
            return EXIT_ERROR  # the manager sees its control socket close and stops
        # --reactors N: reactors 1 … N-1 in processes of their own, forked before our loop
        tls = listeners[0].ssl if listeners else None
        close = [ours, *(listener.sock for listener in listeners)]
        if metrics is not None:
            close.append(metrics.listener.sock)
        if control_sock is not None:
            close.append(control_sock.sock)
        if task_sock is not None:
            close.append(task_sock)
        try:
            children = fork_reactors(config, ipc_socks[1:], tls, close)
        except OSError as exc:  # the manager (and reactors forked so far) see us go: EOF
            log.error("cannot fork a reactor: %s", exc.strerror or exc)
            return EXIT_ERROR
        # SIGRTMIN: the manager passes it on to the workers
        forward_reopen(lambda: (pid, *(child.pid for child in children)))
        setup.in_master()  # the --reload watcher, --cpu-affinity of the reactor
        set_title("swserve: master")
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            master = Master(
                config,
                listeners,
                ipc_socks[0],
                ours,
                pid,
                hooks,
                metrics=metrics,
                children=children,
                control_sock=control_sock,
                task_sock=task_sock,
            )
            return loop.run_until_complete(master.main())
        finally:
            loop.close()
    finally:
        setup.close()
        if control_sock is not None:
            control_sock.close()
        shutil.rmtree(ipc_dir, ignore_errors=True)
        for listener in listeners:
            if listener.address.family == "unix":
                with contextlib.suppress(OSError):
                    os.unlink(listener.address.path)


def _bind_metrics(address: str) -> MetricsEndpoint | None:
    if not address:
        return None  # deferred: the endpoint module is only needed with --metrics-bind
    from swserve.metrics.endpoint import MetricsEndpoint

    return MetricsEndpoint.bind(address)


def _import_before_fork() -> None:
    """Import what every process uses before the first fork, so that each inherits it.

    The master makes its event loop and sets its title only after forking the
    manager; without this, the manager imported uvloop (for its workers) and
    setproctitle, and the master imported both again: ~3.5 ms and ~1 ms of
    start-up, twice.
    """
    for name in ("uvloop", "setproctitle"):  # both optional (process/loop.py, process/title.py)
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _replace(config: Config, **changes: object) -> Config:
    import dataclasses

    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


class Master:
    def __init__(
        self,
        config: Config,
        listeners: list[Listener],
        ipc_sock: socket.socket,
        channel: socket.socket,
        manager_pid: int,
        hooks: Hooks,
        metrics: MetricsEndpoint | None = None,
        children: list[ReactorChild] | None = None,
        control_sock: ControlSocket | None = None,
        task_sock: socket.socket | None = None,
    ) -> None:
        self.config = config
        self.task_sock = task_sock
        self.tasks: TaskServer | None = None  # the task broker, with --task-workers N
        self.user_process_restarts = 0
        self.children = children or []  # reactors 1 … N-1 (reactor/process.py)
        self.hooks = hooks
        self.server_info = HookServer(config, "master", os.getpid(), os.getpid())
        self.listeners = listeners
        self.ipc_sock = ipc_sock
        self.control = channel  # to the manager
        self.manager_pid = manager_pid
        self.commands: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self.ready: set[int] = set()
        self.announced = False
        self.stopping = False
        self.boot_error: str | None = None
        self.interface = "?"
        self.exit_code = EXIT_OK
        self.worker_pids: dict[int, int] = {}
        self.lost_pids: set[int] = set()
        self.boot_failed: dict[int, int] = {}  # pid → worker id, exited with code 3
        self.halt: tuple[int, str] | None = None
        self.stats = Stats()
        self.metrics = metrics
        self.control_sock = control_sock  # `swserve ctl` (master/control.py)
        self.control_server: ControlServer | None = None
        self._decoder = control.Decoder()  # the manager's messages
        self._child_pidfds: dict[int, int] = {}
        self._children_gone = asyncio.Event()
        if not self.children:
            self._children_gone.set()
        self._manager_gone = asyncio.Event()
        self._orphans: list[int] = []  # pidfds of workers left by a manager that died
        self._idle = asyncio.Event()

    # -- events (from signal handlers, the reactor, the manager) -------------------------------

    def _enqueue(self, kind: str, arg: object = None) -> None:
        self.commands.put_nowait((kind, arg))

    def _on_reactor_event(self, message: control.Message) -> None:
        if isinstance(message, control.Idle):
            self._idle.set()
            return
        if isinstance(message, control.Lost):
            # counted now, in the same step that took the link out of the reactor's
            # table: a queued count could miss a summary ("reload finished; N
            # requests served") taken between the two, which then lacked the old
            # worker's requests
            self.stats.worker_lost(message.pid, message.served)
        self._enqueue("message", message)

    def _on_control_readable(self) -> None:
        try:
            data = self.control.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        try:
            messages = self._decoder.feed(data)
        except control.ControlError as exc:  # nothing it says can be trusted now
            log.error("the manager sent a bad control message: %s: stopping", exc)
            self._shutdown(EXIT_ERROR)
            data = b""
            messages = []
        if not data:
            asyncio.get_running_loop().remove_reader(self.control)
            return
        for message in messages:
            self._enqueue("message", message)

    # -- main -------------------------------------------------------------------------------

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        config = self.config
        self.host = make_host(config, self._on_reactor_event, self.children)
        self.reactor = self.host.reactor
        await self.host.start(self.listeners, self.ipc_sock)
        if self.task_sock is not None:  # deferred: only with --task-workers N
            from swserve.tasks.server import TaskServer

            self.tasks = TaskServer(config, lambda message: self._enqueue("message", message))
            await self.tasks.start(self.task_sock)
        if self.metrics is not None:  # before the workers are ready: /readyz says "starting"
            from swserve.metrics.collect import collect, readiness
            from swserve.metrics.exposition import render

            await self.metrics.start(lambda: render(collect(self)), lambda: readiness(self))
        if self.control_sock is not None:
            self.control_server = ControlServer(
                self,
                self._tell_manager,
                self._handle_signal,
                os.path.dirname(self.ipc_sock.getsockname()),
            )
            await self.control_server.start(self.control_sock)
        self.control.setblocking(False)
        loop.add_reader(self.control, self._on_control_readable)
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self._enqueue, "signal", sig)
        for early in _early:  # those that came before the loop, in order
            self._enqueue("signal", early)
        _early.clear()
        # uvloop keeps SIGCHLD for itself, so the manager's exit is watched through a
        # pidfd, and orphans (when we are PID 1 in a container) are reaped by a timer.
        self._pidfd = os.pidfd_open(self.manager_pid)
        loop.add_reader(self._pidfd, self._enqueue, "reap")
        for child in self.children:  # reactors 1 … N-1
            fd = os.pidfd_open(child.pid)
            self._child_pidfds[child.pid] = fd
            loop.add_reader(fd, self._enqueue, "reap")
        if os.getpid() == 1:
            self._reap_orphans()
        while True:
            kind, arg = await self.commands.get()
            if kind == "stopped":
                break
            self._handle(kind, arg)
        return self.exit_code

    def _handle(self, kind: str, arg: object) -> None:
        if kind == "signal":
            assert isinstance(arg, int)
            self._handle_signal(arg)
        elif kind == "reap":
            self._reap()
        elif kind == "message":
            assert isinstance(arg, control.Message)
            self._handle_message(arg)

    def _tell_manager(self, message: control.Message) -> None:
        with contextlib.suppress(OSError):
            self.control.sendall(control.encode(message))

    def _handle_message(self, message: control.Message) -> None:
        """A message from a reactor, the manager or the task broker."""
        match message:
            # -- from the reactors
            case control.Ready(worker_id=worker_id, pid=pid, interface=interface):
                self.ready.add(worker_id)
                self.worker_pids[worker_id] = pid
                self.stats.worker_ready(worker_id, pid)
                self.interface = interface
                self._tell_manager(message)
                self._maybe_announce()
            case control.BootError(message=text):
                if not self.announced:
                    if self.boot_error is None:
                        self.boot_error = text
                        log.error("%s", text)
                        self._shutdown(EXIT_APP_LOAD)
                else:
                    log.error("a new worker could not load the app: %s", text)
            case control.Lost(pid=pid):
                if not self.announced:  # a start-up halt waits for these; later, none is kept
                    self.lost_pids.add(pid)
                    self._check_halt()
            case control.Served():
                self._tell_manager(message)
            case control.Timeout(pid=pid, graceful=graceful):
                if not graceful:
                    self.stats.worker_timed_out(pid)
                self._tell_manager(message)
            # -- from the task broker, for the manager
            case control.TaskReady() | control.TaskRecycle() | control.TaskTimeout():
                self._tell_manager(message)
                self._maybe_announce()
            # -- from the manager
            case control.Term():
                self._handle_signal(signal.SIGTERM)
            case control.Quit():
                self._handle_signal(signal.SIGQUIT)
            case control.Retire(pid=pid, reason=reason):
                self.host.retire(message)
                self.stats.worker_retired(pid, reason)
            case control.Watch(pid=pid, count=count):
                self.host.watch(pid, count)
            case control.Reloaded():
                self.stats.reloads += 1
                log.info("reload finished; %s", self.stats.summary(self.reactor))
            case control.TaskRetire(pid=pid):
                if self.tasks is not None:
                    self.tasks.retire(pid)
            case control.TaskReloaded():
                log.info("task worker reload finished")
            case control.ProcessRestart():
                self.user_process_restarts += 1
            case control.BackingOff(slot=slot, failures=failures):
                self.stats.worker_backoff(slot, failures)
            case control.Halt(code=code, message=text):
                self.halt = (code, text)
                self._check_halt()
            case control.Exit(slot=worker_id, pid=pid, code=code):
                self.stats.worker_exited(pid, stopping=self.stopping)
                self.host.watch(pid, 0)
                if self.worker_pids.get(worker_id) == pid:
                    self.ready.discard(worker_id)
                if code == EXIT_APP_LOAD and not self.announced:  # only a start-up halt waits
                    self.boot_failed[pid] = worker_id
                self._check_halt()
            case _:
                log.error("the master got %r, which is not for it", message)

    def _check_halt(self) -> None:
        """Stop with the manager's exit code once every failed worker has said why.

        A worker's BOOT_ERROR frame is read before its link's EOF ("lost"), so
        waiting for the EOF of each worker that exited with code 3 makes sure
        the reason is printed, whichever channel is faster.
        """
        if self.halt is None or any(pid not in self.lost_pids for pid in self.boot_failed):
            return
        code, message = self.halt
        if not self.stopping:
            if self.boot_error is None:
                log.error("%s", message)
            self._shutdown(code)

    def _handle_signal(self, sig: int) -> None:
        if sig == signal.SIGQUIT:
            # gunicorn's quick shutdown: no drain, in-flight requests are cut off
            if not self.stopping:
                log.info("SIGQUIT: shutting down now, without draining")
                self._shutdown(EXIT_OK, drain=False)
            return
        if sig in (signal.SIGTERM, signal.SIGINT):
            if self.stopping and sig == signal.SIGINT:
                self._force_exit()
            elif not self.stopping:
                log.info("%s: shutting down gracefully", signal.Signals(sig).name)
                self._shutdown(EXIT_OK)
        elif self.stopping:
            return
        elif sig in (signal.SIGHUP, signal.SIGUSR1):
            log.info("%s: reloading the workers", signal.Signals(sig).name)
            self._tell_manager(control.Reload())
        elif sig == signal.SIGUSR2 and self.tasks is not None:
            log.info("SIGUSR2: reloading the task workers")
            self._tell_manager(control.TaskReload())
        elif sig == signal.SIGTTIN:
            self._tell_manager(control.Scale(1))
        elif sig == signal.SIGTTOU:
            self._tell_manager(control.Scale(-1))
        elif sig == signal.SIGUSR2:
            # Swoole reloads its task workers on SIGUSR2; swserve has none
            log.info("SIGUSR2: there are no task workers to reload; ignored")

    def _maybe_announce(self) -> None:
        """Once every worker, and every task worker, is ready."""
        if self.announced or len(self.ready) < self.config.workers:
            return
        if self.tasks is None or self.tasks.broker.alive() >= self.config.task_workers:
            self._announce()

    def _announce(self) -> None:
        self.announced = True
        config = self.config
        for listener in self.listeners:
            log.info("Listening on %s", listener.url)
        log.info(
            "swserve %s: %s mode, %s app %r, %d worker%s (%sdispatch %s, parser %s)",
            __version__,
            config.mode,
            self.interface,
            config.app,
            config.workers,
            "" if config.workers == 1 else "s",
            f"{len(self.children) + 1} reactors, " if self.children else "",
            config.dispatch,
            config.http,
        )
        if self.control_server is not None:
            self.control_server.announce()
        if config.task_workers or config.process:
            users = ", ".join(config.process) or "none"
            log.info("%d task worker(s), user processes: %s", config.task_workers, users)
        if not self.hooks.call("on_master_start", self.server_info):
            self._shutdown(EXIT_APP_LOAD)
            return
        if config.ready_file:
            Path(config.ready_file).write_text(
                "".join(f"{listener.url}\n" for listener in self.listeners)
            )

    def _reap(self) -> None:
        for pid, status in reap_nowait():
            if pid == self.manager_pid:
                asyncio.get_running_loop().remove_reader(self._pidfd)
                os.close(self._pidfd)
                self._manager_gone.set()
                if not self.stopping:
                    # Nobody can fork, reap or replace workers now, and a manager cannot
                    # be forked again from this process (its loop and threads exist):
                    # the workers serve what they hold, then the server stops with 1 so
                    # that systemd, Kubernetes or Docker start it afresh, as they would
                    # for gunicorn, whose arbiter is its master.
                    log.error(
                        "the manager (pid %d) died unexpectedly (status %d): finishing the "
                        "requests in flight, then stopping (exit 1)",
                        pid,
                        status,
                    )
                    self._orphans = self._worker_pidfds()
                    self._shutdown(EXIT_ERROR, drain=True)
            elif pid in self._child_pidfds:
                fd = self._child_pidfds.pop(pid)
                asyncio.get_running_loop().remove_reader(fd)
                os.close(fd)
                if not self._child_pidfds:
                    self._children_gone.set()
                if not self.stopping:
                    index = next(c.index for c in self.children if c.pid == pid)
                    log.error(
                        "reactor %d (pid %d) died unexpectedly (status %d): stopping",
                        index,
                        pid,
                        status,
                    )
                    self._shutdown(EXIT_ERROR, drain=False)
            # any other pid: an orphan re-parented to us because we are PID 1

    def _reap_orphans(self) -> None:
        self._reap()
        asyncio.get_running_loop().call_later(1.0, self._reap_orphans)

    # -- shutdown ---------------------------------------------------------------------------

    def _shutdown(self, code: int, *, drain: bool | None = None) -> None:
        """Stop with ``code``; ``drain`` (default: only for a clean stop) lets requests finish."""
        if self.stopping:
            return
        self.stopping = True
        self.exit_code = code
        drain = code == EXIT_OK if drain is None else drain
        asyncio.get_running_loop().create_task(self._stop(code, drain))

    def _worker_pidfds(self) -> list[int]:
        """pidfds of the workers we know: ours to end if the manager is not there to."""
        fds = []
        for pid in {*self.worker_pids.values(), *self.stats.workers}:
            with contextlib.suppress(OSError):
                fds.append(os.pidfd_open(pid))
        return fds

    async def _end_orphans(self, grace: float) -> None:
        """Stop the workers the dead manager left, as it would have: SIGTERM, SIGKILL later."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        for fd in self._orphans:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGTERM)
        for fd in self._orphans:
            gone = asyncio.Event()
            loop.add_reader(fd, gone.set)
            try:
                await asyncio.wait_for(gone.wait(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
            finally:
                loop.remove_reader(fd)
                os.close(fd)
        self._orphans = []

    async def _stop(self, code: int, drain: bool) -> None:
        # --graceful-timeout, or longer for WebSocket sessions: 1001 after --ws-drain-timeout
        timeout = self.config.stop_wait
        self.host.stop_accepting()
        if drain:
            self.host.drain()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                log.warning(
                    "graceful timeout: %d connection(s) still busy", self.host.connections()
                )
            if self.tasks is not None:  # queued and running tasks, within the same timeout
                await self.tasks.drain(max(0.0, deadline - loop.time()))
        if not self._manager_gone.is_set():
            with contextlib.suppress(OSError):
                self.control.sendall(control.encode(control.Stop(now=not drain)))
            try:
                await asyncio.wait_for(self._manager_gone.wait(), timeout + 5)
            except TimeoutError:
                log.error("the manager did not stop in time: killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.manager_pid, signal.SIGKILL)
                await self._manager_gone.wait()
        self.host.close()
        if self.tasks is not None:
            self.tasks.close()
        try:  # reactors 1 … N-1 exit once told to close
            await asyncio.wait_for(self._children_gone.wait(), 5)
        except TimeoutError:
            for pid in self._child_pidfds:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await self._children_gone.wait()
        if self._orphans:
            await self._end_orphans(timeout)
        if self.metrics is not None:
            self.metrics.close()
        if self.control_server is not None:
            self.control_server.close()
        if code == EXIT_OK:
            log.info("stopped; %s", self.stats.summary(self.reactor))
        self.hooks.call("on_shutdown", self.server_info)
        self._enqueue("stopped")

    def _force_exit(self) -> None:
        log.warning("second SIGINT: exiting now")
        children = [child.pid for child in self.children]
        for pid in [self.manager_pid, *children, *self.worker_pids.values()]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.exit_code = EXIT_ERROR
        self._enqueue("stopped")
