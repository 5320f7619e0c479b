"""Proxy headers, --root-path and the Date/Server toggles, over the real server.

The test client is the "proxy": it connects from 127.0.0.1 (trusted by
default) or over a unix socket, and sends the forwarding headers itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import exchange
from tests.integration.conftest import Server, Starter

pytestmark = pytest.mark.modes("process", "base", "reactors")

FORWARDING = {
    "X-Forwarded-For": "6.6.6.6, 203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "shop.example.com",
}


def get(server: Server, path: str = "/", headers: dict[str, str] | None = None) -> Any:
    r = httpx.get(server.url + path, headers=headers or {}, timeout=10)
    assert r.status_code == 200
    return r.json()


def test_wsgi_behind_a_trusted_proxy(serve: Starter) -> None:
    env = get(serve("proxy_app:wsgi", workers=1), "/p", FORWARDING)
    assert env["REMOTE_ADDR"] == "203.0.113.7"  # the right-most hop: 6.6.6.6 is the client's say
    assert env["REMOTE_PORT"] == "0"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "shop.example.com"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("shop.example.com", "443")
    assert env["HTTP_X_FORWARDED_FOR"] == "6.6.6.6, 203.0.113.7"


def test_asgi_behind_a_trusted_proxy(serve: Starter) -> None:
    server = serve("proxy_app:asgi", workers=1)
    scope = get(
        server, "/p", {"Forwarded": 'for="[2001:db8::7]:4711";proto=https;host=example.com:8443'}
    )
    assert scope["client"] == ["2001:db8::7", 4711]
    assert scope["scheme"] == "https"
    assert scope["server"] == ["example.com", 8443]
    assert ["host", "example.com:8443"] in scope["headers"]
    scope = get(server, "/p", FORWARDING)
    assert scope["client"] == ["203.0.113.7", 0]
    assert scope["server"] == ["shop.example.com", 443]


@pytest.mark.parametrize(
    ("flags", "env"),
    [
        (("--forwarded-allow-ips", "10.0.0.1"), None),
        (("--no-proxy-headers",), None),
        ((), {"FORWARDED_ALLOW_IPS": "10.0.0.1,10.0.0.2"}),  # gunicorn's and uvicorn's variable
    ],
    ids=["untrusted", "no-proxy-headers", "env-FORWARDED_ALLOW_IPS"],
)
@pytest.mark.parametrize("app", ["proxy_app:wsgi", "proxy_app:asgi"])
def test_headers_from_an_untrusted_peer_are_ignored(
    serve: Starter, app: str, flags: tuple[str, ...], env: dict[str, str] | None
) -> None:
    seen = get(serve(app, *flags, workers=1, env=env), "/p", FORWARDING)
    if app.endswith("wsgi"):
        assert seen["REMOTE_ADDR"] == "127.0.0.1"
        assert seen["wsgi.url_scheme"] == "http"
        assert seen["HTTP_HOST"].startswith("127.0.0.1:")
        assert seen["HTTP_X_FORWARDED_HOST"] == "shop.example.com"  # left as a plain header
    else:
        assert seen["client"][0] == "127.0.0.1"
        assert seen["scheme"] == "http"
        assert ["x-forwarded-host", "shop.example.com"] in seen["headers"]


@pytest.mark.parametrize("app", ["proxy_app:wsgi", "proxy_app:asgi"])
def test_unix_socket_peers_trusted_with_unix(serve: Starter, app: str, tmp_path: Path) -> None:
    sock = tmp_path / "app.sock"
    server = serve(app, "--bind", f"unix:{sock}", "--forwarded-allow-ips", "unix", workers=1)
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), timeout=10) as client:
        seen = client.get("http://shop/p", headers=FORWARDING).json()
    # ... and loopback TCP is no longer trusted: the list replaced the default
    direct = get(server, "/p", FORWARDING)
    if app.endswith("wsgi"):
        assert (seen["REMOTE_ADDR"], seen["wsgi.url_scheme"]) == ("203.0.113.7", "https")
        assert direct["REMOTE_ADDR"] == "127.0.0.1"
    else:
        assert (seen["client"], seen["scheme"]) == (["203.0.113.7", 0], "https")
        assert direct["client"][0] == "127.0.0.1"


def test_wsgi_root_path(serve: Starter) -> None:
    server = serve("proxy_app:wsgi", "--root-path", "/api/", workers=1)
    for path, path_info in [("/api/items", "/items"), ("/items", "/items"), ("/apiary", "/apiary")]:
        env = get(server, path)
        assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/api", path_info)


def test_asgi_root_path(serve: Starter) -> None:
    server = serve("proxy_app:asgi", "--root-path", "/api", workers=1)
    for path in ("/api/items", "/items"):  # a proxy that kept the prefix, one that stripped it
        scope = get(server, path)
        assert (scope["root_path"], scope["path"], scope["raw_path"]) == (
            "/api",
            "/api/items",
            "/api/items",
        )


def test_root_path_must_be_absolute(serve: Starter) -> None:
    server = serve("proxy_app:wsgi", "--root-path", "api", workers=1, wait=False)
    server.expected_exit = 2
    assert server.wait_exit(30) == 2
    server.wait_for(r"--root-path must start with / \(got 'api'\)")
    assert "Traceback" not in server.logs()


@pytest.mark.parametrize("app", ["proxy_app:wsgi", "proxy_app:asgi"])
def test_no_server_and_no_date_header_on_the_wire(serve: Starter, app: str) -> None:
    plain = serve(app, workers=1)
    (r,) = exchange(plain.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.header("server") == "swserve"
    assert r.header("date") is not None
    server = serve(app, "--no-server-header", "--no-date-header", workers=1)
    (r,) = exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert r.status == 200
    assert r.header("server") is None
    assert r.header("date") is None
    # the reactor's own error responses follow the toggles too
    (r,) = exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n")
    assert r.status == 400
    assert (r.header("server"), r.header("date")) == (None, None)
    if app.endswith("wsgi"):  # an app's own headers still go out
        (r,) = exchange(
            server.port, b"GET /with-server HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert (r.header("server"), r.header("date")) == ("my-app", "Mon, 07 Nov 1994 00:00:00 GMT")


@pytest.mark.parametrize("app", ["proxy_frameworks:flask_app", "proxy_frameworks:fastapi_app"])
def test_frameworks_build_public_urls_behind_a_proxy(serve: Starter, app: str) -> None:
    """Flask (WSGI) and FastAPI (ASGI) need no proxy settings of their own."""
    server = serve(app, "--root-path", "/api", workers=1)
    for path in ("/api/where", "/where"):  # the proxy kept the prefix, or stripped it
        seen = get(server, path, FORWARDING)
        assert seen == {"url": "https://shop.example.com/api/where", "client": "203.0.113.7"}
