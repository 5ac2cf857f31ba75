"""Pass: whether a network whose input sizes are symbols (`input ids: L <= 2048 as
token_ids`) holds at other values of them, as the module built for one value is to run at
any other.

The network is checked at each symbol's value (`--set`, else its bound). This pass
elaborates it once more with every symbol halved and compares: a layer whose arguments or
parameter count change with a size is built for that size only (W0300: a `reshape` to the
length, a position embedding of one row per token, a linear layer after flattening a
map), and a network that does not check at the halved sizes is said to hold at the chosen
ones only (W0301). Neither is an error: a network may well be meant for one size.
"""
from __future__ import annotations

from collections.abc import Callable

import networkx as nx

from .. import ir
from ..diagnostics import Diagnostic, Label, Sink
from ..ops import OPS

MAX_WARNINGS = 5  # the first layers that fix a size say enough


def check_sizes(graph: nx.DiGraph, elaborate_at: Callable[[dict, Sink], nx.DiGraph],
                sink: Sink) -> None:
    """Warn where the network is built for its symbols' values only.

    >>> from archdsl import compile_source
    >>> text = "network t { input x: L <= 8 as token_ids; embedding(9, 4); reshape(L, 2, 2) }"
    >>> [d.code for d in compile_source(text).diagnostics]
    ['W0300']
    """
    sizes = ir.network(graph).sizes
    other = {name: value // 2 for name, (value, _) in sizes.items() if value >= 2}
    if not other:
        return
    at = ", ".join(f"{name} = {value}" for name, (value, _) in sizes.items())
    halved = ", ".join(f"{name} = {value}" for name, value in other.items())
    scratch = Sink()
    second = elaborate_at(other, scratch)
    problems = [d for d in scratch.items if d.severity == "error"]
    if not ir.nodes(second) or problems:
        first = next(iter(ir.network(graph).inputs), None)
        span = ir.node(graph, first).span if first else None
        if span is not None and problems:
            failure = problems[0]
            sink.add(Diagnostic(
                "W0301", f"the network is checked at {at}; at {halved}: {failure.message}",
                Label(span, "sizes declared here"),
                (Label(failure.primary.span, f"fails here at {halved}"),),
                help="the module runs at the checked sizes; try others with `--set`",
                severity="warning"))
        return
    _mark_following_axes(graph, second)
    changed = [(item, change) for item, other_item in _pairs(graph, second)
               for change in [_change(graph, second, item, other_item)] if change]
    for item, change in changed[:MAX_WARNINGS]:
        sink.add(_fixed(item, at, halved, change))


def _mark_following_axes(graph: nx.DiGraph, second: nx.DiGraph) -> None:
    """Record in each value's shape the axes whose size changes with the symbols
    (`Shape.follows`): a sequence's positions, which `positions` counts on from a KV
    cache's length while a language model generates."""
    for name in graph.nodes:
        if name in second:
            here, there = ir.shape(graph, name), ir.shape(second, name)
            if here is not None and there is not None and len(here) == len(there):
                graph.nodes[name]["shape"] = here.following(
                    axis for axis, (a, b) in enumerate(zip(here, there)) if a != b)


def _pairs(graph: nx.DiGraph, second: nx.DiGraph):
    for item in ir.nodes(graph):
        if item.name in second:
            other = ir.node(second, item.name)
            if other.op == item.op:
                yield item, other


def _change(graph, second, item: ir.Node, other: ir.Node) -> str | None:
    """What the layer would be at the other sizes, where its arguments or parameter
    count differ; None where they do not."""
    op = OPS[item.op]
    if item.op == "input":
        return None
    if item.args != other.args:
        return f"it would be `{op.describe(other.args)}`, not `{op.describe(item.args)}`"
    ins = tuple(ir.shape(graph, name) for name in item.inputs)
    other_ins = tuple(ir.shape(second, name) for name in other.inputs)
    if None in ins or None in other_ins:
        return None
    params, other_params = op.params(item.args, ins), op.params(other.args, other_ins)
    if params != other_params:
        return f"it would hold {other_params:,} parameters, not {params:,}"
    return None


def _fixed(item: ir.Node, at: str, halved: str, change: str) -> Diagnostic:
    help_text = {
        "reshape": "write -1 for the size that follows the input, `reshape(-1, ...)`: the "
                   "module then runs at any size",
        "parameter": "a learned value has one size; a position encoding computed from "
                     "`positions` follows the length",
    }.get(item.op, "the built module runs at the checked sizes only")
    return Diagnostic("W0300", f"`{item.name}` ({item.op}) is built for {at} only: at "
                      f"{halved} {change}", Label(item.span, "fixed here"),
                      notes=tuple(str(frame) for frame in reversed(item.trace)),
                      help=help_text, severity="warning")
