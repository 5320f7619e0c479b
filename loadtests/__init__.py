"""Load-test harness for swserve (not part of the installed package; see README.md)."""
