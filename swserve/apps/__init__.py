"""Adapters between swserve requests and the WSGI and ASGI interfaces."""
