"""Micro-benchmark of the sans-IO HTTP/2 core: µs of CPU per request/response exchange.

    PYTHONPATH=CHECKOUT python loadtests/micro/h2_core.py [--rounds 30] [--repeat 7]

An h2 client encodes ``--rounds`` batches of 32 GET requests (HEADERS with END_STREAM, as
``h2load -m 32`` sends them), first with h2load's few short fields and then with a browser's
(long ``user-agent``, ``accept`` and ``cookie`` values); ``Http2Core`` (``protocol/http2.py``)
reads each batch, and every request is answered with a 13-byte body and the four fields a hello
response has (``respond`` + ``send_body``), its bytes taken.  This is what the reactor does per
HTTP/2 request beyond what it does for HTTP/1.1; it runs in this process, no sockets, no loop.

The figure is the best of ``--repeat`` timings of CPU time (``time.process_time``: other
processes on a shared machine do not count; noise only ever adds time).  Compare two checkouts
by running both, alternately, on the same machine (``PYTHONPATH`` picks the checkout).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import h2.config
import h2.connection

from swserve.protocol.http2 import Http2Core, Limits, RequestReady

STREAMS = 32
Fields = list[tuple[bytes, bytes]]
REQUEST: Fields = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:8000"),
]
H2LOAD: Fields = [(b"user-agent", b"h2load nghttp2/1.52.0")]
BROWSER: Fields = [
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     b"Chrome/131.0.0.0 Safari/537.36"),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
     b"image/webp,*/*;q=0.8"),
    (b"accept-language", b"en-GB,en;q=0.9,fr;q=0.8"),
    (b"accept-encoding", b"gzip, deflate, br, zstd"),
    (b"cookie", b"sessionid=" + b"a1b2c3d4" * 24),
    (b"referer", b"https://example.com/some/page?with=query&and=more"),
]  # fmt: skip
RESPONSE: Fields = [
    (b"content-type", b"text/plain"),
    (b"content-length", b"13"),
    (b"date", b"Tue, 08 Dec 2026 00:00:00 GMT"),
    (b"server", b"swserve"),
]


def client_bytes(rounds: int, extra: Fields) -> tuple[bytes, list[bytes]]:
    """The client's preface and ``rounds`` batches of ``STREAMS`` requests."""
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    preface = client.data_to_send()
    batches = []
    stream_id = 1
    for _ in range(rounds):
        for _ in range(STREAMS):
            client.send_headers(stream_id, [*REQUEST, *extra], end_stream=True)
            stream_id += 2
        batches.append(client.data_to_send())
    return preface, batches


def exchange_us(preface: bytes, batches: list[bytes]) -> float:
    """CPU µs per request: the core reads every batch and answers every request."""
    core = Http2Core(Limits(max_concurrent_streams=1000))
    core.start()
    core.receive(preface, 0.0)
    core.data_to_send()
    started = time.process_time()
    for batch in batches:
        for event in core.receive(batch, 0.0):
            if isinstance(event, RequestReady):
                core.respond(event.stream_id, 200, RESPONSE, end=False)
                core.send_body(event.stream_id, b"Hello, world!", True, 0.0)
        core.data_to_send()
    return (time.process_time() - started) / (len(batches) * STREAMS) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="batches of 32 requests (30)")
    parser.add_argument("--repeat", type=int, default=7, help="timings; the best is shown (7)")
    args = parser.parse_args(argv)
    for name, extra in (("h2load's fields", H2LOAD), ("a browser's fields", BROWSER)):
        # a fresh client per timing: the HPACK tables start empty each time
        best = min(exchange_us(*client_bytes(args.rounds, extra)) for _ in range(args.repeat))
        print(f"{name:20} {best:7.1f} µs CPU per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
