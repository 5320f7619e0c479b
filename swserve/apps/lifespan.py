"""The ASGI lifespan protocol: startup before the first request, shutdown after the last.

Theory of operation: the app's lifespan coroutine runs as a task for the
worker's whole life.  ``startup()`` sends ``lifespan.startup`` and waits for
``.complete`` or ``.failed`` (or for the app to raise or return).  With
``--lifespan auto`` an app that raises before answering is taken not to
support lifespan (as uvicorn does) and the worker carries on; with ``on``
that is a boot failure.  ``.failed`` is a boot failure in both modes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from swserve.apps.asgi import ASGIApp, Message
from swserve.errors import AppLoadError

log = logging.getLogger("swserve.error")


class Lifespan:
    def __init__(self, app: ASGIApp, mode: str) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.supported = mode != "off"
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._inbox.get, self._outbox.put)
        except BaseException as exc:
            self._error = exc
        finally:
            await self._outbox.put({"type": "_returned"})

    async def startup(self) -> None:
        """Raises: AppLoadError when the app reports or causes a failed startup."""
        if not self.supported:
            return
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._inbox.put({"type": "lifespan.startup"})
        message = await self._outbox.get()
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            return
        if kind == "lifespan.startup.failed":
            raise AppLoadError(
                f"lifespan startup failed: {message.get('message', '')}".rstrip(": ")
            )
        # the app returned or raised without answering
        self.supported = False
        if self.mode == "on":
            reason = (
                f"{type(self._error).__name__}: {self._error}"
                if self._error
                else "the app returned"
            )
            raise AppLoadError(f"lifespan startup failed: {reason}")
        if self._error is not None:
            log.debug("the app does not support ASGI lifespan (%r); carrying on", self._error)

    async def shutdown(self) -> None:
        if not self.supported or self._task is None:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        message = await self._outbox.get()
        if message["type"] == "lifespan.shutdown.failed":
            log.error("lifespan shutdown failed: %s", message.get("message", ""))
