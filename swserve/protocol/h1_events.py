"""The events of an HTTP/1.1 server connection (``protocol/h1_connection.py``),
and what a server tells its connections.

Small ``__slots__`` classes rather than dataclasses: a few are built per
request on the hot path.  The argument-free ones are singletons
(``PAUSE``, ``RESUME``, ``CLOSE``, ``ABORT``).
"""

from __future__ import annotations

from typing import Final, Protocol

from swserve.errors import ProtocolError
from swserve.protocol.request import Request

Buffer = bytes | bytearray | memoryview


# -- events -----------------------------------------------------------------------------


class Write:
    __slots__ = ("data",)

    def __init__(self, data: list[Buffer]) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Write({b''.join(self.data)!r})"


class ReadingOff:
    """Stop reading (``on``) or read again."""

    __slots__ = ("on",)

    def __init__(self, on: bool) -> None:
        self.on = on

    def __repr__(self) -> str:
        return "PAUSE" if self.on else "RESUME"


class Close:
    """Close the connection once written (``abort``: now, dropping what is unwritten)."""

    __slots__ = ("abort",)

    def __init__(self, abort: bool) -> None:
        self.abort = abort

    def __repr__(self) -> str:
        return "ABORT" if self.abort else "CLOSE"


PAUSE: Final = ReadingOff(True)
RESUME: Final = ReadingOff(False)
CLOSE: Final = Close(False)
ABORT: Final = Close(True)


class Rejected:
    """The client's bytes are not HTTP/1.1 (or its body could not be stored)."""

    __slots__ = ("error",)

    def __init__(self, error: ProtocolError) -> None:
        self.error = error


class Ended:
    """An exchange ended: ``request`` (None: one that never parsed) got ``status``.

    ``complete``: its response went out whole (the access log's business);
    otherwise it was cut short, answered with an error, or switched protocol.
    """

    __slots__ = ("complete", "request", "sent", "status")

    def __init__(self, request: Request | None, status: int, sent: int, complete: bool) -> None:
        self.request = request
        self.status = status
        self.sent = sent
        self.complete = complete


class RequestReady:
    """``current`` (request id ``seq``) is complete: answer it (``upgrade``: a valid
    WebSocket handshake, which the app accepts or answers like any request)."""

    __slots__ = ("request", "seq")

    def __init__(self, request: Request, seq: int) -> None:
        self.request = request
        self.seq = seq


class Switch:
    """Every byte from here on is ``protocol``'s: ``"websocket"``, ``"h2c"`` (Upgrade:
    the ``request`` becomes stream 1, ``settings`` is its HTTP2-Settings) or ``"h2"``
    (prior knowledge, or ALPN).  ``data``: what the client sent already."""

    __slots__ = ("data", "protocol", "request", "settings")

    def __init__(
        self,
        protocol: str,
        data: bytes,
        request: Request | None = None,
        settings: bytes = b"",
    ) -> None:
        self.protocol = protocol
        self.data = data
        self.request = request
        self.settings = settings

    def __repr__(self) -> str:
        return f"Switch({self.protocol!r}, {self.data!r})"


Event = Write | ReadingOff | Close | Rejected | Ended | RequestReady | Switch


# -- what the connection is told by its server -------------------------------------------


class Settings:
    """What every connection of one server shares (the shell may change it live)."""

    __slots__ = (
        "body_timeout",
        "date_server",
        "header_timeout",
        "keep_alive",
        "websocket",
        "write_timeout",
    )

    def __init__(
        self,
        *,
        header_timeout: float = 10.0,
        body_timeout: float = 30.0,
        keep_alive: float = 5.0,
        write_timeout: float = 30.0,
        websocket: bool = False,
    ) -> None:
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.keep_alive = keep_alive
        self.write_timeout = write_timeout
        self.websocket = websocket  # does an upgrade request become a WebSocket handshake?
        # the cached ``date: …\r\nserver: …\r\n`` lines, refreshed by the shell's clock
        self.date_server = b""


class BodyStore(Protocol):
    """The shell's storage of big request bodies (``reactor/spool.py``)."""

    def settle(self, requests: list[Request], head: Request | None) -> ProtocolError | None:
        """Finish the complete bodies (a failure truncates ``requests`` at the one that
        failed and is returned); move ``head``'s body to storage if it grew too big."""
        ...

    def failed(self, exc: OSError, head: Request | None) -> ProtocolError:
        """Writing ``head``'s body failed: what to answer."""
        ...
