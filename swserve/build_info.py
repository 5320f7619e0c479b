"""Which build runs: the typed cores compiled by mypyc, or all pure Python (docs/compiled.md).

:data:`COMPILED` is the one list of the modules ``setup.py`` compiles; a compiled module is
an extension module beside its ``.py`` source, which Python imports in its place.
"""

from __future__ import annotations

import importlib.util
from typing import Final

# The hot path of a request, strict-typed and slotted: parser glue, IPC framing and codec,
# response head serializer, dispatcher, WSGI environ and ASGI scope builders.
COMPILED: Final = (
    "swserve.protocol.chunked",
    "swserve.protocol.h11_parser",
    "swserve.protocol.head_checks",
    "swserve.protocol.limits",
    "swserve.protocol.parser",
    "swserve.protocol.request",
    "swserve.protocol.serializer",
    "swserve.protocol.syntax",
    "swserve.protocol.target",
    "swserve.ipc.codec",
    "swserve.ipc.framing",
    "swserve.reactor.dispatcher",
    "swserve.apps.asgi",
    "swserve.apps.wsgi",
)


def compiled_modules() -> list[str]:
    """The modules of :data:`COMPILED` that this interpreter imports compiled.

    Looked up, not imported (``--version`` stays cheap): the origin is the file an import
    loads, the extension module when one sits beside the source.
    """
    found = []
    for name in COMPILED:
        spec = importlib.util.find_spec(name)
        origin = (spec.origin if spec is not None else None) or ""
        if origin and not origin.endswith(".py"):
            found.append(name)
    return found


def describe() -> str:
    """``compiled (mypyc, 14 modules)``, ``pure Python``, or a partial build's count."""
    count = len(compiled_modules())
    if count == 0:
        return "pure Python"
    if count == len(COMPILED):
        return f"compiled (mypyc, {count} modules)"
    return f"partly compiled (mypyc, {count} of {len(COMPILED)} modules)"
