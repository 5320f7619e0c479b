"""Helpers for the WebSocket tests: a raw handshake and a minimal frame reader.

The ``websockets`` client answers pings and hides frames; these helpers let a
test speak the wire itself (malformed handshakes, bad frames, unanswered pings).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tests.integration.conftest import Server

KEY = base64.b64encode(b"0123456789abcdef").decode()
T = TypeVar("T")


def run(coro: Callable[[], Awaitable[T]], timeout: float = 40) -> T:
    """Run an async test body on a fresh loop, bounded by ``timeout`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro(), timeout)

    return asyncio.run(bounded())


def ws_url(server: Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def handshake_request(path: str = "/", **overrides: str | None) -> bytes:
    headers = {
        "Host": "localhost",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    method = overrides.pop("method", None) or "GET"
    for name, value in overrides.items():
        header = name.replace("_", "-")
        headers.pop(header, None)
        if value is not None:
            headers[header] = value
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_head(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """→ (status, headers lower-cased, bytes read past the head)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def raw_session(server: Server, path: str = "/") -> tuple[socket.socket, bytes]:
    """An accepted session on a plain socket: → (socket, bytes already read past the 101)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(handshake_request(path))
    status, _, rest = read_head(sock)
    assert status == 101
    return sock, rest


def client_frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True) -> bytes:
    """One client frame (masked unless told not to)."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, (0x80 if mask else 0) | size)
    elif size < 65536:
        head = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, size)
    else:
        head = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class FrameReader:
    """Server frames (never masked) from a socket: → (opcode, payload)."""

    def __init__(self, sock: socket.socket, rest: bytes = b"") -> None:
        self.sock = sock
        self.buf = rest

    def _need(self, count: int, deadline: float) -> bytes:
        while len(self.buf) < count:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:count], self.buf[count:]
        return out

    def frame(self, timeout: float = 10.0) -> tuple[int, bytes]:
        deadline = time.monotonic() + timeout
        first, second = self._need(2, deadline)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self._need(2, deadline))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._need(8, deadline))
        return first & 0x0F, self._need(size, deadline)

    def close_code(self, timeout: float = 10.0) -> int:
        """Read frames until a close frame: → its code."""
        deadline = time.monotonic() + timeout
        while True:
            opcode, payload = self.frame(deadline - time.monotonic())
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if payload else 1005
