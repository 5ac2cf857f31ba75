"""The IR: a networkx.DiGraph with one node per primitive op. Schema in docs/ir.md.

Graph attributes (`graph.graph[...]`):
    name     network name
    source   path of the file that defines it
    params   resolved network parameters, {name: value}
    inputs   tuple of input node names, in declaration order
    outputs  tuple of `Output`, main output first
    calls    {scope name: names of the blocks called directly in that scope, in order}
    work     steps elaboration took (statements, block calls, repeat iterations)

Node attributes (`graph.nodes[name][...]`), keyed by the node's hierarchical name:
    node     the frozen `Node` payload (op, args, ordered inputs, span, block trace)
    shape    output shape without batch, set by infer_shapes (None where it failed)
    cost     `Cost`, set by count_costs

Edges run producer -> consumer; `operands` lists the positions the producer fills in the
consumer's ordered inputs (a value may feed one merge twice). Node insertion order is a
topological order: every node is added after its inputs.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import networkx as nx

from .errors import InternalError
from .ops import OPS, REQUIRED, Args, show
from .lang.source import Span


@dataclass(frozen=True)
class Frame:
    """One block expansion on the way to a node: which block, called from where."""
    block: str
    call: Span

    def __str__(self) -> str:
        return f"in `{self.block}` called at {self.call}"


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    args: Args
    inputs: tuple[str, ...]
    span: Span
    trace: tuple[Frame, ...] = ()
    train_only: bool = False
    role: str = ""  # "residual" for the add that closes a residual, "skip" for its projection
    condition: Span | None = None  # a residual's `skip ... when` condition that was false


@dataclass(frozen=True)
class Output:
    name: str
    node: str
    span: Span
    train_only: bool = False
    weight: float = 1.0


SOURCE_OPS = ("input", "parameter")  # the ops that take no value


def new_graph(name: str, params: dict, source: str = "<string>") -> nx.DiGraph:
    return nx.DiGraph(name=name, source=source, params=dict(params), inputs=(), outputs=(),
                      calls={}, work=0)


def add_node(graph: nx.DiGraph, node: Node) -> None:
    graph.add_node(node.name, node=node)
    for position, producer in enumerate(node.inputs):
        if graph.has_edge(producer, node.name):
            graph.edges[producer, node.name]["operands"] += (position,)
        else:
            graph.add_edge(producer, node.name, operands=(position,))


def node(graph: nx.DiGraph, name: str) -> Node:
    return graph.nodes[name]["node"]


def nodes(graph: nx.DiGraph):
    """All Node payloads in topological (insertion) order."""
    return (data["node"] for _, data in graph.nodes(data=True))


def shape(graph: nx.DiGraph, name: str):
    return graph.nodes[name].get("shape")


def describe_scope(graph: nx.DiGraph, name: str, members: list[str]) -> str:
    """What a scope holds, in the vocabulary of its blocks: `bottleneck x6`, `inception`,
    or else `N layers`. `members` are the names of its nodes."""
    calls = graph.graph["calls"]
    direct = calls.get(name)
    if not direct:  # e.g. a labelled repeat: each iteration calls one block
        children = {m[len(name) + 1:].split(".")[0] for m in members}
        per_child = [calls.get(f"{name}.{child}") for child in sorted(children)]
        if all(c and len(c) == 1 for c in per_child):
            direct = tuple(c[0] for c in per_child)
    if direct:
        counts = Counter(direct)
        return ", ".join(b if n == 1 else f"{b} x{n}" for b, n in counts.items())
    return f"{len(members)} layers"


def format_args(node: Node) -> str:
    """Arguments that differ from the op's defaults, as `name=value`."""
    defaults = {arg.name: arg.default for arg in OPS[node.op].args}
    parts = []
    for key, value in node.args:
        if defaults.get(key, REQUIRED) is REQUIRED or defaults[key] != value:
            parts.append(f"{key}={_format_value(value)}")
    return ", ".join(parts)


def _format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        items = ", ".join(_format_value(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    return str(value)


def dump(graph: nx.DiGraph) -> str:
    """A deterministic text form of the IR, one line per node.

    >>> from archdsl import compile_source
    >>> print(dump(compile_source("network t { input x: 3 x 8 x 8; conv(4, 3) }").graph))
    network t()
    x = input(shape=(3, 8, 8)) : 3x8x8  # <string>:1:13
    0 = conv(channels=4, kernel=3)(x) : 4x6x6  # <string>:1:33
    output out = 0
    """
    params = ", ".join(f"{k}={_format_value(v)}" for k, v in graph.graph["params"].items())
    lines = [f"network {graph.graph['name']}({params})"]
    for item in nodes(graph):
        operands = f"({', '.join(item.inputs)})" if item.inputs else ""
        value = shape(graph, item.name)
        where = f"{item.span}" + "".join(f" <- {f.block}@{f.call}" for f in reversed(item.trace))
        flag = " [train]" if item.train_only else ""
        lines.append(f"{item.name} = {item.op}({format_args(item)}){operands}"
                     f" : {show(value) if value else '?'}{flag}  # {where}")
    for out in graph.graph["outputs"]:
        extra = f" [train, weight={out.weight}]" if out.train_only else ""
        lines.append(f"output {out.name} = {out.node}{extra}")
    return "\n".join(lines)


def lint(graph: nx.DiGraph) -> None:
    """Check the IR's invariants; raises InternalError (a bug in archdsl, never in the
    spec): known ops, inputs before their consumers, operand counts, edges that record
    exactly the nodes' ordered inputs, outputs and inputs that name input nodes.

    >>> from archdsl import compile_source
    >>> lint(compile_source("network t { input x: 3; linear(2) }").graph)
    """
    seen = set()
    for item in nodes(graph):
        _require(item.op in OPS, f"{item.name}: unknown op {item.op}")
        _require(all(i in seen for i in item.inputs), f"{item.name}: an input comes after it")
        _require(OPS[item.op].merge or len(item.inputs) == (item.op not in SOURCE_OPS),
                 f"{item.name}: {len(item.inputs)} inputs for {item.op}")
        positions: dict[str, tuple[int, ...]] = {}
        for position, producer in enumerate(item.inputs):
            positions[producer] = positions.get(producer, ()) + (position,)
        edges = {p: graph.edges[p, item.name]["operands"] for p in graph.predecessors(item.name)}
        _require(edges == positions, f"{item.name}: edges {edges} disagree with inputs {positions}")
        seen.add(item.name)
    for out in graph.graph["outputs"]:
        _require(out.node in seen, f"output {out.name} names no node")
    for name in graph.graph["inputs"]:
        _require(node(graph, name).op == "input", f"input {name} is not an input node")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InternalError(f"IR invariant broken: {message}")
