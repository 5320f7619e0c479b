"""Static files, the filesystem part: open what :func:`resolve.locate` named, safely.

Every check is made on the descriptor actually opened, not on a path looked at
before (no time-of-check/time-of-use gap):

- the file is opened ``O_NONBLOCK`` (a FIFO does not hang the loop) and
  ``fstat``-ed: only a regular file is served; a directory is served through
  its index file, if one is configured; a FIFO, a device or a socket never;
- where it really is (``/proc/self/fd/N``) must lie under the mount's root,
  unless ``--static-follow-symlinks``: a symlink inside the tree that points
  inside it is fine, one that points out is refused;
- before opening, a ``stat`` (through symlinks) refuses device files, so
  that opening one cannot have side effects (a tape rewinding, a tty).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from swserve.static.resolve import FileInfo, Mount, Rules

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)


class NotFound(Exception):
    """Nothing there: fall through to the app (or 404 with --static-fallthrough no)."""


class Forbidden(Exception):
    """Something there we refuse to serve (outside the root, a dotfile, a device): 404."""


class IsDirectory(Exception):
    """A directory with an index file, named without the trailing slash: redirect."""


@dataclass(slots=True)
class OpenFile:
    fd: int
    info: FileInfo
    ident: tuple[int, int, int, int] = (0, 0, 0, 0)  # device, inode, size, mtime: "unchanged?"


def _open_regular(path: str, root: str, follow: bool) -> tuple[int, os.stat_result]:
    try:
        pre = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound from None
    except OSError:
        raise Forbidden from None
    if not (stat.S_ISREG(pre.st_mode) or stat.S_ISDIR(pre.st_mode)):
        raise Forbidden  # never open a device, FIFO or socket
    try:
        fd = os.open(path, _FLAGS)  # symlinks followed: where it lands is checked below
    except FileNotFoundError:
        raise NotFound from None
    except OSError:
        raise Forbidden from None
    try:
        st = os.fstat(fd)
        if not follow and not _inside(fd, root):
            raise Forbidden
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _inside(fd: int, root: str) -> bool:
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return real == root or real.startswith(root + "/")


def open_file(
    mount: Mount, segments: list[str], slash: bool, rules: Rules, encodings: frozenset[str]
) -> OpenFile:
    """Open the file (or the precompressed sibling ``encodings`` allow) and describe it.

    Raises:
        NotFound, Forbidden, IsDirectory.
    """
    if not rules.allow_dotfiles and any(s.startswith(".") for s in segments):
        raise Forbidden
    root = mount.root
    path = os.path.join(root, *segments) if segments else root
    fd, st = _open_regular(path, root, rules.follow_symlinks)
    name = segments[-1] if segments else ""
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        if not rules.index:
            raise NotFound  # never a listing
        if not slash:
            if os.path.isfile(os.path.join(path, rules.index)):
                raise IsDirectory
            raise NotFound
        path = os.path.join(path, rules.index)
        name = rules.index
        fd, st = _open_regular(path, root, rules.follow_symlinks)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise NotFound
    elif not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise Forbidden
    variants = False
    for suffix, coding in ((".br", "br"), (".gz", "gzip")):
        sibling = path + suffix
        try:
            sst = os.stat(sibling)
        except OSError:
            continue
        if not stat.S_ISREG(sst.st_mode):
            continue
        variants = True
        if coding not in encodings:
            continue
        try:
            vfd, vst = _open_regular(sibling, root, rules.follow_symlinks)
        except (NotFound, Forbidden):
            continue
        if not stat.S_ISREG(vst.st_mode):
            os.close(vfd)
            continue
        os.close(fd)
        info = FileInfo(name, vst.st_size, vst.st_mtime_ns, coding, True)
        return OpenFile(vfd, info, _ident(vst))
    return OpenFile(fd, FileInfo(name, st.st_size, st.st_mtime_ns, "", variants), _ident(st))


def _ident(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
