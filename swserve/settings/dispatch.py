"""The ``--dispatch`` modes: their names and the parser of the setting's value.

Read by the settings' validation (``config.py``) and by the reactor's dispatcher
(``reactor/dispatcher.py``), which implements each mode.
"""

from __future__ import annotations

from typing import Final, NamedTuple

MODES: Final = ("idle", "round-robin", "fd", "ip", "key")
AFFINITY: Final = frozenset({"ip", "key"})
USAGE: Final = "idle, round-robin, fd, ip, key:HEADER or key:cookie:NAME"
_TOKEN: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class Spec(NamedTuple):
    """A parsed ``--dispatch``: the mode, and for ``key`` what carries the key."""

    mode: str
    header: str = ""  # key:HEADER (lower-case), or "cookie" for key:cookie:NAME
    cookie: str = ""  # key:cookie:NAME


def parse(text: str) -> Spec:
    """``idle`` / ``round-robin`` / ``fd`` / ``ip`` / ``key:HEADER`` / ``key:cookie:NAME``.

    Raises:
        ValueError: saying what is accepted.
    """
    if text in MODES and text != "key":
        return Spec(text)
    kind, _, rest = text.partition(":")
    if kind == "key" and rest:
        header, colon, cookie = rest.partition(":")
        if colon:
            if header.lower() == "cookie" and cookie and set(cookie) <= _TOKEN:
                return Spec("key", "cookie", cookie)
        elif set(header) <= _TOKEN:
            return Spec("key", header.lower())
    raise ValueError(f"unknown dispatch mode {text!r}: expected {USAGE}")
