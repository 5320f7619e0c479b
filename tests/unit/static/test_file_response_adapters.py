"""The app side of file responses: what the WSGI and ASGI adapters hand a sink."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import pytest

from swserve.apps.asgi import RequestCycle
from swserve.apps.wsgi import WSGIAdapter
from swserve.protocol.request import RequestHead

pytestmark = pytest.mark.timeout(10)

HEAD = RequestHead(b"GET", b"/f", b"1.1", (b"http", b"127.0.0.1", b"1", b"127.0.0.1", b"2"), [])


class FileSink:
    """Records calls; ``send_file`` keeps what the descriptor holds, then closes it."""

    paused = False

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail = fail

    def send_start(self, status: int, flags: int, headers: bytes, body: bytes, end: bool) -> None:
        self.calls.append(("start", status, headers, bytes(body), end))

    def send_body(self, data: bytes, end: bool) -> None:
        self.calls.append(("body", bytes(data), end))

    def send_abort(self) -> None:
        self.calls.append(("abort",))

    def send_file(
        self, status: int, flags: int, headers: bytes, fd: int, offset: int, length: int
    ) -> None:
        try:
            if self.fail:
                raise OSError("no reactor inbox")
            self.calls.append(("file", status, headers, os.pread(fd, length, offset)))
        finally:
            os.close(fd)

    def drain(self) -> None:
        return None


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789" * 10)
    return path


def _wsgi(body: Any) -> WSGIAdapter:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](body(environ))

    return WSGIAdapter(app, multithread=False, multiprocess=False)


def test_wsgi_file_wrapper_hands_over_the_rest_of_the_file(data: Path) -> None:
    def opened(environ: dict[str, Any]) -> Any:
        f = data.open("rb")
        f.seek(90)
        return f

    sink = FileSink()
    _wsgi(opened)(HEAD, b"", sink)
    assert sink.calls == [
        (
            "file",
            200,
            b"Content-Type: application/octet-stream\r\ncontent-length: 10\r\n",
            b"0123456789",
        )
    ]


def test_wsgi_without_a_descriptor_or_inbox_iterates(data: Path) -> None:
    sink = FileSink()
    _wsgi(lambda env: io.BytesIO(b"in memory"))(HEAD, b"", sink)
    assert sink.calls[0][0] == "start"
    assert b"".join(c[1] if c[0] == "body" else c[3] for c in sink.calls) == b"in memory"
    failing = FileSink(fail=True)
    _wsgi(lambda env: data.open("rb"))(HEAD, b"", failing)
    sent = b"".join(c[1] if c[0] == "body" else c[3] for c in failing.calls)
    assert sent == data.read_bytes()
    assert failing.calls[0][2].endswith(b"content-length: 100\r\n")


def _cycle(sink: FileSink, head: bool = False) -> RequestCycle:
    return RequestCycle(sink, b"", head)


START = {"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]}


def test_asgi_pathsend(data: Path) -> None:
    async def run() -> FileSink:
        sink = FileSink()
        cycle = _cycle(sink)
        await cycle.send(START)
        await cycle.send({"type": "http.response.pathsend", "path": str(data)})
        assert cycle.ended
        return sink

    sink = asyncio.run(run())
    assert sink.calls == [("file", 200, b"x-a: 1\r\ncontent-length: 100\r\n", data.read_bytes())]


def test_asgi_pathsend_errors(data: Path) -> None:
    async def run() -> None:
        cycle = _cycle(FileSink())
        with pytest.raises(RuntimeError):
            await cycle.send({"type": "http.response.pathsend", "path": str(data)})  # no start
        cycle = _cycle(FileSink())
        await cycle.send(START)
        with pytest.raises(ValueError, match="absolute"):
            await cycle.send({"type": "http.response.pathsend", "path": "relative.bin"})
        failing = FileSink(fail=True)
        cycle = _cycle(failing)
        await cycle.send(START)
        with pytest.raises(OSError, match="inbox"):
            await cycle.send({"type": "http.response.pathsend", "path": str(data)})
        assert not cycle.ended  # the app's failure still gets its 500

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send(START)
            await send({"type": "http.response.pathsend", "path": str(data)})

        failing = FileSink(fail=True)
        await _cycle(failing).run(app, {"method": "GET", "path": "/f"})
        assert failing.calls[-1][:2] == ("start", 500)

    asyncio.run(run())


def test_asgi_pathsend_head_sends_no_descriptor(data: Path) -> None:
    async def run() -> FileSink:
        sink = FileSink()
        cycle = _cycle(sink, head=True)
        await cycle.send(START)
        await cycle.send({"type": "http.response.pathsend", "path": str(data)})
        return sink

    sink = asyncio.run(run())
    assert sink.calls == [("start", 200, b"x-a: 1\r\ncontent-length: 100\r\n", b"", True)]
