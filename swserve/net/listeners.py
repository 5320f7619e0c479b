"""Open the listening sockets and report the addresses actually bound.

This happens in the master before anything is forked, so a bad address fails
fast with one line, and port 0 is resolved to the real port that the
"Listening on" line prints.  Three sources of sockets:

- ``--bind HOST:PORT`` / ``[HOST]:PORT`` / ``unix:PATH``: bound here, with
  ``--backlog``; unix sockets are created with ``--uds-permissions`` (chmod
  between ``bind`` and ``listen``, so no client can connect before the mode
  is set).
- ``--bind fd://N``: a socket already bound and listening, inherited from
  the parent (a supervisor, or ``systemd-socket-activate``).  Checked to be
  a listening stream socket; its backlog and mode are the parent's.
- systemd socket activation (``LISTEN_FDS``/``LISTEN_PID``, sd_listen_fds(3)):
  the fds from 3 on.  Used when ``LISTEN_PID`` is our pid and no ``--bind``
  is given; with ``--bind``, only the ones it names as ``fd://N`` are served
  and the others are closed.  The variables are always removed from our
  environment, so no child takes the sockets for its own.

With ``--ssl-certfile`` every listener speaks TLS: the context
(``swserve/net/tls.py``) is built here too, so a bad certificate also fails
before any process exists.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import ssl
import stat
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Final

from swserve.config import BindAddress, Config, format_hostport, parse_bind, parse_mode
from swserve.errors import ConfigError

log = logging.getLogger("swserve.error")

SD_LISTEN_FDS_START: Final = 3  # sd_listen_fds(3): passed sockets are fds 3, 4, …
SYSTEMD_VARIABLES: Final = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


@dataclass(slots=True)
class Listener:
    sock: socket.socket
    address: BindAddress
    ssl: ssl.SSLContext | None = None  # set: every connection on it speaks TLS

    @property
    def url(self) -> str:
        if self.sock.family == socket.AF_UNIX:
            path = self.address.path or self.sock.getsockname()
            if isinstance(path, bytes):
                path = path.decode(errors="replace")
            if path.startswith("\0"):
                path = "@" + path[1:]  # Linux's abstract namespace, as ss(8) writes it
            return f"unix:{path}"
        host, port = self.sock.getsockname()[:2]
        scheme = "https" if self.ssl is not None else "http"
        return f"{scheme}://{format_hostport(host, port)}"


def open_listeners(
    config: Config, environ: MutableMapping[str, str] = os.environ
) -> list[Listener]:
    """Every listener of ``config``: systemd's sockets, or ``--bind``, with TLS if configured.

    Resource handling: on error, the sockets opened so far are closed; systemd
    sockets that ``--bind`` does not name are closed (no child inherits them).

    Raises:
        ConfigError: one line naming the address or setting that cannot work.
    """
    inherited = systemd_fds(environ, os.getpid())
    for name in SYSTEMD_VARIABLES:
        environ.pop(name, None)
    context = None
    if config.ssl_certfile:  # deferred: swserve.net.tls is only imported with TLS on
        from swserve.net.tls import make_server_context

        context = make_server_context(config)
    if inherited and not config.bind:
        log.info("systemd socket activation: serving fd(s) %s", ", ".join(map(str, inherited)))
        listeners = bind(tuple(f"fd://{fd}" for fd in inherited), config.backlog)
    else:
        if inherited:
            _close_unnamed(inherited, config.bind)
        mode = parse_mode(config.uds_permissions) if config.uds_permissions else None
        listeners = bind(config.binds, config.backlog, uds_mode=mode)
    for listener in listeners:
        listener.ssl = context
    return listeners


def systemd_fds(environ: Mapping[str, str], pid: int) -> list[int]:
    """The fds systemd passed to process ``pid``, as sd_listen_fds(3) finds them.

    ``LISTEN_PID`` must name ``pid``: variables meant for another process
    (a parent that exec'd us without clearing them) are not ours.

    Raises:
        ConfigError: ``LISTEN_FDS`` is not a number.
    """
    count = environ.get("LISTEN_FDS")
    listen_pid = environ.get("LISTEN_PID", "")
    if count is None or not listen_pid.isdigit() or int(listen_pid) != pid:
        return []
    if not count.isdigit():
        raise ConfigError(f"LISTEN_FDS={count!r} (systemd socket activation) is not a number")
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)))


def _close_unnamed(inherited: list[int], binds: tuple[str, ...]) -> None:
    named = {parse_bind(text).fd for text in binds if text.startswith("fd://")}
    unused = [fd for fd in inherited if fd not in named]
    if unused:
        log.warning(
            "systemd passed socket fd(s) %s, but --bind is given: serving --bind only "
            "(name them as --bind fd://N to serve them)",
            ", ".join(map(str, unused)),
        )
    for fd in unused:
        with contextlib.suppress(OSError):
            os.close(fd)


def bind(addresses: tuple[str, ...], backlog: int, uds_mode: int | None = None) -> list[Listener]:
    """Bind and listen on every address (or adopt it, for ``fd://N``).

    Raises:
        ConfigError: an address is malformed, in use, or not ours to bind;
            the sockets bound so far are closed first.
    """
    out: list[Listener] = []
    try:
        for text in addresses:
            address = parse_bind(text)
            if address.family == "fd":
                sock = adopt(address.fd, text)
            else:
                sock = _bind_one(address, text, backlog, uds_mode)
            out.append(Listener(sock, address))
    except BaseException:
        for listener in out:
            listener.sock.close()
        raise
    return out


def adopt(fd: int, text: str) -> socket.socket:
    """A socket object for an inherited fd, once it is known to be a listening stream socket.

    Raises:
        ConfigError: the fd is not open, not a socket, not a stream socket, or
            not listening.  The fd itself is left open (it is not ours to close).
    """
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        if exc.errno == errno.EBADF:
            raise ConfigError(f"cannot listen on {text}: fd {fd} is not open") from None
        if exc.errno == errno.ENOTSOCK:
            raise ConfigError(f"cannot listen on {text}: fd {fd} is not a socket") from None
        raise ConfigError(f"cannot listen on {text}: {exc.strerror or exc}") from None
    problem = ""
    if sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        problem = f"fd {fd} is not an IP or unix socket"
    elif sock.type != socket.SOCK_STREAM:
        problem = f"fd {fd} is not a stream (TCP or unix stream) socket"
    elif not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        problem = f"fd {fd} is not listening (a bound socket after listen(); systemd: Accept=no)"
    if problem:
        sock.detach()
        raise ConfigError(f"cannot listen on {text}: {problem}")
    sock.set_inheritable(False)  # as sd_listen_fds does: nothing we exec gets it
    sock.setblocking(False)
    return sock


def _in_use(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _bind_one(address: BindAddress, text: str, backlog: int, uds_mode: int | None) -> socket.socket:
    if address.family == "unix":
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(address.path).st_mode):
                if _in_use(address.path):
                    raise ConfigError(f"cannot listen on {text}: another server is listening there")
                os.unlink(address.path)  # a stale socket from an earlier run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: str | tuple[str, int] = address.path
    else:
        family = socket.AF_INET6 if address.family == "inet6" else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        target = (address.host, address.port)
    bound = False
    try:
        sock.bind(target)
        bound = True
        if uds_mode is not None and address.family == "unix":
            os.chmod(address.path, uds_mode)  # before listen(): nobody connects in between
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if bound and address.family == "unix":
            with contextlib.suppress(OSError):
                os.unlink(address.path)  # ours: created by the bind above
        raise ConfigError(f"cannot listen on {text}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock
