"""Micro-benchmarks of swserve's sans-IO cores, in ns per operation.

    PYTHONPATH=CHECKOUT python loadtests/micro/cores.py [--quick] [--only SUBSTRING ...]

Each line times one call on the hot path of a request, in this process, with
``timeit``: the HTTP parser glue fed a whole request (httptools and h11, a
typical GET and a small POST), an IPC frame encoded and decoded
(``swserve.ipc.framing``), a request head and a response start through the
payload codec (``swserve.ipc.codec``), a response head serialised
(``swserve.protocol.serializer``), and the WSGI environ and ASGI scope built
from the decoded fields (``swserve.apps``).  No sockets, no event loop: the
numbers are the cores' own cost, so a speed-up to one of them shows here
with a figure ("httptools GET feed: 4.1 -> 3.2 µs") before it shows, diluted,
in a load test.

For each case the loop count is chosen so that one timing takes about
``--target`` seconds (0.2), the timing is repeated ``--repeat`` times (5), and
the best and the median are printed: the best is the figure to compare
(noise only ever adds time), the median says how noisy the machine was.
Compare two checkouts by running both, alternately, on the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from swserve.apps.asgi import build_scope
from swserve.apps.wsgi import WSGIAdapter
from swserve.ipc import codec, framing
from swserve.protocol.h11_parser import H11Parser
from swserve.protocol.parser import HttptoolsParser
from swserve.protocol.request import Request
from swserve.protocol.serializer import HAS_CONTENT_LENGTH, plan_response, response_head

# A typical browser-ish GET, and a small form POST (what an API client sends).
GET = (
    b"GET /api/items?page=2&sort=name HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-GB,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Cookie: session=0123456789abcdef; theme=dark\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)
POST_BODY = (
    b'{"name": "widget", "tags": ["a", "b", "c"], "count": 3, "note": "' + b"x" * 400 + b'"}'
)
POST = (
    b"POST /api/items HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"User-Agent: python-httpx/0.28.1\r\n"
    b"Accept: */*\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n%s" % (len(POST_BODY), POST_BODY)
)
PREFIX = codec.conn_prefix("http", ("127.0.0.1", 51234), ("127.0.0.1", 8000))
HELLO_HEADERS = b"content-type: text/plain\r\ncontent-length: 13\r\n"
DATE_SERVER = b"date: Sun, 22 Nov 2026 10:00:00 GMT\r\nserver: swserve\r\n"


def _parsed(data: bytes) -> Request:
    (request,) = HttptoolsParser().feed(data)
    return request


def _encoded_request(data: bytes) -> bytes:
    request = _parsed(data)
    return codec.encode_request(
        request.method, request.target, request.version, PREFIX, request.headers, request.body
    )


def _hello_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, world!"]


def _feeder(parser: HttptoolsParser | H11Parser, data: bytes) -> Callable[[], object]:
    """One whole request per call, on one keep-alive connection's parser (as the reactor does)."""

    def feed() -> object:
        (request,) = parser.feed(data)
        return request

    return feed


def _decoder(frame: bytes) -> Callable[[], object]:
    decoder = framing.FrameDecoder()
    return lambda: decoder.feed(frame)


def _head(request: Request) -> Callable[[], bytes]:
    def serialise() -> bytes:
        plan = plan_response(request, 200, HAS_CONTENT_LENGTH)
        return response_head(request, 200, HAS_CONTENT_LENGTH, HELLO_HEADERS, plan, DATE_SERVER)

    return serialise


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    make: Callable[[], Callable[[], object]]  # called once: set-up stays out of the timing


