"""The control socket in base mode and with reactor processes (test_control.py: process mode)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Starter
from tests.integration.test_control import ctl, ctl_json, eventually

pytestmark = pytest.mark.modes("base", "reactors")


def test_workers_processes_and_recycle(serve: Starter, tmp_path: Path, mode: str) -> None:
    sock = tmp_path / "ctl.sock"
    server = serve("wsgi_echo:app", "--control-socket", str(sock), workers=2)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(4):
            assert client.get("/pid").status_code == 200
    workers = ctl_json(sock, "workers")
    assert [w["slot"] for w in workers] == [1, 2]
    assert {w["state"] for w in workers} == ({"serving"} if mode == "base" else {"idle"})
    roles = [p["role"] for p in ctl_json(sock, "processes")]
    expected = ["master", "manager", "worker", "worker"]
    if mode == "reactors":
        expected.insert(1, "reactor")
    assert roles == expected
    if mode == "reactors":  # reactor 0's requests and those the master saw come back
        eventually(lambda: True if ctl_json(sock, "stats")["requests"] == 4 else None, "the count")
    old = workers[0]["pid"]
    assert ctl(sock, "recycle", "1").returncode == 0

    def replaced() -> bool | None:
        now = {w["slot"]: w for w in ctl_json(sock, "workers")}
        fresh = now.get(1)
        return (
            True
            if fresh and fresh["pid"] != old and fresh["state"] != "starting" and len(now) == 2
            else None
        )

    eventually(replaced, "worker 1's replacement")
    assert ctl_json(sock, "workers")[1]["pid"] == workers[1]["pid"]
