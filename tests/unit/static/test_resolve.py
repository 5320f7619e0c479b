"""The sans-IO static resolver: targets → paths, and files → responses, byte by byte."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from swserve.static.resolve import (
    FileInfo,
    Mount,
    Refused,
    Rules,
    accepted_encodings,
    content_type,
    decide,
    locate,
    parse_http_date,
    parse_mount,
)

MOUNTS = (Mount(b"/static/admin", "/srv/admin"), Mount(b"/static", "/srv/static"))
RULES = Rules(MOUNTS)
INFO = FileInfo("app.css", 1000, 1_700_000_000_123_456_789)
TAG = b'"17979cfe3d85cd15-3e8"'
LAST = b"Tue, 14 Nov 2023 22:13:20 GMT"

# Every one of these is under /static and must be refused before any lookup.
TRAVERSAL = [
    b"/static/../etc/passwd",
    b"/static/a/../../etc/passwd",
    b"/static/%2e%2e/etc/passwd",
    b"/static/%2E%2E/etc/passwd",
    b"/static/.%2e/etc/passwd",
    b"/static/%2e./x",
    b"/static/./x",
    b"/static/%2e/x",
    b"/static/..%2fetc%2fpasswd",
    b"/static/%2e%2e%2fetc%2fpasswd",
    b"/static/a%2fb",
    b"/static/a%2Fb",
    b"/static/..%5cetc%5cpasswd",
    b"/static/a%5cb",
    b"/static/a\\b",
    b"/static/..\\..\\etc\\passwd",
    b"/static/a%00.css",
    b"/static/a%00/b",
    b"/static/%c0%ae%c0%ae/etc/passwd",  # overlong UTF-8 for '.'
    b"/static/%c0%af",  # overlong '/'
    b"/static/%e0%80%ae%e0%80%ae/x",  # 3-byte overlong '.'
    b"/static/%ff/x",
    b"/static/a%0d%0aSet-Cookie:x",
    b"/static//etc/passwd",
    b"/static/a//b",
    b"/static/%",  # unquote leaves it: still refused? no - see test below
]


@pytest.mark.parametrize("target", [t for t in TRAVERSAL if t != b"/static/%"])
def test_traversal_is_refused(target: bytes) -> None:
    with pytest.raises(Refused) as info:
        locate(MOUNTS, target)
    assert info.value.status == 400


def test_double_encoding_is_decoded_once() -> None:
    # %252e%252e is the literal name "%2e%2e": a file of that name, not a parent
    found = locate(MOUNTS, b"/static/%252e%252e/x")
    assert found is not None
    assert found[1] == ["%2e%2e", "x"]


def test_a_lone_percent_is_a_name() -> None:
    found = locate(MOUNTS, b"/static/%")
    assert found is not None
    assert found[1] == ["%"]


def test_locate_prefixes() -> None:
    assert locate(MOUNTS, b"/other/x") is None
    assert locate(MOUNTS, b"/staticfoo/x") is None
    mount, segments, slash = locate(MOUNTS, b"/static/css/a%20b.css?v=1") or (None, [], False)
    assert mount is MOUNTS[1]
    assert segments == ["css", "a b.css"]
    assert not slash
    mount, segments, slash = locate(MOUNTS, b"/static/admin/x.js") or (None, [], False)
    assert mount is MOUNTS[0]
    assert segments == ["x.js"]
    mount, segments, slash = locate(MOUNTS, b"/static/dir/") or (None, [], False)
    assert segments == ["dir"]
    assert slash
    mount, segments, slash = locate(MOUNTS, b"/static") or (None, [], False)
    assert mount is MOUNTS[1]
    assert segments == []
    assert slash
    assert locate(MOUNTS, b"/static/caf%C3%A9.txt") == (MOUNTS[1], ["café.txt"], False)


@given(st.binary(max_size=40))
def test_locate_never_yields_a_dangerous_segment(tail: bytes) -> None:
    try:
        found = locate(MOUNTS, b"/static/" + tail)
    except Refused:
        return
    if found is None:
        return
    for segment in found[1]:
        assert segment not in ("", ".", "..")
        assert "/" not in segment
        assert "\\" not in segment
        assert "\0" not in segment


def test_parse_mount() -> None:
    assert parse_mount("/static/=./x") == ("/static", "./x")
    assert parse_mount("/=site") == ("", "site")
    for bad in ("static=x", "/static", "/static=", "/a%2f=x"):
        with pytest.raises(ValueError):
            parse_mount(bad)


def test_content_types() -> None:
    assert content_type("a.css") == b"text/css; charset=utf-8"
    assert content_type("a.js") == b"text/javascript; charset=utf-8"
    assert content_type("a.json") == b"application/json; charset=utf-8"
    assert content_type("a.svg") == b"image/svg+xml; charset=utf-8"
    assert content_type("a.png") == b"image/png"
    assert content_type("a.woff2") == b"font/woff2"
    assert content_type("README") == b"application/octet-stream"


def test_full_response() -> None:
    d = decide(b"GET", [], INFO, RULES)
    assert d.status == 200
    assert (d.offset, d.length) == (0, 1000)
    assert d.headers == (
        b"etag: " + TAG + b"\r\n"
        b"last-modified: " + LAST + b"\r\n"
        b"cache-control: public, max-age=60\r\n"
        b"content-type: text/css; charset=utf-8\r\n"
        b"accept-ranges: bytes\r\n"
        b"content-length: 1000\r\n"
    )


def test_conditional() -> None:
    assert decide(b"GET", [(b"if-none-match", TAG)], INFO, RULES).status == 304
    assert decide(b"GET", [(b"if-none-match", b'"x", W/' + TAG)], INFO, RULES).status == 304
    assert decide(b"GET", [(b"if-none-match", b"*")], INFO, RULES).status == 304
    assert decide(b"GET", [(b"if-none-match", b'"other"')], INFO, RULES).status == 200
    assert decide(b"HEAD", [(b"if-modified-since", LAST)], INFO, RULES).status == 304
    earlier = b"Tue, 14 Nov 2023 22:13:19 GMT"
    assert decide(b"GET", [(b"if-modified-since", earlier)], INFO, RULES).status == 200
    assert decide(b"GET", [(b"if-modified-since", b"garbage")], INFO, RULES).status == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.1.3)
    both = [(b"if-none-match", b'"other"'), (b"if-modified-since", LAST)]
    assert decide(b"GET", both, INFO, RULES).status == 200
    d = decide(b"GET", [(b"if-none-match", TAG)], INFO, RULES)
    assert b"content-length" not in d.headers
    assert b"etag: " + TAG in d.headers


@pytest.mark.parametrize(
    ("header", "status", "span", "content_range"),
    [
        (b"bytes=0-99", 206, (0, 100), b"bytes 0-99/1000"),
        (b"bytes=900-", 206, (900, 100), b"bytes 900-999/1000"),
        (b"bytes=-10", 206, (990, 10), b"bytes 990-999/1000"),
        (b"bytes=-5000", 206, (0, 1000), b"bytes 0-999/1000"),
        (b"bytes=990-5000", 206, (990, 10), b"bytes 990-999/1000"),
        (b"bytes=1000-", 416, (0, 0), b"bytes */1000"),
        (b"bytes=-0", 416, (0, 0), b"bytes */1000"),
        (b"bytes=0-1,5-6", 200, (0, 1000), None),  # multi-range: the whole file
        (b"bytes=5-1", 200, (0, 1000), None),  # invalid: ignored
        (b"items=0-1", 200, (0, 1000), None),
        (b"bytes=abc", 200, (0, 1000), None),
    ],
)
def test_ranges(
    header: bytes, status: int, span: tuple[int, int], content_range: bytes | None
) -> None:
    d = decide(b"GET", [(b"range", header)], INFO, RULES)
    assert d.status == status
    assert (d.offset, d.length) == span
    if content_range is None:
        assert b"content-range" not in d.headers
    else:
        assert b"content-range: " + content_range + b"\r\n" in d.headers


def test_range_with_if_range() -> None:
    rng = (b"range", b"bytes=0-9")
    assert decide(b"GET", [rng, (b"if-range", TAG)], INFO, RULES).status == 206
    assert decide(b"GET", [rng, (b"if-range", b'"old"')], INFO, RULES).status == 200
    assert decide(b"GET", [rng, (b"if-range", LAST)], INFO, RULES).status == 206
    assert decide(b"HEAD", [rng], INFO, RULES).status == 200  # Range is for GET only


def test_variants_and_cache_control() -> None:
    gz = FileInfo("app.css", 300, INFO.mtime_ns, "gzip", True)
    d = decide(b"GET", [], gz, RULES)
    assert b"content-encoding: gzip\r\n" in d.headers
    assert b"vary: Accept-Encoding\r\n" in d.headers
    assert b"content-length: 300\r\n" in d.headers
    plain = FileInfo("app.css", 1000, INFO.mtime_ns, "", True)
    assert b"vary: Accept-Encoding\r\n" in decide(b"GET", [], plain, RULES).headers
    assert b"vary" not in decide(b"GET", [], INFO, RULES).headers
    hashed = FileInfo("app.0123abcd89ef.css", 1, 0)
    immutable = Rules(MOUNTS, immutable=True)
    assert b"max-age=315360000, immutable" in decide(b"GET", [], hashed, immutable).headers
    assert b"max-age=60\r\n" in decide(b"GET", [], INFO, immutable).headers
    assert b"cache-control: no-cache\r\n" in decide(b"GET", [], INFO, Rules(MOUNTS, 0)).headers


def test_accept_encoding() -> None:
    assert accepted_encodings([(b"accept-encoding", b"gzip, br;q=0.5")]) == {"gzip", "br"}
    assert accepted_encodings([(b"accept-encoding", b"br;q=0, gzip")]) == {"gzip"}
    assert accepted_encodings([(b"accept-encoding", b"*")]) >= {"gzip", "br"}
    assert accepted_encodings([]) == frozenset()


def test_http_dates() -> None:
    assert parse_http_date(LAST) == 1_700_000_000
    assert parse_http_date(b"Tuesday, 14-Nov-23 22:13:20 GMT") == 1_700_000_000
    assert parse_http_date(b"Tue Nov 14 22:13:20 2023") == 1_700_000_000
    assert parse_http_date(b"yesterday") is None
