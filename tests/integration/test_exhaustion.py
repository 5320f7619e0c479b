"""Exhaustion: a full or read-only spool, file descriptors, processes.

Each fails only what needed the missing resource, says so once in the log,
and the server keeps serving everything else.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Server, Starter

pytestmark = pytest.mark.modes("process", "base")

SPOOL_ARGS = ("--body-spool-size", "64KiB", "--max-body-size", "64MiB")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs to spool into (mounting needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "spool"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=1777", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def spool_errors(server: Server) -> list[str]:
    return [line for line in server.stderr if "cannot spool a request body" in line]


def test_a_full_spool_answers_507_once_logged_and_serves_on(
    small_tmpfs: Path, serve: Starter
) -> None:
    server = serve("wsgi_echo:app", *SPOOL_ARGS, workers=1, env={"TMPDIR": str(small_tmpfs)})
    big = os.urandom(4 * 1024 * 1024)  # four times the tmpfs
    with httpx.Client(base_url=server.url, timeout=20) as client:
        for _ in range(3):
            response = client.post("/echo", content=big)
            assert response.status_code == 507
            assert response.headers["connection"] == "close"
            small = client.post("/echo", content=b"x" * 1000)  # in memory: served
            assert small.content == b"x" * 1000
        fits = os.urandom(256 * 1024)  # spooled, and it fits: the partial files were removed
        assert client.post("/echo", content=fits).content == fits
    assert len(spool_errors(server)) == 1, server.logs()
    assert not any("Traceback" in line for line in server.stderr), server.logs()
    server.wait_for("request bodies are spooled again")
    assert not list(small_tmpfs.glob("swserve-body-*"))


def test_a_read_only_spool_answers_503_and_serves_on(small_tmpfs: Path, serve: Starter) -> None:
    server = serve("wsgi_echo:app", *SPOOL_ARGS, workers=1, env={"TMPDIR": str(small_tmpfs)})
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    with httpx.Client(base_url=server.url, timeout=20) as client:
        for _ in range(2):
            assert client.post("/echo", content=b"y" * 200_000).status_code == 503
            assert client.get("/pid").status_code == 200
    assert len(spool_errors(server)) == 1, server.logs()
    assert "Read-only file system" in spool_errors(server)[0]
