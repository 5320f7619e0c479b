"""Socket buffer sizes of the reactor ↔ worker links.

A unix stream socket lets its sender queue at most ``SO_SNDBUF`` bytes at the
peer (Linux's default is ``net.core.wmem_default``, 208 KiB).  A 1 MiB body
then crosses in five sends, each a wake-up of the other process and, on a
shared core, two context switches.  Both ends ask for 4 MiB; the kernel caps
the request at ``net.core.wmem_max`` (which is 208 KiB on some hosts: then
nothing changes and nothing breaks).
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any, Final

IPC_SOCKET_BUFFER: Final = 4 * 1024 * 1024


def widen(sock: Any) -> None:
    """Ask for IPC_SOCKET_BUFFER on ``sock`` (a socket, or uvloop's socket-like object)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, IPC_SOCKET_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, IPC_SOCKET_BUFFER)
