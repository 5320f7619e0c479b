"""Request-line and field-line rules shared by both parsers (RFC 9112 §3, §5).

llhttp enforces most of these itself; the h11 glue applies them to every head,
and the httptools glue uses them only to decide the status of a request line
that llhttp refused (400, or 501 for a well-formed line with an unknown method).

The request line is checked left to right, and each rule looks only at the
bytes before the point where it fires.  So a verdict reached on a prefix of a
line is the verdict on the whole line: the answer does not depend on how the
line was cut into ``feed()`` calls.
"""

from __future__ import annotations

import re
from typing import Final

from swserve.errors import ProtocolError
from swserve.protocol.limits import Limits

# The methods llhttp parses as HTTP methods, less CONNECT: swserve runs no
# tunnels, and RFC 9110 §9.3.6 lets a server refuse it.  The h11 glue uses the
# same set, so both parsers answer 501 to the same methods.
SUPPORTED_METHODS: Final = frozenset(
    b"DELETE GET HEAD POST PUT OPTIONS TRACE PATCH PURGE QUERY LINK UNLINK SOURCE"
    b" COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL"
    b" REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE"
    b" MKCALENDAR".split()
)
# RFC 9112 §3: a method longer than any implemented one SHOULD get a 501.
MAX_METHOD: Final = max(map(len, SUPPORTED_METHODS))
VERSIONS: Final = frozenset({b"1.0", b"1.1"})

_TCHAR: Final = rb"-!#$%&'*+.^_`|~0-9A-Za-z"
_NOT_TCHAR: Final = re.compile(rb"[^" + _TCHAR + rb"]")
_TOKEN: Final = re.compile(rb"[" + _TCHAR + rb"]+")
# request-target characters, as h11 takes them: VCHAR (no SP, CTL or obs-text)
_NOT_VCHAR: Final = re.compile(rb"[^\x21-\x7e]")
_ABSOLUTE: Final = re.compile(rb"[A-Za-z]+://")
_ABSOLUTE_PREFIX: Final = re.compile(rb"[A-Za-z]+(?::/?)?")
_SPACES: Final = re.compile(rb" *")
_LINE_SLACK: Final = 1024  # room for the method, the version and runs of SP
_VERSION: Final = re.compile(rb"HTTP/([0-9]\.[0-9])")
_VERSION_PREFIX: Final = re.compile(rb"(?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.[0-9]?)?)?)?)?)?)?)?")
# field-value octets: HTAB, SP, VCHAR and obs-text; every other CTL is refused
# (RFC 9110 §5.5), as llhttp does
_BAD_VALUE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_EMPTY_LINES: Final = re.compile(rb"[\r\n]*")


def skip_empty_lines(buf: bytes | bytearray, pos: int) -> int:
    """Offset of the first byte from ``pos`` that is not CR or LF.

    RFC 9112 §2.2: a server SHOULD ignore empty lines received before a
    request-line; like llhttp, lone CRs and LFs are skipped as well.
    """
    match = _EMPTY_LINES.match(buf, pos)
    assert match is not None  # "*" always matches
    return match.end()


