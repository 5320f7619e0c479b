"""The process settings, applied in the master at the right moments of start-up.

``master/main.py`` calls four methods, in this order:

=====================  ==================================================================
``before_bind()``      ``--chdir``, ``--umask``; look ``--user``/``--group`` up; refuse a
                       live ``--pid-file``; check that ``--reload`` and ``--chroot`` can
                       work.  Everything that can be wrong with the settings fails here,
                       in the terminal.
``after_bind(ls)``     ``--daemon`` (double fork), write ``--pid-file`` (as root, with the
                       daemon's pid), drop to ``--user``/``--group``.  The IPC socket is
                       created after this, so the unprivileged workers can reach it.  With
                       ``--chroot`` the drop waits for ``after_manager()`` (swserve/process/chroot.py)
``after_manager()``   right after the manager is forked: the deferred drop (``--chroot``)
``in_master()``        after the reactors are forked, before the event loop: fork the
                       ``--reload`` watcher, pin the reactor (``--cpu-affinity``)
``close()``            on every exit of the master: stop the watcher, remove the pid file
=====================  ==================================================================

Workers call :func:`in_worker` (``--cpu-affinity``), and with ``--chroot``
``chroot.confine`` once the app is loaded.  The manager needs nothing: it
inherits the working directory, umask and identity (root, with ``--chroot`` and
``--user``: it forks workers that must chroot).

The modules behind the settings (``daemon``, ``privileges``, ``reloader``,
``affinity``) are imported only when their setting is given: with none of
them, a start-up imports none of them (~3 ms, more when the source has to be
compiled).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from swserve.config import Config, parse_umask
from swserve.errors import ConfigError
from swserve.net.listeners import Listener

if TYPE_CHECKING:
    from swserve.process import daemon, privileges, reloader

T = TypeVar("T")

log = logging.getLogger("swserve.error")


class ProcessSetup:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.identity: privileges.Identity | None = None  # None: no --user/--group
        self.pid_file: daemon.PidFile | None = None
        self.reloader: reloader.Reloader | None = None
        self.deferred: privileges.Identity | None = None  # --chroot: drop in in_master()

    def before_bind(self) -> None:
        """Raises: ConfigError, naming the setting that cannot work."""
        config = self.config
        if config.chdir:
            self._chdir(config.chdir)
        if config.umask:
            os.umask(parse_umask(config.umask))
        if config.pid_file:  # relative to --chdir, like every other path setting
            from swserve.process import daemon

            self.pid_file = daemon.PidFile(config.pid_file)
        if config.user or config.group:
            from swserve.process import privileges

            self.identity = privileges.resolve(config.user, config.group)
            privileges.check_allowed(self.identity, os.geteuid(), os.getegid())
        if self.pid_file is not None:
            self.pid_file.check()
        if config.reload:
            from swserve.process import reloader

            reloader.check_available()
            self.reloader = reloader.Reloader(config)
        if config.chroot:  # relative to --chdir; workers get the absolute path
            from swserve.process import chroot

            where = chroot.check(config.chroot, spool=config.body_spool_size > 0)
            self.config = dataclasses.replace(config, chroot=where)  # master/main.py: spool.ROOT

    @staticmethod
    def _chdir(path: str) -> None:
        # gunicorn's --chdir: the app is imported relative to it, so it goes first
        # on sys.path too (``python -m`` put the old working directory there)
        try:
            os.chdir(path)
        except OSError as exc:
            raise ConfigError(f"--chdir {path}: {exc.strerror or exc}") from None
        here = os.getcwd()
        if here not in sys.path:
            sys.path.insert(0, here)

    def after_bind(
        self,
        listeners: list[Listener],
        before_drop: Callable[[privileges.Identity | None], T] | None = None,
    ) -> T | None:
        """Daemonize, write the pid file, call ``before_drop`` (still as root, in the
        final process: the control socket is bound there), drop privileges; return
        what ``before_drop`` returned.

        Raises:
            ConfigError: the pid file or the switch of user failed; the listeners
                are closed first (as ``bind`` does when it fails).
        """
        notifier: daemon.Notifier | None = None  # None: no --daemon, nobody to tell
        if self.config.daemon:
            from swserve.process import daemon

            notifier = daemon.daemonize(self.config.log_file)
        try:
            if self.pid_file is not None:
                self.pid_file.write()
            made = before_drop(self.identity) if before_drop is not None else None
            if self.identity is not None and self.config.chroot:
                self.deferred = self.identity  # the manager forks root workers, which chroot
            elif self.identity is not None:
                from swserve.process import privileges

                privileges.drop(self.identity)
        except ConfigError as exc:
            if notifier is not None:
                notifier.failed(str(exc))
            self._close_listeners(listeners)
            self.close()
            raise
        if notifier is not None:
            notifier.ready()
        return made

    @staticmethod
    def _close_listeners(listeners: list[Listener]) -> None:
        for listener in listeners:
            listener.sock.close()
            if listener.address.family == "unix":
                with contextlib.suppress(OSError):
                    os.unlink(listener.address.path)

    def own(self, path: str) -> None:
        """A directory the master makes while root but removes after its deferred drop."""
        identity = self.deferred
        if identity is not None:
            os.chown(
                path,
                -1 if identity.uid is None else identity.uid,
                -1 if identity.gid is None else identity.gid,
            )

    def after_manager(self) -> None:
        """``--chroot`` with ``--user``: the master's deferred drop, once the (root)
        manager is forked and before any reactor exists or reads from the network.

        Raises:
            ConfigError: the switch of user failed.
        """
        if self.deferred is not None:
            from swserve.process import privileges

            privileges.drop(self.deferred)
            self.deferred = None
        if self.config.chroot and self.config.body_spool_size:
            from swserve.process import chroot

            chroot.check_spool(self.config.chroot)  # as the user that will write there

    def in_master(self) -> None:
        """In the master, after the manager is forked and before any thread or loop."""
        if self.reloader is not None:
            self.reloader.start()
        if self.config.cpu_affinity:
            from swserve.process import affinity

            core = affinity.pin(1)  # one reactor today: reactor 1
            log.debug("reactor 1 pinned to CPU %d", core)

    def close(self) -> None:
        """Undo what the master set up; safe to call more than once."""
        if self.reloader is not None:
            self.reloader.stop()
        if self.pid_file is not None and (warning := self.pid_file.remove()):
            log.warning("%s", warning)


def in_worker(config: Config, worker_id: int) -> None:
    """Per-worker settings, applied first thing in a new worker."""
    if config.cpu_affinity:
        from swserve.process import affinity

        affinity.pin(worker_id)
