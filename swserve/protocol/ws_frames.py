"""Server data frames built once for many sessions (a broadcast), without the websockets
package: a reactor that only pushes need not import it."""

from __future__ import annotations


def server_frame(text: bool, data: bytes) -> bytes:
    """One unfragmented, unmasked server data frame: what :meth:`WebSocketCore.send` writes
    for a session without extensions, built once for many sessions (a broadcast)."""
    size = len(data)
    first = 0x81 if text else 0x82
    if size < 126:
        head = bytes((first, size))
    elif size < 65536:
        head = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, 127)) + size.to_bytes(8, "big")
    return head + data
