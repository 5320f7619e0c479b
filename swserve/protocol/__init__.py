"""Sans-IO HTTP/1.1: bytes in, requests out; response heads out as bytes.

No sockets, no asyncio, no clock: the shells pass in whatever they need.
"""
