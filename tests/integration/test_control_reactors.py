"""`swserve ctl workers` with --reactors N counts every reactor's requests, not only reactor 0's."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import ResponseReader, connect
from tests.integration.conftest import Starter
from tests.integration.test_control import ctl_json


def test_ctl_workers_adds_up_the_requests_of_every_reactor(serve: Starter, tmp_path: Path) -> None:
    sock = tmp_path / "ctl.sock"
    release = tmp_path / "release"
    server = serve(
        "gate:app", "--reactors", "2", "--threads", "4", "--control-socket", str(sock), workers=1
    )
    held = []
    for n in range(1, 5):  # one at a time: placed alternately on reactor 0 and reactor 1
        conn = connect(server.port, timeout=30)
        conn.sendall(f"GET /hold?f={release} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        server.wait_for_count("^gate: waiting", n, stream="stdout")
        held.append(conn)
    try:
        (worker,) = ctl_json(sock, "workers")
        assert worker["in_flight"] == 4, worker  # 2 held by reactor 0, 2 by reactor 1
        assert worker["state"] == "busy"
        assert worker["current"]["path"].startswith("/hold")
        (row,) = [p for p in ctl_json(sock, "processes") if p["role"] == "worker"]
        assert row["in_flight"] == 4
    finally:
        release.touch()
        for conn in held:
            assert ResponseReader(conn).read().status == 200
            conn.close()
