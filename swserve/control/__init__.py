"""The control plane seen from outside: the socket's protocol, its location, ``swserve ctl``/``top``."""
