"""Static files served without a worker, and file responses that skip the IPC socket.

- ``resolve.py``: sans-IO: request target → file path, and file → response decision;
- ``files.py``: opening a file safely (inside the root, regular, not a dotfile);
- ``serve.py``: the connection side: answering ``--static`` and streaming file bodies;
- ``handoff.py``: an app's file response, as a descriptor passed to the reactor.
"""
