"""ipc/buffers.py: the reactor ↔ worker sockets ask for 4 MiB send buffers."""

from __future__ import annotations

import socket
from pathlib import Path

from swserve.ipc.buffers import IPC_SOCKET_BUFFER, widen


def test_widen_raises_the_send_buffer_as_far_as_the_kernel_allows() -> None:
    cap = int(Path("/proc/sys/net/core/wmem_max").read_text())
    a, b = socket.socketpair()
    with a, b:
        default = a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        widen(a)
        # Linux doubles the value asked for (its bookkeeping) and caps it at wmem_max
        assert a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * min(IPC_SOCKET_BUFFER, cap)
        assert b.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == default


def test_widen_on_a_closed_socket_is_harmless() -> None:
    a, b = socket.socketpair()
    b.close()
    a.close()
    widen(a)  # a worker link that died before connection_made ran: nothing to tune
