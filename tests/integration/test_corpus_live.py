"""The request corpus replayed against the live server, on both parsers.

Each invalid request must get its expected status and a closed connection;
each valid one its responses; and after every case a fresh connection must
still be served (one bad client never disturbs the others).  Cases that need
non-default limits run against a server started with those limits.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ResponseReader, connect, exchange
from tests.integration.conftest import Server, swserve_args

pytestmark = pytest.mark.modes("process", "base", "reactors")

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "requests"
LIMIT_FLAGS = {
    "body": "--max-body-size",
    "header_count": "--limit-request-fields",
    "request_line": "--limit-request-line",
    "header_field": "--limit-request-field-size",
}


def cases(kind: str) -> list[tuple[str, bytes, dict]]:
    out = []
    for spec in sorted((CORPUS / kind).glob("*.json")):
        raw = spec.with_suffix(".http").read_bytes()
        out.append((spec.stem, raw, json.loads(spec.read_text())))
    return out


def flags_for(expected: dict) -> tuple[str, ...]:
    out: list[str] = []
    for name, value in expected.get("limits", {}).items():
        if name not in LIMIT_FLAGS:
            return ("unsupported",)
        out += [LIMIT_FLAGS[name], str(value)]
    return tuple(out)


class Servers:
    """One live server per (parser, limits) combination, started on first use."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.running: dict[tuple[str, tuple[str, ...]], Server] = {}

    def get(self, parser: str, flags: tuple[str, ...]) -> Server:
        key = (parser, flags)
        if key not in self.running:
            server = Server(
                swserve_args("wsgi_echo:app", "--http", parser, *flags, workers=1, mode=self.mode)
            )
            self.running[key] = server.wait_ready()
        return self.running[key]

    def stop(self) -> list[str]:
        failures = []
        for (parser, flags), server in self.running.items():
            code = server.stop()
            if code != 0:
                failures.append(f"{parser} {flags} exited with {code}\n{server.logs()}")
        return failures


@pytest.fixture(scope="module")
def servers(mode: str) -> Iterator[Servers]:
    pool = Servers(mode)
    yield pool
    failures = pool.stop()
    if failures:
        pytest.fail("\n".join(failures))


def server_for(servers: Servers, parser: str, expected: dict) -> Server:
    """The live server for this case's limits (skipped if the CLI cannot set them)."""
    flags = flags_for(expected)
    if flags == ("unsupported",):
        pytest.skip("limits the CLI does not expose")
    return servers.get(parser, flags)


@pytest.mark.parametrize("parser", ["httptools", "h11"])
@pytest.mark.parametrize(
    ("name", "raw", "expected"), cases("invalid"), ids=lambda v: v if isinstance(v, str) else ""
)
def test_invalid_request_live(
    servers: Servers, parser: str, name: str, raw: bytes, expected: dict
) -> None:
    server = server_for(servers, parser, expected)
    with connect(server.port) as sock:
        sock.sendall(raw)
        if expected.get("at_eof"):
            sock.shutdown(socket.SHUT_WR)
        reader = ResponseReader(sock)
        completed = [reader.read().status for _ in range(expected.get("completed", 0))]
        assert all(status < 400 for status in completed)
        if expected.get("at_eof"):
            assert reader.closed(), "an incomplete request at EOF must just close"
        else:
            response = reader.read()
            assert response.status == expected["status"], name
            assert response.header("connection") == "close"
            assert reader.closed()
    assert exchange(server.port, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")[0].status == 200


@pytest.mark.parametrize("parser", ["httptools", "h11"])
@pytest.mark.parametrize(
    ("name", "raw", "expected"), cases("valid"), ids=lambda v: v if isinstance(v, str) else ""
)
def test_valid_request_live(
    servers: Servers, parser: str, name: str, raw: bytes, expected: dict
) -> None:
    server = server_for(servers, parser, expected)
    requests = expected["requests"]
    with connect(server.port) as sock:
        sock.sendall(raw)
        reader = ResponseReader(sock)
        heads = [r["method"] == "HEAD" for r in requests]
        statuses = []
        for head, req in zip(heads, requests, strict=True):
            response = reader.read(head_request=head)
            if req.get("expect_continue") and response.status == 100:
                # the body was still on its way when the head was parsed
                response = reader.read(head_request=head)
            statuses.append(response.status)
        assert statuses == [200] * len(requests), name
        if not requests[-1]["keep_alive"]:
            assert reader.closed()
