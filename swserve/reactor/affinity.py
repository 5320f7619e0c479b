"""The affinity key of a request, for ``--dispatch ip`` and ``--dispatch key:...``.

Pure: the reactor passes the connection's peer address and the request's
headers; the :class:`~swserve.reactor.dispatcher.Dispatcher` maps the key to a
worker.  ``None`` means the request has no key and goes to an idle worker.

==================  ============================================================
``ip``              the client address, after trusted proxy headers
                    (``--forwarded-allow-ips``), the same address the app sees
                    as REMOTE_ADDR / ``scope["client"]``; none on a unix socket
                    without trusted proxy headers
``key:HEADER``      the value of that request header (the first, stripped);
                    none when absent or empty
``key:cookie:NAME`` the value of that cookie in the Cookie header(s)
==================  ============================================================
"""

from __future__ import annotations

from swserve.config import Config
from swserve.net import proxy
from swserve.settings.dispatch import Spec, parse


class Keys:
    __slots__ = ("cookie", "header", "mode", "trusted")

    def __init__(self, spec: Spec, trusted: proxy.TrustedPeers | None) -> None:
        self.mode = spec.mode
        self.header = spec.header.encode("latin-1")
        self.cookie = spec.cookie.encode("latin-1")
        self.trusted = trusted

    @classmethod
    def from_config(cls, config: Config) -> Keys | None:
        """None unless ``--dispatch`` is an affinity mode."""
        spec = parse(config.dispatch)
        if spec.mode not in ("ip", "key"):
            return None
        trusted = proxy.TrustedPeers(config.forwarded_allow_ips) if config.proxy_headers else None
        return cls(spec, trusted)

    def key(self, peer: str | None, headers: list[tuple[bytes, bytes]]) -> bytes | None:
        """``peer``: the socket's client address ("" on a unix socket, None if unknown)."""
        if self.mode == "ip":
            host = peer or ""
            if self.trusted is not None:
                host = proxy.client_host(self.trusted, host, headers)
            return host.encode("latin-1") if host else None
        if self.cookie:
            return _cookie(headers, self.cookie)
        name = self.header
        for field, value in headers:
            if field == name:
                value = value.strip()
                return bytes(value) if value else None
        return None


def _cookie(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The value of cookie ``name`` (RFC 6265 §5.4 pairs, "; "-separated), None if absent."""
    for field, value in headers:
        if field != b"cookie":
            continue
        for pair in value.split(b";"):
            cname, eq, cvalue = pair.partition(b"=")
            if eq and cname.strip() == name:
                cvalue = cvalue.strip()
                if cvalue[:1] == b'"' and cvalue[-1:] == b'"' and len(cvalue) >= 2:
                    cvalue = cvalue[1:-1]
                return bytes(cvalue) if cvalue else None
    return None
