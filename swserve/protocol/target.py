"""Request-target and Host rules shared by both parsers (RFC 9112 §3.2, RFC 9110 §4, §7.2).

``syntax`` checks the characters and the form of a request line as its bytes
arrive; the rules here need the whole target, so both glues apply them once
the head is complete (the httptools glue in ``on_headers_complete``, the h11
glue in ``_end_of_head``), before the framing checks: the same request gets
the same answer from either parser.
"""

from __future__ import annotations

import re
from typing import Final

from swserve.errors import ProtocolError

# RFC 3986 §3.2.2: host = IP-literal / IPv4address / reg-name (an IPv4 address
# is a reg-name too), port = *DIGIT (§3.2.3).
_UNRESERVED_SUB: Final = rb"-A-Za-z0-9._~!$&'()*+,;="
_IP_LITERAL: Final = rb"\[(?:[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[" + _UNRESERVED_SUB + rb":]+)\]"
_REG_NAME: Final = rb"(?:[" + _UNRESERVED_SUB + rb"]|%[0-9A-Fa-f]{2})*"
_HOST_PORT: Final = re.compile(rb"(?:" + _IP_LITERAL + rb"|" + _REG_NAME + rb")(?::[0-9]*)?")
_HTTP_SCHEMES: Final = frozenset({b"http", b"https"})
# Host values already found valid: a server sees the same few again and again.
VALID_HOSTS: set[bytes] = set()
_CACHE_LIMIT: Final = 1024


def check_target(method: bytes, target: bytes) -> bytes:
    """The target to hand to the app: ``target`` without a fragment; 400 if invalid.

    Raises:
        ProtocolError: 400 for ``*`` with a method other than OPTIONS, and for
            an absolute-form target whose authority is not a valid host.
    """
    hash_at = target.find(b"#")
    if hash_at >= 0:
        # RFC 9112 §3.2: the request-target forms have no fragment (a client
        # strips it, RFC 9110 §4.2.5).  Like most servers, drop it rather than
        # hand it to the app as part of the path or the query.
        target = target[:hash_at]
        if not target:
            raise ProtocolError(400, "malformed request target")
    if target[:1] == b"/":
        return target
    if target == b"*":
        # RFC 9112 §3.2.4: "The asterisk-form of request-target is only used
        # for a server-wide OPTIONS request".
        if method != b"OPTIONS":
            raise ProtocolError(400, "asterisk-form target with a method other than OPTIONS")
        return target
    scheme, sep, rest = target.partition(b"://")
    if sep:
        end = len(rest)
        for delimiter in (b"/", b"?"):
            found = rest.find(delimiter)
            if found >= 0:
                end = min(end, found)
        _check_authority(scheme.lower(), rest[:end])
    return target


def _check_authority(scheme: bytes, authority: bytes) -> None:
    """RFC 9112 §3.2.2: the authority of an absolute-form target replaces Host,
    so it is held to the rules of a Host value, and more."""
    if b"@" in authority:
        # RFC 9110 §4.2.4: a recipient SHOULD treat userinfo in an http(s) URI
        # "as an error; it is likely being used to obscure the authority".
        raise ProtocolError(400, "userinfo in the request target")
    if scheme in _HTTP_SCHEMES and authority[:1] in (b"", b":"):
        # RFC 9110 §4.2.1: an http URI with an empty host "MUST" be rejected.
        raise ProtocolError(400, "empty host in the request target")
    if _HOST_PORT.fullmatch(authority) is None:
        raise ProtocolError(400, "invalid authority in the request target")


def check_host(value: bytes) -> None:
    """Raise 400 unless ``value`` is a valid Host field value.

    RFC 9110 §7.2: Host = uri-host [ ":" port ]; RFC 9112 §3.2: a server MUST
    respond 400 to a request whose Host field value is invalid.  An empty
    value is valid (a target with no authority).
    """
    if _HOST_PORT.fullmatch(value) is None:
        raise ProtocolError(400, "invalid Host header")
    if len(VALID_HOSTS) < _CACHE_LIMIT:  # bounded: Host values are the client's to choose
        VALID_HOSTS.add(value)
