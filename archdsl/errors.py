"""Errors that are not about a spec: how archdsl was called, and archdsl's own bugs.

Spec errors are diagnostics (archdsl.diagnostics); these are the other two kinds, each
with its own exit status in the command line.
"""
from __future__ import annotations


class UsageError(Exception):
    """A mistake in how archdsl was called (not in the spec): a bad flag, a missing or
    unreadable file, an unwritable output, unusable data. Exit status 2."""


class InternalError(Exception):
    """A broken invariant: a bug in archdsl, never the user's input. Exit status 70."""
