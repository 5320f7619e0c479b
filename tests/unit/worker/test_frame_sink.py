"""Both runners frame a response with the one FrameSink (worker/frame_sink.py):
the frames decode back to the response, whichever channel and flow it writes to."""

from __future__ import annotations

import pytest

from swserve.errors import ClientDisconnected
from swserve.ipc import codec, framing
from swserve.ipc.framing import Buffer, FrameDecoder
from swserve.worker import runner_asgi, runner_wsgi
from swserve.worker.frame_sink import AsyncFrameSink, FrameSink

pytestmark = pytest.mark.timeout(30)


class Channel:
    """A blocking channel's writing half (``send``/``sendv``), recording the bytes."""

    def __init__(self) -> None:
        self.out = bytearray()

    def send(self, data: bytes) -> None:
        self.out += data

    def sendv(self, buffers: list[Buffer]) -> None:
        for buffer in buffers:
            self.out += buffer


class Flow:
    def __init__(self, gone: bool = False) -> None:
        self.waits: list[tuple[int, int]] = []
        self.gone = gone

    def wait_writable(self, key: tuple[int, int]) -> None:
        self.waits.append(key)
        if self.gone:
            raise ClientDisconnected


def frames(channel: Channel) -> list[framing.Frame]:
    return FrameDecoder().feed(bytes(channel.out))


def response(channel: Channel) -> tuple[int, bytes, bytes, bool]:
    """(status, headers, body, ended) from the frames on ``channel``."""
    (kind, flags, session, request, payload), *rest = frames(channel)
    assert (kind, session, request) == (framing.RESPONSE_START, 7, 3)
    status, headers, body = codec.decode_response_start(payload)
    data = bytearray(body)
    ended = bool(flags & framing.END)
    for kind, flags, session, request, payload in rest:
        assert (kind, session, request) == (framing.RESPONSE_BODY, 7, 3)
        assert not ended
        data += payload
        ended = bool(flags & framing.END)
    return status, headers, bytes(data), ended


def test_both_runners_use_the_one_sink() -> None:
    assert vars(runner_wsgi)["FrameSink"] is FrameSink
    assert vars(runner_asgi)["AsyncFrameSink"] is AsyncFrameSink
    assert issubclass(AsyncFrameSink, FrameSink)


@pytest.mark.parametrize(
    "body", [b"", b"hello", b"x" * framing.BIG, b"y" * (framing.MAX_PAYLOAD + 10)]
)
@pytest.mark.parametrize("end", [True, False])
@pytest.mark.parametrize("flow", [None, Flow()])
def test_a_response_decodes_back(body: bytes, end: bool, flow: Flow | None) -> None:
    channel = Channel()
    sink = FrameSink(channel, 7, 3, flow)
    sink.send_start(200, 0, b"x-a: 1\r\n", body, end)
    if not end:
        sink.send_body(b"tail", True)
    assert response(channel) == (200, b"x-a: 1\r\n", body + (b"" if end else b"tail"), True)


def test_a_huge_head_goes_before_its_body() -> None:
    channel = Channel()
    headers = b"x-a: " + b"h" * (framing.MAX_PAYLOAD - 20) + b"\r\n"
    FrameSink(channel, 7, 3).send_start(200, 0, headers, b"body", True)
    assert [f[0] for f in frames(channel)] == [framing.RESPONSE_START, framing.RESPONSE_BODY]
    assert response(channel) == (200, headers, b"body", True)


def test_the_flow_is_asked_before_each_body_part_and_may_stop_it() -> None:
    flow = Flow()
    channel = Channel()
    sink = FrameSink(channel, 7, 3, flow)
    sink.send_start(200, 0, b"", b"small", False)  # a small first part goes with the head
    sink.send_body(b"more", False)
    sink.send_body(b"", True)  # ending costs no wait
    assert flow.waits == [(7, 3)]
    gone = FrameSink(Channel(), 7, 3, Flow(gone=True))
    with pytest.raises(ClientDisconnected):
        gone.send_body(b"late", True)


def test_abort_ends_with_more() -> None:
    channel = Channel()
    FrameSink(channel, 7, 3).send_abort()
    [(kind, flags, *_)] = frames(channel)
    assert kind == framing.RESPONSE_BODY
    assert flags & framing.END
    assert flags & framing.MORE
