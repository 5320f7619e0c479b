"""A worker's links to several reactors: replies go to the session's reactor, STOPs coalesce."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from swserve.ipc import channel_set, framing
from swserve.ipc.channel_set import SESSION_SHIFT, SyncChannelSet, session_of
from swserve.ipc.framing import FrameDecoder

Links = tuple[SyncChannelSet, list[socket.socket]]


@pytest.fixture
def links() -> Iterator[Links]:
    pairs = [socket.socketpair() for _ in range(3)]
    worker_side = [a for a, _ in pairs]
    reactor_side = [b for _, b in pairs]
    for sock in reactor_side:
        sock.settimeout(5)
    yield SyncChannelSet(worker_side), reactor_side
    for a, b in pairs:
        a.close()
        b.close()


def frames_on(sock: socket.socket) -> list[framing.Frame]:
    return FrameDecoder().feed(sock.recv(65536))


def _recv(channels: SyncChannelSet) -> framing.Frame:
    frame = channels.recv()
    assert frame is not None, "the channel set ended"
    return frame


def test_session_ids_name_their_reactor() -> None:
    frame = framing.encode(framing.RESPONSE_BODY, 0, (2 << SESSION_SHIFT) + 7, 1, b"x")
    assert session_of(frame) >> SESSION_SHIFT == 2


def test_a_reply_goes_to_the_reactor_of_its_session(links: Links) -> None:
    channels, reactors = links
    session = (1 << SESSION_SHIFT) + 5
    channels.send(framing.encode(framing.RESPONSE_BODY, framing.END, session, 3, b"hi"))
    ((kind, _, got_session, request, payload),) = frames_on(reactors[1])
    assert (kind, got_session, request, payload) == (framing.RESPONSE_BODY, session, 3, b"hi")
    for other in (reactors[0], reactors[2]):
        other.setblocking(False)
        with pytest.raises(BlockingIOError):
            other.recv(1)


def test_frames_without_a_session_go_to_every_reactor(links: Links) -> None:
    channels, reactors = links
    channels.send(framing.encode(framing.HEARTBEAT, 0, 0, 0))
    for sock in reactors:
        assert [f[0] for f in frames_on(sock)] == [framing.HEARTBEAT]


def test_requests_from_any_reactor_and_one_stop_after_the_last(links: Links) -> None:
    channels, reactors = links
    reactors[2].sendall(framing.encode(framing.REQUEST, 0, (2 << SESSION_SHIFT) + 1, 1, b""))
    assert _recv(channels)[0] == framing.REQUEST
    reactors[0].sendall(framing.encode(framing.STOP, 0, 0, 0))
    reactors[1].sendall(framing.encode(framing.STOP, 0, 0, 0))
    reactors[1].sendall(framing.encode(framing.REQUEST, 0, (1 << SESSION_SHIFT) + 1, 1, b""))
    assert _recv(channels)[0] == framing.REQUEST  # retired by two, still served for the third
    reactors[2].sendall(framing.encode(framing.STOP, 0, 0, 0))
    assert _recv(channels)[0] == framing.STOP


def test_a_reactor_that_goes_away_ends_the_set(links: Links) -> None:
    channels, reactors = links
    reactors[1].close()
    assert channels.recv() is None


@pytest.fixture
def relinking(tmp_path: Path) -> Iterator[tuple[SyncChannelSet, list[socket.socket]]]:
    """Two reactors listening on unix sockets, a worker linked to both, RELINK set."""
    paths = [str(tmp_path / f"reactor-{i}.sock") for i in range(2)]
    listeners = []
    for path in paths:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(8)
        listener.settimeout(5)
        listeners.append(listener)
    hello = framing.encode(framing.HELLO, 0, 0, 0, b"hello")
    channel_set.RELINK = channel_set.Relink(paths, hello)
    worker = []
    for path in paths:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        worker.append(sock)
    reactors = [listener.accept()[0] for listener in listeners]
    for sock in reactors:
        sock.settimeout(5)
    channels = SyncChannelSet(worker)
    channels.send(framing.encode(framing.READY, 0, 0, 0, b"ready"))
    for sock in reactors:
        assert [f[0] for f in frames_on(sock)] == [framing.READY]
    yield channels, [*listeners, *reactors]
    channel_set.RELINK = None
    for sock in [*listeners, *reactors, *worker, *(c.sock for c in channels.channels)]:
        sock.close()


def test_a_dead_reactor_is_linked_to_again_with_hello_and_ready(
    relinking: tuple[SyncChannelSet, list[socket.socket]],
) -> None:
    channels, (_, listener_1, reactor_0, reactor_1) = relinking
    reactor_1.close()  # reactor 1 dies; its replacement listens on the same socket
    reactor_0.sendall(framing.encode(framing.REQUEST, 0, 5, 1, b"x"))
    assert _recv(channels)[:4] == (framing.REQUEST, 0, 5, 1)  # the set went on
    replacement, _ = listener_1.accept()
    replacement.settimeout(5)
    greeting = frames_on(replacement)
    assert [(f[0], bytes(f[4])) for f in greeting] == [
        (framing.HELLO, b"hello"),
        (framing.READY, b"ready"),
    ]
    session = (1 << SESSION_SHIFT) + 9
    replacement.sendall(framing.encode(framing.REQUEST, 0, session, 1, b"y"))
    assert _recv(channels)[:4] == (framing.REQUEST, 0, session, 1)
    channels.send(framing.encode(framing.RESPONSE_START, framing.END, session, 1, b""))
    assert frames_on(replacement)[0][2] == session  # the reply goes on the new link
    replacement.close()


def test_a_reply_for_a_dead_reactor_is_dropped_and_reactor_0_ending_ends_the_set(
    relinking: tuple[SyncChannelSet, list[socket.socket]],
) -> None:
    channels, (_, _, reactor_0, reactor_1) = relinking
    reactor_1.close()
    session = (1 << SESSION_SHIFT) + 3
    for _ in range(3):  # EPIPE on the dead link: dropped, not raised
        channels.sendv([framing.encode(framing.RESPONSE_BODY, 0, session, 1, b"z" * 70000)])
    reactor_0.close()  # the master is gone
    assert channels.recv() is None
