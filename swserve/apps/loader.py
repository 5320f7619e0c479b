"""Import the application named ``module:attr`` and tell WSGI from ASGI.

Every failure is an :class:`AppLoadError` whose message a user can act on:
``could not import 'myapp:app': No module named 'myapp'``.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any

from swserve.errors import AppLoadError


def load(spec: str, *, factory: bool = False, app_dir: str = ".") -> Any:
    """Import and return the application object.

    Raises:
        AppLoadError: the spec is malformed, the module or attribute is missing,
            importing raised, or the result is not callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(f"could not import {spec!r}: expected module:attribute")
    if app_dir and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    call = attr.endswith("()")
    if call:
        attr = attr[:-2]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppLoadError(f"could not import {spec!r}: {exc}") from exc
        raise AppLoadError(f"could not import {spec!r}: {type(exc).__name__}: {exc}") from exc
    except BaseException as exc:
        raise AppLoadError(f"could not import {spec!r}: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(
                f"could not import {spec!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if factory or call:
        try:
            obj = obj()
        except BaseException as exc:
            raise AppLoadError(
                f"could not import {spec!r}: the factory raised {type(exc).__name__}: {exc}"
            ) from exc
    if not callable(obj):
        raise AppLoadError(
            f"could not import {spec!r}: {type(obj).__name__} object is not callable"
        )
    return obj


def detect_interface(app: Any) -> str:
    """``asgi`` if calling ``app`` would return a coroutine, else ``wsgi``; never calls it."""
    if inspect.iscoroutinefunction(app):
        return "asgi"
    # an instance whose class defines ``async def __call__`` (Starlette, Django's ASGIHandler)
    if inspect.iscoroutinefunction(type(app).__call__):
        return "asgi"
    return "wsgi"
