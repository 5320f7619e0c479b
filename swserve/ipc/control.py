"""The control plane: every message between the master, the manager and the reactors.

One table, one codec, for three channels: master ↔ manager (a stream
socketpair), master ↔ reactor i of ``--reactors N`` (a SOCK_SEQPACKET
socketpair, one message per datagram) and the reactor's events to the master
(reactor 0 runs on the master's loop and hands over the message objects
themselves; reactor i encodes the same ones on its channel).

Each message is a frozen dataclass with a wire type (:class:`Type`), the
channels it travels on, and a docstring that says what it means.  On the wire
a message is one IPC frame (the 20-byte header of :mod:`swserve.ipc.framing`:
magic, version, type, flags 0, payload length, session 0, request 0) whose
payload holds the fields in declaration order:

=========  ==========================================================
int        i64, little-endian
float      f64, little-endian
bool       u8, 0 or 1
str, enum  u32 length, then UTF-8 (an enum by its value, checked)
metrics    u32 length, then a JSON object of integers
=========  ==========================================================

Control types are 64 and up: a control frame on a worker link, or a worker
frame on a control channel, is rejected as unknown.  ``docs/control-plane.md``
is rendered from this table by :mod:`swserve.ipc.control_doc`.

Sans-IO: no sockets here, only bytes in and messages out.
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import ClassVar, Final, TypeAlias, TypeVar, dataclass_transform, get_type_hints

from swserve.errors import IPCError
from swserve.ipc import framing


class ControlError(IPCError):
    """A malformed control message: its peer is not to be trusted any more."""


# -- enums -------------------------------------------------------------------------------


class Mode(enum.StrEnum):
    """``--mode``: who accepts client connections."""

    PROCESS = "process"  # the master's reactor(s); workers only run the app
    BASE = "base"  # every worker accepts and serves its own connections


class Interface(enum.StrEnum):
    """The application interface a worker detected (``--interface``)."""

    WSGI = "wsgi"
    ASGI = "asgi"


class Reason(enum.StrEnum):
    """Why a worker was spawned, replaced or retired (logs, stats, /metrics labels)."""

    START = "start"
    CRASH = "crash"
    RESTART = "restart"
    MANUAL = "manual"
    MAX_REQUESTS = "max-requests"
    LIFETIME = "lifetime"
    MEMORY = "memory"
    TIMEOUT = "timeout"
    RELOAD = "reload"
    RELOAD_SYNC = "reload-sync"
    SCALE_UP = "scale-up"
    SCALE_DOWN = "scale-down"


REASONS: Final[dict[Reason, str]] = {
    Reason.START: "one of the first workers",
    Reason.CRASH: "its predecessor died on its own, or failed to boot",
    Reason.RESTART: "a user process (`--process`) that exited is started again",
    Reason.MANUAL: "`swserve ctl recycle`",
    Reason.MAX_REQUESTS: "it served `--max-requests` plus its own jitter",
    Reason.LIFETIME: "it lived `--max-worker-lifetime` plus up to 10%",
    Reason.MEMORY: "its resident memory passed `--max-worker-memory`",
    Reason.TIMEOUT: "a request ran past `--timeout`, or it went silent past `--heartbeat-timeout`",
    Reason.RELOAD: "SIGHUP (or `swserve ctl reload`): the replacement first",
    Reason.RELOAD_SYNC: "the same with `--reload-mode sync`: the old worker first",
    Reason.SCALE_UP: "SIGTTIN, `swserve ctl scale`",
    Reason.SCALE_DOWN: "SIGTTOU, `swserve ctl scale`",
}


class Channel(enum.Enum):
    """Who sends a message to whom (rendered in the docs)."""

    TO_MANAGER = "master → manager"
    FROM_MANAGER = "manager → master"
    TO_REACTOR = "master → reactor i"
    FROM_REACTOR = "reactor → master"


class Type(enum.IntEnum):
    """The wire type of every control message (the event kinds)."""

    STOP = 64
    READY = 65
    SERVED = 66
    TIMEOUT = 67
    RECYCLE = 68
    RELOAD = 69
    SCALE = 70
    SCALE_TO = 71
    TASK_READY = 72
    TASK_RECYCLE = 73
    TASK_TIMEOUT = 74
    TASK_RELOAD = 75
    RETIRE = 80
    EXIT = 81
    HALT = 82
    RELOADED = 83
    BACKING_OFF = 84
    TERM = 85
    QUIT = 86
    TASK_RETIRE = 87
    TASK_RELOADED = 88
    PROCESS_RESTART = 89
    WATCH = 90
    ADOPT = 96
    DRAIN = 97
    CLOSE = 98
    BOOT_ERROR = 104
    LOST = 105
    IDLE = 106
    CONNECTIONS = 107
    METRICS = 108


Metrics: TypeAlias = dict[str, int]

_M, _G, _R, _X = (
    Channel.TO_MANAGER,
    Channel.FROM_MANAGER,
    Channel.TO_REACTOR,
    Channel.FROM_REACTOR,
)


class Message:
    """A control message: ``TYPE`` on the wire, sent on ``CHANNELS``."""

    __slots__ = ()
    TYPE: ClassVar[Type]
    CHANNELS: ClassVar[tuple[Channel, ...]]


_M_co = TypeVar("_M_co", bound=type[Message])
_DECLARED: list[type[Message]] = []


@dataclass_transform(frozen_default=True)
def message(kind: Type, *channels: Channel) -> Callable[[_M_co], _M_co]:
    """Make a class a frozen control message of wire type ``kind``, sent on ``channels``."""

    def make(cls: _M_co) -> _M_co:
        cls.TYPE = kind
        cls.CHANNELS = channels
        made: _M_co = dataclass(frozen=True, slots=True)(cls)  # type: ignore[assignment]
        _DECLARED.append(made)
        return made

    return make


# -- master → manager ------------------------------------------------------------------------


@message(Type.STOP, _M)
class Stop(Message):
    """Stop every worker (SIGTERM, SIGKILL after the grace period; 1 s if ``now``) and exit."""

    now: bool = False


@message(Type.READY, _X, _M)
class Ready(Message):
    """That worker's app is loaded and it takes requests (the reactor saw its READY frame)."""

    worker_id: int
    pid: int
    interface: Interface


