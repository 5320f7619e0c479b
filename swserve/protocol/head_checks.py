"""Request framing rules shared by both parsers (RFC 9112 §6, RFC 9110 §10.1.1).

Not to be confused with ``ipc/framing.py``, the IPC frame header: this module is about
how an HTTP/1.1 request says where its body ends.

httptools and h11 each accept some inputs the other rejects; running the same
checks on the framing headers of every request gives one behaviour whatever
parser is in use.  Only the headers named in ``FRAMING_HEADERS`` reach here, so
requests without them pay for one set lookup per header and nothing more.
"""

from __future__ import annotations

from typing import Final

from swserve.errors import ProtocolError
from swserve.protocol.limits import Limits
from swserve.protocol.target import VALID_HOSTS, check_host

_MAX_CL_DIGITS: Final = 18  # fits in a signed 64-bit integer: nobody sends an exabyte


class Head:
    """What the framing headers say about one request."""

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "keep_alive",
        "upgrade",
        "websocket",
    )

    def __init__(self) -> None:
        self.content_length: int | None = None
        self.chunked = False
        self.keep_alive = True
        self.expect_continue = False
        self.upgrade = False  # Connection names the upgrade option
        self.websocket = False  # Upgrade names websocket (checked by protocol/ws_handshake.py)


def check_head(version: bytes, framing: list[tuple[bytes, bytes]], limits: Limits) -> Head:
    """Validate the framing headers of a request and say how its body is framed.

    Args:
        version: ``b"1.1"`` or ``b"1.0"``.
        framing: (lower-cased name, raw value) for each framing header, in order.
        limits: the body size limit is checked against Content-Length here.

    Raises:
        ProtocolError: 400 for smuggling-prone or malformed framing, 413 for a
            declared body over the limit, 417 for an unknown expectation, 501
            for a transfer coding we do not implement.
    """
    head = Head()
    if version != b"1.1" and version != b"1.0":
        raise ProtocolError(505, "HTTP version not supported")
    http11 = version == b"1.1"
    head.keep_alive = http11
    hosts = 0
    content_types = 0
    unmet_expectation = False
    lengths: list[bytes] = []
    codings: list[bytes] = []
    for name, value in framing:
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            codings.extend(c.strip().lower() for c in value.split(b","))
        elif name == b"host":
            hosts += 1
            if value not in VALID_HOSTS:
                check_host(value)
        elif name == b"content-type":
            content_types += 1
        elif name == b"connection":
            tokens = {t.strip().lower() for t in value.split(b",")}
            if b"close" in tokens:
                head.keep_alive = False
            elif b"keep-alive" in tokens:
                head.keep_alive = True
            head.upgrade = head.upgrade or b"upgrade" in tokens
        elif name == b"upgrade":
            head.websocket = head.websocket or b"websocket" in value.lower()
        elif name == b"expect":
            if value.strip().lower() == b"100-continue":
                head.expect_continue = http11
            else:
                unmet_expectation = True
    # RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code
    # to any HTTP/1.1 request message that lacks a Host header field and to any
    # request message that contains more than one Host header field line".
    if hosts > 1:
        raise ProtocolError(400, "more than one Host header")
    if http11 and not hosts:
        raise ProtocolError(400, "missing Host header")
    if content_types > 1:
        # Content-Type is a singleton field (RFC 9110 §8.3): two of them cannot
        # be combined into one list (§5.3), so the request is malformed; the
        # app would otherwise see them joined by a comma.  gunicorn refuses it too.
        raise ProtocolError(400, "more than one Content-Type header")
    if codings:
        if lengths:
            # RFC 9112 §6.1: a message with both "ought to be handled as an error";
            # it is the classic request-smuggling vector, so we refuse it outright.
            raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
        if not http11:
            raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
            raise ProtocolError(400, "chunked must be the last transfer coding, once")
        if len(codings) > 1:
            raise ProtocolError(501, "unsupported transfer coding")
        head.chunked = True
    elif lengths:
        if len(lengths) > 1:
            raise ProtocolError(400, "more than one Content-Length")
        value = lengths[0]
        if not value.isdigit() or len(value) > _MAX_CL_DIGITS:
            raise ProtocolError(400, "invalid Content-Length")
        head.content_length = int(value)
        if head.content_length > limits.body:
            raise ProtocolError(413, "request body too large")
    if unmet_expectation:
        # after the framing checks, which llhttp makes while it reads the fields
        raise ProtocolError(417, "unsupported expectation")
    if head.upgrade:
        # we speak no upgraded protocol: answer as HTTP/1.1 and close, so the
        # bytes the client sends next in the new protocol are never parsed
        head.keep_alive = False
    return head


def origin_form(target: bytes) -> bytes:
    """The path and query of a request target, whatever its form.

    An absolute-form target (RFC 9112 §3.2.2, ``http://host:port/path?q``) becomes
    what follows its authority, which ends at the first ``/`` or ``?`` (RFC 3986
    §3.2); an empty path is ``/`` (RFC 9110 §4.2.3).  Origin-form and ``*`` are
    returned as they are.
    """
    if target[:1] == b"/" or target == b"*":
        return target
    scheme_end = target.find(b"://")
    if scheme_end == -1:
        return target
    start = scheme_end + 3
    end = len(target)
    for delimiter in (b"/", b"?"):
        found = target.find(delimiter, start)
        if found != -1:
            end = min(end, found)
    rest = target[end:]
    return rest if rest[:1] == b"/" else b"/" + rest


def absolute_form_host(target: bytes) -> bytes | None:
    """The authority of an absolute-form target (``http://host:port/path``), else None.

    RFC 9112 §3.2.2: "When an origin server receives a request with an
    absolute-form of request-target, the origin server MUST ignore the received
    Host header field (if any) and instead use the host information of the
    request-target."
    """
    if target[:1] == b"/" or target == b"*":
        return None
    start = target.find(b"://")
    if start == -1:
        return None
    start += 3
    end = len(target)
    for delimiter in (b"/", b"?", b"#"):
        found = target.find(delimiter, start)
        if found != -1:
            end = min(end, found)
    authority = target[start:end].rpartition(b"@")[2]  # drop any userinfo
    return authority or None
