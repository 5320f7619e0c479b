"""Where a server's control socket lives, and how ``swserve ctl`` finds it.

``--control-socket auto`` (the default) picks, in order:

1. next to ``--pid-file``: ``/run/app.pid`` → ``/run/app.ctl.sock``;
2. ``$XDG_RUNTIME_DIR/swserve/PID.sock`` when that directory is ours;
3. ``/tmp/swserve-UID/PID.sock``, in a directory made 0700 and checked to be
   ours and not a symlink (a shared /tmp is where another user could plant one).

The socket itself is 0600 and the server checks each peer's uid (only its own
user and root): the directory is a second fence, not the only one.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Final

from swserve.errors import ConfigError

SUFFIX: Final = ".ctl.sock"


def runtime_dir() -> Path:
    """This user's private directory of control sockets (not created here)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if xdg:
        try:
            info = os.stat(xdg)
        except OSError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
            return Path(xdg) / "swserve"
    return Path("/tmp") / f"swserve-{os.geteuid()}"  # noqa: S108 (checked in ensure_private)


def ensure_private(directory: Path) -> None:
    """Make ``directory`` (mode 0700) or check that it is ours, 0700 and no symlink."""
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(directory)
    except OSError as exc:
        raise ConfigError(f"cannot make the control socket's directory {directory}: {exc}") from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ConfigError(f"{directory} is not a directory of this user: not used")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(f"{directory} is open to other users (mode {info.st_mode & 0o777:o})")


def beside_pid_file(pid_file: str) -> Path:
    path = Path(pid_file).absolute()
    stem = path.name[: -len(".pid")] if path.name.endswith(".pid") else path.name
    return path.with_name(stem + SUFFIX)


def socket_path(setting: str, pid_file: str, pid: int) -> Path | None:
    """The path the server binds for ``--control-socket`` (None: off)."""
    if setting == "none":
        return None
    if setting != "auto":
        return Path(setting).absolute()
    if pid_file:
        return beside_pid_file(pid_file)
    directory = runtime_dir()
    ensure_private(directory)
    return directory / f"{pid}.sock"


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def remove_stale(directory: Path) -> None:
    """Remove the sockets of servers that died without cleaning up (SIGKILL, a crash):
    their pid could be reused by a process that is no server."""
    for entry in directory.glob("*.sock"):
        if entry.stem.isdigit() and not alive(int(entry.stem)) and entry.is_socket():
            with contextlib.suppress(OSError):
                entry.unlink()


def find(control_socket: str = "", pid_file: str = "") -> Path:
    """The socket ``swserve ctl`` talks to: the one named, beside the pid file, or the
    only running server of this user; ConfigError with one line if there is none or several."""
    if control_socket:
        return Path(control_socket)
    if pid_file:
        return beside_pid_file(pid_file)
    directory = runtime_dir()
    found = [
        entry
        for entry in (sorted(directory.glob("*.sock")) if directory.is_dir() else [])
        if entry.stem.isdigit() and alive(int(entry.stem))
    ]
    if not found:
        raise ConfigError(
            f"no running swserve of this user has a socket in {directory}; "
            "give --pid-file or --control-socket"
        )
    if len(found) > 1:
        names = ", ".join(str(p) for p in found)
        raise ConfigError(f"several servers are running ({names}): give --control-socket")
    return found[0]
