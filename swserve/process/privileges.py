"""``--user`` / ``--group``: run the whole server unprivileged once the listeners are bound.

Swoole applies ``user``/``group`` to its worker processes only; its master
keeps root.  swserve drops privileges in the **master** too, and so in the
manager and every worker, which inherit them: the master's reactor is the
process that parses untrusted bytes from the network, so it is the one that
most needs to hold no root when a parser bug is found.  Root is needed only
for what happens before: binding ports below 1024, creating unix sockets and
the pid file where only root may write.

The costs, documented in docs/processes.md: at exit the master can remove the
pid file and unix socket files only from directories the user may write to
(a stale socket is removed by the next start anyway, and a stale pid file is
replaced), and a reopened log file must be writable by the user.

Names or numeric ids are accepted.  Without ``--group`` the user's primary
group is used; supplementary groups are set with ``initgroups`` (the user's
groups from /etc/group), so no group of root's is kept.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

from swserve.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Identity:
    """Whom to become; ``None`` fields are left as they are."""

    uid: int | None = None
    gid: int | None = None
    name: str | None = None  # the user's name, for initgroups; None: no passwd entry

    @property
    def changes(self) -> bool:
        return self.uid is not None or self.gid is not None


def resolve(user: str, group: str) -> Identity:
    """Look ``--user`` and ``--group`` up (names or numeric ids).

    Raises:
        ConfigError: an unknown name, or a numeric uid with no passwd entry and
            no ``--group`` (its group would otherwise stay root's).
    """
    if not user and not group:
        return Identity()
    uid = name = None
    gid: int | None = None
    if user:
        entry = _passwd(user)
        if entry is None:
            if not user.isdigit():
                raise ConfigError(f"--user {user!r}: no such user")
            if not group:
                raise ConfigError(
                    f"--user {user}: no such user in the passwd database; give --group"
                )
            uid = int(user)
        else:
            uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
    if group:
        gid = _group_id(group)
    return Identity(uid, gid, name)


def _passwd(user: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        return None


def _group_id(group: str) -> int:
    if group.isdigit():
        return int(group)  # a gid needs no /etc/group entry
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"--group {group!r}: no such group") from None


def check_allowed(identity: Identity, euid: int, egid: int) -> None:
    """Fail early, before binding, when the switch cannot be made.

    Raises:
        ConfigError: a switch to another user or group without root.
    """
    if euid == 0:
        return
    if identity.uid not in (None, euid):
        raise ConfigError(f"--user needs root (swserve runs as uid {euid})")
    if identity.gid not in (None, egid):
        raise ConfigError(f"--group needs root (swserve runs as gid {egid})")


def groups_of(identity: Identity) -> list[int] | None:
    """The supplementary groups ``drop`` will set, read now (before a chroot hides /etc/group).

    None: ``drop`` sets only the group itself, or nothing.
    """
    if identity.gid is None or identity.name is None or identity.uid is None:
        return None
    return os.getgrouplist(identity.name, identity.gid)


def drop(identity: Identity, groups: list[int] | None = None) -> None:
    """Become ``identity`` for good: real, effective and saved ids, groups first.

    ``groups``: the user's groups as ``groups_of`` read them (a chrooted
    worker's /etc/group is not the system's); None reads them now.

    Raises:
        ConfigError: a system call failed, or root could be regained afterwards.
    """
    if not identity.changes or os.geteuid() != 0:
        return  # nothing to do, or (check_allowed passed) already that user
    try:
        if identity.gid is not None:
            if groups is not None:
                os.setgroups(groups)
            elif identity.name is not None and identity.uid is not None:
                os.initgroups(identity.name, identity.gid)
            else:
                os.setgroups([identity.gid])
            os.setresgid(identity.gid, identity.gid, identity.gid)
        if identity.uid is not None:
            os.setresuid(identity.uid, identity.uid, identity.uid)
    except OSError as exc:
        raise ConfigError(f"cannot switch to --user/--group: {exc.strerror or exc}") from None
    if identity.uid not in (None, 0) and _can_regain_root():
        raise ConfigError("dropped privileges, but root could be regained: refusing to run")


def _can_regain_root() -> bool:
    try:
        os.setuid(0)
    except PermissionError:
        return False
    return True
