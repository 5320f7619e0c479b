"""The one table of response-header rules, for the WSGI and the ASGI adapter alike.

An app's response headers are checked once, in the worker, before they reach
the IPC: a name is a token (RFC 9110 §5.1: ``field-name = token``), a value has
no control character but HTAB (RFC 9110 §5.5: ``field-vchar``, obs-text allowed),
and the fields that frame the connection (RFC 9110 §7.6.1, and the
``Proxy-Connection`` of old clients that RFC 9113 §8.2.2 names too) are the
server's business: they are dropped, and ``Connection: close`` becomes the
``APP_CLOSE`` flag.  ``Content-Length``, ``Date`` and ``Server`` set a flag that
tells the reactor not to add its own.  h11 applies the same rules.

The adapters differ only in what an app hands them: WSGI gives ``str`` pairs
(latin-1, PEP 3333), ASGI ``bytes`` pairs.  Each keeps its own cache of
validated pairs (an app sends the same few again and again), keyed by what it
received, so a hit costs one dict lookup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

from swserve.protocol import serializer

# name (lower case) → what the server does with it
DROPPED: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
FLAGS: Final = {
    b"content-length": serializer.HAS_CONTENT_LENGTH,
    b"date": serializer.HAS_DATE,
    b"server": serializer.HAS_SERVER,
}

_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

CACHE_LIMIT: Final = 4096  # validated pairs kept per adapter (the app chooses them)

# (b"Name: value\r\n", or b"" for a dropped field; serializer flags; the declared
# Content-Length, else -1)
Line = tuple[bytes, int, int]


def header_line(name: bytes, value: bytes) -> Line:
    """Check one response header and say what goes on the wire.

    Raises:
        ValueError: the name is not a token, the value holds a control character,
            or a Content-Length is not a number.
    """
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid response header name {name!r}")
    if _BAD_VALUE.search(value):
        raise ValueError(f"invalid value for response header {name!r}")
    lname = name.lower()
    if lname in DROPPED:
        close = lname == b"connection" and b"close" in value.lower()
        return b"", serializer.APP_CLOSE if close else 0, -1
    if lname == b"content-length":
        text = value.strip()
        if not text.isdigit():
            raise ValueError(f"invalid Content-Length {value!r}")
        return b"%s: %s\r\n" % (name, text), serializer.HAS_CONTENT_LENGTH, int(text)
    return b"%s: %s\r\n" % (name, value), FLAGS.get(lname, 0), -1


class Headers:
    """One adapter's response headers: its validated pairs, kept by the pair it received.

    ``text`` is WSGI's (``str`` pairs, latin-1 by PEP 3333); else ASGI's (bytes).
    """

    __slots__ = ("_cache", "_text")

    def __init__(self, text: bool) -> None:
        self._cache: dict[Any, Line] = {}
        self._text = text

    def line(self, pair: Any) -> Line:
        """One pair → its line.

        Raises:
            ValueError: a bad pair (see :func:`header_line`).
        """
        hit = self._cache.get(pair) if type(pair) is tuple else None
        return hit if hit is not None else self._check(pair)

    def _check(self, pair: Any) -> Line:
        name, value = pair
        if self._text:
            if not isinstance(name, str) or not isinstance(value, str):
                raise ValueError(f"response header names and values are str, not {pair!r}")
            try:
                hit = header_line(name.encode("latin-1"), value.encode("latin-1"))
            except UnicodeEncodeError:
                raise ValueError(f"response header {name!r} is not latin-1") from None
        else:
            if not isinstance(name, bytes | bytearray) or not isinstance(value, bytes | bytearray):
                raise ValueError(f"response header names and values are bytes, not {pair!r}")
            hit = header_line(bytes(name), bytes(value))
        exact = str if self._text else bytes
        if (
            len(self._cache) < CACHE_LIMIT
            and type(pair) is tuple
            and type(name) is exact
            and type(value) is exact
        ):
            self._cache[pair] = hit
        return hit

    def encode(self, pairs: Iterable[Any], status: int) -> tuple[bytes, int, int]:
        """An app's header pairs → (header lines, serializer flags, Content-Length or -1).

        Raises:
            ValueError: a bad pair, or two different Content-Length values.
        """
        cache = self._cache
        flags = 0
        length = -1
        lines = []
        for pair in pairs:
            hit = cache.get(pair) if type(pair) is tuple else None
            if hit is None:
                hit = self._check(pair)
            line, flag, declared = hit
            if declared >= 0:
                if status == 204:
                    continue  # RFC 9110 §8.6: a server MUST NOT send Content-Length in a 204
                if length >= 0 and declared != length:
                    raise ValueError("two different Content-Length headers")
                length = declared
            flags |= flag
            if line:
                lines.append(line)
        return b"".join(lines), flags, length
