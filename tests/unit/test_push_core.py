"""Server push's sans-IO pieces: the groups table, payloads, session ids, the Redis message."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from swserve.errors import IPCError
from swserve.ipc import codec, framing, push
from swserve.reactor import push_redis
from swserve.reactor.push_hub import Groups, base_session


def test_groups_join_leave_drop() -> None:
    g = Groups()
    g.join(1, "a")
    g.join(2, "a")
    g.join(1, "b")
    assert g.get("a") == {1, 2}
    assert g.get("b") == {1}
    assert g.leave(2, "a") is True
    assert g.leave(2, "a") is False
    g.drop(1)
    assert g.members == {}
    assert g.of == {}


@given(st.lists(st.tuples(st.sampled_from("jld"), st.integers(1, 5), st.sampled_from("xyz"))))
def test_groups_stay_consistent(ops: list[tuple[str, int, str]]) -> None:
    g = Groups()
    model: dict[int, set[str]] = {}
    for op, session, group in ops:
        if op == "j":
            g.join(session, group)
            model.setdefault(session, set()).add(group)
        elif op == "l":
            assert g.leave(session, group) == (group in model.get(session, set()))
            model.get(session, set()).discard(group)
        else:
            g.drop(session)
            model.pop(session, None)
    assert g.of == {s: gs for s, gs in model.items() if gs}
    for group, members in g.members.items():
        assert members
        assert all(group in g.of[s] for s in members)


@given(st.text(min_size=1, max_size=50), st.integers(0, 2**64 - 1), st.binary(max_size=100))
def test_broadcast_payload_round_trip(group: str, exclude: int, data: bytes) -> None:
    assert codec.decode_broadcast(codec.encode_broadcast(group, exclude, data)) == (
        group,
        exclude,
        data,
    )


def test_bad_broadcast_payloads() -> None:
    with pytest.raises(IPCError):
        codec.decode_broadcast(b"\x00" * 5)
    with pytest.raises(IPCError):
        codec.decode_broadcast(b"\x00" * 8 + b"\xff\x00abc")
    with pytest.raises(IPCError):
        codec.decode_group(b"\xff")


def test_push_frames_decode() -> None:
    frame = framing.encode(framing.PUSH, framing.WS_TEXT, 7, 3, b"hi")
    assert framing.FrameDecoder().feed(frame) == [(framing.PUSH, framing.WS_TEXT, 7, 3, b"hi")]
    assert codec.decode_count(codec.encode_count(12345)) == 12345
    assert codec.decode_count(b"") == 0


def test_session_ids() -> None:
    assert push.parse_session("42") == (42, False)
    assert push.parse_session(str(1 << 48 | 5)) == (1 << 48 | 5, False)
    assert push.parse_session("3.1234.9") == (1234 << 40 | 9, True)
    for bad in ("", "x", "1.2", "1.2.x", "1.2.0", "a.b.c"):
        assert push.parse_session(bad)[0] == 0
    with pytest.raises(TypeError):
        push.parse_session(42)  # type: ignore[arg-type]
    local = base_session(1234)
    assert local(1234 << 40 | 9) == 9
    assert local(999 << 40 | 9) == 0


def test_outside_swserve_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import swserve

    push.reset()
    monkeypatch.delenv(push.ENV, raising=False)
    for call in (
        lambda: swserve.push("1", "x"),
        lambda: swserve.broadcast("g", b"x"),
        lambda: swserve.join("1", "g"),
        lambda: swserve.is_open("1"),
    ):
        with pytest.raises(RuntimeError, match="only inside a swserve worker"):
            call()


def test_bad_arguments() -> None:
    import swserve

    with pytest.raises(TypeError):
        swserve.push("1", 42)
    with pytest.raises(ValueError):
        swserve.close("1", code=999)


@given(st.binary(max_size=20), st.text(max_size=20), st.booleans(), st.binary(max_size=50))
def test_redis_message_round_trip(instance: bytes, group: str, text: bool, data: bytes) -> None:
    message = push_redis.encode(instance, group, text, data)
    assert push_redis.decode(message) == (instance, group, text, data)


@given(st.booleans(), st.binary(max_size=70_000))
def test_server_frame_is_what_the_protocol_writes(text: bool, data: bytes) -> None:
    """A broadcast frames a message once; it must match the websockets protocol's own bytes."""
    from websockets.protocol import OPEN, Protocol, Side

    from swserve.protocol.ws_frames import server_frame

    proto = Protocol(Side.SERVER, state=OPEN)
    if text:
        proto.send_text(data)
    else:
        proto.send_binary(data)
    assert b"".join(proto.data_to_send()) == server_frame(text, data)


class FakeLink:
    def __init__(self, key: int, pid: int) -> None:
        self.key = key
        self.pid = pid
        self.slot = object()
        self.frames: list[bytes] = []
        self.writer = self

    def write(self, frame: bytes) -> None:
        self.frames.append(frame)


class FakeReactor:
    def __init__(self, *links: FakeLink) -> None:
        self.links = {link.key: link for link in links}


def test_base_mode_router_routes_gathers_and_answers_for_the_dead() -> None:
    from swserve.reactor.push_route import PushRouter

    one, two = FakeLink(1, 100), FakeLink(2, 200)
    router = PushRouter(FakeReactor(one, two))  # type: ignore[arg-type]
    replies: list[tuple[int, int, int]] = []

    def reply(request: int, outcome: int, count: int) -> None:
        replies.append((request, outcome, count))

    # a push goes to the worker its pid names, renumbered; its answer goes back renumbered
    router.handle(framing.PUSH, 0, 200 << 40 | 7, 55, b"hi", reply)
    assert one.frames == []
    ((kind, _, session, mine, payload),) = framing.FrameDecoder().feed(two.frames[0])
    assert (kind, session, payload) == (framing.PUSH, 200 << 40 | 7, b"hi")
    router.answer(two, mine, framing.PUSH_DONE, 0)  # type: ignore[arg-type]
    assert replies == [(55, framing.PUSH_DONE, 0)]
    # no such worker: gone at once
    router.handle(framing.PUSH, 0, 999 << 40 | 1, 56, b"x", reply)
    assert replies[-1] == (56, framing.PUSH_GONE, 0)
    # a broadcast goes to both; the counts add up; a worker that dies owes nothing more
    payload = codec.encode_broadcast("g", 0, b"m")
    router.handle(framing.PUSH_BROADCAST, 0, 0, 57, payload, reply)
    mine = framing.FrameDecoder().feed(one.frames[-1])[0][3]
    router.answer(one, mine, framing.PUSH_DONE, 3)  # type: ignore[arg-type]
    assert len(replies) == 2
    router.link_lost(two.key)
    assert replies[-1] == (57, framing.PUSH_DONE, 3)
    assert router.pending == {}


def test_broadcast_url_must_be_redis() -> None:
    from swserve.config import problems

    assert problems({"broadcast_url": "redis://127.0.0.1:6379/0"}) == []
    assert problems({"broadcast_url": "http://x"}) == [
        "--broadcast-url must be a redis://, rediss:// or unix:// URL (got 'http://x')"
    ]
