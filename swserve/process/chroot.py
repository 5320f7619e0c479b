"""``--chroot DIR``: each worker changes its root directory once the app is loaded.

Swoole's ``chroot`` and uWSGI's.  The order in a worker (``confine``):

1. connect to the reactor(s) by path and say HELLO (outside the chroot: the
   private IPC socket is in ``$TMPDIR``);
2. import the app, run ``on_worker_start``, and for ASGI the lifespan startup,
   all with the whole file system in view;
3. **chroot** to DIR and ``chdir("/")``, still root;
4. drop to ``--user``/``--group`` (looked up before the chroot: the passwd and
   group files need not be inside), then say READY and serve.

The master, the reactors and the manager are not chrooted.  Without
``--chroot`` the master drops to ``--user`` right after binding, and every
process inherits that; with ``--chroot`` and ``--user`` a worker must still be
root when it chroots, so the manager (which forks the workers) keeps root
while the master drops right after forking it, before its event loop or any
reactor reads a byte from the network (docs/processes.md).

``check`` runs in the master before anything forks, so a server that cannot
chroot fails at start-up with one line rather than with every worker.
"""

from __future__ import annotations

import os
import stat
import tempfile

from swserve.config import Config
from swserve.errors import AppLoadError, ConfigError
from swserve.process import privileges

CAP_SYS_CHROOT = 18  # linux/capability.h


def check(path: str, *, spool: bool) -> str:
    """The absolute path of a usable ``--chroot`` directory.

    ``spool``: request bodies may be spooled (``--body-spool-size`` > 0), into
    DIR/tmp, which must exist then.

    Raises:
        ConfigError: not privileged to chroot, or the directory is unusable.
    """
    if not can_chroot():
        raise ConfigError(
            f"--chroot needs root (CAP_SYS_CHROOT); swserve runs as uid {os.geteuid()} without it"
        )
    where = os.path.abspath(path)
    try:
        mode = os.stat(where).st_mode
    except OSError as exc:
        raise ConfigError(f"--chroot {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(mode):
        raise ConfigError(f"--chroot {path}: not a directory")
    if where == "/":
        raise ConfigError("--chroot /: the root directory is no confinement")
    if spool and not os.path.isdir(os.path.join(where, "tmp")):
        raise ConfigError(
            f"--chroot {path}: {os.path.join(where, 'tmp')} is missing; request bodies over "
            "--body-spool-size are spooled there (create it, writable by the server's user, "
            "or give --body-spool-size 0)"
        )
    return where


def check_spool(where: str) -> None:
    """Can this process (with its final identity) write a spool file into DIR/tmp?

    Raises:
        ConfigError: it cannot; every large request body would fail.
    """
    tmp = os.path.join(where, "tmp")
    try:
        fd, name = tempfile.mkstemp(prefix="swserve-check-", dir=tmp)
    except OSError as exc:
        raise ConfigError(
            f"--chroot {where}: cannot write request-body spool files into {tmp} as uid "
            f"{os.geteuid()}: {exc.strerror or exc} (make it writable, or give "
            "--body-spool-size 0)"
        ) from None
    os.close(fd)
    os.unlink(name)


def can_chroot() -> bool:
    """Does this process hold CAP_SYS_CHROOT (root usually does; a container may drop it)?"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_CHROOT & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def confine(config: Config) -> None:
    """In a worker, once the app is loaded and before READY: chroot, then drop privileges.

    A worker calls it once, in every mode, when ``--chroot`` is given.

    Raises:
        AppLoadError: the chroot or the switch of user failed: a boot failure,
            reported like one (the master checked both at start-up, so this
            means the directory went away, or the like).
    """
    try:
        identity = privileges.resolve(config.user, config.group)
        groups = privileges.groups_of(identity)  # /etc/group need not be inside
        try:
            os.chroot(config.chroot)
            os.chdir("/")  # else the working directory is a way out
        except OSError as exc:
            raise ConfigError(f"--chroot {config.chroot}: {exc.strerror or exc}") from None
        tempfile.tempdir = "/tmp"  # noqa: S108 - inside the chroot: DIR/tmp, checked at start-up
        privileges.drop(identity, groups)
    except ConfigError as exc:
        raise AppLoadError(str(exc)) from None
