"""Process plumbing shared by every role: signals, titles, daemon, privileges, chroot,
CPU affinity, malloc tuning, the event-loop factory, the --reload watcher, and the
master's start-up settings (``setup.py``).  Imports no role package."""
