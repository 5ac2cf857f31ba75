"""Passes over one network's IR, each `pass_(graph, sink) -> graph`."""
