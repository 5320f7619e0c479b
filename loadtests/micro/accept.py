"""Micro-benchmark: the reactor's CPU per accepted plain-HTTP connection.

    PYTHONPATH=CHECKOUT python loadtests/micro/accept.py [N]

A child process runs the real accept path on uvloop (``Acceptor`` →
``connect_accepted_socket`` → ``HttpConnection`` with a ``Reactor`` that has
no workers); the parent opens N connections to it on 127.0.0.1, 32 at a time,
each closed at once.  The child reports its own CPU time (user + system) per
connection, so the client's work is not counted and a busy machine skews the
figure less than a wrk run would.  Run it against two checkouts, alternating,
to compare (the TLS hand-over must leave this figure alone).
"""

from __future__ import annotations

import os
import resource
import socket
import sys

BATCH = 32


def serve(listener: socket.socket, n: int, report: int) -> None:
    from swserve.config import Config
    from swserve.process.loop import new_event_loop
    from swserve.reactor.acceptor import Acceptor
    from swserve.reactor.core import Reactor
    from swserve.reactor.http_conn import HttpConnection

    loop = new_event_loop()
    reactor = Reactor(Config(), on_event=lambda message: None)
    closed = 0
    done = loop.create_future()

    def on_closed() -> None:
        nonlocal closed
        closed += 1
        acceptor.connection_closed()
        if closed == n and not done.done():
            done.set_result(None)

    async def main() -> None:
        reactor.start(loop)
        acceptor.start()
        await done
        reactor.stop()

    acceptor = Acceptor(
        loop, [listener], lambda: HttpConnection(reactor), lambda: len(reactor.sessions), 10000
    )
    reactor.on_connection_closed = on_closed
    start = resource.getrusage(resource.RUSAGE_SELF)
    loop.run_until_complete(main())
    end = resource.getrusage(resource.RUSAGE_SELF)
    used = end.ru_utime - start.ru_utime + end.ru_stime - start.ru_stime
    os.write(report, f"{used / n * 1e6:.1f}".encode())


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            serve(listener, n, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    listener.close()
    for first in range(0, n, BATCH):
        socks = [
            socket.create_connection(("127.0.0.1", port)) for _ in range(min(BATCH, n - first))
        ]
        for sock in socks:
            sock.close()
    os.waitpid(pid, 0)
    print(
        f"{os.read(read_end, 100).decode()} CPU µs per connection in the reactor ({n} connections)"
    )


if __name__ == "__main__":
    main()