def _scan_line(text: bytes, limits: Limits, complete: bool) -> tuple[bytes, bytes, bytes] | None:
    """The request-line rules, in the order their bytes arrive.

    ``text`` is the line without its CRLF (``complete``) or the line so far.
    Returns (method, target, version) for a complete, acceptable line; None
    for an incomplete line that may yet be valid.  Like llhttp, runs of SP
    separate the parts (RFC 9112 §3 allows parsing on whitespace boundaries).
    """
    bound = limits.request_line + _LINE_SLACK
    if len(text) > bound:  # the runs of SP make the line unbounded otherwise
        _scan_line(text[:bound], limits, complete=False)
        raise ProtocolError(414, "request line too long")
    # method: 1*tchar, then SP (RFC 9112 §3; RFC 9110 §9.1)
    head = text[: MAX_METHOD + 1]
    sp = head.find(b" ")
    method = head if sp < 0 else head[:sp]
    if sp == 0 or _NOT_TCHAR.search(method):
        raise ProtocolError(400, "malformed request line")
    if sp < 0:
        if len(head) > MAX_METHOD:
            raise ProtocolError(501, "method not implemented")
        if complete:
            raise ProtocolError(400, "malformed request line")
        return None
    # request-target (RFC 9112 §3.2): its length is Limits.request_line
    start = _skip_spaces(text, sp)
    if start == len(text):
        if complete:
            raise ProtocolError(400, "malformed request line")
        return None
    area = text[start : start + limits.request_line + 1]
    sp = area.find(b" ")
    target = area if sp < 0 else area[:sp]
    whole = sp >= 0 or (complete and len(area) <= limits.request_line)
    if _NOT_VCHAR.search(target) or _bad_form(method, target, whole):
        raise ProtocolError(400, "malformed request line")
    if len(target) > limits.request_line:
        raise ProtocolError(414, "request target too long")
    if sp < 0:
        if complete:  # no HTTP-version: an HTTP/0.9 simple request
            raise ProtocolError(400, "malformed request line")
        return None
    # HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3)
    start = _skip_spaces(text, start + sp)
    rest = text[start:]
    if not complete:
        if _VERSION_PREFIX.fullmatch(rest) is None:
            raise ProtocolError(400, "malformed request line")
        return None
    match = _VERSION.fullmatch(rest)
    if match is None:
        raise ProtocolError(400, "malformed request line")
    version = match.group(1)
    if version not in VERSIONS:
        raise ProtocolError(505, "HTTP version not supported")
    if method not in SUPPORTED_METHODS:
        raise ProtocolError(501, "method not implemented")
    return method, target, version


def _skip_spaces(text: bytes, pos: int) -> int:
    match = _SPACES.match(text, pos)
    assert match is not None  # "*" always matches
    return match.end()


def _bad_form(method: bytes, target: bytes, whole: bool) -> bool:
    """Whether ``target`` (or, unless ``whole``, any target it begins) has no valid form.

    The forms llhttp accepts: origin-form (``/...``), asterisk-form (``*``)
    and absolute-form with a letters-only scheme (RFC 9112 §3.2); for CONNECT,
    which swserve refuses with 501 anyway, any target.
    """
    if target[:1] == b"/" or target == b"*" or method == b"CONNECT":
        return False
    if _ABSOLUTE.match(target):
        return False
    return whole or _ABSOLUTE_PREFIX.fullmatch(target) is None


def parse_request_line(line: bytes, limits: Limits) -> tuple[bytes, bytes, bytes]:
    """(method, target, version) of a complete request line (the bytes before LF).

    Raises:
        ProtocolError: 400 for a malformed line, 414 for a target over
            ``limits.request_line``, 505 for a version other than 1.0 and 1.1,
            501 for a method swserve does not implement.
    """
    if not line.endswith(b"\r"):
        # the LF is the last byte: what the rules say of the bytes before it comes first
        _scan_line(line, limits, complete=False)
        raise ProtocolError(400, "bare LF line ending")
    parsed = _scan_line(line[:-1], limits, complete=True)
    assert parsed is not None
    return parsed


def check_request_line_prefix(prefix: bytes, limits: Limits) -> None:
    """Raise the ProtocolError that any request line starting with ``prefix`` gets."""
    if prefix.endswith(b"\r"):
        prefix = prefix[:-1]  # the CR of the CRLF, or a bare CR: the next byte tells
    _scan_line(prefix, limits, complete=False)


def parse_field_line(line: bytes) -> tuple[bytes, bytes]:
    """(lower-cased name, value without OWS) of a header or trailer field line.

    ``line`` is the bytes before LF.  Rejects with 400 what h11 would let
    through and llhttp refuses: a bare CR or LF, obs-fold (RFC 9112 §5.2),
    whitespace before the colon (§5.1) and control characters in the value.
    """
    if not line.endswith(b"\r"):
        raise ProtocolError(400, "bare LF line ending")
    line = line[:-1]
    if b"\r" in line:
        raise ProtocolError(400, "bare CR in a field line")
    name, colon, value = line.partition(b":")
    if not colon or _TOKEN.fullmatch(name) is None:
        # a line starting with SP or HTAB is obs-fold (RFC 9112 §5.2), or
        # whitespace before the first field (§2.2): not a field name either
        raise ProtocolError(400, "malformed header field")
    value = value.strip(b" \t")
    if _BAD_VALUE.search(value):
        raise ProtocolError(400, "control character in a header field value")
    return name.lower(), value
