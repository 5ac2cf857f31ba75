"""Pass: count each node's parameters, multiply-accumulates and activation size.

Conventions (docs/stats.md): one fused multiply-add = 1 MAC, counted for conv and linear
only, as torchvision's "GFLOPS" figures count them; bias additions are not counted.
Element-wise, pooling and normalisation work goes in `other_ops`, so nothing is silently
zero. `activations` is the number of elements of the node's output for one image, plus
what the layer holds inside for its backward pass (an attention matrix); a `param` or
`buffer` holds none (its value is the tensor, counted as parameter memory).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import networkx as nx

from .. import ir
from ..diagnostics import Sink
from ..ops import OPS, numel


@dataclass(frozen=True)
class Cost:
    params: int = 0
    buffers: int = 0  # non-trainable state, e.g. batch norm running statistics
    macs: int = 0
    other_ops: int = 0
    activations: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.params + other.params, self.buffers + other.buffers,
                    self.macs + other.macs, self.other_ops + other.other_ops,
                    self.activations + other.activations)


def count_costs(graph: nx.DiGraph, sink: Sink) -> nx.DiGraph:
    """Attach a `cost` to every node whose shape is known.

    >>> from archdsl import compile_source
    >>> graph = compile_source("network t { input x: 3 x 8 x 8; conv(4, 3) }").graph
    >>> graph.nodes["0"]["cost"]
    Cost(params=112, buffers=0, macs=3888, other_ops=0, activations=144)
    """
    for item in ir.nodes(graph):
        out = ir.shape(graph, item.name)
        ins = tuple(ir.shape(graph, name) for name in item.inputs)
        if out is None or None in ins:
            graph.nodes[item.name]["cost"] = Cost()
            continue
        graph.nodes[item.name]["cost"] = _cost(item.op, item.args, ins, out)
    for tie in ir.network(graph).ties:  # one tensor under two names: counted at its source
        cost = graph.nodes[tie.owner]["cost"]
        graph.nodes[tie.owner]["cost"] = Cost(cost.params - tie.numel, *(
            getattr(cost, f.name) for f in fields(Cost)[1:]))
    return graph


_KNOWN: dict = {}  # (op, args, input shapes, output shape) -> Cost: layers repeat


def _cost(name: str, args, ins: tuple, out) -> Cost:
    """A layer's cost, a function of its op, arguments and shapes alone (so remembered:
    the blocks of a network and the members of a search space repeat the same layers)."""
    try:
        key = (name, args, ins, out)
        known = _KNOWN.get(key)
    except TypeError:  # an argument that cannot be a key (a list)
        key = known = None
    if known is not None:
        return known
    op = OPS[name]
    # a param's or buffer's value is the tensor itself (parameter memory), read as a view
    # of it by every image: no activation
    held = 0 if name in ("parameter", "buffer") else numel(out) + op.workspace(args, ins)
    cost = Cost(op.params(args, ins), op.buffers(args, ins), op.macs(args, ins, out),
                op.other_ops(args, ins, out), held)
    if key is not None:
        if len(_KNOWN) > 100_000:
            _KNOWN.clear()
        _KNOWN[key] = cost
    return cost


def total(graph: nx.DiGraph, *, train: bool = True) -> Cost:
    """Sum of all node costs; with train=False, train-only nodes (aux heads) are left out."""
    result = Cost()
    for item in ir.nodes(graph):
        if train or not item.train_only:
            result = result + graph.nodes[item.name].get("cost", Cost())
    return result