@message(Type.SERVED, _X, _M)
class Served(Message):
    """That worker has answered ``count`` requests: sent once ``count`` reaches its `Watch`."""

    pid: int
    count: int


@message(Type.TIMEOUT, _X, _M)
class Timeout(Message):
    """A request on that worker ran past ``--timeout`` (or it went silent past
    ``--heartbeat-timeout``).  ``graceful``: the worker answered 504 itself and
    serves on (base mode), so it is replaced the graceful way; else it is stopped
    and replaced now."""

    pid: int
    graceful: bool = False


@message(Type.RECYCLE, _M)
class Recycle(Message):
    """Replace that worker, its replacement first (`swserve ctl recycle`)."""

    pid: int
    reason: Reason


@message(Type.RELOAD, _M)
class Reload(Message):
    """Replace every worker, task worker and user process (SIGHUP, SIGUSR1, `swserve ctl`)."""


@message(Type.SCALE, _M)
class Scale(Message):
    """One worker more (``delta`` 1: SIGTTIN) or fewer (-1: SIGTTOU)."""

    delta: int


@message(Type.SCALE_TO, _M)
class ScaleTo(Message):
    """`swserve ctl scale N`: as many one-worker steps as it takes (at least one worker)."""

    workers: int


@message(Type.TASK_READY, _M)
class TaskReady(Message):
    """That task worker is linked to the broker: it takes tasks."""

    pid: int


@message(Type.TASK_RECYCLE, _M)
class TaskRecycle(Message):
    """Replace that task worker (``--task-max-requests``)."""

    pid: int
    reason: Reason


@message(Type.TASK_TIMEOUT, _M)
class TaskTimeout(Message):
    """A task ran past ``--task-timeout`` on that task worker: kill and replace it."""

    pid: int


@message(Type.TASK_RELOAD, _M)
class TaskReload(Message):
    """Replace every task worker (SIGUSR2)."""


# -- manager → master ------------------------------------------------------------------------


@message(Type.RETIRE, _G, _R)
class Retire(Message):
    """Dispatch nothing more to that worker; send it STOP once it is drained.
    The master passes it on to every reactor."""

    pid: int
    reason: Reason


@message(Type.EXIT, _G)
class Exit(Message):
    """A worker exited: its exit ``code`` (-1 when it was killed by ``signal``)."""

    slot: int
    pid: int
    code: int
    signal: int


@message(Type.HALT, _G)
class Halt(Message):
    """Stop the server with this exit code (a boot failure during start-up)."""

    code: int
    message: str


@message(Type.RELOADED, _G)
class Reloaded(Message):
    """A reload has replaced every worker."""


