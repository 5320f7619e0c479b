"""Prometheus metrics, /healthz and /readyz (``--metrics-bind``).

``requests`` and ``exposition`` are sans-IO cores: request counters any
process can own, a snapshot that is a plain ``dict[str, int]`` merged by
addition, and the text-format rendering.  ``collect`` reads the master's
state into a snapshot; ``endpoint`` is the small asyncio server on the
master's loop.  See docs/metrics.md for why this is not prometheus_client.
"""
