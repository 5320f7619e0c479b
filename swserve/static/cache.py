"""Open static files, kept for a second: nginx's ``open_file_cache``, in small.

A hit costs no system call: the descriptor, what ``open_file`` found out
about the file, the answer to an unconditional GET, and (for files up to
``SMALL`` bytes) the body itself are kept.  An entry older than ``VALID``
seconds is checked again by opening the path anew with every rule applied
(``files.open_file``): if it names the same file, unchanged, with the same
siblings, the entry lives on; otherwise it is replaced.  So a deploy is
seen within about two seconds (the reactor's clock ticks once a second).

The cache owns its descriptors.  A response streamed from one gets its own
``dup``: an entry closed meanwhile cannot pull the file from under it.
Keys are the raw path and the raw ``Accept-Encoding`` value: only a target
that passed ``resolve.locate`` before, and so would again, is ever a key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from swserve.static.files import OpenFile
from swserve.static.resolve import Decision

VALID: Final = 1.0  # seconds an entry is trusted without a look at the disk
LIMIT: Final = 1024  # entries (and so descriptors) at most; when full, start again
# Bodies up to SMALL bytes are kept in memory, up to BUDGET bytes in all per loop, and
# written with the head in one call (dup, a write of the head, sendfile, close and the
# sender's set-up become one writev).  The 64 KiB point of loadtests/static_files.py cost
# ~40 µs of CPU per request when SMALL was 16 KiB (granian: ~50, nginx: ~17).
SMALL: Final = 64 * 1024
BUDGET: Final = 16 * 1024 * 1024


class Entry:
    __slots__ = ("body", "checked", "file", "plain")

    def __init__(self, file: OpenFile, now: float, keep: bool) -> None:
        self.file = file
        self.checked = now
        self.plain: Decision | None = None  # the answer to a GET without conditions
        size = file.info.size
        self.body: bytes | None = os.pread(file.fd, size, 0) if keep else None
        if self.body is not None and len(self.body) != size:
            self.body = None  # changing under us: stream it instead


class FileCache:
    def __init__(self) -> None:
        self.entries: dict[tuple[bytes, bytes], Entry] = {}
        self.kept = 0  # bytes of bodies kept (at most BUDGET)

    def get(
        self,
        key: tuple[bytes, bytes],
        now: float,
        reopen: Callable[[bytes, bytes], OpenFile],
        target: bytes,
    ) -> Entry | None:
        """The entry for ``key``, checked again if it is old; None if there is none (or the
        file is gone: ``reopen(target, accept)`` raises, and the caller's slow path will say
        why)."""
        entry = self.entries.get(key)
        if entry is None or now - entry.checked < VALID:
            return entry
        try:
            fresh = reopen(target, key[1])
        except Exception:
            self._drop(key)
            return None
        old = entry.file
        if fresh.ident == old.ident and fresh.info == old.info:
            os.close(fresh.fd)
            entry.checked = now
            return entry
        self._drop(key)
        return self.put(key, fresh, now)

    def put(self, key: tuple[bytes, bytes], file: OpenFile, now: float) -> Entry:
        if len(self.entries) >= LIMIT:
            self.clear()
        size = file.info.size
        keep = size <= SMALL and self.kept + size <= BUDGET
        entry = self.entries[key] = Entry(file, now, keep)
        if entry.body is not None:
            self.kept += size
        return entry

    def _drop(self, key: tuple[bytes, bytes]) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            os.close(entry.file.fd)
            if entry.body is not None:
                self.kept -= len(entry.body)

    def clear(self) -> None:
        for entry in self.entries.values():
            os.close(entry.file.fd)
        self.entries.clear()
        self.kept = 0