def cases() -> list[Case]:
    get_fields, _ = codec.decode_request(_encoded_request(GET))
    post_fields, _ = codec.decode_request(_encoded_request(POST))
    get_request = _parsed(GET)
    get_frame = framing.encode(framing.REQUEST, 0, 7, 1, _encoded_request(GET))
    start = codec.encode_response_start(200, HELLO_HEADERS, b"Hello, world!")
    adapter = WSGIAdapter(_hello_app, multithread=False, multiprocess=True)
    return [
        Case(
            "parser.httptools.get",
            f"feed a {len(GET)}-byte GET",
            lambda: _feeder(HttptoolsParser(), GET),
        ),
        Case(
            "parser.httptools.post",
            f"feed a {len(POST)}-byte POST",
            lambda: _feeder(HttptoolsParser(), POST),
        ),
        Case("parser.h11.get", f"feed a {len(GET)}-byte GET", lambda: _feeder(H11Parser(), GET)),
        Case(
            "parser.h11.post", f"feed a {len(POST)}-byte POST", lambda: _feeder(H11Parser(), POST)
        ),
        Case(
            "ipc.framing.encode",
            f"20-byte header + {len(get_frame) - framing.HEADER_SIZE}-byte payload",
            lambda: lambda: framing.encode(framing.REQUEST, 0, 7, 1, get_frame[20:]),
        ),
        Case("ipc.framing.decode", "one whole REQUEST frame per feed", lambda: _decoder(get_frame)),
        Case(
            "ipc.codec.encode_request",
            "the GET's head and the connection prefix",
            lambda: (
                lambda: codec.encode_request(
                    get_request.method,
                    get_request.target,
                    get_request.version,
                    PREFIX,
                    get_request.headers,
                    b"",
                )
            ),
        ),
        Case(
            "ipc.codec.decode_request",
            "the GET's REQUEST payload",
            lambda: lambda: codec.decode_request(get_frame[20:]),
        ),
        Case(
            "ipc.codec.response_start",
            "encode + decode a hello RESPONSE_START",
            lambda: (
                lambda: codec.decode_response_start(
                    codec.encode_response_start(200, HELLO_HEADERS, b"Hello, world!")
                )
            ),
        ),
        Case(
            "ipc.codec.decode_response_start",
            "a hello RESPONSE_START",
            lambda: lambda: codec.decode_response_start(start),
        ),
        Case(
            "serializer.response_head",
            "plan + head of a hello 200 (Content-Length, keep-alive)",
            lambda: _head(get_request),
        ),
        Case(
            "wsgi.environ",
            "WSGIAdapter.environ from the GET's fields",
            lambda: lambda: adapter.environ(get_fields, b""),
        ),
        Case(
            "wsgi.environ.post",
            "WSGIAdapter.environ from the POST's fields and body",
            lambda: lambda: adapter.environ(post_fields, POST_BODY),
        ),
        Case(
            "asgi.build_scope",
            "build_scope from the GET's fields",
            lambda: lambda: build_scope(get_fields, None),
        ),
    ]


def time_case(func: Callable[[], object], target_s: float, repeat: int) -> tuple[float, float]:
    """(best, median) ns per call over ``repeat`` timings of about ``target_s`` each."""
    timer = timeit.Timer(func)
    number, elapsed = timer.autorange()  # at least 0.2 s: scale to the target from there
    number = max(1, int(number * target_s / max(elapsed, 1e-9)))
    times = [t / number * 1e9 for t in timer.repeat(repeat=repeat, number=number)]
    return min(times), statistics.median(times)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="about 0.05 s x 3 per case (a smoke run)")
    add("--target", type=float, default=0.2, help="seconds per timing (0.2)")
    add("--repeat", type=int, default=5, help="timings per case (5)")
    add("--only", nargs="+", default=[], help="only the cases whose name contains one of these")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    target, repeat = (0.05, 3) if args.quick else (args.target, args.repeat)
    selected = [c for c in cases() if not args.only or any(o in c.name for o in args.only)]
    if not selected:
        print(f"no case matches {' '.join(args.only)}", file=sys.stderr)
        return 2
    print(f"python {sys.version.split()[0]}; best and median of {repeat} x ~{target:g} s")
    print(f"{'case':34} {'best ns/op':>11} {'median':>9}  what")
    for case in selected:
        best, median = time_case(case.make(), target, repeat)
        print(f"{case.name:34} {best:11,.0f} {median:9,.0f}  {case.what}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
