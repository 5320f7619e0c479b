"""``--daemon`` and ``--pid-file``: detach from the terminal, and say where the master is.

The master calls :func:`daemonize` once its listeners are bound, so a bad
address still fails in the terminal, with one line and exit code 1.  The
classic double fork follows (fork, ``setsid``, fork): the daemon is not a
session leader, so opening a terminal can never make it acquire one.

The command the user typed does not return at once: it waits on a pipe until
the daemon has written its pid file and dropped its privileges, then exits 0,
or prints the daemon's one-line error and exits 1.  That is what systemd's
``Type=forking`` expects (the pid file exists when the starting command
returns).  Errors after that point (an app that cannot be imported) go to
``--log-file``, or nowhere: the daemon's stdio is ``/dev/null`` without it.

:class:`PidFile` holds the master's pid.  A pid file left by a process that
is gone is replaced; one whose process is alive is an error, so two servers
cannot share a pid file by mistake.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from swserve.errors import EXIT_ERROR, EXIT_OK, ConfigError

_OK = b"ok\n"


class Notifier:
    """The daemon's half of the pipe to the command that started it (a no-op without one)."""

    def __init__(self, fd: int = -1) -> None:
        self._fd = fd

    def ready(self) -> None:
        self._send(_OK)

    def failed(self, message: str) -> None:
        self._send(message.encode(errors="replace") + b"\n")

    def _send(self, data: bytes) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):  # the starting command was killed: nobody to tell
            os.write(self._fd, data)
        os.close(self._fd)
        self._fd = -1


def daemonize(log_file: str) -> Notifier:
    """Detach: return in the daemon (the future master); the other processes exit here.

    stdin becomes ``/dev/null``; stdout and stderr become ``log_file`` (appended
    to) when one is given, so that app output and tracebacks land next to the
    log lines, else ``/dev/null``.  The working directory is kept: relative
    paths in the settings (the app dir, --chdir) mean what they meant.

    Must be called while the process has a single thread (fork copies only one).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    first = os.fork()
    if first > 0:  # the command the user started
        os.close(write_end)
        os._exit(_wait_for_daemon(read_end, first))
    os.close(read_end)
    os.setsid()  # leave the terminal's session and process group
    if os.fork() > 0:
        os._exit(EXIT_OK)  # the session leader goes; the daemon can never get a terminal
    _redirect_stdio(log_file)
    return Notifier(write_end)


def _wait_for_daemon(read_end: int, child: int) -> int:
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child, 0)  # the intermediate process, which exits at once
    said = b"".join(chunks)
    if said == _OK:
        return EXIT_OK
    message = said.decode(errors="replace").strip() or "the daemon exited before it was ready"
    print(f"swserve: {message}", file=sys.stderr)
    return EXIT_ERROR


def _redirect_stdio(log_file: str) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    out = null
    if log_file:
        try:
            out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            out = null  # the log handler reports an unusable --log-file itself
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in {null, out}:
        if fd > 2:
            os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it just is not ours
    return True


class PidFile:
    """The file that holds the master's pid while it runs."""

    def __init__(self, path: str) -> None:
        self.path = Path(path).absolute()  # --chdir or a reload must not move it
        self._written: int | None = None

    def check(self) -> None:
        """Fail if the file names a live process; a stale one is left to :meth:`write`.

        Raises:
            ConfigError: another process (probably another swserve) holds the file.
        """
        try:
            text = self.path.read_text().strip()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigError(f"--pid-file {self.path}: {exc.strerror or exc}") from None
        if not text.isdigit():
            return  # not a pid: nobody can be using it
        pid = int(text)
        # Our own pid is stale by definition: a container's PID 1, restarted with
        # the file still on a volume, must not refuse to start forever.
        if pid not in (0, os.getpid()) and process_alive(pid):
            raise ConfigError(
                f"--pid-file {self.path}: process {pid} is running "
                "(another swserve?); stop it, or remove the file if it is not swserve"
            )

    def write(self) -> None:
        """Write this process's pid, replacing a stale file atomically.

        Raises:
            ConfigError: the file is live (see :meth:`check`) or cannot be written.
        """
        self.check()
        pid = os.getpid()
        temp = self.path.with_name(f".{self.path.name}.{pid}")
        try:
            temp.write_text(f"{pid}\n")
            os.replace(temp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise ConfigError(f"--pid-file {self.path}: {exc.strerror or exc}") from None
        self._written = pid

    def remove(self) -> str:
        """Remove the file if it still holds our pid; return a warning if that failed."""
        if self._written is None or self._written != os.getpid():
            return ""  # not ours to remove (a forked child, or never written)
        self._written = None
        try:
            if self.path.read_text().strip() != str(os.getpid()):
                return ""  # someone replaced it: theirs now
            self.path.unlink()
        except FileNotFoundError:
            return ""
        except OSError as exc:
            return (
                f"could not remove --pid-file {self.path}: {exc.strerror or exc} "
                "(with --user, make its directory writable by that user)"
            )
        return ""
