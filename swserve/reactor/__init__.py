"""Reactors: event loops that speak HTTP to clients and frames to workers."""
