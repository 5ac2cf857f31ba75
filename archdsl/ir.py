"""The IR: a networkx.DiGraph with one node per primitive op, and a typed record of the
network beside it. Schema in docs/ir.md.

`network(graph)` is the `Network` record: name, source, parameters, inputs, outputs, the
elaboration's work, and the scope tree — every labelled group, block call, repeat and
iteration the elaborator opened, with its path, kind, span, repeat index and the block
instances called in it. Backends read the hierarchy from it (`scope_of`, `children`,
`ancestors`, `members`, `instances`), never from the dots of node names.

Node attributes (`graph.nodes[name][...]`), keyed by the node's hierarchical name:
    node     the frozen `Node` payload (op, args, ordered inputs, span, block trace, scope)
    shape    output shape without batch, set by infer_shapes (None where it failed)
    cost     `Cost`, set by count_costs

Edges run producer -> consumer; `operands` lists the positions the producer fills in the
consumer's ordered inputs (a value may feed one merge twice). Node insertion order is a
topological order: every node is added after its inputs.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

import networkx as nx

from .errors import InternalError
from .ops import OPS, REQUIRED, Args, show
from .source import Span, format_value


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
    scope: str = ""  # the path of the scope the node is named in ("" the network's)


@dataclass(frozen=True)
class Output:
    name: str
    node: str
    span: Span
    train_only: bool = False
    weight: float = 1.0


@dataclass(frozen=True)
class Tie:
    """`tie lm_head.weight = embed_tokens.weight`: the learned tensor `target` (a key of the
    state_dict, held by the node `owner`) is the tensor `source`; `numel` its size. In
    the built module the target is the attribute `attribute` of the module at `holder`
    (the layer, or for a `param` the scope holding it)."""
    target: str
    owner: str
    source: str
    numel: int
    holder: str
    attribute: str


@dataclass(frozen=True)
class Call:
    """One block instance: which block, with which arguments, called where, and the
    block's caption (`block mha(h) as "Multi-Head Attention"`), if it has one."""
    block: str
    args: tuple[tuple[str, Any], ...]
    span: Span
    caption: str | None = None

    @property
    def title(self) -> str:
        """What figures and tables call the instance: the caption, else the block's name."""
        return self.caption or self.block


# What opened a scope: the network itself; a label on a group `{ ... }`, a block call, a
# repeat, a residual, a merge with branches or an aux head; one iteration of a labelled
# repeat; a labelled branch of a merge; a labelled projection of a residual.
SCOPE_KINDS = ("network", "group", "block", "repeat", "residual", "merge", "aux", "iteration",
               "branch", "skip")


@dataclass(frozen=True)
class Scope:
    """A level of the hierarchy: the nodes named `path.*`. `calls` are the block instances
    called directly in it, in order (a labelled repeat's iterations each hold their own)."""
    path: str
    kind: str
    span: Span | None
    parent: str | None  # None for the network's own scope, whose path is ""
    index: int | None = None  # an iteration's number
    calls: tuple[Call, ...] = ()
    declared: tuple[str, ...] = ()  # labels `declare`d here: first in the state_dict, in
    # this order

    @property
    def label(self) -> str:
        """The last part of the path: `layer2.1` is `1`."""
        return self.path[len(self.parent) + 1:] if self.parent else self.path


@dataclass(frozen=True)
class Network:
    """Everything about a network that is not one node."""
    name: str
    source: str = "<string>"  # path of the file that defines it
    params: Mapping[str, Any] = field(default_factory=dict)  # resolved, after --set
    inputs: tuple[str, ...] = ()  # input node names, in declaration order
    outputs: tuple[Output, ...] = ()  # main output first, then auxiliary heads
    scopes: Mapping[str, Scope] = field(default_factory=dict)  # by path, parents first
    work: int = 0  # elaboration steps taken (statements, block calls, repeat iterations)
    sizes: Mapping[str, tuple[int, int | None]] = field(default_factory=dict)  # input size
    # symbols (`input ids: L <= 2048`): the value checked at, and the bound
    ties: tuple[Tie, ...] = ()  # tensors that are another's (weight tying), in spec order
    caption: str | None = None  # the author's title (`network resnet18 as "18-layer"`)
    captions: Mapping[str, str] = field(default_factory=dict)  # a labelled stage's or
    # layer's words, by its name (`layer1 as "conv2_x": ...`)

    @property
    def title(self) -> str:
        """What figures and tables call the network: its caption, else its name."""
        return self.caption or self.name


SOURCE_OPS = ("input", "parameter", "buffer")  # the ops that take no value


def new_graph(record: Network) -> nx.DiGraph:
    graph = nx.DiGraph()
    set_network(graph, record)
    return graph


