"""Network pieces every role may use: listening sockets, TLS contexts, proxy headers.
Imports no role package."""
