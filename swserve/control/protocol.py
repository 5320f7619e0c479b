"""The control socket's wire format, sans-IO: JSON lines, one request, one response.

A client sends one line per request and reads one line per response::

    → {"v": 1, "cmd": "recycle", "args": {"slot": 2}}
    ← {"v": 1, "ok": true, "result": {"slot": 2, "pid": 4242}}
    ← {"v": 1, "ok": false, "error": "there is no worker in slot 9"}

:data:`COMMANDS` is the one table of commands: their arguments (name → type;
no command takes a string, so none can carry a path or code from the client),
what they do, and where the CLI's help comes from.  ``decode_request``
checks a request against it; anything else is a :class:`ControlError` whose
message is the one line the client prints.

No sockets, no asyncio, no clock: the server (``swserve/master/control.py``)
and the client (``swserve/control/client.py``) are thin shells around this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final

VERSION: Final = 1
# A request is a short line; a longer one is not a client of ours.  Responses
# carry stack dumps and per-worker tables: the client allows far more.
MAX_REQUEST: Final = 64 * 1024
MAX_RESPONSE: Final = 16 * 1024 * 1024


class ControlError(Exception):
    """A request that cannot be carried out; ``str()`` is the one line for the user."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    args: dict[str, type] = field(default_factory=dict)  # every argument is optional
    steers: bool = False  # changes the server (refused once it is shutting down)


COMMANDS: Final[dict[str, Command]] = {
    c.name: c
    for c in (
        Command("stats", "Server totals: the figures /metrics has, and more."),
        Command(
            "workers",
            "Per worker: slot, pid, state, requests, in flight, current request, CPU%, RSS.",
        ),
        Command("processes", "Every process of the server: master, reactors, manager, workers."),
        Command(
            "reload",
            "Replace every worker gracefully, as SIGHUP does (task workers: as SIGUSR2).",
            {"task_workers": bool},
            steers=True,
        ),
        Command(
            "scale",
            "Set the number of workers to N, or change it by +K/-K (as SIGTTIN/SIGTTOU).",
            {"to": int, "by": int},
            steers=True,
        ),
        Command(
            "recycle",
            "Replace the worker in SLOT gracefully: its replacement first.",
            {"slot": int},
            steers=True,
        ),
        Command("slowlog", "The Python stack of the worker in SLOT, now.", {"slot": int}),
        Command("sessions", "WebSocket sessions per worker."),
    )
}


@dataclass(frozen=True, slots=True)
class Request:
    cmd: str
    args: dict[str, Any]


def encode_request(cmd: str, args: dict[str, Any] | None = None) -> bytes:
    return _line({"v": VERSION, "cmd": cmd, "args": args or {}})


def decode_request(line: bytes) -> Request:
    """One request line → a :class:`Request` checked against :data:`COMMANDS`."""
    if len(line) > MAX_REQUEST:
        raise ControlError(f"request longer than {MAX_REQUEST} bytes")
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ControlError("a request is one JSON object per line") from None
    if not isinstance(message, dict):
        raise ControlError("a request is one JSON object per line")
    if message.get("v") != VERSION:
        raise ControlError(f"unsupported protocol version {message.get('v')!r} (this is {VERSION})")
    name = message.get("cmd")
    command = COMMANDS.get(name) if isinstance(name, str) else None
    if command is None or not isinstance(name, str):
        raise ControlError(f"unknown command {name!r}; commands: {', '.join(COMMANDS)}")
    args = message.get("args", {})
    if not isinstance(args, dict):
        raise ControlError(f"{name}: args must be an object")
    for key, value in args.items():
        kind = command.args.get(key)
        if kind is None:
            raise ControlError(f"{name}: unknown argument {key!r}")
        # bool is a subclass of int: an int argument must not accept true/false
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ControlError(f"{name}: {key} must be {kind.__name__}, got {value!r}")
    return Request(name, dict(args))


def encode_ok(result: Any) -> bytes:
    return _line({"v": VERSION, "ok": True, "result": result})


def encode_error(message: str) -> bytes:
    return _line({"v": VERSION, "ok": False, "error": message})


def decode_response(line: bytes) -> Any:
    """A response line → its result; a server-side error raises :class:`ControlError`."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ControlError("the server sent a malformed response") from None
    if not isinstance(message, dict) or "ok" not in message:
        raise ControlError("the server sent a malformed response")
    if not message["ok"]:
        raise ControlError(str(message.get("error", "the server refused the request")))
    return message.get("result")


class LineReader:
    """Bytes in, complete lines out (without the newline); refuses a line past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        *lines, rest = self._buf.split(b"\n")
        if len(rest) > self.limit:
            raise ControlError(f"line longer than {self.limit} bytes")
        self._buf = bytearray(rest)
        return [bytes(line) for line in lines]


def parse_scale(text: str) -> dict[str, int]:
    """``swserve ctl scale`` argument: ``N`` → to N workers, ``+K``/``-K`` → by K."""
    body = text[1:] if text[:1] in "+-" else text
    if not body.isdigit() or len(body) > 6:
        raise ControlError(f"scale takes N, +K or -K (got {text!r})")
    if text[:1] == "+":
        return {"by": int(body)}
    if text[:1] == "-":
        return {"by": -int(body)}
    return {"to": int(body)}


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"
