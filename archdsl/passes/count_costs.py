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
        return Cost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Cost)))


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
        op = OPS[item.op]
        # a param's or buffer's value is the tensor itself (parameter memory), read as a
        # view of it by every image: no activation
        held = 0 if item.op in ("parameter", "buffer") else numel(out) + op.workspace(item.args, ins)
        graph.nodes[item.name]["cost"] = Cost(
            op.params(item.args, ins), op.buffers(item.args, ins), op.macs(item.args, ins, out),
            op.other_ops(item.args, ins, out), held)
    for tie in ir.network(graph).ties:  # one tensor under two names: counted at its source
        cost = graph.nodes[tie.owner]["cost"]
        graph.nodes[tie.owner]["cost"] = Cost(cost.params - tie.numel, *(
            getattr(cost, f.name) for f in fields(Cost)[1:]))
    return graph


def total(graph: nx.DiGraph, *, train: bool = True) -> Cost:
    """Sum of all node costs; with train=False, train-only nodes (aux heads) are left out."""
    result = Cost()
    for item in ir.nodes(graph):
        if train or not item.train_only:
            result = result + graph.nodes[item.name].get("cost", Cost())
    return result
