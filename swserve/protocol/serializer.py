"""Response bytes: status lines, the framing headers, chunked encoding.

The reactor writes what the worker sends, adding only what HTTP/1.1 framing
needs (RFC 9112 §6): Transfer-Encoding: chunked when the app gave no
Content-Length, Connection when keep-alive differs from the version's
default, and the Date and Server lines (the shell passes the cached Date in:
this module reads no clock).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

from swserve.protocol.request import Request


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


# Status lines are built once per status and cached (both versions answer
# "HTTP/1.1": RFC 9110 §6.2, a server sends its own highest version).
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, _reason(status))
        _STATUS_LINES[status] = line
    return line


# Response-start flags the worker sets (they travel in the IPC frame's flags byte).
HAS_CONTENT_LENGTH: Final = 0x01  # the app set Content-Length: no chunked framing
APP_CLOSE: Final = 0x02  # the app asked for Connection: close
HAS_DATE: Final = 0x04  # the app set its own Date
HAS_SERVER: Final = 0x08  # the app set its own Server

CHUNKED: Final = b"transfer-encoding: chunked\r\n"
CLOSE: Final = b"connection: close\r\n"
KEEP_ALIVE: Final = b"connection: keep-alive\r\n"
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK: Final = b"0\r\n\r\n"


class ResponsePlan:
    """How one response is framed on the wire, decided once from its start."""

    __slots__ = ("body_allowed", "chunked", "keep_alive")

    def __init__(self, body_allowed: bool, chunked: bool, keep_alive: bool) -> None:
        self.body_allowed = body_allowed
        self.chunked = chunked
        self.keep_alive = keep_alive


def plan_response(
    request: Request, status: int, flags: int, *, shutting_down: bool = False
) -> ResponsePlan:
    """Decide body, chunking and keep-alive for a response (RFC 9112 §6.3).

    ``shutting_down`` (draining, or ``--keep-alive 0``) closes the connection after it.
    """
    # HEAD, 1xx, 204 and 304 responses never carry a body (RFC 9110 §6.4.1).
    body_allowed = request.method != b"HEAD" and status >= 200 and status not in (204, 304)
    keep_alive = request.keep_alive and not (flags & APP_CLOSE) and not shutting_down
    chunked = False
    if body_allowed and not flags & HAS_CONTENT_LENGTH:
        if request.version == b"1.1":
            chunked = True
        else:
            keep_alive = False  # HTTP/1.0 without a length: the close delimits the body
    return ResponsePlan(body_allowed, chunked, keep_alive)


SERVER: Final = b"server: swserve\r\n"


def date_server_block(
    date: bytes, *, date_header: bool = True, server_header: bool = True
) -> bytes:
    """The cached ``date: …\r\nserver: swserve\r\n`` lines, less what the settings turn off.

    ``--no-date-header``/``--no-server-header`` drop a line from every response
    the reactor writes, its own error responses included; an app's own Date or
    Server header still goes out as the app set it.
    """
    return (b"date: " + date + b"\r\n" if date_header else b"") + (SERVER if server_header else b"")


def response_head(
    request: Request,
    status: int,
    flags: int,
    headers: bytes,
    plan: ResponsePlan,
    date_server: bytes,
) -> bytes:
    """Serialise the head.  ``headers`` are the app's, already "name: value\\r\\n" lines.

    ``date_server`` is the cached ``date: …\\r\\nserver: swserve\\r\\n`` block;
    a line is left out when the app set its own (HAS_DATE / HAS_SERVER).
    """
    parts = [status_line(status), headers]
    if plan.chunked:
        parts.append(CHUNKED)
    if not plan.keep_alive:
        if request.keep_alive or request.version == b"1.1":
            parts.append(CLOSE)
    elif request.version == b"1.0":
        parts.append(KEEP_ALIVE)
    if not flags & (HAS_DATE | HAS_SERVER):
        parts.append(date_server)
    else:
        for line in date_server.splitlines(keepends=True):
            if line.startswith(b"date:") and flags & HAS_DATE:
                continue
            if line.startswith(b"server:") and flags & HAS_SERVER:
                continue
            parts.append(line)
    parts.append(b"\r\n")
    return b"".join(parts)


def chunk(data: bytes | bytearray | memoryview) -> list[bytes | bytearray | memoryview]:
    """One chunk of a chunked body, as buffers for ``writelines``."""
    return [b"%x\r\n" % len(data), data, b"\r\n"]


def error_response(status: int, date_server: bytes) -> bytes:
    """A complete, small error response; never echoes request data."""
    body = b"%d %s\n" % (status, _reason(status))
    return b"".join(
        (
            status_line(status),
            b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body),
            CLOSE,
            date_server,
            b"\r\n",
            body,
        )
    )
