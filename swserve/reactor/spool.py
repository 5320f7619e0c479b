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
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Self

# --chroot DIR in process mode: the reactor spools into DIR/tmp and gives the
# worker, whose root DIR is, the path below DIR (set in the master, before forks)
ROOT = ""


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
        """Flush and close the file; return its path for the worker."""
        self._file.close()
        return self.path[len(ROOT) :] if ROOT else self.path

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
