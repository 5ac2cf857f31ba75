"""Backends: pure functions from a checked IR to text (tables, DOT) or a torch module."""
