"""Pass: refuse indices that can reach past what they index.

Indices made inside the network have a known range: `argmax` and `topk(..., indices =
true)` along an axis of n entries give 0 .. n - 1, a relative position index buffer the
rows of its table, `one_hot` 0 and 1; reshapes, slices, transposes, concatenation and
choices keep the range of what they move. Where such indices look something up
(`embedding`, `one_hot`, `index_select`, `gather`, `scatter_add`, `routed_linear`) and can
reach past its entries, torch would fail at run time (or, on a GPU, read out of bounds):
E0313, with where the indices were made. Token ids that come from an input are the
user's to keep in range; they are not checked here.
"""
from __future__ import annotations

import networkx as nx

from .. import ir
from ..diagnostics import Diagnostic, Label, Sink
from ..ops.io import BUFFER_INITS

# ops whose integer output holds entries of their integer operands, unchanged
_MOVING = {"reshape", "transpose", "permute", "slice", "take", "concat", "flatten", "roll",
           "chunk", "identity", "topk", "amax", "amin"}
_CHOOSING = {"gather": (0,), "index_select": (0,), "where": (1, 2)}  # operands moved


def _made(graph: nx.DiGraph, item: ir.Node) -> int | None:
    """One more than the largest value the node's integer output may hold, or None."""
    shape = ir.shape(graph, item.name)
    if shape is None or shape.dtype != "int":
        return None
    if item.op == "argmax" or (item.op == "topk" and item.args["indices"]):
        source = ir.shape(graph, item.inputs[0])
        return source[item.args["axis"]]
    if item.op == "buffer" and BUFFER_INITS[item.args["init"]][0] == "int":
        return (2 * item.args["height"] - 1) * (2 * item.args["width"] - 1)
    if item.op == "one_hot":
        return 2
    return None


def index_bounds(graph: nx.DiGraph) -> dict[str, tuple[int, str]]:
    """{node: (bound, the node that made the indices)} for every integer value whose
    range is known: its values lie in 0 .. bound - 1.

    >>> from archdsl import compile_source
    >>> graph = compile_source("network t { input x: 6 x 10 as tokens; "
    ...                        "i: argmax; reshape(2, 3) }").graph
    >>> index_bounds(graph)[list(graph)[-1]]
    (10, 'i')
    """
    bounds: dict[str, tuple[int, str]] = {}
    for item in ir.nodes(graph):
        made = _made(graph, item)
        if made is not None:
            bounds[item.name] = (made, item.name)
            continue
        moved = (range(len(item.inputs)) if item.op in _MOVING
                 else _CHOOSING.get(item.op, ()))
        known = [bounds.get(item.inputs[i]) for i in moved if i < len(item.inputs)]
        shape = ir.shape(graph, item.name)
        if known and None not in known and shape is not None and shape.dtype == "int":
            bounds[item.name] = max(known)
    return bounds


def _limit(graph: nx.DiGraph, item: ir.Node) -> tuple[int, int, str] | None:
    """(operand holding indices, how many entries they may pick from, what those are)."""
    shape = ir.shape
    if item.op in ("embedding", "one_hot"):
        return 0, item.args["num"], f"its {item.args['num']} " + (
            "rows" if item.op == "embedding" else "classes")
    if item.op in ("index_select", "gather", "scatter_add"):
        size = shape(graph, item.inputs[0])[item.args["axis"]]
        return 1, size, f"the {size} entries of axis {item.args['axis']}"
    if item.op == "routed_linear":
        experts = shape(graph, item.inputs[1])[0]
        return 2, experts, f"its {experts} experts"
    return None


def check_indices(graph: nx.DiGraph, sink: Sink) -> nx.DiGraph:
    """E0313 where indices made in the network can reach past what they look up.

    >>> from archdsl import compile_source
    >>> text = "network t { input x: 6 x 10 as tokens; argmax; embedding(8, 4) }"
    >>> [d.code for d in compile_source(text).diagnostics]
    ['E0313']
    """
    bounds = index_bounds(graph)
    if not bounds:  # no indices made inside (a vision network): nothing to check
        return graph
    for item in ir.nodes(graph):
        limit = _limit(graph, item)
        if limit is None or item.inputs[limit[0]] not in bounds:
            continue
        at, count, what = limit
        bound, maker = bounds[item.inputs[at]]
        if bound > count:
            made = ir.node(graph, maker)
            sink.add(Diagnostic(
                "E0313", f"`{item.op}` picks from {what}, but its indices from `{maker}` "
                         f"({made.op}) reach {bound - 1}",
                Label(item.span, f"indices up to {bound - 1} used here"),
                (Label(made.span, f"indices 0 to {bound - 1} made here"),),
                tuple(str(frame) for frame in reversed(item.trace)),
                help=f"pick from at least {bound} entries, or make indices below {count}"))
    return graph
