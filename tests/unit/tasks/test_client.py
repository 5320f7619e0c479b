"""The task API's links against a fake broker on a real unix socket: threads, loops, forks."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from swserve.ipc import framing
from swserve.process import shared as _process
from swserve.tasks import client, codec
from swserve.tasks.errors import TaskTimeout, TaskWorkerLost


def double(x: int) -> int:
    return 2 * x


class FakeBroker:
    """Answers each TASK_SUBMIT with 2 * its first argument, once ``batch`` have arrived on a
    link, in reverse order: answers come back in another order than the calls were made."""

    def __init__(self, path: Path, batch: int) -> None:
        self.batch = batch
        self.hellos: list[tuple[int, int, int]] = []
        self.cancels: list[int] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        decoder = framing.FrameDecoder()
        held: list[tuple[int, int]] = []
        while data := conn.recv(65536):
            for kind, _, task_id, _, payload in decoder.feed(data):
                if kind == framing.TASK_HELLO:
                    self.hellos.append(codec.decode_hello(payload))
                elif kind == framing.TASK_CANCEL:
                    self.cancels.append(task_id)
                elif kind == framing.TASK_SUBMIT:
                    _, args, _ = codec.decode_task(payload)
                    if args[0] < 0:
                        conn.close()  # a broker that dies mid-task
                        return
                    held.append((task_id, args[0]))
            if len(held) >= self.batch:
                for task_id, x in reversed(held):
                    outcome, result = codec.encode_value(double(x))
                    conn.sendall(framing.encode(framing.TASK_RESULT, outcome, task_id, 0, result))
                held.clear()

    def close(self) -> None:
        self.listener.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBroker]:
    path = tmp_path / "tasks.sock"
    fake = FakeBroker(path, batch=16)
    monkeypatch.setattr(_process, "TASK_SOCKET", str(path))
    client._forget_links_in_child()  # no link left over from another test
    yield fake
    fake.close()
    client._forget_links_in_child()


def test_threads_sharing_one_link_each_get_their_own_answer(broker: FakeBroker) -> None:
    results: dict[int, int] = {}

    def worker(i: int) -> None:
        results[i] = client.task_sync(double, i, timeout=10)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == {i: 2 * i for i in range(16)}
    assert len(broker.hellos) == 1  # one link for every thread of the process
    assert broker.hellos[0] == (codec.CALLER, 0, os.getpid())


def test_coroutines_on_one_loop_share_a_link(broker: FakeBroker) -> None:
    async def main() -> list[int]:
        results = await asyncio.gather(*(client.task(double, i) for i in range(16)))
        (await client._async_link()).transport.close()
        return list(results)

    assert asyncio.run(main()) == [2 * i for i in range(16)]
    assert len(broker.hellos) == 1


def test_a_timeout_cancels_the_task(broker: FakeBroker) -> None:
    with pytest.raises(TaskTimeout, match=r"did not answer within 0\.2s"):
        client.task_sync(double, 1, timeout=0.2)  # the fake holds it: 1 of a batch of 16
    deadline = threading.Event()
    for _ in range(100):
        if broker.cancels:
            break
        deadline.wait(0.02)
    assert broker.cancels == [1]


def test_a_broker_that_goes_away_is_task_worker_lost(broker: FakeBroker) -> None:
    with pytest.raises(TaskWorkerLost, match="went away"):
        client.task_sync(double, -1, timeout=10)


def test_a_forked_child_opens_its_own_link(broker: FakeBroker) -> None:
    broker.batch = 1
    assert client.task_sync(double, 1, timeout=10) == 2
    pid = os.fork()
    if pid == 0:  # the child: a link of its own, or a wrong answer
        code = 1
        try:
            code = 0 if client.task_sync(double, 21, timeout=10) == 42 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [h[2] for h in broker.hellos] == [os.getpid(), pid]
