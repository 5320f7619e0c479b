"""A streamed WSGI response stops when its client leaves, in both modes, with one worker.

With ``--mode base --threads 1`` the app runs on the worker's own loop, which
cannot see the client leave while the app holds it: the worker asks the socket
itself before each body part (``base/local_sink.py: InlineSink``).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import connect
from tests.integration.conftest import Starter
from tests.integration.test_process import wait_for_file

pytestmark = pytest.mark.modes("process", "base")


def test_a_dropped_drip_frees_the_only_worker(serve: Starter, tmp_path: Path) -> None:
    server = serve("wsgi_echo:app", workers=1)
    marker = tmp_path / "closed"
    drip = connect(server.port)
    drip.sendall(b"GET /drip?n=20&d=1&f=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(marker).encode())
    drip.settimeout(10)
    assert b"drip 0" in drip.recv(4096)  # the stream has started: the worker is in the app
    got = b""
    while b"drip 1" not in got:  # about a second later
        got += drip.recv(4096)
    drip.close()
    started = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/pid").status_code == 200
    # the drip had 18 s to go: a freed worker answers long before (generous for a busy box)
    assert time.monotonic() - started < 10
    assert wait_for_file(marker) == "closed"  # the app's iterable was closed
