"""The built-in demo app (``swserve`` with no APP): a small WSGI app."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from swserve import __version__

_BODY = f"Hello from swserve {__version__}!\n".encode()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer every request with a short greeting."""
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [_BODY]
