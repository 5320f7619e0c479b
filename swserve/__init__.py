"""swserve: a production application server for Python WSGI and ASGI apps.

It follows Swoole's process model: a master whose reactors own every client
connection, a manager that supervises workers, and workers that run the app.
Internal modules never import from this package's ``__init__``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
