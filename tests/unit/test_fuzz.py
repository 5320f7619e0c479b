"""Fuzzing that reaches the reactor: the corpus of past crashes, a bounded atheris budget,
and hypothesis-generated IPC frame sequences.

The long run is ``python3 -m loadtests.fuzz`` (loadtests/README.md).  Each atheris
target runs here for a fixed number of iterations (under 20 s in all on the
development machine), in its own process since libFuzzer exits when done.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from loadtests import fuzz_targets as fuzz
from swserve.errors import IPCError
from swserve.ipc import codec, framing

REPO = Path(__file__).resolve().parents[2]

# iterations per target: the budget, about 15 s in all (2 cores, shared)
BUDGET = {"frames": 5_000, "httptools": 5_000, "h11": 3_000, "reactor": 1_000}


@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
def test_the_corpus_of_past_crashes_passes(target: str) -> None:
    fuzz.replay(target)


def test_the_reactor_corpus_holds_the_malformed_hello() -> None:
    """The first crash found: a worker's short HELLO raised out of data_received."""
    assert fuzz.replay("reactor")


@pytest.mark.timeout(40)
@pytest.mark.parametrize("target", sorted(BUDGET))
def test_a_bounded_atheris_run_finds_nothing(target: str, tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed for this Python (no wheel: pip install atheris)")
    work = tmp_path / "corpus"
    work.mkdir()
    seeds = fuzz.CORPUS / target
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.fuzz", "--target", target, "--",
         f"-runs={BUDGET[target]}", "-seed=1", str(work), *([str(seeds)] if seeds.is_dir() else [])],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=35,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"Done {BUDGET[target]} runs" in done.stderr


# -- generated frame sequences --------------------------------------------------------------

KINDS = st.sampled_from(sorted(framing.FRAME_NAMES))
FLAGS = st.sampled_from([0, framing.MORE, framing.END, framing.MORE | framing.END, 0x0F, 0xFF])
IDS = st.one_of(st.sampled_from([0, 1, 2, 2**32 - 1, 2**48, 2**64 - 1]), st.integers(0, 2**64 - 1))
REQ_IDS = st.one_of(st.sampled_from([0, 1, 2, 2**32 - 1]), st.integers(0, 2**32 - 1))
PAYLOADS = st.one_of(st.binary(max_size=64), st.integers(0, 70_000).map(lambda n: b"p" * n))


@st.composite
def frames(draw: st.DrawFn) -> tuple[int, int, int, int, bytes]:
    return draw(KINDS), draw(FLAGS), draw(IDS), draw(REQ_IDS), draw(PAYLOADS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), max_size=12), st.lists(st.integers(1, 70_000), max_size=8))
def test_generated_frames_decode_the_same_however_they_are_cut(
    seq: list[tuple[int, int, int, int, bytes]], cuts: list[int]
) -> None:
    wire = b"".join(framing.encode(k, f, s, r, p) for k, f, s, r, p in seq)
    bounds = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    decoder = framing.FrameDecoder()
    got = []
    for a, b in itertools.pairwise(bounds):
        got += [(k, f, s, r, bytes(p)) for k, f, s, r, p in decoder.feed(wire[a:b])]
    assert got == seq


@given(st.sampled_from([framing.MAX_PAYLOAD + 1, 2**32 - 1]), KINDS)
def test_a_length_past_the_limit_is_refused_before_any_allocation(length: int, kind: int) -> None:
    header = framing.HEADER.pack(framing.MAGIC, framing.VERSION, kind, 0, length, 1, 1)
    with pytest.raises(IPCError):
        framing.FrameDecoder().feed(header)


def test_a_length_at_the_limit_waits_for_its_payload() -> None:
    header = framing.HEADER.pack(framing.MAGIC, framing.VERSION, framing.RESPONSE_BODY, 0,
                                 framing.MAX_PAYLOAD, 1, 1)  # fmt: skip
    assert framing.FrameDecoder().feed(header) == []


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.lists(frames(), max_size=10))
def test_generated_worker_frames_never_escape_the_reactor(
    http: bytes, seq: list[tuple[int, int, int, int, bytes]]
) -> None:
    """Whatever a worker sends, WorkerLink.data_received returns (or aborts the link)."""
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + http
    wire = b"".join(
        framing.encode(k, f, s, r, p) for k, f, s, r, p in seq if len(p) <= framing.MAX_PAYLOAD
    )
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_drive_raw(request, wire))
    finally:
        loop.close()


async def _drive_raw(http: bytes, wire: bytes) -> None:
    from swserve.reactor.core import Reactor
    from swserve.reactor.http_conn import HttpConnection
    from swserve.reactor.worker_link import WorkerLink

    reactor = Reactor(fuzz._CONFIG, on_event=lambda message: None)
    link = WorkerLink(reactor)
    link.connection_made(fuzz.FakeTransport())  # type: ignore[arg-type]
    link.data_received(framing.encode(framing.HELLO, 0, 0, 0, codec.encode_hello(1, 7, 0)))
    link.data_received(framing.encode(framing.READY, 0, 0, 0, codec.encode_ready(1, 7, 1, "wsgi")))
    conn = HttpConnection(reactor, "http")
    conn.connection_made(fuzz.FakeTransport(("127.0.0.1", 1)))  # type: ignore[arg-type]
    conn.data_received(http)
    await asyncio.sleep(0)
    # the live session's replies, then the generated frames, in pieces
    live = codec.encode_response_start(200, b"x-a: b\r\n", b"hi")
    link.data_received(framing.encode(framing.RESPONSE_START, 0, conn.session, conn.seq, live))
    for i in range(0, len(wire), 977):
        link.data_received(wire[i : i + 977])
        await asyncio.sleep(0)
    link.connection_lost(None)
    conn.connection_lost(None)
