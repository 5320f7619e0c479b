"""Logging: the error log's set-up (``setup.py``) and the access log (``access.py``)."""
