"""Bind the listening sockets and report the addresses actually bound.

Binding happens in the master before anything is forked, so a bad address
fails fast with one line, and port 0 is resolved to the real port that the
"Listening on" line prints.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from dataclasses import dataclass

from swserve.config import BindAddress, format_hostport, parse_bind
from swserve.errors import ConfigError


@dataclass(slots=True)
class Listener:
    sock: socket.socket
    address: BindAddress

    @property
    def url(self) -> str:
        if self.address.family == "unix":
            return f"unix:{self.address.path}"
        host, port = self.sock.getsockname()[:2]
        return f"http://{format_hostport(host, port)}"


def bind(addresses: tuple[str, ...], backlog: int) -> list[Listener]:
    """Bind and listen on every address.

    Raises:
        ConfigError: an address is malformed, in use, or not ours to bind;
            the sockets bound so far are closed first.
    """
    out: list[Listener] = []
    try:
        for text in addresses:
            address = parse_bind(text)
            out.append(Listener(_bind_one(address, text, backlog), address))
    except BaseException:
        for listener in out:
            listener.sock.close()
        raise
    return out


def _in_use(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _bind_one(address: BindAddress, text: str, backlog: int) -> socket.socket:
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
    try:
        sock.bind(target)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {text}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock
