"""swserve: a production application server for Python WSGI and ASGI apps.

It follows Swoole's process model: a master whose reactors own every client
connection, a manager that supervises workers, and workers that run the app.
Internal modules never import from this package's ``__init__``.

Server push (``swserve.push``, ``swserve.broadcast``, …; docs/push.md) is
imported on first use, so ``import swserve`` stays free.
"""

from typing import Any

__version__ = "0.1.0"

_PUSH_API = frozenset(
    {
        "Delivery",
        "abroadcast",
        "aclose",
        "ajoin",
        "aleave",
        "apush",
        "broadcast",
        "close",
        "is_open",
        "join",
        "leave",
        "push",
    }
)

__all__ = ["__version__", *sorted(_PUSH_API)]


def __getattr__(name: str) -> Any:
    if name in _PUSH_API:
        from swserve import server_push

        return getattr(server_push, name)
    raise AttributeError(f"module 'swserve' has no attribute {name!r}")
