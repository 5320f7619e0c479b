"""``--reload``: a small watcher process that asks the master for a graceful reload.

The watcher is a child of the master, forked right after the manager and
before the master's event loop exists, so the master gains no thread (a
thread in the master before a fork is what architecture.md rules out).
watchfiles' Rust notifier runs in the watcher alone.  When a watched file
changes, the watcher logs which ones and sends the master **SIGHUP**: the
same graceful reload as ``kill -HUP``, through the same code, so in-flight
requests finish on the old workers and nothing is dropped.

The watcher stops with the master: the master sends it SIGTERM and reaps it
on every exit path (:meth:`Reloader.stop`), and ``PR_SET_PDEATHSIG`` ends it
if the master is killed outright.

Which files count is decided by :class:`ReloadFilter`, a pure function of the
path (unit-tested): ``*.py`` by default, never hidden files or directories,
``*.pyc`` or ``__pycache__``; ``--reload-include`` adds patterns (and wins
over those default exclusions for the file's own name, so ``.env`` can be
watched), ``--reload-exclude`` adds exclusions, which always win.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path, PurePath
from typing import Any, Final

from swserve.config import Config
from swserve.errors import ConfigError
from swserve.process.shared import ignore_master_signals
from swserve.process.title import set_title

log = logging.getLogger("swserve.error")

DEFAULT_INCLUDE: Final = ("*.py",)
DEFAULT_EXCLUDE: Final = (".*", "*.pyc", "__pycache__")
STOP_TIMEOUT: Final = 5.0  # seconds the watcher gets to exit on SIGTERM before SIGKILL
_PR_SET_PDEATHSIG: Final = 1


def _matches(text: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(text, pattern) for pattern in patterns)


class ReloadFilter:
    """Whether a change to a path should reload the workers (sans-IO)."""

    def __init__(
        self, roots: Sequence[str], include: Sequence[str], exclude: Sequence[str]
    ) -> None:
        # deepest root first, so a path is made relative to the root nearest to it
        self.roots = sorted((PurePath(root) for root in roots), key=lambda p: -len(p.parts))
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def _relative(self, path: str) -> PurePath:
        pure = PurePath(path)
        for root in self.roots:
            if pure.is_relative_to(root):
                return pure.relative_to(root)
        return pure

    def __call__(self, _change: object, path: str) -> bool:
        rel = self._relative(path)
        if not rel.parts:
            return False
        *dirs, name = rel.parts
        text = rel.as_posix()
        if _matches(text, self.exclude) or any(_matches(p, self.exclude) for p in rel.parts):
            return False  # the user's exclusions always win
        if any(_matches(d, DEFAULT_EXCLUDE) for d in dirs):
            return False  # inside .git, .venv, __pycache__ …
        if _matches(name, self.include) or _matches(text, self.include):
            return True
        return not _matches(name, DEFAULT_EXCLUDE) and _matches(name, DEFAULT_INCLUDE)


def watch_dirs(config: Config) -> list[str]:
    """The absolute directories to watch (default: the working directory).

    Raises:
        ConfigError: a --reload-dir that is not a directory.
    """
    dirs = []
    for given in config.reload_dir or (".",):
        path = Path(given).absolute()
        if not path.is_dir():
            raise ConfigError(f"--reload-dir {given}: not a directory")
        dirs.append(str(path))
    return dirs


def check_available() -> None:
    """Import watchfiles now, so its absence is one line at start-up.

    Raises:
        ConfigError: watchfiles is not installed.
    """
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--reload needs the watchfiles package: pip install 'swserve[reload]'"
        ) from None


class Reloader:
    """The master's handle on its watcher process."""

    def __init__(self, config: Config) -> None:
        self.dirs = watch_dirs(config)
        self.filter = ReloadFilter(self.dirs, config.reload_include, config.reload_exclude)
        self.pid = 0
        self._pidfd = -1

    def start(self) -> None:
        """Fork the watcher.  Call while the master has a single thread."""
        master = os.getpid()
        # A change seen before the master's loop has installed its SIGHUP handler
        # must not kill the master (SIGHUP's default action): ignore it until then.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _run_watcher(master, self.dirs, self.filter)
                code = 0
            except BaseException:
                log.exception("the reloader crashed")
            finally:
                os._exit(code)
        self.pid = pid
        # a pidfd names this very process even after something else reaps it, so
        # stop() can never signal a recycled pid
        self._pidfd = os.pidfd_open(pid)
        log.info(
            "reloader (pid %d) watching %s; changes reload the workers",
            pid,
            ", ".join(self.dirs),
        )

    def stop(self) -> None:
        """SIGTERM the watcher, wait for it (SIGKILL after STOP_TIMEOUT), reap it."""
        if self._pidfd < 0:
            return
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGTERM)
        if not select.select([self._pidfd], [], [], STOP_TIMEOUT)[0]:
            log.warning("the reloader (pid %d) did not stop: killing it", self.pid)
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            select.select([self._pidfd], [], [], STOP_TIMEOUT)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)  # unless the master's reaper got it first
        os.close(self._pidfd)
        self._pidfd = -1


def _die_with(parent: int) -> bool:
    """Ask the kernel for SIGTERM when the parent dies; False if it already has."""
    libc: Any = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return os.getppid() == parent


def _run_watcher(master: int, dirs: list[str], keep: ReloadFilter) -> None:
    set_title("swserve: reloader")
    ignore_master_signals()  # Ctrl-C reaches the whole group: the master stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not _die_with(master):
        return
    import watchfiles

    # a directory the (possibly --user) watcher may not read is skipped, not fatal
    changes_seen = watchfiles.watch(
        *dirs, watch_filter=keep, raise_interrupt=False, ignore_permission_denied=True
    )
    for changes in changes_seen:
        names = sorted({_shown(path, dirs) for _, path in changes})
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        log.info("reloader: %s changed%s; reloading the workers", ", ".join(names[:5]), more)
        try:
            os.kill(master, signal.SIGHUP)
        except ProcessLookupError:
            return  # the master is gone


def _shown(path: str, dirs: list[str]) -> str:
    for root in dirs:
        if path.startswith(root + os.sep):
            return path[len(root) + 1 :]
    return path
