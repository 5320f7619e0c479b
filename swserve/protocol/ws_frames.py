"""Server data frames built once for many sessions (a broadcast), without the websockets
package: a reactor that only pushes need not import it."""

from __future__ import annotations


def server_head(text: bool, size: int) -> bytes:
    """The header of an unfragmented, unmasked server data frame of ``size`` payload bytes."""
    first = 0x81 if text else 0x82
    if size < 126:
        return bytes((first, size))
    if size < 65536:
        return bytes((first, 126)) + size.to_bytes(2, "big")
    return bytes((first, 127)) + size.to_bytes(8, "big")


def server_frame(text: bool, data: bytes) -> bytes:
    """One unfragmented, unmasked server data frame: what :meth:`WebSocketCore.send` writes
    for a session without extensions, built once for many sessions (a broadcast)."""
    return server_head(text, len(data)) + data
