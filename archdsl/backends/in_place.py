"""Which layers write into their input instead of new memory, decided once for the
lowering (lower_fx) and the memory plan (plan_memory): as torchvision's layers do, an
activation overwrites its input, and a residual sum its first operand, when nothing else
reads that value and the layer that made it does not need it for its backward pass.
Less memory and memory traffic, the same results."""
from __future__ import annotations

import networkx as nx

from .. import ir
from ..ops import OPS


def activations_in_place(graph: nx.DiGraph) -> set[str]:
    """The activations that overwrite their input (`nn.ReLU(inplace=True)`)."""
    chosen = set()
    for item in ir.nodes(graph):
        in_place = OPS[item.op].in_place
        if callable(in_place):
            in_place = in_place(item.args)
        if in_place and overwritable(graph, item.inputs[0]):
            chosen.add(item.name)
    return chosen


def overwritable(graph: nx.DiGraph, name: str) -> bool:
    """Whether a reader may overwrite the value `name`: it is read once, is no output,
    and the layer that made it does not need it for its backward pass."""
    return (OPS[ir.node(graph, name).op].overwritable and graph.out_degree(name) == 1
            and name not in {o.node for o in ir.network(graph).outputs})


def sums_in_place(graph: nx.DiGraph) -> set[str]:
    """The two-operand adds that may write into their first operand, as torchvision's
    residual blocks do (`out += identity`): one large tensor less per block."""
    return {item.name for item in ir.nodes(graph)
            if item.op == "add" and len(item.inputs) == 2 and item.inputs[0] != item.inputs[1]
            and item.args["constant"] is None and overwritable(graph, item.inputs[0])
            and ir.shape(graph, item.inputs[0]) == ir.shape(graph, item.name)
            and len(ir.shape(graph, item.inputs[1])) == len(ir.shape(graph, item.name))}
