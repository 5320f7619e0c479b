"""Micro-benchmark: what proxy headers and --root-path cost per request in the builders.

    python loadtests/micro/proxy_headers.py [N]

Times ``Frontend.environ`` / ``Frontend.scope`` (swserve/net/proxy.py) on a
typical 10-header request in the cases that matter: the default settings with
no forwarding header, a forwarding header from an untrusted peer, a full
X-Forwarded-For/-Proto/-Host from a trusted proxy, and --root-path alone.
Also times a whole environ/scope build with and without the Frontend, so the
added cost is seen against the build it is part of.  Figures: µs per call.
"""

from __future__ import annotations

import sys
import timeit
from typing import Any

from swserve.apps.asgi import build_scope
from swserve.apps.wsgi import WSGIAdapter
from swserve.ipc import codec
from swserve.net.proxy import Frontend, TrustedPeers
from swserve.protocol.request import RequestHead

HEADERS = [
    (b"host", b"example.com"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b"en"),
    (b"cookie", b"session=abc"),
    (b"referer", b"https://example.com/"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-request-id", b"1234"),
]
FORWARDED = [
    (b"x-forwarded-for", b"203.0.113.7, 10.0.0.2"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"shop.example.com"),
]


def fields(peer: str, headers: list[tuple[bytes, bytes]]) -> RequestHead:
    prefix = codec.conn_prefix("http", (peer, 40000), ("127.0.0.1", 8000))
    payload = codec.encode_request(b"GET", b"/api/items?x=1", b"1.1", prefix, headers, b"")
    return codec.decode_request(payload)[0]


def per_call(stmt: Any, n: int) -> float:
    return min(timeit.repeat(stmt, number=n, repeat=5)) / n * 1e6


def main(n: int) -> None:
    proxies = Frontend(TrustedPeers(["127.0.0.1", "10.0.0.0/8"]), "")
    rooted = Frontend(None, "/api")
    adapter = WSGIAdapter(lambda e, s: [], multithread=False, multiprocess=True)
    cases = {
        "no forwarding header": ("127.0.0.1", HEADERS, proxies),
        "forwarding header, untrusted peer": ("192.0.2.1", HEADERS + FORWARDED, proxies),
        "trusted X-Forwarded-For/-Proto/-Host": ("127.0.0.1", HEADERS + FORWARDED, proxies),
        "--root-path only": ("127.0.0.1", HEADERS, rooted),
    }
    print(f"{'case':<40} {'environ':>9} {'scope':>9}  (µs per call)")
    for label, (peer, headers, front) in cases.items():
        f = fields(peer, headers)
        env = adapter.environ(f, b"")
        scope = build_scope(f, None)
        # each call gets a fresh copy, as a request would; the copy is timed apart
        env_copy = per_call(lambda env=env: env.copy(), n)
        scope_copy = per_call(lambda scope=scope: {**scope, "headers": list(scope["headers"])}, n)
        t_env = per_call(lambda env=env, front=front: front.environ(env.copy()), n) - env_copy
        t_scope = (
            per_call(
                lambda scope=scope, front=front: front.scope(
                    {**scope, "headers": list(scope["headers"])}
                ),
                n,
            )
            - scope_copy
        )
        print(f"{label:<40} {t_env:9.3f} {t_scope:9.3f}")
    f = fields("127.0.0.1", HEADERS)
    plain = WSGIAdapter(lambda e, s: [], multithread=False, multiprocess=True)
    fronted = WSGIAdapter(lambda e, s: [], multithread=False, multiprocess=True, frontend=proxies)
    print(
        f"{'whole environ build, without/with':<40} "
        f"{per_call(lambda: plain.environ(f, b''), n):9.3f} "
        f"{per_call(lambda: fronted.environ(f, b''), n):9.3f}"
    )
    print(
        f"{'whole scope build, without/with':<40} "
        f"{per_call(lambda: build_scope(f, None), n):9.3f} "
        f"{per_call(lambda: build_scope(f, None, proxies), n):9.3f}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
