"""The access log on the live server: gunicorn's format, JSON, exclusions, off by default."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.conftest import Starter

pytestmark = pytest.mark.modes("process", "base")


def test_off_by_default(serve: Starter) -> None:
    server = serve("wsgi_echo:app", workers=1)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/echo").status_code == 200
    assert server.stop() == 0
    assert not any('"GET /echo HTTP/1.1"' in line for line in server.stderr)


def test_gunicorn_format(serve: Starter) -> None:
    server = serve("wsgi_echo:app", "--access-log", workers=1)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.post(
            "/echo?x=1", content=b"12345", headers={"User-Agent": "probe/1", "Referer": "http://r/"}
        )
        assert r.status_code == 200
    server.wait_for(
        r"^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:[\d:]{8} [+-]\d{4}\] "
        r'"POST /echo\?x=1 HTTP/1\.1" 200 5 "http://r/" "probe/1"$'
    )


def test_custom_atoms_json_and_exclusions(serve: Starter) -> None:
    server = serve(
        "wsgi_echo:app", "--access-log", "--access-log-format", "json",
        "--access-log-exclude", "/pid", workers=1,
    )  # fmt: skip
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/pid").status_code == 200  # excluded
        assert client.get("/echo").status_code == 200
    line = server.wait_for(r'\{"time": .*"path": "/echo"').string
    record = json.loads(line[line.index("{") :])
    assert record["method"] == "GET"
    assert record["status"] == 200
    assert record["worker"] == 1
    assert record["duration_ms"] >= 0
    assert not any('"path": "/pid"' in x for x in server.stderr)
    server2 = serve(
        "wsgi_echo:app",
        "--access-log",
        "--access-log-format",
        "%(s)s %(U)s w=%(w)s D=%(D)s",
        workers=1,
    )
    with httpx.Client(base_url=server2.url, timeout=10) as client:
        client.get("/echo")
    server2.wait_for(r"200 /echo w=1 D=\d+")