def set_network(graph: nx.DiGraph, record: Network) -> None:
    frozen = Network(record.name, record.source, MappingProxyType(dict(record.params)),
                     tuple(record.inputs), tuple(record.outputs),
                     MappingProxyType(dict(record.scopes)), record.work,
                     MappingProxyType(dict(record.sizes)), tuple(record.ties), record.caption,
                     MappingProxyType(dict(record.captions)))
    graph.graph.clear()
    graph.graph["network"] = frozen


def network(graph: nx.DiGraph) -> Network:
    """The network's record.

    >>> from archdsl import compile_source
    >>> record = network(compile_source("network t(c = 4) { input x: 3; linear(c) }").graph)
    >>> record.name, dict(record.params), record.inputs, [o.name for o in record.outputs]
    ('t', {'c': 4}, ('x',), ['out'])
    """
    return graph.graph["network"]


# ---- the scope tree -------------------------------------------------------------------


def scope_of(graph: nx.DiGraph, name: str) -> Scope:
    """The scope node `name` is named in.

    >>> from archdsl import compile_file
    >>> graph = compile_file("specs/resnet18.arch").graph
    >>> scope = scope_of(graph, "layer2.1.conv1")
    >>> scope.path, scope.kind, scope.index, [c.block for c in scope.calls]
    ('layer2.1', 'iteration', 1, ['basic'])
    """
    return network(graph).scopes[node(graph, name).scope]


def scope(graph: nx.DiGraph, path: str) -> Scope | None:
    return network(graph).scopes.get(path)


def children(graph: nx.DiGraph, path: str) -> tuple[Scope, ...]:
    """The scopes directly inside scope `path`, in the order they were opened."""
    return tuple(s for s in network(graph).scopes.values() if s.parent == path)


def ancestors(graph: nx.DiGraph, path: str) -> tuple[str, ...]:
    """The paths of the scopes that hold scope `path`, outermost first, the network's ""
    left out, `path` itself last (empty for the network's own scope)."""
    scopes = network(graph).scopes
    chain = []
    while path:
        chain.append(path)
        path = scopes[path].parent
    return tuple(reversed(chain))


def scopes_of(graph: nx.DiGraph, name: str) -> tuple[str, ...]:
    """`ancestors` of the node's scope: every scope the node is inside, outermost first."""
    return ancestors(graph, node(graph, name).scope)


def parent(graph: nx.DiGraph, name: str) -> str:
    """The path of the scope holding `name`, a node or a scope ("" at the top)."""
    if name in graph:
        return node(graph, name).scope
    return network(graph).scopes[name].parent or ""


def caption(graph: nx.DiGraph, name: str) -> str | None:
    """The author's words for a labelled stage or layer (`layer1 as "conv2_x": ...`), if
    given: by the scope's path or the layer's name."""
    return network(graph).captions.get(name)


def recaptioned(graph: nx.DiGraph, words: Mapping[str, str]) -> nx.DiGraph:
    """A copy of `graph` with the author's words given from outside the spec (`render
    --caption layer1=conv2_x`): the network's name sets its title, a scope's path or a
    layer's name its caption; names that are none of these are ignored (see
    `captionable`); `graph` itself where there are no words."""
    if not words:
        return graph
    record = network(graph)
    copy = graph.copy()
    own = {k: v for k, v in words.items() if k != record.name and captionable(graph, k)}
    set_network(copy, replace(record, caption=words.get(record.name, record.caption),
                              captions={**record.captions, **own}))
    return copy


def captionable(graph: nx.DiGraph, name: str) -> bool:
    """Whether `name` is the network's, a scope's path or a layer's name."""
    record = network(graph)
    return name == record.name or (bool(name) and name in record.scopes) or name in graph


def label(graph: nx.DiGraph, name: str) -> str:
    """The last part of a node's name or a scope's path: `conv1` of `layer1.0.conv1`."""
    held = parent(graph, name)
    return name[len(held) + 1:] if held else name


def labels(graph: nx.DiGraph, name: str) -> tuple[str, ...]:
    """The parts of a node's name or a scope's path, outermost first: the torch module
    path `layer1.0.conv1` is `("layer1", "0", "conv1")`."""
    chain = ancestors(graph, parent(graph, name)) + (name,)
    return tuple(label(graph, path) for path in chain)


def outermost(graph: nx.DiGraph, name: str) -> str:
    """The top-level scope holding a node or a scope (the stage), or `name` itself."""
    chain = ancestors(graph, parent(graph, name))
    return chain[0] if chain else name


def members(graph: nx.DiGraph, path: str) -> list[str]:
    """The names of the nodes inside scope `path` (its sub-scopes included), in order."""
    if not path:
        return list(graph)
    return [item.name for item in nodes(graph) if path in scopes_of(graph, item.name)]


