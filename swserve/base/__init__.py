"""Base mode (Swoole's SWOOLE_BASE): a worker that is its own reactor.

It sits above both ``reactor/`` and ``worker/``: it runs the reactor's connection
code and the worker's app adapters in one process."""
