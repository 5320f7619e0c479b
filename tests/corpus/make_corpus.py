"""Generate the HTTP/1.x request corpus under ``tests/corpus/requests/``.

Run ``python tests/corpus/make_corpus.py`` after editing a case below, and
commit this script together with the files it writes;
``tests/unit/protocol/test_parser_corpus.py`` fails when they are out of sync.

Each case is a pair of files:

``requests/valid/NNN-what.http``
    The raw request bytes, exactly as a client sends them.
``requests/valid/NNN-what.json``
    ``{"description", "rfc", "requests": [...]}`` and optionally ``"limits"``
    (keyword arguments for :class:`~swserve.protocol.limits.Limits`).  Every
    request has ``method``, ``target``, ``version``, ``headers`` (``[name,
    value]`` pairs, names lower-cased, values raw), ``body`` (latin-1 text) or
    ``body_base64`` (binary), ``keep_alive`` and ``expect_continue``.  Byte
    strings are decoded as latin-1, so every byte round-trips.
``requests/invalid/NNN-what.http`` / ``.json``
    ``{"description", "rfc", "status", "completed", "at_eof"}`` and optionally
    ``"limits"``: the parser must raise ``ProtocolError(status)`` after handing
    out ``completed`` requests; before the end of the input unless ``at_eof``
    (then only once ``feed(b"")`` reports the connection closed).

The expectations are what RFC 9112 / RFC 9110 (and swserve's documented
choices in ``swserve/protocol/head_checks.py``) require, not what either parser
happens to do today.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE / "requests"

CRLF = b"\r\n"
HOST = b"Host: example.com"

Headers = list[tuple[bytes, bytes]]

_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
_PAIR = re.compile(rf"\[\s*({_JSON_STRING}),\s*({_JSON_STRING})\s*\]")


def head(request_line: bytes, *fields: bytes) -> bytes:
    """A request head: the request line, the field lines, the empty line."""
    return CRLF.join((request_line, *fields)) + CRLF + CRLF


def _text(data: bytes) -> str:
    return data.decode("latin-1")


def _is_text(data: bytes) -> bool:
    return all(0x20 <= b < 0x7F or b in b"\t\r\n" for b in data)


def req(
    method: bytes,
    target: bytes,
    headers: Headers,
    body: bytes = b"",
    *,
    version: bytes = b"1.1",
    keep_alive: bool = True,
    expect_continue: bool = False,
) -> dict[str, Any]:
    """One expected request, in its JSON form."""
    out: dict[str, Any] = {
        "method": _text(method),
        "target": _text(target),
        "version": _text(version),
        "headers": [[_text(n), _text(v)] for n, v in headers],
    }
    if _is_text(body):
        out["body"] = _text(body)
    else:
        out["body_base64"] = base64.b64encode(body).decode("ascii")
    out["keep_alive"] = keep_alive
    out["expect_continue"] = expect_continue
    return out


H: Headers = [(b"host", b"example.com")]

VALID: list[tuple[str, bytes, dict[str, Any]]] = []
INVALID: list[tuple[str, bytes, dict[str, Any]]] = []


def valid(
    name: str,
    raw: bytes,
    requests: list[dict[str, Any]],
    description: str,
    rfc: str = "",
    limits: dict[str, int] | None = None,
) -> None:
    meta: dict[str, Any] = {"description": description, "rfc": rfc}
    if limits:
        meta["limits"] = limits
    meta["requests"] = requests
    VALID.append((name, raw, meta))


def invalid(
    name: str,
    raw: bytes,
    status: int,
    description: str,
    rfc: str,
    *,
    completed: int = 0,
    at_eof: bool = False,
    limits: dict[str, int] | None = None,
) -> None:
    meta: dict[str, Any] = {"description": description, "rfc": rfc}
    if limits:
        meta["limits"] = limits
    meta.update(status=status, completed=completed, at_eof=at_eof)
    INVALID.append((name, raw, meta))


def tls_client_hello() -> bytes:
    """A well-formed TLS 1.2/1.3 ClientHello for example.com (fixed random)."""
    sni_name = b"example.com"
    sni = b"\x00" + len(sni_name).to_bytes(2, "big") + sni_name
    sni_ext = b"\x00\x00" + (len(sni) + 2).to_bytes(2, "big") + len(sni).to_bytes(2, "big") + sni
    versions_ext = b"\x00\x2b\x00\x05\x04\x03\x04\x03\x03"
    extensions = sni_ext + versions_ext
    suites = b"\x13\x01\x13\x02\xc0\x2f\x00\x9c"
    body = (
        b"\x03\x03"
        + bytes(range(32))  # client random
        + b"\x00"  # no session id
        + len(suites).to_bytes(2, "big")
        + suites
        + b"\x01\x00"  # null compression only
        + len(extensions).to_bytes(2, "big")
        + extensions
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake


# -- valid requests -------------------------------------------------------------------

valid(
    "simple-get",
    head(b"GET / HTTP/1.1", HOST),
    [req(b"GET", b"/", H)],
    "The smallest HTTP/1.1 request.",
    "RFC 9112 §3",
)
valid(
    "query-string",
    head(b"GET /search?q=swserve&page=2&empty=&flag HTTP/1.1", HOST),
    [req(b"GET", b"/search?q=swserve&page=2&empty=&flag", H)],
    "The query is part of the target and is passed on verbatim.",
    "RFC 9112 §3.2.1",
)
valid(
    "percent-encoded-path",
    head(b"GET /a%20b/%E2%98%83/%2F?x=%41%42 HTTP/1.1", HOST),
    [req(b"GET", b"/a%20b/%E2%98%83/%2F?x=%41%42", H)],
    "Percent-encoding is not decoded by the parser.",
    "RFC 9112 §3.2.1, RFC 3986 §2.1",
)
valid(
    "absolute-form",
    head(b"GET http://example.com/x?y HTTP/1.1", HOST),
    [req(b"GET", b"http://example.com/x?y", H)],
    "absolute-form target: servers MUST accept it.",
    "RFC 9112 §3.2.2",
)
valid(
    "options-asterisk",
    head(b"OPTIONS * HTTP/1.1", HOST),
    [req(b"OPTIONS", b"*", H)],
    "asterisk-form target.",
    "RFC 9112 §3.2.4",
)
valid(
    "http10-no-keep-alive",
    head(b"GET /old HTTP/1.0"),
    [req(b"GET", b"/old", [], version=b"1.0", keep_alive=False)],
    "HTTP/1.0 without Connection: keep-alive is not persistent; no Host needed.",
    "RFC 9112 §9.3",
)
valid(
    "http10-keep-alive",
    head(b"GET / HTTP/1.0", b"Connection: Keep-Alive"),
    [req(b"GET", b"/", [(b"connection", b"Keep-Alive")], version=b"1.0")],
    "HTTP/1.0 keep-alive (case-insensitive token).",
    "RFC 9112 §9.3, Appendix C.2.2",
)
valid(
    "connection-close",
    head(b"GET / HTTP/1.1", HOST, b"Connection: TE, Close"),
    [req(b"GET", b"/", [*H, (b"connection", b"TE, Close")], keep_alive=False)],
    "A close option anywhere in the Connection list ends persistence.",
    "RFC 9112 §9.6, RFC 9110 §7.6.1",
)
valid(
    "repeated-headers",
    head(
        b"GET / HTTP/1.1",
        HOST,
        b"Accept: text/html",
        b"Cookie: a=1",
        b"Accept: application/json",
        b"Cookie: b=2",
        b"X-Forwarded-For: 10.0.0.1",
        b"X-Forwarded-For: 10.0.0.2",
    ),
    [
        req(
            b"GET",
            b"/",
            [
                *H,
                (b"accept", b"text/html"),
                (b"cookie", b"a=1"),
                (b"accept", b"application/json"),
                (b"cookie", b"b=2"),
                (b"x-forwarded-for", b"10.0.0.1"),
                (b"x-forwarded-for", b"10.0.0.2"),
            ],
        )
    ],
    "Repeated field lines are kept separately, in order.",
    "RFC 9110 §5.2, §5.3",
)
valid(
    "empty-header-values",
    head(b"GET / HTTP/1.1", HOST, b"X-Empty:", b"X-Empty-Space: ", b"Accept-Encoding:"),
    [
        req(
            b"GET",
            b"/",
            [*H, (b"x-empty", b""), (b"x-empty-space", b""), (b"accept-encoding", b"")],
        )
    ],
    "field-value may be empty; surrounding OWS is not part of it.",
    "RFC 9110 §5.5, RFC 9112 §5",
)
valid(
    "content-length-body",
    head(b"POST /form HTTP/1.1", HOST, b"Content-Type: text/plain", b"Content-Length: 13")
    + b"hello, world!",
    [
        req(
            b"POST",
            b"/form",
            [*H, (b"content-type", b"text/plain"), (b"content-length", b"13")],
            b"hello, world!",
        )
    ],
    "Body delimited by Content-Length.",
    "RFC 9112 §6.2, §6.3",
)
valid(
    "content-length-zero",
    head(b"POST / HTTP/1.1", HOST, b"Content-Length: 0"),
    [req(b"POST", b"/", [*H, (b"content-length", b"0")])],
    "An explicitly empty body.",
    "RFC 9112 §6.2",
)
valid(
    "content-length-leading-zeros",
    head(b"PUT /x HTTP/1.1", HOST, b"Content-Length: 007") + b"1234567",
    [req(b"PUT", b"/x", [*H, (b"content-length", b"007")], b"1234567")],
    "Content-Length = 1*DIGIT: leading zeros are digits.",
    "RFC 9110 §8.6",
)
valid(
    "binary-body",
    head(b"POST /upload HTTP/1.1", HOST, b"Content-Length: 8") + b"\x00\xff\r\n\x80\x7f\n\r",
    [
        req(
            b"POST",
            b"/upload",
            [*H, (b"content-length", b"8")],
            b"\x00\xff\r\n\x80\x7f\n\r",
        )
    ],
    "The content is opaque octets, CR and LF included.",
    "RFC 9110 §6.4",
)
valid(
    "chunked-body",
    head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: chunked")
    + b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n",
    [req(b"POST", b"/", [*H, (b"transfer-encoding", b"chunked")], b"hello, world")],
    "A chunked body is de-chunked.",
    "RFC 9112 §7.1",
)
valid(
    "chunked-extensions-trailers",
    head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: chunked", b"Trailer: X-Checksum")
    + b'5;name=value\r\nhello\r\n6;a;b="quoted;value"\r\n world\r\n0;last\r\n'
    + b"X-Checksum: abc123\r\n\r\n",
    [
        req(
            b"POST",
            b"/",
            [*H, (b"transfer-encoding", b"chunked"), (b"trailer", b"X-Checksum")],
            b"hello world",
        )
    ],
    "Chunk extensions are ignored; trailer fields are discarded, never merged into"
    " the header section (so an app cannot mistake a trailer for a header).",
    "RFC 9112 §7.1.1, §7.1.2; RFC 9110 §6.5.2",
)
valid(
    "chunked-zero-length",
    head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: chunked") + b"0\r\n\r\n",
    [req(b"POST", b"/", [*H, (b"transfer-encoding", b"chunked")])],
    "A chunked body that is just the last-chunk.",
    "RFC 9112 §7.1",
)
valid(
    "chunked-hex-sizes",
    head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: chunked")
    + b"A\r\n0123456789\r\n000b\r\nabcdefghijk\r\n000\r\n\r\n",
    [
        req(
            b"POST",
            b"/",
            [*H, (b"transfer-encoding", b"chunked")],
            b"0123456789abcdefghijk",
        )
    ],
    "chunk-size is 1*HEXDIG: either case, leading zeros allowed.",
    "RFC 9112 §7.1",
)
valid(
    "chunked-coding-name-case",
    head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: Chunked") + b"2\r\nok\r\n0\r\n\r\n",
    [req(b"POST", b"/", [*H, (b"transfer-encoding", b"Chunked")], b"ok")],
    "Transfer coding names are case-insensitive; the header value stays raw.",
    "RFC 9112 §7",
)
valid(
    "pipelined-gets",
    head(b"GET /1 HTTP/1.1", HOST)
    + head(b"GET /2 HTTP/1.1", HOST)
    + head(b"GET /3 HTTP/1.1", HOST),
    [req(b"GET", b"/1", H), req(b"GET", b"/2", H), req(b"GET", b"/3", H)],
    "Pipelined requests are returned in order.",
    "RFC 9112 §9.3.2",
)
valid(
    "pipelined-bodies",
    head(b"POST /a HTTP/1.1", HOST, b"Content-Length: 3")
    + b"abc"
    + head(b"POST /b HTTP/1.1", HOST, b"Transfer-Encoding: chunked")
    + b"3\r\ndef\r\n0\r\n\r\n"
    + head(b"DELETE /c HTTP/1.1", HOST),
    [
        req(b"POST", b"/a", [*H, (b"content-length", b"3")], b"abc"),
        req(b"POST", b"/b", [*H, (b"transfer-encoding", b"chunked")], b"def"),
        req(b"DELETE", b"/c", H),
    ],
    "Each body ends exactly where its framing says; the next request follows.",
    "RFC 9112 §6.3, §9.3.2",
)
valid(
    "expect-100-continue",
    head(b"POST / HTTP/1.1", HOST, b"Expect: 100-Continue", b"Content-Length: 4") + b"data",
    [
        req(
            b"POST",
            b"/",
            [*H, (b"expect", b"100-Continue"), (b"content-length", b"4")],
            b"data",
            expect_continue=True,
        )
    ],
    "100-continue (case-insensitive) is recorded for the shell.",
    "RFC 9110 §10.1.1",
)
valid(
    "expect-100-continue-http10-ignored",
    head(b"POST / HTTP/1.0", b"Expect: 100-continue", b"Content-Length: 2") + b"hi",
    [
        req(
            b"POST",
            b"/",
            [(b"expect", b"100-continue"), (b"content-length", b"2")],
            b"hi",
            version=b"1.0",
            keep_alive=False,
        )
    ],
    "A server MUST ignore a 100-continue expectation in an HTTP/1.0 request.",
    "RFC 9110 §10.1.1",
)
_MANY = [(b"x-header-%03d" % i, b"value-%03d" % i) for i in range(98)]
_LARGE = b"L" * 8000
valid(
    "large-headers-under-limits",
    head(
        b"GET / HTTP/1.1",
        HOST,
        *(b"X-Header-%03d: value-%03d" % (i, i) for i in range(98)),
        b"X-Large: " + _LARGE,
    ),
    [req(b"GET", b"/", [*H, *_MANY, (b"x-large", _LARGE)])],
    "100 header fields (the limit), one of 8000 bytes: all within the default Limits.",
    "RFC 9112 §2.3 (no predefined limits), swserve/protocol/limits.py",
)
_QUERY = b"/q?" + b"&".join(b"k%03d=%s" % (i, b"v" * 12) for i in range(120))
valid(
    "long-target",
    head(b"GET " + _QUERY + b" HTTP/1.1", HOST),
    [req(b"GET", _QUERY, H)],
    "A 2 KB target, well under the 8190-byte request-line limit.",
    "RFC 9112 §3 (recommends at least 8000 octets)",
)
_AT_LIMIT = b"/" + b"a" * 8189
valid(
    "target-at-limit",
    head(b"GET " + _AT_LIMIT + b" HTTP/1.1", HOST),
    [req(b"GET", _AT_LIMIT, H)],
    "A target of exactly Limits.request_line (8190) bytes is accepted, whatever"
    " the TCP segmentation (both glues compare the target length to the limit).",
    "RFC 9112 §3, swserve/protocol/limits.py",
)
valid(
    "upgrade-websocket",
    head(
        b"GET /chat HTTP/1.1",
        HOST,
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Sec-WebSocket-Version: 13",
    ),
    [
        req(
            b"GET",
            b"/chat",
            [
                *H,
                (b"upgrade", b"websocket"),
                (b"connection", b"Upgrade"),
                (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
                (b"sec-websocket-version", b"13"),
            ],
            keep_alive=False,
        )
    ],
    "swserve ignores Upgrade: the request is answered as plain HTTP, then closed.",
    "RFC 9110 §7.8",
)
valid(
    "upgrade-then-protocol-bytes",
    head(b"GET /chat HTTP/1.1", HOST, b"Connection: keep-alive, Upgrade", b"Upgrade: websocket")
    + b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
    [
        req(
            b"GET",
            b"/chat",
            [*H, (b"connection", b"keep-alive, Upgrade"), (b"upgrade", b"websocket")],
            keep_alive=False,
        )
    ],
    "Bytes an eager client sends in the new protocol are never parsed as HTTP.",
    "RFC 9110 §7.8, RFC 9112 §9.6",
)
valid(
    "upgrade-with-body",
    head(
        b"POST /rpc HTTP/1.1",
        HOST,
        b"Connection: Upgrade, HTTP2-Settings",
        b"Upgrade: h2c",
        b"HTTP2-Settings: AAMAAABkAAQAAP__",
        b"Content-Length: 3",
    )
    + b"abc",
    [
        req(
            b"POST",
            b"/rpc",
            [
                *H,
                (b"connection", b"Upgrade, HTTP2-Settings"),
                (b"upgrade", b"h2c"),
                (b"http2-settings", b"AAMAAABkAAQAAP__"),
                (b"content-length", b"3"),
            ],
            b"abc",
            keep_alive=False,
        )
    ],
    "An ignored Upgrade does not change framing: the body is read in full.",
    "RFC 9110 §7.8, RFC 9112 §6.3",
)
valid(
    "upgrade-with-chunked-body",
    head(
        b"POST /rpc HTTP/1.1",
        HOST,
        b"Connection: Upgrade",
        b"Upgrade: h2c",
        b"Transfer-Encoding: chunked",
    )
    + b"3\r\nabc\r\n0\r\n\r\n"
    + b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    [
        req(
            b"POST",
            b"/rpc",
            [
                *H,
                (b"connection", b"Upgrade"),
                (b"upgrade", b"h2c"),
                (b"transfer-encoding", b"chunked"),
            ],
            b"abc",
            keep_alive=False,
        )
    ],
    "A chunked body of an ignored Upgrade is read in full; what follows it is not.",
    "RFC 9110 §7.8, RFC 9112 §6.3, §9.6",
)
valid(
    "patch-and-delete",
    head(
        b"PATCH /items/1 HTTP/1.1",
        HOST,
        b"Content-Type: application/json",
        b"Content-Length: 14",
    )
    + b'{"name":"new"}'
    + head(b"DELETE /items/2 HTTP/1.1", HOST)
    + head(b"HEAD /items HTTP/1.1", HOST)
    + head(b"PUT /items/3 HTTP/1.1", HOST, b"Content-Length: 0"),
    [
        req(
            b"PATCH",
            b"/items/1",
            [*H, (b"content-type", b"application/json"), (b"content-length", b"14")],
            b'{"name":"new"}',
        ),
        req(b"DELETE", b"/items/2", H),
        req(b"HEAD", b"/items", H),
        req(b"PUT", b"/items/3", [*H, (b"content-length", b"0")]),
    ],
    "Other registered methods.",
    "RFC 9110 §9.3, RFC 5789",
)
valid(
    "header-names-digits-dashes",
    head(
        b"GET / HTTP/1.1",
        HOST,
        b"X-1-2-3: a",
        b"Sec-CH-UA-Platform: b",
        b"x--y: c",
        b"123: d",
        b"X_Underscore: e",
        b"X.Dotted~Name!: f",
    ),
    [
        req(
            b"GET",
            b"/",
            [
                *H,
                (b"x-1-2-3", b"a"),
                (b"sec-ch-ua-platform", b"b"),
                (b"x--y", b"c"),
                (b"123", b"d"),
                (b"x_underscore", b"e"),
                (b"x.dotted~name!", b"f"),
            ],
        )
    ],
    "field-name is a token: digits, dashes and the other tchars are allowed.",
    "RFC 9110 §5.1, §5.6.2",
)
valid(
    "utf8-header-value",
    head(b"GET / HTTP/1.1", HOST, "X-Name: José ☃ 日本".encode()),
    [req(b"GET", b"/", [*H, (b"x-name", "José ☃ 日本".encode())])],
    "obs-text bytes (0x80-0xFF) in field values are kept as raw bytes.",
    "RFC 9110 §5.5",
)
valid(
    "tab-in-header-value",
    head(b"GET / HTTP/1.1", HOST, b"X-Tab:\tinner\ttab", b"X-Mixed: a \t b"),
    [req(b"GET", b"/", [*H, (b"x-tab", b"inner\ttab"), (b"x-mixed", b"a \t b")])],
    "HTAB is allowed inside a value; leading OWS is not part of it.",
    "RFC 9110 §5.5, RFC 9112 §5",
)
valid(
    "trailing-ows-stripped",
    head(b"GET / HTTP/1.1", b"Host: example.com \t", b"X-Value: some value  \t "),
    [req(b"GET", b"/", [(b"host", b"example.com"), (b"x-value", b"some value")])],
    "Trailing OWS is not part of the field value.",
    "RFC 9112 §5 (field-line = field-name ':' OWS field-value OWS), RFC 9110 §5.5",
)
valid(
    "content-length-trailing-ows",
    head(b"POST / HTTP/1.1", HOST, b"Content-Length: 5 ") + b"hello",
    [req(b"POST", b"/", [*H, (b"content-length", b"5")], b"hello")],
    "Content-Length followed by OWS is a valid field line.",
    "RFC 9112 §5, RFC 9110 §8.6",
)
valid(
    "empty-host",
    head(b"GET / HTTP/1.1", b"Host:"),
    [req(b"GET", b"/", [(b"host", b"")])],
    "An empty Host is allowed when the target URI has no authority.",
    "RFC 9112 §3.2",
)
valid(
    "host-with-port",
    head(b"GET / HTTP/1.1", b"Host: [::1]:8080"),
    [req(b"GET", b"/", [(b"host", b"[::1]:8080")])],
    "Host = uri-host [ ':' port ], IPv6 literal included.",
    "RFC 9110 §7.2",
)
valid(
    "leading-empty-line",
    CRLF + head(b"GET / HTTP/1.1", HOST),
    [req(b"GET", b"/", H)],
    "A server SHOULD ignore at least one empty line before the request-line.",
    "RFC 9112 §2.2",
)
valid(
    "extra-crlf-after-body",
    head(b"POST /a HTTP/1.1", HOST, b"Content-Length: 2")
    + b"hi"
    + CRLF
    + head(b"GET /b HTTP/1.1", HOST),
    [
        req(b"POST", b"/a", [*H, (b"content-length", b"2")], b"hi"),
        req(b"GET", b"/b", H),
    ],
    "Old clients send an extra CRLF after a POST body; it is an empty line before"
    " the next request-line.",
    "RFC 9112 §2.2",
)
valid(
    "close-then-pipelined",
    head(b"GET /1 HTTP/1.1", HOST, b"Connection: close") + head(b"GET /2 HTTP/1.1", HOST),
    [req(b"GET", b"/1", [*H, (b"connection", b"close")], keep_alive=False)],
    "Nothing after a request with Connection: close is processed (and it is not an"
    " error: the first request is answered normally).",
    "RFC 9112 §9.6",
)
valid(
    "http10-then-pipelined",
    head(b"GET /1 HTTP/1.0") + head(b"GET /2 HTTP/1.0"),
    [req(b"GET", b"/1", [], version=b"1.0", keep_alive=False)],
    "An HTTP/1.0 request without keep-alive is the last one on its connection.",
    "RFC 9112 §9.3, §9.6",
)
valid(
    "http10-keep-alive-pipelined",
    head(b"GET /1 HTTP/1.0", b"Connection: keep-alive")
    + head(b"GET /2 HTTP/1.0", b"Connection: keep-alive")
    + head(b"GET /3 HTTP/1.0"),
    [
        req(b"GET", b"/1", [(b"connection", b"keep-alive")], version=b"1.0"),
        req(b"GET", b"/2", [(b"connection", b"keep-alive")], version=b"1.0"),
        req(b"GET", b"/3", [], version=b"1.0", keep_alive=False),
    ],
    "HTTP/1.0 keep-alive connections carry several requests (ab -k does this).",
    "RFC 9112 Appendix C.2.2",
)
valid(
    "connection-upgrade-without-upgrade",
    head(b"GET /1 HTTP/1.1", HOST, b"Connection: upgrade") + head(b"GET /2 HTTP/1.1", HOST),
    [req(b"GET", b"/1", [*H, (b"connection", b"upgrade")], keep_alive=False)],
    "swserve closes after any request naming the upgrade option (framing.py);"
    " nothing after a non-persistent request is processed.",
    "RFC 9112 §9.6, swserve/protocol/head_checks.py",
)
valid(
    "body-at-limit",
    head(b"POST / HTTP/1.1", HOST, b"Content-Length: 10")
    + b"0123456789"
    + head(b"POST / HTTP/1.1", HOST, b"Transfer-Encoding: chunked")
    + b"4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n",
    [
        req(b"POST", b"/", [*H, (b"content-length", b"10")], b"0123456789"),
        req(b"POST", b"/", [*H, (b"transfer-encoding", b"chunked")], b"abcdefghij"),
    ],
    "Bodies of exactly Limits.body bytes are accepted, however they are framed.",
    "RFC 9110 §15.5.14",
    limits={"body": 10},
)


# -- invalid requests -----------------------------------------------------------------

P = b"POST / HTTP/1.1"
G = b"GET / HTTP/1.1"
TE_CHUNKED = b"Transfer-Encoding: chunked"

invalid(
    "content-length-and-transfer-encoding",
    head(P, HOST, b"Content-Length: 5", TE_CHUNKED) + b"0\r\n\r\n",
    400,
    "Both framing headers: the classic request-smuggling vector.",
    "RFC 9112 §6.1, §6.3 item 3, §11.2",
)
invalid(
    "transfer-encoding-and-content-length",
    head(P, HOST, TE_CHUNKED, b"Content-Length: 5") + b"0\r\n\r\n",
    400,
    "Both framing headers, in the other order.",
    "RFC 9112 §6.1, §6.3 item 3",
)
invalid(
    "two-content-lengths-equal",
    head(P, HOST, b"Content-Length: 5", b"Content-Length: 5") + b"hello",
    400,
    "Repeated Content-Length field lines (swserve rejects even equal ones).",
    "RFC 9110 §8.6, RFC 9112 §6.3 item 5",
)
invalid(
    "two-content-lengths-differ",
    head(P, HOST, b"Content-Length: 5", b"Content-Length: 6") + b"hello!",
    400,
    "Conflicting Content-Length values.",
    "RFC 9112 §6.3 item 5",
)
invalid(
    "content-length-list",
    head(P, HOST, b"Content-Length: 5, 5") + b"hello",
    400,
    "A list-valued Content-Length.",
    "RFC 9110 §8.6, RFC 9112 §6.3 item 5",
)
invalid(
    "content-length-negative",
    head(P, HOST, b"Content-Length: -1"),
    400,
    "Content-Length = 1*DIGIT.",
    "RFC 9110 §8.6, RFC 9112 §6.3 item 5",
)
invalid(
    "content-length-plus-sign",
    head(P, HOST, b"Content-Length: +5") + b"hello",
    400,
    "A sign is not a DIGIT (int() would accept it).",
    "RFC 9110 §8.6",
)
invalid(
    "content-length-non-numeric",
    head(P, HOST, b"Content-Length: five"),
    400,
    "Content-Length = 1*DIGIT.",
    "RFC 9110 §8.6",
)
invalid(
    "content-length-hex",
    head(P, HOST, b"Content-Length: 0x5") + b"hello",
    400,
    "Content-Length is decimal.",
    "RFC 9110 §8.6",
)
invalid(
    "content-length-overlong",
    head(P, HOST, b"Content-Length: 1234567890123456789012345"),
    400,
    "A length that overflows 64 bits.",
    "RFC 9110 §8.6 (anticipate large numerals, prevent overflow)",
)
invalid(
    "content-length-empty",
    head(P, HOST, b"Content-Length:"),
    400,
    "An empty Content-Length.",
    "RFC 9110 §8.6",
)
invalid(
    "transfer-encoding-gzip-only",
    head(P, HOST, b"Transfer-Encoding: gzip") + b"abc",
    400,
    "chunked is not the final coding: the body length cannot be determined.",
    "RFC 9112 §6.3 item 4",
)
invalid(
    "transfer-encoding-gzip-chunked",
    head(P, HOST, b"Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n",
    501,
    "Framing is sound but gzip is a transfer coding swserve does not implement.",
    "RFC 9112 §6.1",
)
invalid(
    "transfer-encoding-chunked-gzip",
    head(P, HOST, b"Transfer-Encoding: chunked, gzip") + b"0\r\n\r\n",
    400,
    "chunked is not the final coding.",
    "RFC 9112 §6.3 item 4",
)
invalid(
    "transfer-encoding-repeated",
    head(P, HOST, TE_CHUNKED, TE_CHUNKED) + b"0\r\n\r\n",
    400,
    "Two Transfer-Encoding lines combine to 'chunked, chunked': chunked applied twice.",
    "RFC 9112 §7 (MUST NOT apply chunked more than once), §6.3 item 4",
)
invalid(
    "transfer-encoding-chunked-twice",
    head(P, HOST, b"Transfer-Encoding: chunked, chunked") + b"0\r\n\r\n",
    400,
    "chunked applied twice.",
    "RFC 9112 §7, §6.3 item 4",
)
invalid(
    "transfer-encoding-http10",
    head(b"POST / HTTP/1.0", TE_CHUNKED) + b"0\r\n\r\n",
    400,
    "Transfer-Encoding in an HTTP/1.0 message means the framing is faulty.",
    "RFC 9112 §6.1",
)
invalid(
    "chunk-size-invalid",
    head(P, HOST, TE_CHUNKED) + b"zz\r\nhello\r\n0\r\n\r\n",
    400,
    "chunk-size = 1*HEXDIG.",
    "RFC 9112 §7.1",
)
invalid(
    "chunk-size-overflow",
    head(P, HOST, TE_CHUNKED) + b"1ffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    400,
    "A chunk size over 64 bits is rejected at once, not trusted.",
    "RFC 9112 §7.1 (prevent integer overflow)",
)
invalid(
    "chunk-size-trailing-space",
    head(P, HOST, TE_CHUNKED) + b"5 \r\nhello\r\n0\r\n\r\n",
    400,
    "chunk = chunk-size [ chunk-ext ] CRLF: BWS only before ';'.",
    "RFC 9112 §7.1, §7.1.1",
)
invalid(
    "chunk-extension-bare-cr",
    head(P, HOST, TE_CHUNKED) + b"5;ext=a\rb\r\nhello\r\n0\r\n\r\n",
    400,
    "A bare CR in a chunk extension (some proxies end the line there).",
    "RFC 9112 §2.2, §7.1.1",
)
invalid(
    "chunk-data-missing-crlf",
    head(P, HOST, TE_CHUNKED) + b"5\r\nhelloXX0\r\n\r\n",
    400,
    "chunk-data must be followed by CRLF.",
    "RFC 9112 §7.1",
)
invalid(
    "obs-fold",
    head(G, HOST, b"X-Folded: first", b" second"),
    400,
    "Obsolete line folding in a request.",
    "RFC 9112 §5.2",
)
invalid(
    "whitespace-before-first-header",
    head(G, b" Host: example.com"),
    400,
    "Whitespace between the start-line and the first field line.",
    "RFC 9112 §2.2",
)
invalid(
    "bare-lf-line-endings",
    b"GET / HTTP/1.1\nHost: example.com\n\n",
    400,
    "Bare LF line endings (swserve does not take the MAY of RFC 9112 §2.2).",
    "RFC 9112 §2.2",
)
invalid(
    "bare-lf-in-header-section",
    G + CRLF + b"Host: example.com\nX-Smuggle: 1" + CRLF + CRLF,
    400,
    "One bare LF among CRLFs.",
    "RFC 9112 §2.2",
)
invalid(
    "bare-cr-in-header-value",
    head(G, HOST, b"X-Value: a\rb"),
    400,
    "A bare CR in a field value.",
    "RFC 9112 §2.2, RFC 9110 §5.5",
)
invalid(
    "bare-cr-after-request-line",
    b"GET / HTTP/1.1\rHost: example.com\r\n\r\n",
    400,
    "A bare CR ending the request-line.",
    "RFC 9112 §2.2",
)
invalid(
    "nul-in-header-name",
    head(G, HOST, b"X-\x00Name: a"),
    400,
    "NUL is not a tchar.",
    "RFC 9110 §5.1, §5.6.2",
)
invalid(
    "nul-in-header-value",
    head(G, HOST, b"X-Value: a\x00b"),
    400,
    "NUL in a field value.",
    "RFC 9110 §5.5",
)
invalid(
    "control-byte-in-header-value",
    head(G, HOST, b"X-Value: a\x01b"),
    400,
    "A CTL other than HTAB in a field value (swserve rejects rather than keeps it).",
    "RFC 9110 §5.5",
)
invalid(
    "del-in-header-value",
    head(G, HOST, b"X-Value: a\x7fb"),
    400,
    "DEL is a CTL, not a VCHAR.",
    "RFC 9110 §5.5, RFC 5234 Appendix B.1",
)
invalid(
    "control-byte-in-header-name",
    head(G, HOST, b"X-\x1bName: a"),
    400,
    "ESC is not a tchar.",
    "RFC 9110 §5.1",
)
invalid(
    "space-before-colon",
    head(G, HOST, b"Transfer-Encoding : chunked") + b"0\r\n\r\n",
    400,
    "Whitespace between field name and colon MUST be rejected with 400.",
    "RFC 9112 §5.1",
)
invalid(
    "space-in-header-name",
    head(G, HOST, b"X Value: a"),
    400,
    "SP is not a tchar.",
    "RFC 9110 §5.1",
)
invalid(
    "header-without-colon",
    head(G, HOST, b"X-No-Colon value"),
    400,
    "A field line needs a colon.",
    "RFC 9112 §5",
)
invalid(
    "empty-header-name",
    head(G, HOST, b": value"),
    400,
    "field-name = token (1*tchar).",
    "RFC 9110 §5.1",
)
invalid(
    "non-ascii-header-name",
    head(G, HOST, "X-Naïve: a".encode()),
    400,
    "Octets over 0x7F are not tchars.",
    "RFC 9110 §5.1",
)
invalid(
    "missing-host",
    head(G, b"Accept: */*"),
    400,
    "An HTTP/1.1 request without Host.",
    "RFC 9112 §3.2",
)
invalid(
    "two-host-headers",
    head(G, HOST, b"Host: evil.example"),
    400,
    "More than one Host field line.",
    "RFC 9112 §3.2",
)
invalid(
    "two-host-headers-http10",
    head(b"GET / HTTP/1.0", HOST, b"Host: evil.example"),
    400,
    "'any request message that contains more than one Host header field line',"
    " whatever its version.",
    "RFC 9112 §3.2",
)
invalid(
    "http2-request-line",
    head(b"GET / HTTP/2.0", HOST),
    505,
    "HTTP/2 is not spoken over an HTTP/1 connection here.",
    "RFC 9110 §15.6.6",
)
invalid(
    "http2-preface",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    505,
    "The HTTP/2 connection preface (prior knowledge) on an HTTP/1.1 port.",
    "RFC 9113 §3.4, RFC 9110 §15.6.6",
)
invalid(
    "http3-request-line",
    head(b"GET / HTTP/3.0", HOST),
    505,
    "An unsupported major version.",
    "RFC 9110 §15.6.6",
)
invalid(
    "http09-version",
    head(b"GET / HTTP/0.9"),
    505,
    "HTTP/0.9 named explicitly.",
    "RFC 9110 §15.6.6",
)
invalid(
    "http09-simple-request",
    b"GET /\r\n\r\n",
    400,
    "A request-line without HTTP-version is not a valid request-line.",
    "RFC 9112 §3 (request-line = method SP request-target SP HTTP-version)",
)
invalid(
    "http11-higher-minor",
    head(b"GET / HTTP/1.2", HOST),
    505,
    "swserve refuses a minor version it does not implement (llhttp cannot read it as"
    " 1.1, which RFC 9110 §2.5 suggests), the same with either parser.",
    "RFC 9110 §2.5, §15.6.6",
)
invalid(
    "version-lowercase",
    head(b"GET / http/1.1", HOST),
    400,
    "HTTP-name is case-sensitive.",
    "RFC 9112 §2.3",
)
invalid(
    "version-without-minor",
    head(b"GET / HTTP/1", HOST),
    400,
    "HTTP-version = HTTP-name '/' DIGIT '.' DIGIT.",
    "RFC 9112 §2.3",
)
_TOO_LONG = b"/" + b"a" * 8190
invalid(
    "request-target-too-long",
    head(b"GET " + _TOO_LONG + b" HTTP/1.1", HOST),
    414,
    "A target one byte over Limits.request_line (8190).",
    "RFC 9112 §3, RFC 9110 §15.5.15",
)
invalid(
    "too-many-headers",
    head(G, HOST, *(b"X-H%d: v" % i for i in range(100))),
    431,
    "101 header fields, over Limits.header_count (100).",
    "RFC 6585 §5",
)
invalid(
    "header-field-too-long",
    head(G, HOST, b"X-Big: " + b"a" * 8190),
    431,
    "One field line over Limits.header_field (8190).",
    "RFC 6585 §5",
)
invalid(
    "header-block-too-large",
    head(G, HOST, *(b"X-Block-%d: %s" % (i, b"b" * 8000) for i in range(9))),
    431,
    "Nine 8 KB fields: each under the field limit, together over Limits.header_block (64 KiB).",
    "RFC 6585 §5",
)
invalid(
    "body-over-limit-content-length",
    head(P, HOST, b"Content-Length: 11") + b"hello world",
    413,
    "Content-Length over Limits.body: refused before any body byte is read.",
    "RFC 9110 §15.5.14",
    limits={"body": 10},
)
invalid(
    "body-over-limit-chunked",
    head(P, HOST, TE_CHUNKED) + b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
    413,
    "Chunks adding up to more than Limits.body.",
    "RFC 9110 §15.5.14",
    limits={"body": 10},
)
invalid(
    "body-over-limit-one-chunk",
    head(P, HOST, TE_CHUNKED) + b"b\r\nhello world\r\n0\r\n\r\n",
    413,
    "A single chunk larger than Limits.body.",
    "RFC 9110 §15.5.14",
    limits={"body": 10},
)
invalid(
    "invalid-method-characters",
    head(b"G(T / HTTP/1.1", HOST),
    400,
    "'(' is not a tchar: the request-line is malformed.",
    "RFC 9110 §9.1, RFC 9112 §3",
)
invalid(
    "unknown-method",
    head(b"BREW /pot HTTP/1.1", HOST),
    501,
    "A syntactically valid method the server does not implement.",
    "RFC 9110 §9.1 (SHOULD respond 501), §15.6.2",
)
invalid(
    "lowercase-method",
    head(b"get / HTTP/1.1", HOST),
    501,
    "Methods are case-sensitive: 'get' is a valid token but not GET.",
    "RFC 9110 §9.1",
)
invalid(
    "method-longer-than-any",
    head(b"VERYLONGMETHODNAME / HTTP/1.1", HOST),
    501,
    "A method longer than any implemented one.",
    "RFC 9112 §3 (SHOULD respond 501)",
)
invalid(
    "rtsp-method",
    head(b"DESCRIBE / HTTP/1.1", HOST),
    501,
    "An RTSP method in an HTTP request: a token swserve does not implement.",
    "RFC 9110 §9.1",
)
invalid(
    "connect-authority-form",
    head(b"CONNECT example.com:443 HTTP/1.1", b"Host: example.com:443") + tls_client_hello(),
    501,
    "swserve runs no tunnels; a server may refuse CONNECT, and nothing after the"
    " request is parsed.",
    "RFC 9110 §9.3.6, §15.6.2",
)
invalid(
    "unknown-method-pipelined",
    head(b"GET /1 HTTP/1.1", HOST) + head(b"BREW /pot HTTP/1.1", HOST),
    501,
    "An unknown method after a complete request: that request is answered first.",
    "RFC 9110 §9.1, RFC 9112 §9.3.2",
    completed=1,
)
invalid(
    "unknown-method-after-chunked",
    head(P, HOST, TE_CHUNKED)
    + b"3\r\nabc\r\n0\r\n00-Trailer: x\r\n\r\n"
    + head(b"BREW /pot HTTP/1.1", HOST),
    501,
    "An unknown method right after a chunked body (with a trailer that starts with 0).",
    "RFC 9110 §9.1, RFC 9112 §7.1",
    completed=1,
)
invalid(
    "garbage-after-request",
    head(b"GET /1 HTTP/1.1", HOST) + b"BAD\r\n\r\n",
    400,
    "A token alone is not a request-line.",
    "RFC 9112 §3",
    completed=1,
)
invalid(
    "target-with-space",
    head(b"GET /a b HTTP/1.1", HOST),
    400,
    "SP inside the request-target.",
    "RFC 9112 §3, §3.2",
)
invalid(
    "target-with-control-byte",
    head(b"GET /a\x01b HTTP/1.1", HOST),
    400,
    "CTL inside the request-target.",
    "RFC 9112 §3.2, RFC 3986 §2",
)
invalid(
    "target-non-ascii",
    head("GET /café HTTP/1.1".encode(), HOST),
    400,
    "Raw UTF-8 in the request-target (it must be percent-encoded).",
    "RFC 9112 §3.2, RFC 3986 §2",
)
invalid(
    "expect-unknown",
    head(P, HOST, b"Expect: 200-ok", b"Content-Length: 0"),
    417,
    "An expectation other than 100-continue.",
    "RFC 9110 §10.1.1",
)
invalid(
    "garbage-text",
    b"hello world\r\n\r\n",
    400,
    "Not a request-line.",
    "RFC 9112 §3",
)
invalid(
    "garbage-binary",
    bytes(range(256)) * 2,
    400,
    "Binary noise.",
    "RFC 9112 §3",
)
invalid(
    "tls-client-hello",
    tls_client_hello(),
    400,
    "A TLS ClientHello sent to a plain-HTTP port.",
    "RFC 9112 §3",
)
invalid(
    "truncated-head",
    G + CRLF + HOST + CRLF,
    400,
    "The connection closes inside the header section.",
    "RFC 9112 §8",
    at_eof=True,
)
invalid(
    "truncated-content-length-body",
    head(P, HOST, b"Content-Length: 10") + b"hello",
    400,
    "The connection closes before Content-Length bytes arrived.",
    "RFC 9112 §8",
    at_eof=True,
)
invalid(
    "truncated-chunked-body",
    head(P, HOST, TE_CHUNKED) + b"5\r\nhel",
    400,
    "The connection closes inside a chunk.",
    "RFC 9112 §8",
    at_eof=True,
)
invalid(
    "error-after-pipelined",
    head(b"GET /1 HTTP/1.1", HOST)
    + head(b"POST /2 HTTP/1.1", HOST, b"Content-Length: 3")
    + b"abc"
    + head(P, HOST, b"Content-Length: 5", TE_CHUNKED)
    + b"0\r\n\r\n",
    400,
    "Requests before the bad one are complete and are answered first.",
    "RFC 9112 §9.3.2",
    completed=2,
)
invalid(
    "trailer-obs-fold",
    head(P, HOST, TE_CHUNKED) + b"0\r\nX-Trailer: a\r\n b\r\n\r\n",
    400,
    "obs-fold in the trailer section, rejected like obs-fold in the header section.",
    "RFC 9112 §5.2, §7.1.2",
)
invalid(
    "trailer-control-byte",
    head(P, HOST, TE_CHUNKED) + b"0\r\nX-Trailer: a\x01b\r\n\r\n",
    400,
    "A CTL in a trailer field value, rejected like one in a header value.",
    "RFC 9110 §5.5, RFC 9112 §7.1.2",
)
invalid(
    "trailer-nul",
    head(P, HOST, TE_CHUNKED) + b"0\r\nX-Trailer: a\x00b\r\n\r\n",
    400,
    "NUL in a trailer field value.",
    "RFC 9110 §5.5",
)

invalid(
    "trailer-fields-over-limit",
    head(P, HOST, TE_CHUNKED) + b"0\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n",
    431,
    "Trailer fields are held to the header limits (here Limits.header_count = 2).",
    "RFC 9112 §7.1.2, RFC 6585 §5",
    limits={"header_count": 2},
)


# -- request-line and framing defects found by replaying requests (issue 17) ----------

valid(
    "fragment-after-query",
    head(b"GET /a?x=1#frag HTTP/1.1", HOST),
    [req(b"GET", b"/a?x=1", H)],
    "No request-target form has a fragment: it is dropped, never passed on as part of the query.",
    "RFC 9112 §3.2, RFC 9110 §4.2.5",
)
valid(
    "fragment-after-path",
    head(b"GET /a#frag HTTP/1.1", HOST),
    [req(b"GET", b"/a", H)],
    "A fragment after the path is dropped, never passed on as part of the path.",
    "RFC 9112 §3.2, RFC 9110 §4.2.5",
)
valid(
    "absolute-form-query-no-path",
    head(b"GET http://example.org?x=1 HTTP/1.1", HOST),
    [req(b"GET", b"http://example.org?x=1", H)],
    "absolute-form with an empty path and a query: the authority ends at '?'.",
    "RFC 9112 §3.2.2, RFC 3986 §3.2",
)
valid(
    "chunk-extension-bws",
    head(P, HOST, TE_CHUNKED)
    + b'5 ; a=b\r\nhello\r\n1; c\r\n,\r\n6 ;d = "q" ;e\r\n world\r\n0\t;\tlast\r\n\r\n',
    [req(b"POST", b"/", [*H, (b"transfer-encoding", b"chunked")], b"hello, world")],
    'chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ): the'
    " whitespace around ';' and '=' is parsed and the extension ignored.",
    "RFC 9112 §7.1.1, RFC 9110 §5.6.3",
)
valid(
    "host-ip-literal",
    head(b"GET / HTTP/1.1", b"Host: [::1]:8080"),
    [req(b"GET", b"/", [(b"host", b"[::1]:8080")])],
    'Host = uri-host [ ":" port ], an IP-literal host included.',
    "RFC 9110 §7.2, RFC 3986 §3.2.2",
)
invalid(
    "absolute-form-invalid-authority",
    head(b"GET http://]x/ HTTP/1.1", HOST),
    400,
    "The authority of an absolute-form target replaces Host; an invalid one is a bad"
    " request, never copied into the Host header.",
    "RFC 9112 §3.2.2, RFC 9112 §3.2",
)
invalid(
    "absolute-form-empty-host",
    head(b"GET http:///x HTTP/1.1", HOST),
    400,
    "An http URI with an empty host MUST be rejected as invalid.",
    "RFC 9110 §4.2.1",
)
invalid(
    "absolute-form-userinfo",
    head(b"GET http://user@example.com/ HTTP/1.1", HOST),
    400,
    "userinfo in an http URI is treated as an error (it obscures the authority).",
    "RFC 9110 §4.2.4",
)
invalid(
    "asterisk-form-get",
    head(b"GET * HTTP/1.1", HOST),
    400,
    "The asterisk-form is only used for a server-wide OPTIONS request.",
    "RFC 9112 §3.2.4",
)
invalid(
    "rtsp-protocol",
    head(b"GET /x RTSP/1.0", HOST),
    400,
    'HTTP-version = HTTP-name "/" DIGIT "." DIGIT, HTTP-name = "HTTP": llhttp takes'
    " RTSP/1.0 for HTTP/1.0.",
    "RFC 9112 §2.3",
)
invalid(
    "rtsp-protocol-1-1",
    head(b"GET /x RTSP/1.1", HOST) + head(b"GET /y HTTP/1.1", HOST),
    400,
    "RTSP/1.1 is not HTTP/1.1 either, however the request is cut into reads.",
    "RFC 9112 §2.3",
)
invalid(
    "ice-protocol",
    head(b"SOURCE /x ICE/1.0", HOST),
    400,
    "ICE/1.0 (SHOUTcast) is not an HTTP version.",
    "RFC 9112 §2.3",
)
invalid(
    "trailer-content-length",
    head(P, HOST, TE_CHUNKED) + b"1\r\na\r\n0\r\nContent-Length: 5\r\n\r\n",
    400,
    "A framing field in the trailer section is refused by both parsers.",
    "RFC 9110 §6.5.1, RFC 9112 §7.1.2",
)
invalid(
    "trailer-transfer-encoding",
    head(P, HOST, TE_CHUNKED) + b"1\r\na\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
    400,
    "A framing field in the trailer section is refused by both parsers.",
    "RFC 9110 §6.5.1, RFC 9112 §7.1.2",
)
invalid(
    "chunk-extension-trailing-whitespace",
    head(P, HOST, TE_CHUNKED) + b"5;a=b \r\nhello\r\n0\r\n\r\n",
    400,
    "BWS is allowed around ';' and '=' only, not at the end of the size line.",
    "RFC 9112 §7.1.1",
)
invalid(
    "host-invalid-value",
    head(b"GET / HTTP/1.1", b"Host: example.com/evil?x"),
    400,
    "A server MUST respond 400 to a request whose Host field value is invalid.",
    "RFC 9112 §3.2, RFC 9110 §7.2",
)
invalid(
    "host-with-space",
    head(b"GET / HTTP/1.1", b"Host: example.com evil"),
    400,
    "A server MUST respond 400 to a request whose Host field value is invalid.",
    "RFC 9112 §3.2, RFC 9110 §7.2",
)
invalid(
    "two-content-types",
    head(P, HOST, b"Content-Type: text/plain", b"Content-Type: text/html", b"Content-Length: 0"),
    400,
    "Content-Type is a singleton field: two of them cannot be combined into a list.",
    "RFC 9110 §8.3, §5.3",
)


# -- writing ----------------------------------------------------------------------------


def render() -> dict[str, bytes]:
    """Every corpus file: path relative to ``requests/`` -> exact content."""
    files: dict[str, bytes] = {}
    for kind, cases in (("valid", VALID), ("invalid", INVALID)):
        names = [name for name, _, _ in cases]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate {kind} case name")
        for number, (name, raw, meta) in enumerate(cases, 1):
            stem = f"{kind}/{number:03d}-{name}"
            files[stem + ".http"] = raw
            text = json.dumps(meta, indent=2)  # \u escapes: no invisible C1 bytes
            text = _PAIR.sub(r"[\1, \2]", text) + "\n"  # one header per line
            files[stem + ".json"] = text.encode("utf-8")
    return files


def main() -> int:
    files = render()
    for kind in ("valid", "invalid"):
        folder = ROOT / kind
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.iterdir():
            if f"{kind}/{stale.name}" not in files:
                stale.unlink()
    for rel, content in files.items():
        path = ROOT / rel
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
    print(f"{len(VALID)} valid and {len(INVALID)} invalid cases in {ROOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
