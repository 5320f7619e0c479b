"""The affinity key of a request (reactor/affinity.py): what --dispatch ip / key:... hash."""

from __future__ import annotations

from hypothesis import given, strategies as st

from swserve.config import Config
from swserve.reactor.affinity import Keys

H = list[tuple[bytes, bytes]]


def keys(dispatch: str, **settings: object) -> Keys:
    found = Keys.from_config(Config(dispatch=dispatch, **settings))  # type: ignore[arg-type]
    assert found is not None
    return found


def test_only_the_affinity_modes_have_keys() -> None:
    for mode in ("idle", "round-robin", "fd"):
        assert Keys.from_config(Config(dispatch=mode)) is None


def test_ip_is_the_peer_when_it_is_not_a_trusted_proxy() -> None:
    k = keys("ip")  # trusted: 127.0.0.1 only (the default)
    assert k.key("127.0.0.2", []) == b"127.0.0.2"
    # a client that is not a trusted proxy cannot choose its worker with a header
    assert k.key("127.0.0.2", [(b"x-forwarded-for", b"203.0.113.9")]) == b"127.0.0.2"


def test_ip_is_the_forwarded_client_behind_a_trusted_proxy() -> None:
    k = keys("ip")
    assert k.key("127.0.0.1", [(b"x-forwarded-for", b"203.0.113.9")]) == b"203.0.113.9"
    assert k.key("127.0.0.1", [(b"forwarded", b"for=198.51.100.7")]) == b"198.51.100.7"
    # the chain is walked from the right past trusted hops only: the spoofed left hop is ignored
    chain = [(b"x-forwarded-for", b"1.2.3.4, 203.0.113.9")]
    assert k.key("127.0.0.1", chain) == b"203.0.113.9"
    assert k.key("127.0.0.1", [(b"host", b"x")]) == b"127.0.0.1"  # no header: the proxy itself


def test_ip_ignores_proxy_headers_when_they_are_off() -> None:
    k = keys("ip", proxy_headers=False)
    assert k.key("127.0.0.1", [(b"x-forwarded-for", b"203.0.113.9")]) == b"127.0.0.1"


def test_ip_on_a_unix_socket() -> None:
    assert keys("ip").key("", []) is None  # no address: idle
    k = keys("ip", forwarded_allow_ips=("unix",))
    assert k.key("", [(b"x-forwarded-for", b"203.0.113.9")]) == b"203.0.113.9"


def test_header_key() -> None:
    k = keys("key:X-Tenant")
    assert k.key("127.0.0.2", [(b"x-tenant", b" acme ")]) == b"acme"
    assert k.key("127.0.0.2", [(b"x-tenant", b"a"), (b"x-tenant", b"b")]) == b"a"
    assert k.key("127.0.0.2", [(b"x-other", b"acme")]) is None
    assert k.key("127.0.0.2", [(b"x-tenant", b"  ")]) is None


def test_cookie_key() -> None:
    k = keys("key:cookie:sid")
    assert k.key("", [(b"cookie", b"a=1; sid=abc; b=2")]) == b"abc"
    assert k.key("", [(b"cookie", b"a=1"), (b"cookie", b"sid=xyz")]) == b"xyz"
    assert k.key("", [(b"cookie", b'sid="q"')]) == b"q"
    assert k.key("", [(b"cookie", b"xsid=1; sidx=2")]) is None
    assert k.key("", [(b"cookie", b"sid=")]) is None
    assert k.key("", [(b"x-sid", b"abc")]) is None


@given(st.binary(max_size=80), st.binary(max_size=80))
def test_any_cookie_header_gives_bytes_or_none(a: bytes, b: bytes) -> None:
    k = keys("key:cookie:sid")
    found = k.key("", [(b"cookie", a), (b"cookie", b)])
    assert found is None or len(found) > 0
