"""The master: listeners, signals and reactors.  It never runs application code."""