@message(Type.BACKING_OFF, _G)
class BackingOff(Message):
    """That slot failed to boot ``failures`` times in a row: next try in ``delay`` s
    (``failures`` 0: it booted, or a reload reset it).  For /metrics and /readyz."""

    slot: int
    failures: int
    delay: float


@message(Type.TERM, _G)
class Term(Message):
    """The manager got SIGTERM: the master stops the server gracefully."""


@message(Type.QUIT, _G)
class Quit(Message):
    """The manager got SIGQUIT: the master stops the server at once."""


@message(Type.TASK_RETIRE, _G)
class TaskRetire(Message):
    """The broker gives that task worker no more tasks, then TASK_STOP."""

    pid: int
    reason: Reason


@message(Type.TASK_RELOADED, _G)
class TaskReloaded(Message):
    """A task reload has replaced every task worker."""


@message(Type.PROCESS_RESTART, _G)
class ProcessRestart(Message):
    """User process ``index`` (``--process``) was restarted (for /metrics)."""

    index: int


@message(Type.WATCH, _G)
class Watch(Message):
    """Send `Served` once that worker has answered ``count`` requests (its own
    ``--max-requests``, jitter included, chosen by the supervision policy).  Sent
    when it is forked; a base-mode worker is also given the count at fork, and
    sends its SERVED frame at once when it gets there."""

    pid: int
    count: int


# -- master → reactor i ----------------------------------------------------------------------


@message(Type.ADOPT, _R)
class Adopt(Message):
    """Serve these client connections: their descriptors ride along (SCM_RIGHTS)."""


@message(Type.DRAIN, _R)
class Drain(Message):
    """Shutting down: close idle connections, keep none alive; `Idle` once nothing is left."""


@message(Type.CLOSE, _R)
class Close(Message):
    """Abort what is left and exit."""


# -- reactor → master ------------------------------------------------------------------------


@message(Type.BOOT_ERROR, _X)
class BootError(Message):
    """A worker could not load the app (its BOOT_ERROR frame's message)."""

    message: str


@message(Type.LOST, _X)
class Lost(Message):
    """A worker's link closed, after it had answered ``served`` requests."""

    worker_id: int
    pid: int
    served: int


@message(Type.IDLE, _X)
class Idle(Message):
    """While draining: nothing is left to answer."""


@message(Type.CONNECTIONS, _X)
class Connections(Message):
    """Reactor i holds ``held`` connections and has been handed ``received`` so far
    (the master adds those still in the channel to ``held``)."""

    held: int
    received: int


@message(Type.METRICS, _X)
class MetricsSnapshot(Message):
    """Reactor i's counters (``--metrics-bind``), every 0.25 s; summed by the master."""

    counters: Metrics


MESSAGES: Final[tuple[type[Message], ...]] = tuple(_DECLARED)  # in the order above

# -- the codec --------------------------------------------------------------------------------

_I64: Final = struct.Struct("<q")
_F64: Final = struct.Struct("<d")
_U32: Final = struct.Struct("<I")
_ENUMS: Final[dict[str, type[enum.StrEnum]]] = {"Interface": Interface, "Reason": Reason}

# per message type: its class and its fields' (name, kind) in order
_Layout = tuple[tuple[str, str], ...]


def _layout(cls: type[Message]) -> _Layout:
    hints = get_type_hints(cls, localns={"Metrics": Metrics, **_ENUMS})
    out = []
    for f in fields(cls):  # type: ignore[arg-type]
        hint = hints[f.name]
        if hint in (int, float, bool, str) or (
            isinstance(hint, type) and issubclass(hint, enum.StrEnum)
        ):
            kind = hint.__name__
        elif hint == Metrics:
            kind = "metrics"
        else:  # pragma: no cover - the table is checked by the unit tests
            raise TypeError(f"{cls.__name__}.{f.name}: no wire form for {hint!r}")
        out.append((f.name, kind))
    return tuple(out)


_BY_TYPE: Final[dict[int, tuple[type[Message], _Layout]]] = {
    cls.TYPE: (cls, _layout(cls)) for cls in MESSAGES
}


def wire_fields(cls: type[Message]) -> tuple[tuple[str, str], ...]:
    """``cls``'s fields on the wire, in order: (name, kind), kind being int, float,
    bool, str, metrics or an enum's name."""
    return _BY_TYPE[cls.TYPE][1]


def _text(value: str) -> bytes:
    data = value.encode()
    return _U32.pack(len(data)) + data


