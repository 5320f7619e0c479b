"""A WSGI app that reads its version from a file at import time.

The test rewrites the file and reloads: new workers must serve the new
version.  VERSION_FILE comes from the environment; a version of "broken"
makes the import fail, as a bad deploy would.
"""

from __future__ import annotations

import os
import time

with open(os.environ["VERSION_FILE"]) as f:
    VERSION = f.read().strip()

if VERSION == "broken":
    raise RuntimeError("this deploy is broken")
if os.environ.get("IMPORT_DELAY"):
    time.sleep(float(os.environ["IMPORT_DELAY"]))  # a slow import: replacements take a while


def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.2)
    if environ["PATH_INFO"] == "/forever":
        time.sleep(3600)
    body = f"{VERSION} {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
