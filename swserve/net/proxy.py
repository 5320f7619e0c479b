"""Proxy headers and the root path: the request as the client made it, behind a proxy.

Behind nginx or a load balancer, the TCP peer of every connection is the
proxy, the scheme is whatever the proxy speaks to us (often plain http) and
the Host may be an internal name.  Proxies say what the client really sent in
``X-Forwarded-For``/``-Proto``/``-Host``/``-Port`` or in RFC 7239
``Forwarded``.  Those headers are only believed from a peer in
``--forwarded-allow-ips`` (anyone can send them), and only the hops that
trusted proxies added are believed: the chain is walked from the right, past
trusted proxies, to the first address that is not one (uvicorn's and
werkzeug's rule).

Layout:

- :class:`TrustedPeers`: the setting, parsed once (IPs, CIDRs, ``*``, ``unix``);
- :func:`resolve`: pure, (trust, peer, forwarding headers) → :class:`Forwarded`;
- :class:`Frontend`: built once per worker from the settings, applies the
  result and ``--root-path`` to a WSGI environ or an ASGI scope.

Pure: no I/O, no clock; ``docs/proxies.md`` is the user's view.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple
from urllib.parse import quote

from swserve.errors import ConfigError

if TYPE_CHECKING:
    from swserve.config import Config

# Header names in an ASGI scope (lower-case, as the parsers deliver them) and
# their WSGI environ keys; the same five for both.
HEADER_NAMES: Final = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
)
_SCOPE_NAMES: Final = frozenset(name.encode() for name in HEADER_NAMES)
_ENVIRON_KEYS: Final = {"HTTP_" + name.upper().replace("-", "_"): name for name in HEADER_NAMES}
_ENVIRON_KEY_SET: Final = frozenset(_ENVIRON_KEYS)

_CACHE_LIMIT: Final = 4096  # addresses whose trust is remembered: hops are attacker-chosen
_TCHARS: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# RFC 7239 §4: pair = token "=" ( token / quoted-string ).  Unquoted values may
# also hold ':', '[' and ']': "for=[::1]:80" is wrong (it must be quoted) but is
# what some proxies send, and the node syntax is checked afterwards anyway.
_PAIR: Final = re.compile(
    r"[ \t]*(" + _TCHARS + r')=("(?:[^"\\]|\\.)*"|[!#$%&\'*+\-.^_`|~0-9A-Za-z:\[\]]+)[ \t]*'
)
_QUOTED_PAIR: Final = re.compile(r"\\(.)")
# A Host as a proxy may forward it: reg-name, IPv4 or [IPv6], optional port.
_HOST: Final = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+;=%]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4: Final = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_IP_CACHE: dict[str, str | None] = {}  # text → canonical address; hops repeat (proxies)
_NODE_CACHE: dict[str, tuple[str, int] | None] = {}  # hop text → parse_node()
_SECURE: Final = {"https": True, "wss": True, "http": False, "ws": False}
_DEFAULT_PORT: Final = {True: 443, False: 80}


class TrustedPeers:
    """``--forwarded-allow-ips``: which peers' (and hops') proxy headers are believed.

    Items are IPv4/IPv6 addresses, CIDR networks, ``*`` (everyone, unix-socket
    peers too) or ``unix`` (peers on a unix-socket listener, which have no
    address).  An item may hold several, comma-separated (gunicorn's and
    uvicorn's form).

    Raises:
        ConfigError: an item is none of these.
    """

    __slots__ = ("_cache", "addresses", "everyone", "networks", "unix")

    def __init__(self, items: Iterable[str]) -> None:
        self.everyone = False
        self.unix = False
        self.addresses: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in split_items(items):
            if item == "*":
                self.everyone = True
            elif item.lower() == "unix":
                self.unix = True
            elif "/" in item:
                try:
                    self.networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise ConfigError(_bad_item(item)) from None
            else:
                ip = _ip(item)
                if ip is None:
                    raise ConfigError(_bad_item(item))
                self.addresses.add(ip)
        self._cache: dict[str, bool] = {}

    def __contains__(self, host: str) -> bool:
        """Is ``host`` (an address as the socket or a header gives it; "" for unix) trusted?"""
        if self.everyone:
            return True
        if not host:
            return self.unix
        known = self._cache.get(host)
        if known is None:
            known = self._lookup(host)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[host] = known
        return known

    def _lookup(self, host: str) -> bool:
        if host in self.addresses:
            return True
        normal = _ip(host)
        if normal is None:
            return False
        if normal in self.addresses:
            return True
        address = ipaddress.ip_address(normal)
        forms: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = (address,)
        if address.version == 4:  # also as IPv4-mapped, for networks written that way
            forms += (ipaddress.IPv6Address("::ffff:" + normal),)
        return any(form in net for net in self.networks for form in forms)


def split_items(items: Iterable[str]) -> list[str]:
    """``("127.0.0.1, 10.0.0.0/8", "unix")`` → ``["127.0.0.1", "10.0.0.0/8", "unix"]``."""
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _bad_item(item: str) -> str:
    return f"--forwarded-allow-ips: {item!r} is not an IP address, a CIDR network, * or unix"


def _ip(text: str) -> str | None:
    """An address in its canonical form (IPv4-mapped IPv6 as IPv4), or None.

    ``ipaddress.ip_address`` costs about 4 µs; a dotted quad in canonical form
    (no leading zeros, which ``ipaddress`` rejects too) is its own answer after
    a 0.3 µs regex, and other answers are remembered (bounded).
    """
    if _IPV4.fullmatch(text):
        return text
    if text in _IP_CACHE:
        return _IP_CACHE[text]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        normal = None
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        normal = str(address)
    if len(_IP_CACHE) < _CACHE_LIMIT:
        _IP_CACHE[text] = normal
    return normal


def _port(text: str) -> int | None:
    if text.startswith("_"):  # an obfuscated port (RFC 7239 §6.3): known to be there, not which
        return 0
    if not text.isdigit() or len(text) > 5 or int(text) > 65535:
        return None
    return int(text)


def parse_node(text: str) -> tuple[str, int] | None:
    """A hop as proxies write it → (address, port; 0 when not given), or None.

    ``203.0.113.7``, ``203.0.113.7:4711``, ``2001:db8::1``, ``[2001:db8::1]``,
    ``[2001:db8::1]:4711``.  ``unknown``, obfuscated names (``_hidden``) and
    anything else are None: such a hop cannot be named, nor trusted.
    Answers are remembered (bounded): behind a proxy the same hops recur.
    """
    if text in _NODE_CACHE:
        return _NODE_CACHE[text]
    node = _parse_node(text.strip())
    if len(_NODE_CACHE) < _CACHE_LIMIT:
        _NODE_CACHE[text] = node
    return node


def _parse_node(text: str) -> tuple[str, int] | None:
    port: int | None = 0
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            port = _port(rest[1:]) if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, _, digits = text.partition(":")
        port = _port(digits)
    else:
        host = text
    address = _ip(host)
    if address is None or port is None:
        return None
    return address, port


def parse_forwarded(value: str) -> list[dict[str, str] | None]:
    """An RFC 7239 ``Forwarded`` value → its elements, left to right.

    Each element is a dict of lower-cased parameter names to unquoted values;
    an element that does not parse (bad syntax, a parameter given twice) is
    None, so that the walk over the chain can stop at it.  Empty elements
    (``a, ,b``) are dropped, as RFC 9110 §5.6.1 lets recipients do.
    """
    elements: list[dict[str, str] | None] = []
    pairs: dict[str, str] | None = {}
    pos, end = 0, len(value)
    while True:
        match = _PAIR.match(value, pos)
        if match is not None and pairs is not None:
            name, raw = match.group(1).lower(), match.group(2)
            if name in pairs:
                pairs = None  # RFC 7239 §4: a parameter MUST NOT occur twice in an element
            else:
                pairs[name] = _QUOTED_PAIR.sub(r"\1", raw[1:-1]) if raw[0] == '"' else raw
            pos = match.end()
        while pos < end and value[pos] in " \t":
            pos += 1
        if pos < end and value[pos] == ";":
            pos += 1
            continue
        if pos < end and value[pos] != ",":
            pairs = None  # garbage: this element is unusable; skip to the next one
            pos = _next_comma(value, pos)
        if pairs != {}:
            elements.append(pairs)
        if pos >= end:
            return elements
        pos += 1  # past the comma
        pairs = {}


def _next_comma(value: str, pos: int) -> int:
    """The index of the next ',' outside a quoted string (or the end)."""
    quoted = False
    end = len(value)
    while pos < end:
        char = value[pos]
        if quoted and char == "\\":
            pos += 1
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            return pos
        pos += 1
    return end


class Forwarded(NamedTuple):
    """What trusted proxies said about the client; None fields: not said, keep as is."""

    client: tuple[str, int] | None  # its address and port (0 when no port was given)
    secure: bool | None  # https (or wss) rather than http
    host: str | None  # the Host it asked for, maybe with a port
    port: int | None  # the port it connected to (X-Forwarded-Port)


def resolve(trusted: TrustedPeers, peer: str, headers: Mapping[str, str]) -> Forwarded | None:
    """What the client sent, from the forwarding headers of a trusted ``peer``.

    ``headers`` maps lower-case names (``HEADER_NAMES``) to values, repeated
    lines joined with ",".  None when ``peer`` is not trusted or nothing
    usable was said.  Precedence: ``Forwarded``, when it has an element,
    alone; else the ``X-Forwarded-*`` family.
    """
    if peer not in trusted:
        return None
    value = headers.get("forwarded")
    if value:
        elements = parse_forwarded(value)
        if elements:
            return _from_forwarded(trusted, elements)
    return _from_x_forwarded(trusted, headers)


def _from_forwarded(
    trusted: TrustedPeers, elements: list[dict[str, str] | None]
) -> Forwarded | None:
    chosen = None
    client = None
    for element in reversed(elements):
        chosen = element
        client = parse_node(element["for"]) if element is not None and "for" in element else None
        if client is None or client[0] not in trusted:
            break  # else every hop is trusted: the left-most is the client
    if chosen is None:
        return None  # the first hop no trusted proxy vouches for is garbage: say nothing
    proto = chosen.get("proto")
    host = chosen.get("host")
    return _result(client, proto, host, None)


def _from_x_forwarded(trusted: TrustedPeers, headers: Mapping[str, str]) -> Forwarded | None:
    hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",")]
    index = None
    client = None
    if hops != [""]:
        for i in range(len(hops) - 1, -1, -1):
            index, client = i, parse_node(hops[i])
            if client is None or client[0] not in trusted:
                break  # else every hop is trusted: the left-most is the client
    count = len(hops) if index is not None else 0
    port_text = _pick(headers.get("x-forwarded-port"), index, count)
    port = _port(port_text) if port_text is not None else None
    return _result(
        client,
        _pick(headers.get("x-forwarded-proto"), index, count),
        _pick(headers.get("x-forwarded-host"), index, count),
        port or None,
    )


def _pick(raw: str | None, index: int | None, count: int) -> str | None:
    """One value of an X-Forwarded-Proto/-Host/-Port list.

    Proxies that append to these as they do to -For keep the lists aligned:
    take the client's hop.  Otherwise the right-most value, set by the
    nearest (trusted) proxy.
    """
    if not raw:
        return None
    if "," not in raw:
        return raw.strip()
    items = raw.split(",")
    if index is not None and len(items) == count:
        return items[index].strip()
    return items[-1].strip()


def _result(
    client: tuple[str, int] | None, proto: str | None, host: str | None, port: int | None
) -> Forwarded | None:
    secure = _SECURE.get(proto.lower()) if proto is not None else None
    if host is not None and not _HOST.fullmatch(host):
        host = None
    if client is None and secure is None and host is None and port is None:
        return None
    return Forwarded(client, secure, host, port)


def split_host(host: str) -> tuple[str, int | None]:
    """``example.com:8443`` → ("example.com", 8443); ``[::1]`` → ("[::1]", None)."""
    if host.endswith("]") or ":" not in host:
        return host, None
    name, _, port = host.rpartition(":")
    return name, _port(port) or None


class Frontend:
    """What the proxy settings change in each request, built once per worker.

    ``environ``/``scope`` edit what the app builders made.  They must cost
    almost nothing when there is nothing to do.  loadtests/micro/proxy_headers.py
    (timeit, best of 5, 10-header request, on the shared 2-core dev machine
    under load, Python 3.11), µs per call:

    ====================================  =========  =========
    case                                  environ    scope
    ====================================  =========  =========
    no forwarding header (peer trusted)   0.1-0.4    0.3-0.7
    forwarding header, untrusted peer     0.3        0.2
    --root-path only                      0.3        0.25
    trusted X-Forwarded-For/-Proto/-Host  ~5         ~5.5
    ====================================  =========  =========

    against a whole environ build of ~5.5 µs and scope build of ~4 µs.  The
    ASGI check is a Python loop over the header names, paid only when the
    peer is trusted (loopback, by default); an untrusted peer is one cached
    dict lookup.
    """

    __slots__ = ("root", "root_bytes", "root_latin1", "trusted")

    def __init__(self, trusted: TrustedPeers | None, root_path: str) -> None:
        self.trusted = trusted
        root = normal_root(root_path)
        self.root = root
        self.root_latin1 = root.encode().decode("latin-1")  # PATH_INFO's encoding (PEP 3333)
        self.root_bytes = quote(root).encode("ascii")  # raw_path is percent-encoded

    @classmethod
    def from_config(cls, config: Config) -> Frontend | None:
        """None when neither proxy headers nor a root path apply: the builders skip it."""
        trusted = TrustedPeers(config.forwarded_allow_ips) if config.proxy_headers else None
        if trusted is None and not normal_root(config.root_path):
            return None
        return cls(trusted, config.root_path)

    # -- WSGI -----------------------------------------------------------------------

    def environ(self, env: dict[str, Any]) -> None:
        """Apply trusted forwarding headers and the root path to a WSGI environ."""
        trusted = self.trusted
        if (
            trusted is not None
            and not env.keys().isdisjoint(_ENVIRON_KEY_SET)
            and env["REMOTE_ADDR"] in trusted
        ):
            found = resolve(
                trusted,
                env["REMOTE_ADDR"],
                {name: env[key] for key, name in _ENVIRON_KEYS.items() if key in env},
            )
            if found is not None:
                _apply_environ(env, found)
        root = self.root_latin1
        if root:
            env["SCRIPT_NAME"] = root
            path = env["PATH_INFO"]
            if path == root or path.startswith(root + "/"):
                env["PATH_INFO"] = path[len(root) :]

    # -- ASGI -----------------------------------------------------------------------

    def scope(self, scope: dict[str, Any]) -> None:
        """Apply trusted forwarding headers and the root path to an ASGI http scope."""
        trusted = self.trusted
        if trusted is not None:
            client = scope["client"]
            if (client[0] if client else "") in trusted:
                headers: list[tuple[bytes, bytes]] = scope["headers"]
                names = _SCOPE_NAMES
                for name, _ in headers:
                    if name in names:
                        _forward_scope(trusted, scope, headers)
                        break
        root = self.root
        if root:
            # The ASGI spec (WSGI compatibility: PATH_INFO is path minus
            # root_path) and Starlette >= 0.35 want ``path`` to include
            # ``root_path``: a proxy that strips the prefix has it put back.
            scope["root_path"] = root
            path = scope["path"]
            if path != root and not path.startswith(root + "/") and path.startswith("/"):
                scope["path"] = root + path
                scope["raw_path"] = self.root_bytes + scope["raw_path"]


def _forward_scope(
    trusted: TrustedPeers, scope: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    client = scope["client"]
    peer = client[0] if client else ""
    given = _forwarding(headers)
    found = resolve(trusted, peer, given)
    if found is None:
        return
    if found.client is not None:
        scope["client"] = found.client
    if found.secure is not None:
        scope["scheme"] = "https" if found.secure else "http"
    if found.secure is None and found.host is None and found.port is None:
        return
    secure = scope["scheme"] == "https"
    index, host = _host_header(headers)
    authority = _authority(host, found, secure)
    if authority is None:
        return
    if index is None:
        headers.append((b"host", authority.encode("latin-1")))
    else:
        headers[index] = (b"host", authority.encode("latin-1"))
    server_name, port = split_host(authority)
    scope["server"] = (server_name, port or found.port or _DEFAULT_PORT[secure])


def client_host(trusted: TrustedPeers, peer: str, headers: list[tuple[bytes, bytes]]) -> str:
    """The client's address as the worker will see it: ``peer``, or what trusted proxies said.

    For the reactor's ``--dispatch ip`` (the worker applies the same rule to
    REMOTE_ADDR / scope["client"], so the app and the dispatcher agree).
    ``headers`` as the parsers give them: lower-case names, raw values.
    """
    if peer not in trusted:
        return peer
    given = _forwarding(headers)
    if not given:
        return peer
    found = resolve(trusted, peer, given)
    if found is None or found.client is None:
        return peer
    return found.client[0]


def _forwarding(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The forwarding headers among raw ``headers``, as ``resolve`` takes them."""
    given: dict[str, str] = {}
    for name, value in headers:
        if name in _SCOPE_NAMES:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            given[key] = given[key] + "," + text if key in given else text
    return given


