"""The master's control socket: ``swserve ctl`` and ``swserve top`` talk to it.

A unix socket (``--control-socket``; where ``auto`` puts it: control/paths.py),
bound after the process has dropped to ``--user`` and before the manager is
forked, served on the master's loop.  Each connection sends JSON lines and
gets one JSON line back per request (control/protocol.py has the format and
the command table).

Security: the socket is 0600, and each peer's uid (SO_PEERCRED) must be the
server's or root's, else the connection gets one error line and is closed.
No command takes a path or code; ``slowlog`` reads a file the worker writes in
the master's private IPC directory, named by the worker's pid.

Commands act through the same paths as signals do: the master → manager
control lines (``reload``, ``scale``, ``recycle PID REASON``, and
``scale-to N``, which this socket adds), so a recycle is the graceful one
(replacement first) and a reload is SIGHUP's.

Resource handling: the socket file is removed by :meth:`ControlSocket.close`
(called from ``master/main.py: run``'s ``finally``) only if it is still the
one we bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swserve.config import Config
from swserve.control import paths, procinfo
from swserve.control.protocol import (
    COMMANDS,
    MAX_REQUEST,
    ControlError,
    Request,
    decode_request,
    encode_error,
    encode_ok,
)
from swserve.errors import ConfigError
from swserve.ipc import control as plane
from swserve.process.shared import DUMP_SIGNAL

if TYPE_CHECKING:
    from swserve.master.control_views import ControlledMaster
    from swserve.process.privileges import Identity

log = logging.getLogger("swserve.error")

MAX_WORKERS = 1024  # `scale N` beyond this is a typo, not a plan
DUMP_WAIT = 5.0  # seconds a worker gets to write its stack for `slowlog`
REFUSAL_WAIT = 1.0  # seconds a refused client gets to send its request before the close
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass
class ControlSocket:
    """The bound, listening control socket and the file it made."""

    sock: socket.socket
    path: Path
    inode: int = field(default=0)

    def close(self) -> None:
        self.sock.close()
        try:
            if os.stat(self.path).st_ino == self.inode:  # not a successor's socket
                self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # as for the pid file: the next start replaces it
            log.warning(
                "could not remove the control socket %s: %s (with --user, make its "
                "directory writable by that user)",
                self.path,
                exc.strerror or exc,
            )


def bind(config: Config, owner: Identity | None = None) -> ControlSocket | None:
    """Bind ``--control-socket`` (None when ``none``); ConfigError with one line if it
    cannot be (for ``auto``, a warning and no socket: it is an aid, not the service).

    Called where the pid file is written: in the final process (after --daemon)
    and before the drop to ``owner`` (--user/--group), who is given the socket,
    so that it can be beside a pid file in a directory only root may write.
    """
    try:
        path = paths.socket_path(config.control_socket, config.pid_file, os.getpid())
        if path is None:
            return None
        if config.control_socket == "auto" and not config.pid_file:
            paths.remove_stale(path.parent)
        control = _bind(path)
        if owner is not None and owner.changes:
            uid = -1 if owner.uid is None else owner.uid
            os.chown(path, uid, -1 if owner.gid is None else owner.gid)
        return control
    except ConfigError as exc:
        if config.control_socket != "auto":
            raise
        log.warning("no control socket: %s", exc)
        return None


def _bind(path: Path) -> ControlSocket:
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            with contextlib.suppress(OSError):  # a stale socket of a server that died
                if path.is_socket():
                    path.unlink()
        else:
            raise ConfigError(f"--control-socket {path}: another server is listening there")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # created 0600: no window in which another user may connect
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--control-socket {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(64)
    sock.setblocking(False)
    return ControlSocket(sock, path, os.stat(path).st_ino)


class ControlServer:
    """Serves the control socket on the master's loop.

    ``tell_manager`` sends one master → manager control message; ``send_signal``
    runs the master's handling of a signal (``reload --task-workers`` is SIGUSR2's).
    """

    def __init__(
        self,
        master: ControlledMaster,
        tell_manager: Callable[[plane.Message], None],
        send_signal: Callable[[int], None],
        dump_dir: str,
    ) -> None:
        self.master = master
        self.tell_manager = tell_manager
        self.send_signal = send_signal
        self.dump_dir = dump_dir
        # imported only with a control socket (the metrics collector comes with them)
        from swserve.master import control_views as views

        self.meter = procinfo.CpuMeter()
        self.pending: dict[int, str] = {}  # pid → a recycle asked for over this socket
        self._server: asyncio.AbstractServer | None = None
        self.path: Path | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "stats": lambda args: views.stats(master),
            "workers": lambda args: views.workers(master, self.meter, self._pending()),
            "processes": lambda args: views.processes(master, self.meter, self._pending()),
            "reload": self._reload,
            "scale": self._scale,
            "recycle": self._recycle,
            "sessions": lambda args: views.sessions(master),
        }

    async def start(self, control: ControlSocket) -> None:
        self._server = await asyncio.start_unix_server(
            self._serve, sock=control.sock, limit=MAX_REQUEST
        )
        self.path = control.path

    def announce(self) -> None:
        """The start-up log's line, said with "Listening on" (a boot failure stays one line)."""
        log.info("control socket: %s (swserve ctl, swserve top)", self.path)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    # -- connections ------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            refusal = self._refusal(writer.get_extra_info("socket"))
            if refusal:
                writer.write(encode_error(refusal))
                await writer.drain()
                # let its request in before closing: a close with unread input
                # would reset the connection, and the client lose the answer
                with contextlib.suppress(TimeoutError, ValueError, asyncio.LimitOverrunError):
                    await asyncio.wait_for(reader.readline(), REFUSAL_WAIT)
                return
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(encode_error(f"request longer than {MAX_REQUEST} bytes"))
                    await writer.drain()
                    return
                if not line:
                    return
                writer.write(await self.answer(line))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    @staticmethod
    def _refusal(sock: socket.socket) -> str:
        pid, uid, _gid = _PEERCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
        if uid in (0, os.geteuid()):
            return ""
        log.warning("control socket: refused pid %d of uid %d", pid, uid)
        return f"permission denied: uid {uid} is neither the server's user nor root"

    async def answer(self, line: bytes) -> bytes:
        """One request line → one response line (errors included)."""
        try:
            request = decode_request(line)
            if self.master.stopping and COMMANDS[request.cmd].steers:
                raise ControlError("the server is shutting down")
            return encode_ok(await self._run(request))
        except ControlError as exc:
            return encode_error(str(exc))
        except Exception as exc:  # a bug in a view must not cost the master its loop
            log.exception("control socket: %s failed", line[:200])
            return encode_error(f"internal error: {exc!r} (see the server's log)")

    async def _run(self, request: Request) -> Any:
        if request.cmd == "slowlog":
            return await self._slowlog(request.args)
        return self._handlers[request.cmd](request.args)

    # -- commands ----------------------------------------------------------------------

    def _pending(self) -> dict[int, str]:
        live = {link.pid for link in self.master.reactor.links.values()}
        for pid in set(self.pending) - live:
            del self.pending[pid]
        return self.pending

    def _slot(self, args: dict[str, Any]) -> tuple[int, int]:
        """(slot, pid) of the serving worker in ``args["slot"]``."""
        if "slot" not in args:
            raise ControlError("give the worker's slot (swserve ctl workers lists them)")
        number = args["slot"]
        for link in self.master.reactor.links.values():
            if link.worker_id == number and link.slot is not None and not link.slot.retiring:
                return number, link.pid
        raise ControlError(f"there is no serving worker in slot {number}")

    def _reload(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("task_workers"):
            if not getattr(self.master.config, "task_workers", 0):
                raise ControlError("this server has no task workers (--task-workers)")
            log.info("control socket: reloading the task workers")
            self.send_signal(signal.SIGUSR2)
            return {"reloading": "task workers"}
        links = [w for w in self.master.reactor.links.values() if w.slot and not w.slot.retiring]
        for link in links:
            self.pending.setdefault(link.pid, "reload")
        log.info("control socket: reloading the workers")
        self.tell_manager(plane.Reload())
        return {"reloading": len(links)}

    def _scale(self, args: dict[str, Any]) -> dict[str, Any]:
        if ("to" in args) == ("by" in args):
            raise ControlError("scale takes either to (N) or by (+K/-K)")
        if "to" in args:
            target = args["to"]
            if not 1 <= target <= MAX_WORKERS:
                raise ControlError(f"scale: the number of workers must be 1 … {MAX_WORKERS}")
            log.info("control socket: scaling to %d worker(s)", target)
            self.tell_manager(plane.ScaleTo(target))
            return {"to": target}
        delta = args["by"]
        if not delta or abs(delta) > MAX_WORKERS:
            raise ControlError(f"scale: by must be ±1 … ±{MAX_WORKERS}")
        log.info("control socket: scaling by %+d worker(s)", delta)
        for _ in range(abs(delta)):
            self.tell_manager(plane.Scale(1 if delta > 0 else -1))
        return {"by": delta}

    def _recycle(self, args: dict[str, Any]) -> dict[str, Any]:
        slot, pid = self._slot(args)
        self.pending[pid] = "manual"
        log.info("control socket: recycling worker %d (pid %d)", slot, pid)
        self.tell_manager(plane.Recycle(pid, plane.Reason.MANUAL))
        return {"slot": slot, "pid": pid}

    async def _slowlog(self, args: dict[str, Any]) -> dict[str, Any]:
        from swserve.master.control_views import current_request
        from swserve.worker.slowlog import dump_path

        slot, pid = self._slot(args)
        link = next(link for link in self.master.reactor.links.values() if link.pid == pid)
        target = dump_path(self.dump_dir, pid)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)
        try:
            os.kill(pid, DUMP_SIGNAL)
        except ProcessLookupError:
            raise ControlError(f"worker {slot} (pid {pid}) has just exited") from None
        current = current_request(link, time.monotonic())
        if self.master.config.chroot:
            # the worker has chrooted away from our directory: the log has its stack
            note = "(--chroot: the worker wrote its stack to the server's log only)\n"
            return {"slot": slot, "pid": pid, "current": current, "stack": note}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DUMP_WAIT
        while (stack := _take(target)) is None:
            if loop.time() >= deadline:
                raise ControlError(
                    f"worker {slot} (pid {pid}) did not write its stack within {DUMP_WAIT:g}s "
                    "(is its main thread stuck in C code?)"
                )
            await asyncio.sleep(0.02)  # a signal has no reply: look for the file
        return {
            "slot": slot,
            "pid": pid,
            "current": current,
            "stack": stack,
        }


def _take(path: str) -> str | None:
    """The dump at ``path`` (removed), or None while the worker has not written it."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return text
