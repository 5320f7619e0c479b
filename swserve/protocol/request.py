"""The parsed request, shared by both parsers, the reactor and the IPC codec.

A plain ``__slots__`` class rather than a dataclass: one is built per request
on the hot path, and the parsers fill it field by field as callbacks arrive.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple, Protocol, Self

# Per-request header facts the parser glue records, so that framing checks
# (RFC 9112 §6.3) and the checks on Host and the singleton Content-Type run
# only when the headers they concern are present.
FRAMING_HEADERS: Final = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"expect",
        b"connection",
        b"upgrade",
        b"content-type",
    }
)


class BodyBuffer(Protocol):
    """What a request's body is appended to: a ``bytearray``, or the
    :class:`~swserve.reactor.spool.SpooledBody` that takes its place once the body passes
    ``--body-spool-size``.

    A protocol, not ``bytearray``: compiled by mypyc (docs/compiled.md), an argument typed
    ``bytearray`` rejects the spooled body at run time.
    """

    def __iadd__(self, data: bytes | bytearray, /) -> Self: ...
    def __len__(self) -> int: ...


class Request:
    """One complete HTTP/1.x request.

    ``headers`` keep their order and raw values; names are lower-cased (the
    ASGI form; the WSGI adapter derives ``HTTP_*`` keys from them).
    """

    __slots__ = (
        "body",
        "expect_continue",
        "headers",
        "keep_alive",
        "method",
        "target",
        "version",
        "websocket",
    )

    def __init__(self) -> None:
        self.method: bytes = b""
        self.target: bytes = b""
        self.version: bytes = b"1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        # a bytearray, or (for bodies the reactor spools to disk) the SpooledBody that
        # takes its place (a BodyBuffer: reactor/spool.py).  Typed Any, not bytearray:
        # mypyc checks the attribute types of a compiled class at run time and would reject
        # the SpooledBody (docs/compiled.md); readers meet one only where they check for it.
        self.body: Any = bytearray()
        self.keep_alive: bool = True
        self.expect_continue: bool = False
        self.websocket: bool = False  # an Upgrade header names websocket

    def __repr__(self) -> str:
        return f"<Request {self.method.decode()} {self.target!r} HTTP/{self.version.decode()}>"


class RequestHead(NamedTuple):
    """A request head as the app adapters take it (``apps/``), in either mode.

    Built by ``ipc/codec.py: decode_request`` from a REQUEST frame in a
    process-mode worker, and by base mode straight from the parser's
    :class:`Request` and its connection; the adapters read attributes, never the
    frame's layout.

    ``conn`` describes the connection, as the reactor wrote it once per
    connection (``ipc/codec.py: conn_prefix``): (scheme, client host, client port,
    server host, server port), all bytes, a host empty when unknown.  It is hashable,
    so the WSGI adapter keys its per-connection environ on it.  ``headers`` are
    (lower-case name, value) pairs in the order received.
    """

    method: bytes
    target: bytes
    version: bytes
    conn: tuple[bytes, ...]
    headers: list[tuple[bytes, bytes]]
