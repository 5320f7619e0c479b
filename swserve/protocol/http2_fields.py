"""A request's HTTP/2 header fields → a :class:`Request`, checked in one pass (RFC 9113 §8.2-8.3).

h2 can check inbound fields itself (``validate_inbound_headers``), but it does so with a chain
of eight generators and a Python loop over every byte of every name and value.  The same rules
here take one loop over the fields and one regular-expression search per name and per value:
about a fifth of the core's CPU per request (``loadtests/micro/h2_core.py``: with h2's outbound
pass also off, 152 -> 117 µs with h2load's fields and 205 -> 154 µs with a browser's).

A malformed request is a stream error of type PROTOCOL_ERROR (RFC 9113 §8.1.1): the caller
resets that stream; the connection goes on.

Rules (RFC 9113):

- §8.2.1: a name is not empty and holds none of 0x00-0x20, 0x41-0x5a (upper case), 0x7f-0xff,
  and no colon but a pseudo-header's leading one; a value holds no NUL, CR or LF and neither
  starts nor ends with SP or HTAB.
- §8.2.2: no connection-specific field; ``te`` only as ``trailers``.
- §8.3: pseudo-header fields come before the others, each at most once, only the request ones
  (``:method``, ``:scheme``, ``:authority``, ``:path``); ``:method`` always, and ``:scheme``
  and a non-empty ``:path`` unless the method is CONNECT (which must have neither).
- §8.3.1: ``:authority`` and ``host``, when both are present, agree; one of them is present
  (as h2 requires), and ``host`` appears at most once.
"""

from __future__ import annotations

import re
from typing import Final

from swserve.protocol.request import Request

# connection-specific fields (RFC 9113 §8.2.2): malformed in a request, dropped from a response
CONNECTION_HEADERS: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_PSEUDO: Final = frozenset({b":method", b":scheme", b":authority", b":path"})
_BAD_NAME: Final = re.compile(rb"[\x00-\x20A-Z:\x7f-\xff]")
_BAD_VALUE: Final = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")


def request_from_fields(fields: list[tuple[bytes, bytes]]) -> Request | str:
    """The request the fields describe (``version`` b"2", ``:authority`` as ``host`` first),
    or why they are malformed."""
    req = Request()
    req.version = b"2"
    headers: list[tuple[bytes, bytes]] = []
    pseudo: dict[bytes, bytes] = {}
    host: bytes | None = None
    bad_name, bad_value = _BAD_NAME.search, _BAD_VALUE.search
    for name, value in fields:
        if value and bad_value(value):
            return f"invalid value for {name!r}"
        if name[:1] == b":":
            if headers:
                return f"pseudo-header {name!r} after a regular field"
            if name not in _PSEUDO:
                return f"pseudo-header {name!r} is not a request's"
            if name in pseudo:
                return f"pseudo-header {name!r} twice"
            pseudo[name] = value
            continue
        if not name or bad_name(name):
            return f"invalid field name {name!r}"
        if name in CONNECTION_HEADERS:
            return f"connection-specific field {name!r}"
        if name == b"te" and value.lower() != b"trailers":
            return "te other than trailers"
        if name == b"host":
            if host is not None:
                return "host twice"
            host = value
            continue
        headers.append((name, value))
    method = pseudo.get(b":method", b"")
    if not method:
        return ":method missing"
    if method == b"CONNECT":
        if b":scheme" in pseudo or b":path" in pseudo:
            return "CONNECT with :scheme or :path"
    elif b":scheme" not in pseudo or not pseudo.get(b":path"):
        return ":scheme or :path missing"
    authority = pseudo.get(b":authority")
    if authority is None and host is None:
        return "neither :authority nor host"
    if authority is not None and host is not None and authority != host:
        return ":authority and host differ"
    req.method = method
    req.target = pseudo.get(b":path", b"")
    if authority or host:
        headers.insert(0, (b"host", authority or host or b""))
    req.headers = headers
    return req
