"""Large bodies do not make the server fault its memory in again on every request.

With glibc's default malloc every 1 MiB echo cost ~1,400 minor page faults in
process mode (its buffers were trimmed back to the kernel after each request,
then faulted in page by page): a third of the CPU it spent.  swserve/process/malloc.py
keeps them on the heap.  Counted from /proc, for the whole process tree.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import ResponseReader, connect
from tests.integration.conftest import Server, Starter

pytestmark = pytest.mark.modes("process", "base", "reactors")

BODY = b"x" * (1024 * 1024)
POST = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY


def tree_faults(server: Server) -> int:
    total = 0
    for pid in server.children():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        total += int(stat.rsplit(")", 1)[1].split()[7])  # field 10: minflt
    return total


def echo(reader: ResponseReader, sock, count: int) -> None:
    for _ in range(count):
        sock.sendall(POST)
        response = reader.read()
        assert (response.status, len(response.body)) == (200, len(BODY))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("app", ["wsgi_echo:app", "asgi_echo:app"])
def test_a_1_mib_echo_does_not_fault_its_buffers_in_again(serve: Starter, app: str) -> None:
    server = serve(app, workers=1)
    with connect(server.port, timeout=20) as sock:
        reader = ResponseReader(sock)
        echo(reader, sock, 5)  # warm: the heap grows to its working size
        before = tree_faults(server)
        echo(reader, sock, 40)
        per_request = (tree_faults(server) - before) / 40
    # ~1,400 per request with glibc's defaults (256 pages per MiB copied); ~10 tuned
    assert per_request < 150, per_request
