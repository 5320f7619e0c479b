"""WhiteNoise (the usual way to serve Django's static files without nginx) over a hello app,
for loadtests/static_files.py: /static/ is served from $STATIC_DIR."""

from __future__ import annotations

import os

from whitenoise import WhiteNoise

from loadtests.apps.hello_wsgi import app as hello

app = WhiteNoise(hello, root=os.environ["STATIC_DIR"], prefix="static/")