def encode(message: Message) -> bytes:
    """One control message as one frame."""
    _, layout = _BY_TYPE[message.TYPE]
    parts: list[bytes] = []
    for name, kind in layout:
        value = getattr(message, name)
        if kind == "int":
            parts.append(_I64.pack(value))
        elif kind == "float":
            parts.append(_F64.pack(value))
        elif kind == "bool":
            parts.append(b"\x01" if value else b"\x00")
        elif kind == "metrics":
            parts.append(_text(json.dumps(value, separators=(",", ":"))))
        else:  # str or a StrEnum, by value
            parts.append(_text(str(value)))
    payload = b"".join(parts)
    if len(payload) > framing.MAX_PAYLOAD:
        raise ControlError(f"{type(message).__name__}: payload of {len(payload)} bytes")
    return framing.encode(message.TYPE, 0, 0, 0, payload)


def decode_payload(kind: int, payload: bytes) -> Message:
    """The message of type ``kind`` from its payload.

    Raises:
        ControlError: an unknown type, a payload cut short or too long, text that
            is not UTF-8, a bool that is not 0 or 1, an enum value not in the enum.
    """
    entry = _BY_TYPE.get(kind)
    if entry is None:
        raise ControlError(f"unknown control message type {kind}")
    cls, layout = entry
    values: list[object] = []
    pos = 0
    try:
        for name, field_kind in layout:
            if field_kind == "int":
                values.append(_I64.unpack_from(payload, pos)[0])
                pos += 8
            elif field_kind == "float":
                values.append(_F64.unpack_from(payload, pos)[0])
                pos += 8
            elif field_kind == "bool":
                if pos >= len(payload) or payload[pos] > 1:
                    raise ControlError(f"{cls.__name__}.{name}: not a bool")
                values.append(payload[pos] == 1)
                pos += 1
            else:
                (length,) = _U32.unpack_from(payload, pos)
                pos += 4
                if pos + length > len(payload):
                    raise ControlError(f"{cls.__name__}.{name}: text cut short")
                text = payload[pos : pos + length].decode()
                pos += length
                values.append(_convert(cls, name, field_kind, text))
    except struct.error:
        raise ControlError(f"{cls.__name__}: payload cut short ({len(payload)} bytes)") from None
    except UnicodeDecodeError:
        raise ControlError(f"{cls.__name__}: text that is not UTF-8") from None
    if pos != len(payload):
        raise ControlError(f"{cls.__name__}: {len(payload) - pos} byte(s) left over")
    return cls(*values)


def _convert(cls: type[Message], name: str, kind: str, text: str) -> object:
    if kind == "str":
        return text
    if kind == "metrics":
        try:
            data = json.loads(text)
        except ValueError:
            raise ControlError(f"{cls.__name__}.{name}: not JSON") from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in data.items()
        ):
            raise ControlError(f"{cls.__name__}.{name}: not an object of integers")
        return data
    try:
        return _ENUMS[kind](text)
    except ValueError:
        raise ControlError(f"{cls.__name__}.{name}: {text!r} is not a {kind}") from None


def decode(data: bytes) -> Message:
    """Exactly one frame (a SOCK_SEQPACKET datagram) → its message."""
    (messages, rest) = _split(data)
    if len(messages) != 1 or rest:
        raise ControlError(f"expected one control frame, got {len(data)} bytes")
    return messages[0]


def _split(data: bytes) -> tuple[list[Message], bytes]:
    out: list[Message] = []
    pos = 0
    size = framing.HEADER_SIZE
    while len(data) - pos >= size:
        magic, version, kind, flags, length, session, request = framing.HEADER.unpack_from(
            data, pos
        )
        if magic != framing.MAGIC or version != framing.VERSION:
            raise ControlError(f"bad control frame header (magic {magic:#x}, version {version})")
        if flags or session or request:
            raise ControlError(f"control frame type {kind} with flags, session or request set")
        if kind not in _BY_TYPE:
            raise ControlError(f"unknown control message type {kind}")
        if length > framing.MAX_PAYLOAD:
            raise ControlError(f"control frame of {length} bytes")
        if len(data) - pos - size < length:
            break
        out.append(decode_payload(kind, data[pos + size : pos + size + length]))
        pos += size + length
    return out, data[pos:]


class Decoder:
    """A byte stream (the master ↔ manager socketpair) → messages, as they complete."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Message]:
        messages, self._buf = _split(self._buf + data)
        return messages
