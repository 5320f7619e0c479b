"""Logger names and the logging set-up that every process inherits from the master.

``swserve.error`` is the error log (start-up, worker life cycle, app
exceptions); ``swserve.access`` is the access log (``logs/access.py``).

The master sets logging up once, first thing, before it forks anything, so
the manager and every worker inherit the handlers, the formatters and the
``SIGRTMIN`` handler below.  Three sources, in this order:

==================  ==========================================================
``--log-file PATH``  opened first (a bad path fails before anything starts),
                     then made the process's stderr (fd 2) with ``dup2``.
                     Everything a process writes to stderr lands in the file:
                     both logs, Python's own tracebacks and warnings, the
                     slowlog's stacks, and the app's writes to ``sys.stderr``.
                     stdout (an app's ``print()``) is left alone.
``--log-config``     a ``logging.config.dictConfig`` file, JSON or TOML, that
                     replaces the default below (``--log-level`` is then
                     unused: the file sets the levels).
default              both loggers on stderr: the error log with a time, pid
                     and level prefix (coloured and aligned when stderr is a
                     terminal), the access log as the bare line.
==================  ==========================================================

Log rotation: ``mv`` the file, then send ``SIGRTMIN`` to the master (Swoole's
signal for this).  Each process reopens the path onto its fd 2 and passes the
signal on to its children (master → manager → workers), so one ``kill``
reaches every process that writes the file; a process that receives it twice
(a signal to the whole process group) just reopens twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from swserve.errors import ConfigError

if TYPE_CHECKING:
    from swserve.config import Config

ERROR_LOGGER = "swserve.error"
ACCESS_LOGGER = "swserve.access"

# SIGHUP and SIGUSR1 reload the workers; Swoole reopens its log on SIGRTMIN.
REOPEN_SIGNAL: Final = signal.SIGRTMIN

_FORMAT: Final = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
_DATEFMT: Final = "%Y-%m-%d %H:%M:%S %z"

log = logging.getLogger(ERROR_LOGGER)

# -- colour ----------------------------------------------------------------------------------

_RESET: Final = "\x1b[0m"
_DIM: Final = "\x1b[2m"
LEVEL_COLOURS: Final = {
    logging.DEBUG: "\x1b[36m",  # cyan
    logging.INFO: "\x1b[32m",  # green
    logging.WARNING: "\x1b[33m",  # yellow
    logging.ERROR: "\x1b[31m",  # red
    logging.CRITICAL: "\x1b[1;31m",  # bold red
}
_OFF: Final = frozenset({"", "0", "false", "no"})


def colour_wanted(isatty: bool, env: Mapping[str, str]) -> bool:
    """Colour on a terminal, unless ``NO_COLOR`` says no; ``FORCE_COLOR`` forces it.

    NO_COLOR (no-color.org) wins over FORCE_COLOR: it is the reader's own
    wish, where FORCE_COLOR is usually set by a tool that captures output.
    """
    if env.get("NO_COLOR", ""):
        return False
    if env.get("FORCE_COLOR", "").lower() not in _OFF:
        return True
    return isatty and env.get("TERM", "") != "dumb"


class ErrorFormatter(logging.Formatter):
    """The error log's line: ``[time] [pid] [LEVEL] message``, or aligned in colour.

    The plain form is what files and pipes get, one fixed shape for tools to
    parse.  The coloured form pads the level to one width, so that messages
    start in one column on a terminal, and colours it as uvicorn does.
    """

    def __init__(self, colour: bool = False) -> None:
        super().__init__(_FORMAT, datefmt=_DATEFMT)
        self.colour = colour

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        if not self.colour:
            return super().formatMessage(record)
        level = f"{LEVEL_COLOURS.get(record.levelno, '')}{record.levelname:<8}{_RESET}"
        return f"{_DIM}[{record.asctime}]{_RESET} [{record.process:>7}] {level} {record.message}"


def default_config(level: str, colour: bool) -> dict[str, Any]:
    """swserve's own set-up, as the dictConfig that ``--log-config`` replaces."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "error": {"()": ErrorFormatter, "colour": colour},
            # the access log's lines are the formatted line alone, as in gunicorn
            "access": {"format": "%(message)s"},
        },
        "handlers": {
            "error": {
                "class": "logging.StreamHandler",
                "formatter": "error",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "swserve": {"handlers": ["error"], "level": level.upper(), "propagate": False},
            # switched by --access-log, not by --log-level
            ACCESS_LOGGER: {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


# -- --log-config ----------------------------------------------------------------------------


def load_config_file(path: str) -> dict[str, Any]:
    """Read a dictConfig file (``.json`` or ``.toml``).

    Raises:
        ConfigError: one line naming the file and what is wrong with it.
    """
    where = f"--log-config {path}"
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".json", ".toml"):
        raise ConfigError(f"{where}: must be a .json or .toml file")
    import json  # only --log-config reads a file
    import tomllib

    try:
        with open(path, "rb") as f:
            data = json.load(f) if suffix == ".json" else tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and TOMLDecodeError
        raise ConfigError(f"{where}: not valid {suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must hold a dictConfig object, not {type(data).__name__}")
    # Our loggers exist from import time on: dictConfig's default would disable them
    # unless the file names them, which is never what anyone wants.
    data.setdefault("disable_existing_loggers", False)
    return data


def _apply(config: dict[str, Any], where: str) -> None:
    # deferred: logging.config, with the logging.handlers, pickle, socketserver and
    # queue modules it imports, cost ~5 ms of every start-up; only --log-config uses it
    import logging.config

    try:
        logging.config.dictConfig(config)
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        # dictConfig says "Unable to configure handler 'x'" and keeps the reason in the cause
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError(f"{where}: {exc}{cause}") from None


def _apply_default(level: str, colour: bool) -> None:
    """What ``dictConfig(default_config(level, colour))`` does, without ``logging.config``.

    The same named handlers (on the ``sys.stderr`` of now), formatters, levels
    and propagation; and, as dictConfig does, the other loggers under ``swserve``
    (``swserve.error``) are reset to hand their records up to ``swserve``.
    tests/unit/test_logs.py checks that both give the same set-up.
    """
    error = logging.StreamHandler(sys.stderr)
    error.set_name("error")
    error.setFormatter(ErrorFormatter(colour=colour))
    access = logging.StreamHandler(sys.stderr)
    access.set_name("access")
    access.setFormatter(logging.Formatter("%(message)s"))
    configured = {"swserve": (error, level.upper()), ACCESS_LOGGER: (access, "INFO")}
    for name, (handler, logger_level) in configured.items():
        logger = logging.getLogger(name)
        logger.setLevel(logger_level)
        for old in logger.handlers[:]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.disabled = False
        logger.propagate = False
    for name, existing in list(logging.root.manager.loggerDict.items()):
        child = name.startswith("swserve.") and name not in configured
        if child and isinstance(existing, logging.Logger):  # not a PlaceHolder
            existing.setLevel(logging.NOTSET)
            existing.handlers = []
            existing.propagate = True


# -- --log-file ------------------------------------------------------------------------------

_log_file = ""  # absolute path, or "" to leave stderr alone
_forward: tuple[int, Callable[[], Iterable[int]]] | None = None


def _open(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _onto_stderr(fd: int) -> None:
    """Make ``fd`` this process's fd 2: one atomic ``dup2``, no Python-level state.

    ``sys.stderr`` is not flushed first: in a signal handler that could re-enter
    a write the handler interrupted (a RuntimeError).  What it still buffers just
    goes to the new file.
    """
    os.dup2(fd, 2)  # the new fd 2 is inheritable, as stderr must be
    os.close(fd)


def reopen() -> None:
    """Open ``--log-file`` again (after rotation) as this process's stderr.

    Runs in a signal handler: no logging (its locks may be held by the code we
    interrupted). A failure is one ``os.write`` to the file we still have.
    """
    if not _log_file:
        return
    try:
        _onto_stderr(_open(_log_file))
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.write(2, f"swserve[{os.getpid()}]: cannot reopen {_log_file}: {exc}\n".encode())


def forward_reopen(children: Callable[[], Iterable[int]]) -> None:
    """Pass the reopen signal on to ``children()``, from this process only.

    The registration records our pid: a child forked later inherits it but does
    not forward (its copy of our child list names its siblings).
    """
    global _forward
    _forward = (os.getpid(), children)


def _on_reopen_signal(signum: int, frame: types.FrameType | None) -> None:
    reopen()
    if _forward is not None and _forward[0] == os.getpid():
        for pid in list(_forward[1]()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, REOPEN_SIGNAL)


# -- set-up ----------------------------------------------------------------------------------


def setup(config: Config) -> bool:
    """Set up logging for this process and its future children; False after one error line.

    A bad ``--log-file`` or ``--log-config`` is reported on the original stderr
    with swserve's default format, so the caller can exit before starting anything.
    """
    global _log_file
    path = os.path.abspath(config.log_file) if config.log_file else ""
    fd = -1
    try:
        if path:
            try:
                fd = _open(path)
            except OSError as exc:
                raise ConfigError(f"--log-file {config.log_file}: {exc.strerror or exc}") from None
        if config.log_config:
            _apply(load_config_file(config.log_config), f"--log-config {config.log_config}")
        else:
            # never colour into --log-file, whatever FORCE_COLOR says
            colour = not path and colour_wanted(os.isatty(2), os.environ)
            _apply_default(config.log_level, colour)
    except ConfigError as exc:
        if fd != -1:
            os.close(fd)
        _apply(default_config(config.log_level, colour_wanted(os.isatty(2), os.environ)), "")
        log.error("%s", exc)
        return False
    if path:
        _onto_stderr(fd)  # last: the handlers above write to whatever fd 2 is
        _log_file = path
    # installed before any fork, so the manager and the workers inherit it too
    signal.signal(REOPEN_SIGNAL, _on_reopen_signal)
    return True
