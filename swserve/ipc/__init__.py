"""Reactor ↔ worker messages.  Framing and codec are sans-IO; the channels are thin shells."""
