"""Proxy headers and --root-path (swserve/net/proxy.py): trust, parsing, resolution, application."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from swserve.apps.asgi import build_scope
from swserve.apps.wsgi import WSGIAdapter
from swserve.config import Config, problems
from swserve.errors import ConfigError
from swserve.ipc import codec
from swserve.net import proxy
from swserve.net.proxy import (
    Forwarded,
    Frontend,
    TrustedPeers,
    parse_forwarded,
    parse_node,
    resolve,
)
from swserve.protocol.request import RequestHead
from tests.unit.test_layering import test_core_imports_no_io as check_no_io

LOOPBACK = TrustedPeers(["127.0.0.1"])
PROXIES = TrustedPeers(["127.0.0.1", "10.0.0.0/8", "2001:db8:ffff::/48"])


def test_proxy_module_is_sans_io() -> None:
    check_no_io(Path(proxy.__file__))


# -- TrustedPeers -------------------------------------------------------------------


def test_trusted_addresses_networks_and_commas() -> None:
    peers = TrustedPeers(["127.0.0.1, 10.0.0.0/8", " ::1 ", "192.168.1.7/24"])
    assert "127.0.0.1" in peers
    assert "10.200.3.4" in peers
    assert "::1" in peers
    assert "0:0:0:0:0:0:0:1" in peers  # any spelling of the address
    assert "::ffff:127.0.0.1" in peers  # IPv4-mapped, as a dual-stack socket reports it
    assert "192.168.1.200" in peers  # host bits in a CIDR are tolerated
    assert "11.0.0.1" not in peers
    assert "127.0.0.2" not in peers
    assert "" not in peers  # a unix-socket peer needs 'unix'
    assert "unknown" not in peers
    assert "not an address" not in peers


def test_star_trusts_everyone_and_unix_only_unix_peers() -> None:
    everyone = TrustedPeers(["*"])
    assert "203.0.113.9" in everyone
    assert "" in everyone
    unix = TrustedPeers(["unix"])
    assert "" in unix
    assert "127.0.0.1" not in unix


@pytest.mark.parametrize(
    "item", ["localhost", "10.0.0.0/33", "1.2.3", "*.example.com", "10.0.0.1,x"]
)
def test_bad_items_are_one_clear_error(item: str) -> None:
    with pytest.raises(ConfigError, match=r"--forwarded-allow-ips: .* is not an IP address"):
        TrustedPeers([item])


def test_config_problems_name_the_bad_setting() -> None:
    found = problems({"forwarded_allow_ips": ("127.0.0.1", "bogus"), "root_path": "api"})
    assert found == [
        "--forwarded-allow-ips: 'bogus' is not an IP address, a CIDR network, * or unix",
        "--root-path must start with / (got 'api')",
    ]
    assert problems({"forwarded_allow_ips": ("*",), "root_path": "/api/"}) == []


@given(st.ip_addresses(), st.ip_addresses(), st.integers(0, 32))
def test_network_membership_agrees_with_ipaddress(base: Any, other: Any, bits: int) -> None:
    prefix = bits if base.version == 4 else bits * 4
    net = ipaddress.ip_network(f"{base}/{prefix}", strict=False)
    peers = TrustedPeers([str(net)])
    assert str(base) in peers
    # an IPv4 address and its IPv4-mapped IPv6 form are one peer
    v4 = other if other.version == 4 else other.ipv4_mapped
    forms = {other} | ({v4, ipaddress.IPv6Address(f"::ffff:{v4}")} if v4 else set())
    assert (str(other) in peers) is any(form in net for form in forms)


# -- nodes and the Forwarded header ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("203.0.113.7", ("203.0.113.7", 0)),
        (" 203.0.113.7:4711 ", ("203.0.113.7", 4711)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        ("2001:DB8:0::1", ("2001:db8::1", 0)),
        ("[2001:db8::1]", ("2001:db8::1", 0)),
        ("[2001:db8::1]:4711", ("2001:db8::1", 4711)),
        ("[2001:db8::1]:_port", ("2001:db8::1", 0)),
        ("::ffff:10.1.2.3", ("10.1.2.3", 0)),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]4711", None),
        ("203.0.113.7:99999", None),
        ("203.0.113.7:", None),
        ("010.0.0.1", None),
        ("example.com", None),
        ("example.com:80", None),
    ],
)
def test_parse_node(text: str, node: tuple[str, int] | None) -> None:
    assert parse_node(text) == node


def test_parse_forwarded() -> None:
    value = (
        'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711",'
        ' for=198.51.100.17;host="example.com:8443"; proto=HTTPS'
    )
    assert parse_forwarded(value) == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"},
        {"for": "[2001:db8:cafe::17]:4711"},
        {"for": "198.51.100.17", "host": "example.com:8443", "proto": "HTTPS"},
    ]


@pytest.mark.parametrize(
    ("value", "elements"),
    [
        ("", []),
        (" , ,", []),
        ("for=1.2.3.4;;proto=https", [{"for": "1.2.3.4", "proto": "https"}]),
        ('for="a,b;c=d"', [{"for": "a,b;c=d"}]),  # separators inside quotes
        ('for="x\\"y"', [{"for": 'x"y'}]),  # quoted-pair
        ("for=1.2.3.4 junk, for=5.6.7.8", [None, {"for": "5.6.7.8"}]),
        ("for=1.2.3.4;for=5.6.7.8, proto=https", [None, {"proto": "https"}]),
        ('for="unterminated, for=5.6.7.8', [None]),
        ("=x, for=5.6.7.8", [None, {"for": "5.6.7.8"}]),
        ("for=[::1]:80", [{"for": "[::1]:80"}]),  # unquoted, as some proxies send it
    ],
)
def test_parse_forwarded_edge_cases(value: str, elements: list[dict[str, str] | None]) -> None:
    assert parse_forwarded(value) == elements


@given(st.text())
def test_parse_forwarded_never_raises(value: str) -> None:
    for element in parse_forwarded(value):
        assert element is None or isinstance(element, dict)


_names = st.sampled_from(["for", "by", "proto", "host", "x-ext"])
_values = st.text(st.characters(codec="latin-1", exclude_characters="\x00\r\n"), max_size=20)


@given(st.lists(st.dictionaries(_names, _values, min_size=1, max_size=4), max_size=5))
def test_parse_forwarded_round_trips_quoted_elements(elements: list[dict[str, str]]) -> None:
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    value = ", ".join(";".join(f"{k}={quoted(v)}" for k, v in el.items()) for el in elements)
    assert parse_forwarded(value) == elements


# -- resolve ----------------------------------------------------------------------


def test_untrusted_peer_is_ignored() -> None:
    headers = {
        "x-forwarded-for": "1.2.3.4",
        "x-forwarded-proto": "https",
        "forwarded": "for=1.2.3.4",
    }
    assert resolve(LOOPBACK, "192.0.2.1", headers) is None
    assert resolve(LOOPBACK, "", headers) is None  # a unix-socket peer, not trusted


def test_xff_is_walked_from_the_right_past_trusted_proxies() -> None:
    # the client put 6.6.6.6 there; 10.0.0.2 and 10.0.0.3 are our proxies
    headers = {"x-forwarded-for": "6.6.6.6, 203.0.113.7, 10.0.0.2,10.0.0.3"}
    assert resolve(PROXIES, "127.0.0.1", headers) == Forwarded(("203.0.113.7", 0), None, None, None)
    # only loopback trusted: the nearest hop is the client
    assert resolve(LOOPBACK, "127.0.0.1", headers) == Forwarded(("10.0.0.3", 0), None, None, None)


def test_xff_all_trusted_gives_the_left_most() -> None:
    headers = {"x-forwarded-for": "10.0.0.9, 10.0.0.2"}
    assert resolve(PROXIES, "127.0.0.1", headers) == Forwarded(("10.0.0.9", 0), None, None, None)
    everyone = TrustedPeers(["*"])
    headers = {"x-forwarded-for": "203.0.113.7, 198.51.100.1"}
    assert resolve(everyone, "192.0.2.1", headers) == Forwarded(
        ("203.0.113.7", 0), None, None, None
    )


def test_xff_garbage_hop_stops_the_walk_and_names_nobody() -> None:
    headers = {"x-forwarded-for": "203.0.113.7, unknown, 10.0.0.2", "x-forwarded-proto": "https"}
    assert resolve(PROXIES, "127.0.0.1", headers) == Forwarded(None, True, None, None)


def test_xff_ipv6_and_ports() -> None:
    headers = {"x-forwarded-for": "[2001:db8::7]:5555, 2001:db8:ffff::1"}
    assert resolve(PROXIES, "127.0.0.1", headers) == Forwarded(
        ("2001:db8::7", 5555), None, None, None
    )


@pytest.mark.parametrize(
    ("proto", "secure"),
    [
        ("https", True),
        ("HTTPS", True),
        ("wss", True),
        ("http", False),
        ("ws", False),
        ("ftp", None),
    ],
)
def test_proto_maps_to_http_or_https(proto: str, secure: bool | None) -> None:
    found = resolve(LOOPBACK, "127.0.0.1", {"x-forwarded-proto": proto})
    assert (found.secure if found is not None else None) is secure


def test_proto_host_port_lists_aligned_with_xff() -> None:
    headers = {
        "x-forwarded-for": "203.0.113.7, 10.0.0.2",
        "x-forwarded-proto": "https, http",
        "x-forwarded-host": "shop.example.com, internal:8080",
        "x-forwarded-port": "443, 8080",
    }
    assert resolve(PROXIES, "127.0.0.1", headers) == Forwarded(
        ("203.0.113.7", 0), True, "shop.example.com", 443
    )
    assert resolve(LOOPBACK, "127.0.0.1", headers) == Forwarded(
        ("10.0.0.2", 0), False, "internal:8080", 8080
    )


def test_unaligned_lists_take_the_nearest_proxys_value() -> None:
    headers = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "http, https"}
    assert resolve(LOOPBACK, "127.0.0.1", headers) == Forwarded(
        ("203.0.113.7", 0), True, None, None
    )


@pytest.mark.parametrize("host", ["a b", "evil.com/path", "x@y", "", "[::1", "h:123456"])
def test_bad_forwarded_hosts_and_ports_are_ignored(host: str) -> None:
    found = resolve(LOOPBACK, "127.0.0.1", {"x-forwarded-host": host, "x-forwarded-port": "99999"})
    assert found is None


def test_forwarded_header_walk() -> None:
    value = 'for=6.6.6.6;proto=http, for="[2001:db8::7]:4711";proto=https;host=example.com, for=10.0.0.2'
    assert resolve(PROXIES, "127.0.0.1", {"forwarded": value}) == Forwarded(
        ("2001:db8::7", 4711), True, "example.com", None
    )


def test_forwarded_wins_over_x_forwarded() -> None:
    headers = {
        "forwarded": "for=203.0.113.7;proto=https",
        "x-forwarded-for": "198.51.100.1",
        "x-forwarded-host": "other.example",
    }
    assert resolve(LOOPBACK, "127.0.0.1", headers) == Forwarded(
        ("203.0.113.7", 0), True, None, None
    )
    # an empty Forwarded says nothing: the X-Forwarded-* family applies
    headers["forwarded"] = " , "
    assert resolve(LOOPBACK, "127.0.0.1", headers) == Forwarded(
        ("198.51.100.1", 0), None, "other.example", None
    )


def test_forwarded_garbage_at_the_first_untrusted_hop_says_nothing() -> None:
    value = "for=203.0.113.7;proto=https, for=6.6.6.6 junk, for=10.0.0.2"
    assert resolve(PROXIES, "127.0.0.1", {"forwarded": value}) is None


def test_forwarded_unknown_or_obfuscated_for_keeps_proto_and_host() -> None:
    value = "for=unknown;proto=https;host=example.com"
    assert resolve(LOOPBACK, "127.0.0.1", {"forwarded": value}) == Forwarded(
        None, True, "example.com", None
    )


_v4 = st.ip_addresses(v=4).map(str)


@given(
    st.lists(_v4, min_size=1, max_size=6),
    st.lists(st.sampled_from(["10.0.0.1", "10.0.0.2", "10.9.9.9"]), max_size=3),
)
def test_xff_client_is_the_right_most_untrusted_hop(
    spoofable: list[str], proxies: list[str]
) -> None:
    """Whatever the client writes on the left, the answer is the hop our proxies saw."""
    trusted = TrustedPeers(["127.0.0.1", "10.0.0.0/8"])
    hops = spoofable + proxies
    found = resolve(trusted, "127.0.0.1", {"x-forwarded-for": ", ".join(hops)})
    assert found is not None
    assert found.client is not None

    def is_trusted(hop: str) -> bool:
        address = ipaddress.ip_address(hop)
        return hop == "127.0.0.1" or address in ipaddress.ip_network("10.0.0.0/8")

    untrusted = [hop for hop in hops if not is_trusted(hop)]
    expected = untrusted[-1] if untrusted else hops[0]
    assert found.client == (expected, 0)


# -- the Frontend on real environ and scope builders -----------------------------------


def request_fields(
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    peer: tuple[str, int] | None = ("127.0.0.1", 40000),
) -> RequestHead:
    prefix = codec.conn_prefix("http", peer, ("127.0.0.1", 8000))
    payload = codec.encode_request(b"GET", target, b"1.1", prefix, headers, b"")
    return codec.decode_request(payload)[0]


def environ(front: Frontend | None, fields: RequestHead) -> dict[str, Any]:
    adapter = WSGIAdapter(lambda e, s: [], multithread=False, multiprocess=True, frontend=front)
    return adapter.environ(fields, b"")


FORWARDING = [
    (b"host", b"127.0.0.1:8000"),
    (b"x-forwarded-for", b"203.0.113.7"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"shop.example.com"),
]


def test_environ_from_a_trusted_proxy() -> None:
    env = environ(Frontend(LOOPBACK, ""), request_fields(b"/p", FORWARDING))
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    assert env["REMOTE_PORT"] == "0"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "shop.example.com"
    assert env["SERVER_NAME"] == "shop.example.com"
    assert env["SERVER_PORT"] == "443"
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"  # the headers stay, as sent


def test_environ_from_an_untrusted_peer_is_untouched() -> None:
    fields = request_fields(b"/p", FORWARDING, peer=("192.0.2.1", 40000))
    env = environ(Frontend(LOOPBACK, ""), fields)
    assert env == environ(None, fields) | {"wsgi.input": env["wsgi.input"]}
    assert env["REMOTE_ADDR"] == "192.0.2.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "127.0.0.1:8000"


def test_x_forwarded_port_sets_the_port_of_the_host() -> None:
    headers = [
        (b"host", b"example.com"),
        (b"x-forwarded-port", b"8443"),
        (b"x-forwarded-proto", b"https"),
    ]
    env = environ(Frontend(LOOPBACK, ""), request_fields(b"/", headers))
    assert (env["HTTP_HOST"], env["SERVER_NAME"], env["SERVER_PORT"]) == (
        "example.com:8443",
        "example.com",
        "8443",
    )
    scope = build_scope(request_fields(b"/", headers), None, Frontend(LOOPBACK, ""))
    assert (b"host", b"example.com:8443") in scope["headers"]
    assert scope["server"] == ("example.com", 8443)
    # the scheme's default port is left out of the Host
    headers[1] = (b"x-forwarded-port", b"443")
    env = environ(Frontend(LOOPBACK, ""), request_fields(b"/", headers))
    assert (env["HTTP_HOST"], env["SERVER_PORT"]) == ("example.com", "443")


def test_scope_from_a_trusted_proxy() -> None:
    scope = build_scope(request_fields(b"/p", FORWARDING), None, Frontend(LOOPBACK, ""))
    assert scope["client"] == ("203.0.113.7", 0)
    assert scope["scheme"] == "https"
    assert scope["server"] == ("shop.example.com", 443)
    hosts = [v for n, v in scope["headers"] if n == b"host"]
    assert hosts == [b"shop.example.com"]


def test_scope_host_is_added_when_the_request_had_none() -> None:
    fields = request_fields(b"/p", [(b"x-forwarded-host", b"example.com:8080")])
    scope = build_scope(fields, None, Frontend(LOOPBACK, ""))
    assert (b"host", b"example.com:8080") in scope["headers"]
    assert scope["server"] == ("example.com", 8080)


def test_unix_peer_needs_unix() -> None:
    fields = request_fields(b"/p", FORWARDING, peer=None)
    assert build_scope(fields, None, Frontend(LOOPBACK, ""))["client"] is None
    scope = build_scope(fields, None, Frontend(TrustedPeers(["unix"]), ""))
    assert scope["client"] == ("203.0.113.7", 0)
    assert environ(Frontend(TrustedPeers(["unix"]), ""), fields)["REMOTE_ADDR"] == "203.0.113.7"


@pytest.mark.parametrize(
    ("target", "script_name", "path_info"),
    [
        (b"/api/items", "/api", "/items"),  # the proxy kept the prefix
        (b"/items", "/api", "/items"),  # the proxy stripped it
        (b"/api", "/api", ""),
        (b"/apiary", "/api", "/apiary"),  # not under the prefix
        (b"/api/caf%C3%A9", "/api", "/caf\u00c3\u00a9"),
    ],
)
def test_wsgi_root_path(target: bytes, script_name: str, path_info: str) -> None:
    env = environ(Frontend(None, "/api/"), request_fields(target, []))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == (script_name, path_info)


@pytest.mark.parametrize(
    ("target", "path", "raw_path"),
    [
        (b"/api/items", "/api/items", b"/api/items"),
        (b"/items", "/api/items", b"/api/items"),  # put back: path includes root_path
        (b"/api", "/api", b"/api"),
        (b"/apiary", "/api/apiary", b"/api/apiary"),
        (b"/caf%C3%A9", "/api/caf\u00e9", b"/api/caf%C3%A9"),
        (b"*", "*", b"*"),
    ],
)
def test_asgi_root_path(target: bytes, path: str, raw_path: bytes) -> None:
    scope = build_scope(request_fields(target, []), None, Frontend(None, "/api"))
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == ("/api", path, raw_path)


def test_from_config() -> None:
    assert Frontend.from_config(Config(proxy_headers=False)) is None
    assert Frontend.from_config(Config(proxy_headers=False, root_path="/")) is None
    front = Frontend.from_config(Config(proxy_headers=False, root_path="/app/"))
    assert front is not None
    assert front.trusted is None
    assert front.root == "/app"
    front = Frontend.from_config(Config(forwarded_allow_ips=("10.0.0.1,10.0.0.2",)))
    assert front is not None
    assert front.trusted is not None
    assert "10.0.0.2" in front.trusted
    assert "127.0.0.1" not in front.trusted