def _host_header(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, str | None]:
    for i, (name, value) in enumerate(headers):
        if name == b"host":
            return i, value.decode("latin-1")
    return None, None


def _authority(host: str | None, found: Forwarded, secure: bool) -> str | None:
    """The Host the client used: the forwarded one, with X-Forwarded-Port applied."""
    if found.host is not None:
        host = found.host
    if host is None:
        return None
    if found.port is not None:
        name, _ = split_host(host)
        host = name if found.port == _DEFAULT_PORT[secure] else f"{name}:{found.port}"
    return host


def _apply_environ(env: dict[str, Any], found: Forwarded) -> None:
    if found.client is not None:
        env["REMOTE_ADDR"], client_port = found.client
        env["REMOTE_PORT"] = str(client_port)
    if found.secure is not None:
        env["wsgi.url_scheme"] = "https" if found.secure else "http"
    if found.secure is None and found.host is None and found.port is None:
        return
    secure = env["wsgi.url_scheme"] == "https"
    authority = _authority(env.get("HTTP_HOST"), found, secure)
    if authority is None:
        return
    env["HTTP_HOST"] = authority
    name, port = split_host(authority)
    env["SERVER_NAME"] = name
    env["SERVER_PORT"] = str(port or found.port or _DEFAULT_PORT[secure])


def normal_root(root_path: str) -> str:
    """``/api/`` → ``/api``; ``/`` → "" (no prefix)."""
    return root_path.rstrip("/")


def setting_problems(values: Mapping[str, Any]) -> list[str]:
    """Problems with the proxy settings in ``values``, one line each (config.problems)."""
    out = []
    try:
        TrustedPeers(values.get("forwarded_allow_ips", ()))
    except ConfigError as exc:
        out.append(str(exc))
    root = values.get("root_path", "")
    if root and not root.startswith("/"):
        out.append(f"--root-path must start with / (got {root!r})")
    return out
