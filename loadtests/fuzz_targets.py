"""The fuzz targets of ``loadtests/fuzz.py`` (kept apart so atheris can instrument swserve).

Each is a function of one ``bytes`` input; a crash is any exception it lets out.
See ``loadtests/fuzz.py`` for what each checks.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swserve.config import Config
from swserve.errors import IPCError, ProtocolError
from swserve.ipc import codec, framing
from swserve.protocol.h11_parser import H11Parser
from swserve.protocol.limits import Limits
from swserve.protocol.parser import HttptoolsParser
from swserve.reactor.core import Reactor
from swserve.reactor.http_conn import HttpConnection
from swserve.reactor.worker_link import WorkerLink

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "fuzz"
LIMITS = Limits(request_line=8190, header_count=100, header_field=8190, body=1 << 20)


class FuzzFailure(AssertionError):
    """An invariant of a target broke (as opposed to an exception it let out)."""


def _cuts(data: bytes) -> tuple[bytes, list[int]]:
    """The first byte of the input chooses how the rest is cut into feeds."""
    if not data:
        return b"", []
    step = data[0] % 17 + 1
    rest = data[1:]
    return rest, list(range(step, len(rest), step))


def _feed_parser(cls: type, data: bytes, cuts: list[int]) -> tuple[list[Any], str]:
    parser = cls(LIMITS)
    out: list[Any] = []
    error = ""
    bounds = [0, *cuts, len(data)]
    try:
        for a, b in itertools.pairwise(bounds):
            out += parser.feed(data[a:b])
        out += parser.feed(b"")  # the end of the stream: whatever is pending is decided
    except ProtocolError as exc:
        out += exc.completed
        error = f"{exc.status_hint}"
    snap = [(r.method, r.target, r.version, tuple(r.headers), bytes(r.body)) for r in out]
    return snap, error


def _parser_target(cls: type) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        body, cuts = _cuts(data)
        whole = _feed_parser(cls, body, [])
        split = _feed_parser(cls, body, cuts)
        if whole != split:
            raise FuzzFailure(f"cutting the input changed the outcome: {whole} != {split}")

    return target


_DECODERS: dict[int, Callable[[Any], object]] = {
    framing.HELLO: codec.decode_hello,
    framing.READY: codec.decode_ready,
    framing.REQUEST: codec.decode_request,
    framing.RESPONSE_START: codec.decode_response_start,
    framing.SERVED: codec.decode_served,
    framing.METRICS: codec.decode_metrics,
}


def _decode_all(data: bytes, cuts: list[int]) -> tuple[list[tuple[Any, ...]], bool]:
    decoder = framing.FrameDecoder()
    frames: list[tuple[Any, ...]] = []
    bounds = [0, *cuts, len(data)]
    try:
        for a, b in itertools.pairwise(bounds):
            for kind, flags, session, request, payload in decoder.feed(data[a:b]):
                frames.append((kind, flags, session, request, bytes(payload)))
    except IPCError:
        return frames, True
    return frames, False


def frames_target(data: bytes) -> None:
    body, cuts = _cuts(data)
    whole = _decode_all(body, [])
    split = _decode_all(body, cuts)
    # a feed that meets a bad header raises, losing the good frames before it in the same
    # feed (the peer is treated as crashed anyway): the whole feed's frames are a prefix
    if whole[1] != split[1] or split[0][: len(whole[0])] != whole[0]:
        raise FuzzFailure("cutting the frames changed what was decoded")
    if not whole[1] and whole != split:
        raise FuzzFailure("cutting good frames changed them")
    for kind, _flags, _session, _request, payload in split[0]:
        decode = _DECODERS.get(kind)
        if decode is not None:
            try:
                decode(payload)
            except IPCError:
                pass


# -- the reactor, without sockets --------------------------------------------------------------


class FakeTransport:
    """What the reactor's protocols use of a transport: writes are kept, nothing is sent."""

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # for setsockopt, never connected

    def __init__(self, peer: tuple[str, int] | None = None) -> None:
        self.out: list[bytes] = []
        self.closed = False
        self.reading = True
        self.peer = peer

    def write(self, data: Any) -> None:
        self.out.append(bytes(data))

    def writelines(self, data: list[Any]) -> None:
        self.out.extend(bytes(d) for d in data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        return None

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False

    def take(self) -> bytes:
        """What was written since the last take()."""
        out = b"".join(self.out)
        self.out.clear()
        return out

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self.peer
        if name == "sockname":
            return ("127.0.0.1", 8000) if self.peer else None
        if name == "socket":
            return self.sock
        return default


_LOOP: asyncio.AbstractEventLoop | None = None
_CONFIG = Config(app="x:app", workers=1)


def _frame(kind: int, flags: int, session: int, request: int, payload: bytes) -> bytes:
    header = framing.HEADER.pack(framing.MAGIC, framing.VERSION, kind, flags, len(payload),
                                 session, request)  # fmt: skip
    return header + payload


async def _drive(http_bytes: bytes, frame_bytes: bytes) -> None:
    reactor = Reactor(_CONFIG, on_event=lambda message: None)
    link = WorkerLink(reactor)
    link_transport = FakeTransport()
    link.connection_made(link_transport)  # type: ignore[arg-type]
    link.data_received(_frame(framing.HELLO, 0, 0, 0, codec.encode_hello(1, 4242, 0)))
    link.data_received(_frame(framing.READY, 0, 0, 0, codec.encode_ready(1, 4242, 1, "wsgi")))
    conn = HttpConnection(reactor, "http")
    conn.connection_made(FakeTransport(("127.0.0.1", 5555)))  # type: ignore[arg-type]
    conn.data_received(http_bytes)
    await asyncio.sleep(0)  # the batch writer's flush
    # the worker's side: frames whose session and request ids the input picks among the
    # live ones and any others, so that replies reach the connection as well as miss it
    pos = 0
    while pos + 8 <= len(frame_bytes):
        kind, flags, pick, request, size = struct.unpack_from("<BBBBI", frame_bytes, pos)
        pos += 8
        size %= 4096
        payload = frame_bytes[pos : pos + size]
        pos += size
        session = conn.session if pick % 4 else pick
        request = conn.seq if request % 4 else request
        if kind % 8 == 0:  # a well-formed response start, to go deeper
            payload = codec.encode_response_start(200 + request % 400, payload[:64], payload[64:])
            kind = framing.RESPONSE_START
        link.data_received(_frame(kind % 17, flags, session, request, payload))
        await asyncio.sleep(0)
    link.connection_lost(None)
    conn.connection_lost(None)


def reactor_target(data: bytes) -> None:
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    split = data[0] if data else 0
    rest = data[1:]
    cut = len(rest) * split // 256
    _LOOP.run_until_complete(_drive(rest[:cut], rest[cut:]))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "httptools": _parser_target(HttptoolsParser),
    "h11": _parser_target(H11Parser),
    "frames": frames_target,
    "reactor": reactor_target,
}


def replay(target: str) -> list[Path]:
    """Run every corpus file of ``target``; → the files (they must all pass)."""
    files = sorted((CORPUS / target).glob("*")) if (CORPUS / target).is_dir() else []
    for path in files:
        TARGETS[target](path.read_bytes())
    return files
