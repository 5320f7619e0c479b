"""Test helpers: a strict little HTTP/1.1 response reader for raw-socket tests."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    version: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ",".join(values) if values else None


class ResponseReader:
    """Reads responses off a socket one at a time (pipelining-friendly)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("connection closed mid-line")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed mid-body")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read(self, *, head_request: bool = False) -> Response:
        line = self._line()
        version, status, *_ = line.decode("latin-1").split(" ", 2)
        resp = Response(int(status), version=version)
        while True:
            line = self._line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            resp.headers.append((name, value.strip()))
        if head_request or resp.status in (204, 304) or 100 <= resp.status < 200:
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te is not None:
            assert te.lower() == "chunked", te
            parts = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    assert self._line() == b""
                    break
                parts.append(self._exact(size))
                assert self._exact(2) == b"\r\n"
            resp.body = b"".join(parts)
        elif cl is not None:
            resp.body = self._exact(int(cl))
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def closed(self, timeout: float = 5.0) -> bool:
        """True if the peer closes the connection (EOF or reset) before ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            return not self._fill()
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return sock


def exchange(
    port: int, data: bytes, count: int = 1, *, head_request: bool = False
) -> list[Response]:
    with connect(port) as sock:
        sock.sendall(data)
        reader = ResponseReader(sock)
        return [reader.read(head_request=head_request) for _ in range(count)]
