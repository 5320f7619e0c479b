"""A blocking client of the control socket, for ``swserve ctl`` and ``swserve top``."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from swserve.control.protocol import (
    MAX_RESPONSE,
    ControlError,
    LineReader,
    decode_response,
    encode_request,
)

TIMEOUT = 10.0  # seconds; `slowlog` waits up to 5 s for a worker


class Client:
    """One connection; ``call`` sends a request and returns its result.

    Error handling: every failure (no server, refused, timed out, an error
    answer) is a :class:`ControlError` whose text is one line for the user.
    """

    def __init__(self, path: Path, timeout: float = TIMEOUT) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except FileNotFoundError:
            self.sock.close()
            raise ControlError(f"no control socket at {path}: is the server running?") from None
        except ConnectionRefusedError:
            self.sock.close()
            raise ControlError(f"nothing listens on {path}: the server has stopped") from None
        except PermissionError:
            self.sock.close()
            raise ControlError(f"permission denied: {path} belongs to another user") from None
        except OSError as exc:
            self.sock.close()
            raise ControlError(f"cannot connect to {path}: {exc.strerror or exc}") from None
        self.reader = LineReader(MAX_RESPONSE)
        self.lines: list[bytes] = []

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def call(self, cmd: str, **args: Any) -> Any:
        try:
            try:
                self.sock.sendall(encode_request(cmd, args))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server has answered and closed (a refusal): read why
            while not self.lines:
                data = self.sock.recv(65536)
                if not data:
                    raise ControlError("the server closed the connection")
                self.lines += self.reader.feed(data)
        except TimeoutError:
            raise ControlError(f"no answer from {self.path} within the timeout") from None
        except OSError as exc:
            raise ControlError(f"the connection to {self.path} failed: {exc}") from None
        return decode_response(self.lines.pop(0))
