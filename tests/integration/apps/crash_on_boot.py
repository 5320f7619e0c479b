"""Fails at import time, as a broken deployment would."""

raise RuntimeError("this app cannot start")
