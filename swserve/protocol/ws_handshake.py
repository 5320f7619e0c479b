"""WebSocket (RFC 6455) opening handshake, sans-IO, and the events of a session.

Kept apart from ``protocol/websocket.py`` (the session's framing, over the
``websockets`` package) so that a reactor that never sees an upgrade request
never imports that package: :func:`check_upgrade` says whether a parsed request
is a valid one (else 400, or 426 for a version other than 13), and
:func:`accept_response` builds the 101 once the app has accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Final

from swserve.protocol.request import Request

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VERSION: Final = b"13"

# Close codes (RFC 6455 §7.4.1) swserve sends of its own accord
NORMAL: Final = 1000
GOING_AWAY: Final = 1001  # shutdown, after the drain
NO_STATUS: Final = 1005  # a close frame without a code (never sent)
ABNORMAL: Final = 1006  # the connection dropped without a close frame (never sent)
INTERNAL_ERROR: Final = 1011  # the worker died, or the client missed its pong
SERVICE_RESTART: Final = 1012  # the worker was reloaded or recycled, after the drain
TOO_BIG: Final = 1009


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What a valid upgrade request carries, for the app's scope and the 101."""

    key: bytes
    subprotocols: tuple[str, ...]
    extensions: tuple[bytes, ...]  # Sec-WebSocket-Extensions values, as offered


def _tokens(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    out: list[bytes] = []
    for n, v in headers:
        if n == name:
            out += (t.strip().lower() for t in v.split(b","))
    return out


def wants_websocket(req: Request) -> bool:
    """Does this request ask to become a WebSocket (an ``Upgrade`` token ``websocket``)?

    Only when the parser saw ``websocket`` in an Upgrade header (``req.websocket``,
    set by the framing checks): the other requests cost one attribute read.
    """
    return req.websocket and b"websocket" in _tokens(req.headers, b"upgrade")


def check_upgrade(req: Request) -> Upgrade | int:
    """An upgrade request → its :class:`Upgrade`, or the status to answer (400, 426).

    RFC 6455 §4.2.1: GET, HTTP/1.1 or later, ``Connection`` naming ``upgrade``,
    ``Upgrade: websocket``, a ``Sec-WebSocket-Key`` that is 16 bytes in base64,
    and ``Sec-WebSocket-Version: 13`` (any other version: 426 with the one we
    speak, §4.4).
    """
    if req.method != b"GET" or req.version != b"1.1":
        return 400
    headers = req.headers
    if b"upgrade" not in _tokens(headers, b"connection"):
        return 400
    keys = [v for n, v in headers if n == b"sec-websocket-key"]
    versions = [v.strip() for n, v in headers if n == b"sec-websocket-version"]
    if len(keys) != 1 or not versions:
        return 400
    try:
        raw = base64.b64decode(keys[0].strip(), validate=True)
    except (binascii.Error, ValueError):
        return 400
    if len(raw) != 16:
        return 400
    if versions != [VERSION]:
        return 426
    subprotocols = tuple(
        t.decode("latin-1")
        for t in (
            s.strip() for n, v in headers if n == b"sec-websocket-protocol" for s in v.split(b",")
        )
        if t
    )
    offers = tuple(v for n, v in headers if n == b"sec-websocket-extensions")
    return Upgrade(keys[0].strip(), subprotocols, offers)


def accept_key(key: bytes) -> bytes:
    # RFC 6455 §4.2.2 names SHA-1: a fixed transform, not a security measure
    return base64.b64encode(hashlib.sha1(key + GUID, usedforsecurity=False).digest())


def accept_response(
    upgrade: Upgrade, subprotocol: str | None, headers: bytes, extensions: bytes, date_server: bytes
) -> bytes:
    """The 101 head: the app's extra header lines (already validated) after ours."""
    lines = [
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n",
        b"sec-websocket-accept: %s\r\n" % accept_key(upgrade.key),
    ]
    if subprotocol:
        lines.append(b"sec-websocket-protocol: %s\r\n" % subprotocol.encode("latin-1"))
    if extensions:
        lines.append(b"sec-websocket-extensions: %s\r\n" % extensions)
    lines += (date_server, headers, b"\r\n")
    return b"".join(lines)


@dataclass(frozen=True, slots=True)
class Message:
    text: bool
    data: bytes  # a text message as its UTF-8 bytes (already checked)


@dataclass(frozen=True, slots=True)
class Closed:
    """The close handshake ran, or the connection failed: what the app is told."""

    code: int
    reason: str


Event = Message | Closed
