"""The exception hierarchy and the exit-code table shared by every process.

An exit code is the only thing a dead process can tell its supervisor, so the
codes are one table that the master, the manager and the workers all read.
"""

from __future__ import annotations

from typing import Any, Final

# Exit codes (gunicorn's WORKER_BOOT_ERROR / APP_LOAD_ERROR are 3 and 4; we use
# 3 for every boot failure, since the user-facing answer is the same: fix the app).
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_APP_LOAD: Final = 3  # the app could not be imported, or its lifespan startup failed


class SwserveError(Exception):
    """Base class of every error swserve raises on purpose."""


class ConfigError(SwserveError):
    """A setting has a value that cannot work; the message names it."""


class AppLoadError(SwserveError):
    """The application could not be imported, built or started."""


class IPCError(SwserveError):
    """A peer sent bytes that are not a valid frame: treat the peer as crashed."""


class ClientDisconnected(SwserveError):
    """The client of the response being written has gone: stop producing it."""


class ProtocolError(SwserveError):
    """The client broke HTTP/1.1; ``status_hint`` is the status to answer with.

    The connection is always closed after the error response: once framing is
    in doubt, nothing more read from that connection can be trusted.
    """

    def __init__(self, status_hint: int, reason: str) -> None:
        super().__init__(reason)
        self.status_hint = status_hint
        self.reason = reason
        # requests completed in the same feed() before the error: they are
        # answered, in order, before the error response
        self.completed: list[Any] = []
