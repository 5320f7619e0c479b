"""Static files, sans-IO: which file a request names, and how to answer for it.

Two pure steps, with the filesystem between them (``static/files.py``):

1. :func:`locate` maps the raw request target to a mount and the path's
   segments, or rejects it.  The path is percent-decoded exactly once, must be
   UTF-8 (so overlong forms such as ``%c0%ae`` are refused, never folded into
   ``.``), and may not contain ``.``/``..`` segments, empty segments, encoded
   or literal backslashes, an encoded ``/``, NUL or other control characters.
   Nothing is normalised into something else: what is odd is refused.
2. :func:`decide` takes the method, the request headers and what the
   filesystem said about the file (:class:`FileInfo`) and returns the answer:
   status, header lines, and the byte range of the file to send.

No clock, no sockets, no ``os`` calls: every rule is unit-tested byte by byte.
"""

from __future__ import annotations

import calendar
import mimetypes
import re
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_to_bytes

# -- settings ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mount:
    """``--static PREFIX=DIR``: URL paths under ``prefix`` are files under ``root``."""

    prefix: bytes  # "/static", no trailing slash ("" for the whole site)
    root: str  # an absolute, resolved directory


@dataclass(frozen=True, slots=True)
class Rules:
    """Everything the static settings say, once per server."""

    mounts: tuple[Mount, ...]
    max_age: int = 60
    immutable: bool = False
    index: str = ""
    fallthrough: bool = True
    follow_symlinks: bool = False
    allow_dotfiles: bool = False


def parse_mount(text: str) -> tuple[str, str]:
    """``"/static=./collected"`` → (``"/static"``, ``"./collected"``); ValueError if malformed."""
    prefix, sep, directory = text.partition("=")
    if not sep or not directory:
        raise ValueError(f"--static takes URL_PREFIX=DIRECTORY (got {text!r})")
    prefix = prefix.strip()
    if not prefix.startswith("/") or any(c in prefix for c in "?#%\\\0"):
        raise ValueError(f"--static prefix must be a path starting with / (got {prefix!r})")
    return prefix.rstrip("/"), directory


# -- step 1: the target → a file path -----------------------------------------------------


class Refused(Exception):
    """The target can never name a file: answered with ``status`` and never passed on."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\\]")


def locate(mounts: tuple[Mount, ...], target: bytes) -> tuple[Mount, list[str], bool] | None:
    """The mount a raw request target falls under, its path segments (decoded, checked),
    and whether the path ended with ``/``.  None: no mount claims the target.

    Raises:
        Refused: the path is under a mount but is not one we will ever look up
            (traversal, encoded separators, bad UTF-8, control characters).
    """
    path = target.split(b"?", 1)[0].split(b"#", 1)[0]
    for mount in mounts:
        prefix = mount.prefix
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :]
        if rest and rest[:1] != b"/":
            continue  # /staticfoo is not under /static
        return mount, _segments(rest), rest.endswith(b"/") or not rest
    return None


def _segments(rest: bytes) -> list[str]:
    raw = rest.split(b"/")[1:] if rest else []
    if raw and raw[-1] == b"":
        raw.pop()  # the trailing slash of a directory
    out = []
    for part in raw:
        if not part:
            raise Refused(400, "empty path segment")
        decoded = unquote_to_bytes(part)  # once: %252e stays the three characters %2e
        if b"/" in decoded:
            raise Refused(400, "encoded slash")
        try:
            text = decoded.decode("utf-8")  # strict: overlong forms are invalid UTF-8
        except UnicodeDecodeError:
            raise Refused(400, "path is not UTF-8") from None
        if _CONTROL.search(text):
            raise Refused(400, "backslash or control character in path")
        if text in (".", ".."):
            raise Refused(400, "dot segment")
        out.append(text)
    return out


def is_hidden(segments: list[str]) -> bool:
    return any(s.startswith(".") for s in segments)


# -- step 2: a file → the response --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What the filesystem said about the variant chosen, for one request."""

    name: str  # the file name the URL names (for Content-Type and --static-immutable)
    size: int
    mtime_ns: int
    encoding: str = ""  # "br"/"gzip" when a precompressed sibling is sent
    has_variants: bool = False  # any precompressed sibling exists: Vary: Accept-Encoding


@dataclass(frozen=True, slots=True)
class Decision:
    status: int
    headers: bytes  # "name: value\r\n" lines, Content-Length included
    offset: int = 0
    length: int = 0  # bytes of the file to send (0 for 304/416 and HEAD is the caller's)


ALLOW: Final = b"allow: GET, HEAD\r\n"
_RANGE: Final = re.compile(rb"^bytes=([0-9]*)-([0-9]*)$")
# Django's ManifestStaticFilesStorage and most bundlers: name.0123abcd89ef.ext
_HASHED: Final = re.compile(r"^.+\.[0-9a-f]{8,}\..+$")
_TEXT_TYPES: Final = frozenset(
    {
        "application/javascript",
        "application/json",
        "application/xml",
        "image/svg+xml",
        "application/manifest+json",
    }
)
_TYPES: dict[str, bytes] = {}
_MORE_TYPES: Final = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".wasm": "application/wasm",
    ".webmanifest": "application/manifest+json",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".map": "application/json",
}


def content_type(name: str) -> bytes:
    """``Content-Type`` from the extension, with ``charset=utf-8`` for text."""
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot > 0 else ""
    hit = _TYPES.get(ext)
    if hit is None:
        kind = _MORE_TYPES.get(ext) or mimetypes.guess_type("x" + ext)[0]
        kind = kind or "application/octet-stream"
        if kind.startswith("text/") or kind in _TEXT_TYPES:
            kind += "; charset=utf-8"
        hit = _TYPES[ext] = kind.encode("latin-1")
    return hit


