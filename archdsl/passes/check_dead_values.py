"""Pass: refuse values that reach no output.

A layer whose output no output depends on would be counted by `check` and `stats` but
never built: the lowered module computes only what its outputs need. So it is an error,
E0220, reported once per dead end (the last layer of a chain that leads nowhere), with
the first layer of that chain and how to keep or drop it. Auxiliary heads are outputs,
so their layers are live.
"""
from __future__ import annotations

import networkx as nx

from .. import ir
from ..diagnostics import Diagnostic, Label, Sink


def check_dead_values(graph: nx.DiGraph, sink: Sink) -> nx.DiGraph:
    """Report every node that no output depends on.

    >>> from archdsl import compile_source
    >>> result = compile_source("network t { input x: 3 x 8 x 8; a: conv(4, 3); conv(4, 3); add(a, a) }")
    >>> [(d.code, d.message) for d in result.diagnostics]
    [('E0220', 'the output of `0` (conv) is never used')]
    """
    live = _live(graph)
    dead = [n for n in graph if n not in live]
    for end in (n for n in dead if not any(s not in live for s in graph.successors(n))):
        sink.add(_dead_end(graph, end, live))
    return graph


def _live(graph: nx.DiGraph) -> set[str]:
    live = set()
    for out in ir.network(graph).outputs:
        if out.node not in live:
            live |= nx.ancestors(graph, out.node) | {out.node}
    return live


def _dead_end(graph: nx.DiGraph, end: str, live: set[str]) -> Diagnostic:
    node = ir.node(graph, end)
    if node.op == "input":
        return Diagnostic("E0220", f"input `{end}` is never used", Label(node.span, "not used"),
                          help="continue from it with `from " + end + "`, or remove the input")
    if node.op in ("parameter", "buffer"):
        return Diagnostic("E0220", f"{node.op} `{end}` is never used",
                          Label(node.span, "not used"),
                          help=f"read it by name where it belongs (e.g. `add(tokens, "
                               f"{end.rsplit('.', 1)[-1]})`), or remove it")
    start = _chain_start(graph, end, live)
    secondary = ()
    if start != end:
        first = ir.node(graph, start)
        secondary = (Label(first.span, f"the unused chain starts at `{start}` ({first.op})"),)
    return Diagnostic(
        "E0220", f"the output of `{end}` ({node.op}) is never used", Label(node.span, "goes nowhere"),
        secondary, tuple(str(frame) for frame in reversed(node.trace)),
        help="make it an output (label it and add `output NAME`), use it (e.g. in `add(a, "
             "NAME)`), or delete it; to go on from an earlier value, write `from NAME`")


def _chain_start(graph: nx.DiGraph, end: str, live: set[str]) -> str:
    """Walk back from `end` through dead single-input layers to where the chain began."""
    current = end
    while True:
        dead_inputs = [p for p in ir.node(graph, current).inputs if p not in live]
        if len(set(dead_inputs)) != 1:
            return current
        current = dead_inputs[0]
