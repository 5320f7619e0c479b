"""``--broadcast-url``: group broadcasts reach every swserve instance that names the same Redis.

Redis pub/sub, one channel (``swserve:broadcast``).  Each reactor (and the
base-mode master, which routes to its workers) subscribes and fans out what
another instance published to its own members; one process per instance
publishes the broadcasts its workers asked for (reactor 0: every reactor
already got the frame from the worker).  A message carries the instance's id,
so an instance never delivers its own broadcast twice.

Redis is a helper, never a dependency of the local fan-out: while it is gone,
broadcasts still reach this instance's members, publishing is skipped (at
most once), the subscriber reconnects with back-off (0.1 s doubling to 5 s),
one warning line says it went and one info line says it is back, and the
metrics count it (``swserve_push_redis_connected``,
``swserve_push_redis_errors_total``).

Message: ``u16 id length | instance id | u8 text | u16 group length | group | data``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

from swserve.metrics.exposition import PUSH_REDIS_ERRORS, PUSH_REDIS_UP

if TYPE_CHECKING:
    from swserve.config import Config
    from swserve.reactor.push_hub import PushHub
    from swserve.reactor.push_route import PushRouter

log = logging.getLogger("swserve.error")

CHANNEL: Final = b"swserve:broadcast"
BACKOFF_MIN: Final = 0.1
BACKOFF_MAX: Final = 5.0
QUEUE_LIMIT: Final = 10_000  # broadcasts waiting to be published; past it they are not
_HEAD = struct.Struct("<H")
_MID = struct.Struct("<BH")


def encode(instance: bytes, group: str, text: bool, data: bytes) -> bytes:
    name = group.encode()
    return b"".join((_HEAD.pack(len(instance)), instance, _MID.pack(text, len(name)), name, data))


def decode(message: bytes) -> tuple[bytes, str, bool, bytes]:
    """→ (instance id, group, text?, data); ValueError if it is not ours."""
    (size,) = _HEAD.unpack_from(message)
    instance = message[2 : 2 + size]
    pos = 2 + size
    text, length = _MID.unpack_from(message, pos)
    pos += _MID.size
    group = message[pos : pos + length].decode()
    if len(group.encode()) != length:
        raise ValueError("cut message")
    return instance, group, bool(text), message[pos + length :]


def instance_id(ipc_sock: socket.socket) -> bytes:
    """One id for every reactor of this instance: the host and the IPC directory (mkdtemp)."""
    path = ipc_sock.getsockname()
    where = os.path.dirname(path if isinstance(path, str) else path.decode())
    return f"{socket.gethostname()}:{where}".encode()


class RedisBridge:
    def __init__(
        self, url: str, hub: PushHub | PushRouter, instance: bytes, publisher: bool
    ) -> None:
        self.url = url
        self.hub = hub
        self.instance = instance
        self.up = False
        self.errors = 0
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_LIMIT)
        self.tasks: list[asyncio.Task[None]] = []
        self._warned = False
        loop = asyncio.get_running_loop()
        self.tasks.append(loop.create_task(self._subscribe()))
        if publisher:
            hub.publish = self.publish
            self.tasks.append(loop.create_task(self._publish()))
        hub.extra = self.snapshot

    def snapshot(self) -> dict[str, int]:
        return {PUSH_REDIS_UP: int(self.up), PUSH_REDIS_ERRORS: self.errors}

    def publish(self, group: str, exclude: int, text: bool, data: bytes) -> None:
        if not self.up:
            return  # at most once: other instances miss what was said while Redis was gone
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(encode(self.instance, group, text, data))

    def _client(self) -> Any:
        import redis.asyncio as aioredis

        return aioredis.Redis.from_url(
            self.url, socket_connect_timeout=2, health_check_interval=0, retry_on_timeout=False
        )

    def _lost(self, exc: BaseException) -> None:
        if self.up or not self._warned:
            self.errors += 1
            log.warning("--broadcast-url: Redis is unreachable (%s); broadcasts stay local", exc)
            self._warned = True
        self.up = False

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        client = self._client()
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _subscribe(self) -> None:
        delay = BACKOFF_MIN
        while True:
            try:
                async with self._connection() as client:
                    pubsub = client.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(CHANNEL)
                    if self._warned:
                        log.info("--broadcast-url: Redis is back")
                    self._warned = False
                    self.up = True
                    delay = BACKOFF_MIN
                    while True:
                        message = await pubsub.get_message(timeout=None)
                        if message is not None and message["type"] == "message":
                            self._deliver(message["data"])
            except Exception as exc:  # any failure of the link: try again later
                self._lost(exc)
            await asyncio.sleep(delay)
            delay = min(BACKOFF_MAX, delay * 2)

    def _deliver(self, message: bytes) -> None:
        try:
            instance, group, text, data = decode(message)
        except (ValueError, UnicodeDecodeError, struct.error):
            log.debug("--broadcast-url: a message that is not swserve's was ignored")
            return
        if instance != self.instance:  # our own was fanned out here already
            self.hub.relayed(group, text, data)

    async def _publish(self) -> None:
        async with self._connection() as client:
            while True:
                message = await self.queue.get()
                try:
                    await client.publish(CHANNEL, message)
                except Exception as exc:  # dropped: at most once
                    self._lost(exc)

    def stop(self) -> None:
        for task in self.tasks:
            task.cancel()


def start(
    config: Config, hub: PushHub | PushRouter, ipc_sock: socket.socket, publisher: bool
) -> RedisBridge | None:
    """A bridge for this reactor if ``--broadcast-url`` is set (on the running loop)."""
    if not config.broadcast_url:
        return None
    return RedisBridge(config.broadcast_url, hub, instance_id(ipc_sock), publisher)