def etag(info: FileInfo) -> bytes:
    """A strong validator: the variant's modification time and size."""
    return b'"%x-%x"' % (info.mtime_ns, info.size)


def http_date(seconds: int) -> bytes:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(seconds)).encode()


def parse_http_date(value: bytes) -> int | None:
    """IMF-fixdate (and the two obsolete forms, RFC 9110 §5.6.7) → seconds; None if invalid."""
    text = value.decode("latin-1").strip()
    for fmt in ("%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"):
        try:
            return calendar.timegm(time.strptime(text, fmt))
        except ValueError:
            continue
    return None


def accepted_encodings(headers: list[tuple[bytes, bytes]]) -> frozenset[str]:
    """Codings of Accept-Encoding with a q above 0 (only br and gzip matter here)."""
    out = set()
    for name, value in headers:
        if name != b"accept-encoding":
            continue
        for item in value.decode("latin-1").split(","):
            coding, _, params = item.strip().partition(";")
            q = 1.0
            params = params.strip().replace(" ", "")
            if params.startswith("q="):
                try:
                    q = float(params[2:])
                except ValueError:
                    q = 0.0
            if q > 0:
                out.add(coding.strip().lower())
    if "*" in out:
        out |= {"br", "gzip"}
    return frozenset(out)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    found = None
    for key, value in headers:
        if key == name:
            found = value if found is None else found + b", " + value
    return found


def cache_control(name: str, rules: Rules) -> bytes:
    if rules.immutable and _HASHED.match(name):
        return b"cache-control: public, max-age=315360000, immutable\r\n"
    if rules.max_age <= 0:
        return b"cache-control: no-cache\r\n"
    return b"cache-control: public, max-age=%d\r\n" % rules.max_age


def _not_modified(headers: list[tuple[bytes, bytes]], tag: bytes, mtime: int) -> bool:
    """RFC 9110 §13.1.2/§13.1.3: If-None-Match wins; If-Modified-Since only without it."""
    inm = _header(headers, b"if-none-match")
    if inm is not None:
        if inm.strip() == b"*":
            return True
        weak_tag = tag  # weak comparison: W/"x" matches "x"
        return any(t.strip().removeprefix(b"W/") == weak_tag for t in inm.split(b","))
    ims = _header(headers, b"if-modified-since")
    if ims is not None:
        since = parse_http_date(ims)
        return since is not None and mtime <= since
    return False


def _byte_range(value: bytes, size: int) -> tuple[int, int] | bool | None:
    """One ``bytes=`` range → (offset, length); None: ignore the header (send 200);
    False: unsatisfiable (416)."""
    if b"," in value:
        return None  # several ranges: the whole file, as nginx may answer
    match = _RANGE.match(value.strip())
    if match is None:
        return None  # not a byte range we understand: RFC 9110 §14.2 lets us ignore it
    first, last = match.group(1), match.group(2)
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return False
        start = max(size - suffix, 0)
        return start, size - start
    start = int(first)
    if start >= size:
        return False
    end = min(int(last), size - 1) if last else size - 1
    if end < start:
        return None  # invalid: ignored
    return start, end - start + 1


def decide(
    method: bytes, headers: list[tuple[bytes, bytes]], info: FileInfo, rules: Rules
) -> Decision:
    """The answer for a GET or HEAD of an existing regular file."""
    tag = etag(info)
    mtime = info.mtime_ns // 1_000_000_000
    common = [
        b"etag: ",
        tag,
        b"\r\nlast-modified: ",
        http_date(mtime),
        b"\r\n",
        cache_control(info.name, rules),
    ]
    if info.has_variants:
        common.append(b"vary: Accept-Encoding\r\n")
    if _not_modified(headers, tag, mtime):
        return Decision(304, b"".join(common))
    common += (b"content-type: ", content_type(info.name), b"\r\n")
    if info.encoding:
        common += (b"content-encoding: ", info.encoding.encode(), b"\r\n")
    common.append(b"accept-ranges: bytes\r\n")
    size = info.size
    rng = _header(headers, b"range") if method == b"GET" else None
    if rng is not None and not _if_range_fails(headers, tag, mtime):
        span = _byte_range(rng, size)
        if span is False:
            common.append(b"content-range: bytes */%d\r\ncontent-length: 0\r\n" % size)
            return Decision(416, b"".join(common))
        if span is not None and span is not True:
            start, length = span
            common.append(
                b"content-range: bytes %d-%d/%d\r\ncontent-length: %d\r\n"
                % (start, start + length - 1, size, length)
            )
            return Decision(206, b"".join(common), start, length)
    common.append(b"content-length: %d\r\n" % size)
    return Decision(200, b"".join(common), 0, size)


def _if_range_fails(headers: list[tuple[bytes, bytes]], tag: bytes, mtime: int) -> bool:
    """RFC 9110 §13.1.5: a Range with an If-Range that does not match is ignored."""
    value = _header(headers, b"if-range")
    if value is None:
        return False
    value = value.strip()
    if value.startswith(b'"'):
        return value != tag  # strong comparison
    date = parse_http_date(value)
    return date is None or date != mtime


def method_not_allowed() -> Decision:
    return Decision(405, ALLOW + b"content-length: 0\r\n")


def redirect(location: bytes) -> Decision:
    """A directory named without its slash, with an index file: 301 to the slash."""
    return Decision(301, b"location: " + location + b"\r\ncontent-length: 0\r\n")
