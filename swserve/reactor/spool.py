"""Request bodies over --body-spool-size go to a temporary file in the reactor.

The parser appends body bytes with ``+=`` and checks ``len()``; a
:class:`SpooledBody` takes the place of the request's ``bytearray`` once the
body passes the threshold, so the rest of the body goes straight to disk and
the reactor holds at most ``--body-spool-size`` of it in memory.  The worker
gets the file's path (the REQUEST frame's SPOOLED flag), opens it as
``wsgi.input`` (or reads it for ASGI ``receive()``) and unlinks it; the
reactor unlinks it too, in case the worker never got that far.

Writes are plain blocking writes to the page cache, as nginx's
client_body_temp_path does from its event loop.

A spool that cannot be written (disk full, read-only, no permission, no file
descriptor left) fails only the upload that needed it: :func:`failure_status`
names its answer, 507 for a full disk and 503 otherwise, and the connection
logs it once per episode (:class:`Spool`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import tempfile
from typing import Self

from swserve.errors import ProtocolError
from swserve.protocol.request import Request

# --chroot DIR in process mode: the reactor spools into DIR/tmp and gives the
# worker, whose root DIR is, the path below DIR (set in the master, before forks)
ROOT = ""
# errnos that say "no room": 507 Insufficient Storage (RFC 4918 §11.5)
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


log = logging.getLogger("swserve.error")


class Episode:
    """Log a failing spool once, not once per upload, until a body is spooled again."""

    __slots__ = ("failing", "failures")

    def __init__(self) -> None:
        self.failing = False
        self.failures = 0  # uploads refused in this episode

    def failed(self, exc: OSError, status: int) -> None:
        self.failures += 1
        if not self.failing:
            self.failing = True
            log.error(
                "cannot spool a request body to %s: %s; uploads over --body-spool-size "
                "get %d until a body can be spooled again",
                tempfile.gettempdir(),
                exc.strerror or exc,
                status,
            )

    def ok(self) -> None:
        if self.failing:
            log.warning("request bodies are spooled again (%d upload(s) refused)", self.failures)
            self.failing = False
            self.failures = 0


EPISODE = Episode()


def failure_status(exc: OSError) -> int:
    """The status for an upload whose spool file failed: 507 when the disk is full, else 503."""
    return 507 if exc.errno in _FULL else 503


class SpooledBody:
    __slots__ = ("_file", "path", "size")

    def __init__(self, initial: bytes | bytearray) -> None:
        where = os.path.join(ROOT, "tmp") if ROOT else None
        fd, self.path = tempfile.mkstemp(prefix="swserve-body-", dir=where)
        self._file = os.fdopen(fd, "wb", buffering=1 << 16)
        self._file.write(initial)
        self.size = len(initial)

    def __iadd__(self, data: bytes | bytearray) -> Self:
        self._file.write(data)
        self.size += len(data)
        return self

    def __len__(self) -> int:
        return self.size

    def finish(self) -> str:
        """Flush and close the file (once); return its path for the worker.

        The connection finishes a complete body before it dispatches it, so a
        full disk shows up there (``OSError``), not on the way to the worker.
        """
        self._file.close()
        return self.path[len(ROOT) :] if ROOT else self.path

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class Spool:
    """The HTTP/1.1 connection core's body store (``protocol/h1_connection.py``): bodies
    over ``size`` bytes go to a :class:`SpooledBody`; a file that cannot be written
    fails its own request (and those after it on its connection)."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def settle(self, requests: list[Request], head: Request | None) -> ProtocolError | None:
        for i, req in enumerate(requests):
            body: object = req.body
            if isinstance(body, SpooledBody):
                try:
                    body.finish()
                except OSError as exc:
                    for later in requests[i:]:
                        spooled: object = later.body
                        if isinstance(spooled, SpooledBody):
                            spooled.discard()
                    del requests[i:]
                    return self.failed(exc, head)
                EPISODE.ok()
        if head is not None and type(head.body) is bytearray and len(head.body) > self.size:
            try:
                head.body = SpooledBody(
                    head.body
                )  # stands in (Request.body is Any: a compiled class checks)
            except OSError as exc:
                return self.failed(exc, head)
        return None

    def failed(self, exc: OSError, head: Request | None) -> ProtocolError:
        body: object = head.body if head is not None else None
        if isinstance(body, SpooledBody):
            body.discard()  # free the space now
        status = failure_status(exc)
        EPISODE.failed(exc, status)
        return ProtocolError(status, f"the request body could not be spooled: {exc}")