def instances(graph: nx.DiGraph, block: str) -> tuple[tuple[str, Call], ...]:
    """Every instance of `block`: (path of the scope it was called in, the call)."""
    return tuple((s.path, c) for s in network(graph).scopes.values() for c in s.calls
                 if c.block == block)


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
    held = scope(graph, name)
    direct = tuple(c.title for c in held.calls) if held is not None else ()
    if held is not None and held.kind == "block":  # a labelled call: the block called, not
        direct = direct[:1]  # the blocks it calls without labels
    if not direct and held is not None:  # e.g. a labelled repeat: each iteration calls one
        # block; a U-Net level, `resnets.0`, `attentions.0`, ...: the blocks of each group
        direct = tuple(call.title for call in calls_within(graph, name))
    if direct:
        counts = Counter(direct)
        return ", ".join(b if n == 1 else f"{b} x{n}" for b, n in counts.items())
    return f"{len(members)} layers"


def calls_within(graph: nx.DiGraph, path: str) -> list[Call]:
    """The block calls in the scopes inside `path`, outermost first: a scope's own calls,
    else those of the scopes inside it."""
    found = []
    for child in children(graph, path):
        if child.kind == "block":  # a labelled call: the block called, not those it calls
            found.extend(child.calls[:1])
        else:
            found.extend(child.calls or calls_within(graph, child.path))
    return found


def format_args(node: Node) -> str:
    """Arguments that differ from the op's defaults, as `name=value`."""
    defaults = {arg.name: arg.default for arg in OPS[node.op].args}
    parts = []
    for key, value in node.args:
        if defaults.get(key, REQUIRED) is REQUIRED or defaults[key] != value:
            parts.append(f"{key}={format_value(value)}")
    return ", ".join(parts)


def dump(graph: nx.DiGraph) -> str:
    """A deterministic text form of the IR, one line per node.

    >>> from archdsl import compile_source
    >>> print(dump(compile_source("network t { input x: 3 x 8 x 8; conv(4, 3) }").graph))
    network t()
    x = input(shape=(3, 8, 8)) : 3x8x8  # <string>:1:13
    0 = conv(channels=4, kernel=3)(x) : 4x6x6  # <string>:1:33
    output out = 0
    """
    record = network(graph)
    params = ", ".join(f"{k}={format_value(v)}" for k, v in record.params.items())
    title = f' as "{record.caption}"' if record.caption else ""
    lines = [f"network {record.name}({params}){title}"]
    for item in nodes(graph):
        operands = f"({', '.join(item.inputs)})" if item.inputs else ""
        value = shape(graph, item.name)
        where = f"{item.span}" + "".join(f" <- {f.block}@{f.call}" for f in reversed(item.trace))
        flag = " [train]" if item.train_only else ""
        lines.append(f"{item.name} = {item.op}({format_args(item)}){operands}"
                     f" : {show(value) if value else '?'}{flag}  # {where}")
    for out in record.outputs:
        extra = f" [train, weight={out.weight}]" if out.train_only else ""
        lines.append(f"output {out.name} = {out.node}{extra}")
    lines += [f'caption {name} = "{words}"' for name, words in record.captions.items()]
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
    record = network(graph)
    for out in record.outputs:
        _require(out.node in seen, f"output {out.name} names no node")
    for name in record.inputs:
        _require(node(graph, name).op == "input", f"input {name} is not an input node")
    _lint_scopes(graph, record)


def _lint_scopes(graph: nx.DiGraph, record: Network) -> None:
    """The scope tree against the nodes: one root, parents before children, every path
    its parent's plus one label, every node in a recorded scope and named inside it."""
    scopes = record.scopes
    _require(scopes.get("") is not None and scopes[""].kind == "network",
             "the scope tree has no network scope")
    seen: set[str] = set()
    for path, held in scopes.items():
        _require(held.path == path and held.kind in SCOPE_KINDS, f"scope {path!r} is malformed")
        if path:
            _require(held.parent in seen, f"scope {path} comes before its parent")
            prefix = f"{held.parent}." if held.parent else ""
            _require(path.startswith(prefix) and "." not in path[len(prefix):],
                     f"scope {path} is not one label below {held.parent!r}")
        _require((held.index is not None) == (held.kind == "iteration"),
                 f"scope {path}: only iterations have an index")
        seen.add(path)
    for item in nodes(graph):
        _require(item.scope in scopes, f"{item.name}: its scope {item.scope!r} is not recorded")
        prefix = f"{item.scope}." if item.scope else ""
        _require(item.name.startswith(prefix) and "." not in item.name[len(prefix):],
                 f"{item.name}: not named inside its scope {item.scope!r}")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InternalError(f"IR invariant broken: {message}")
