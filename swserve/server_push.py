"""Server push, the public API: ``swserve.push``, ``swserve.broadcast`` and the rest.

Any worker may send to any WebSocket session, not only to the ones it holds
(Swoole's ``$server->push($fd, $data)``): the message goes to the reactor that
owns the session, which writes it to the client directly.  Session ids come
from ``scope["extensions"]["swserve.session"]["id"]``.

Every call returns at once, from sync or async code, with a
:class:`~swserve.ipc.push.Delivery`: ignore it (fire and forget), ``await``
it, or call ``.result(timeout)`` in blocking code.  A session that has gone
is a ``False`` result, never an exception.  The ``a``-prefixed coroutines
are the awaitable forms.  Outside swserve every call raises ``RuntimeError``.
See docs/push.md.
"""

from __future__ import annotations

from swserve.ipc import codec, framing
from swserve.ipc.push import Delivery, client, parse_session


def _message(data: str | bytes | bytearray | memoryview) -> tuple[int, bytes]:
    if isinstance(data, str):
        return framing.WS_TEXT, data.encode()
    if isinstance(data, bytes | bytearray | memoryview):
        return 0, bytes(data)
    raise TypeError(f"a message is str (text) or bytes (binary), not {type(data).__name__}")


def _to(session_id: str, kind: int, flags: int = 0, payload: bytes = b"") -> Delivery:
    pusher = client()
    wire, _ = parse_session(session_id)
    if not wire:  # names no session this server ever had
        gone = Delivery()
        gone.set_result(False)
        return gone
    return pusher.request(kind, flags, wire, payload)


def push(session_id: str, data: str | bytes) -> Delivery:
    """Send one message to a session: ``str`` as text, ``bytes`` as binary.
    → ``True`` once written to its client's buffer; ``False``: gone, or dropped (slow client)."""
    flags, payload = _message(data)
    return _to(session_id, framing.PUSH, flags, payload)


def close(session_id: str, code: int = 1000, reason: str = "") -> Delivery:
    """Close a session with ``code`` and ``reason``; its app receives websocket.disconnect."""
    if not (1000 <= code <= 4999):
        raise ValueError(f"close code {code} is not in 1000-4999")
    return _to(session_id, framing.PUSH_CLOSE, 0, codec.encode_ws_close(code, reason))


def join(session_id: str, group: str) -> Delivery:
    """Add a session to a group (created on first join); ``False`` if the session has gone."""
    return _to(session_id, framing.PUSH_JOIN, 0, _group(group))


def leave(session_id: str, group: str) -> Delivery:
    """Take a session out of a group; ``False`` if it was not in it (or has gone)."""
    return _to(session_id, framing.PUSH_LEAVE, 0, _group(group))


def is_open(session_id: str) -> Delivery:
    """Is the session still open? (A ``Delivery``: ``await`` it or call ``result()``.)"""
    return _to(session_id, framing.PUSH_IS_OPEN)


def broadcast(group: str, data: str | bytes, exclude: str | None = None) -> Delivery:
    """Send one message to every member of ``group``, but ``exclude``, on every reactor
    (and, with ``--broadcast-url``, every instance).  → how many local clients got it."""
    pusher = client()
    flags, payload = _message(data)
    skip = parse_session(exclude)[0] if exclude is not None else 0
    body = codec.encode_broadcast(_check_group(group), skip, payload)
    return pusher.request(framing.PUSH_BROADCAST, flags, 0, body)


def _check_group(group: str) -> str:
    if not group:
        raise ValueError("a group name is a non-empty str")
    if len(group.encode()) > 0xFFFF:
        raise ValueError("a group name is at most 65535 bytes")
    return group


def _group(group: str) -> bytes:
    return _check_group(group).encode()


async def apush(session_id: str, data: str | bytes) -> bool:
    return bool(await push(session_id, data))


async def aclose(session_id: str, code: int = 1000, reason: str = "") -> bool:
    return bool(await close(session_id, code, reason))


async def ajoin(session_id: str, group: str) -> bool:
    return bool(await join(session_id, group))


async def aleave(session_id: str, group: str) -> bool:
    return bool(await leave(session_id, group))


async def abroadcast(group: str, data: str | bytes, exclude: str | None = None) -> int:
    return int(await broadcast(group, data, exclude))
