"""What a diagram shows: the *view* of the IR that `render_dot` draws.

Each node of the IR belongs to one *unit*, the shortest prefix of its hierarchical name
that is not *open*; every unit is one box. `default_view` chooses what is open (--depth,
--expand); `fuse` draws a norm, activation or dropout in the box of the conv before it,
and identical convs in a row as one box; `hide` leaves out the layers that only serve
the implementation (flatten, transpose, dropout with p = 0, ...), their arrows joined
through them, as papers draw them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import networkx as nx

from .. import ir
from ..passes.count_costs import Cost
from ..ops import OPS


SHOWABLE = ("norm", "act", "reg")  # families a compact diagram folds into the layer before
FUSE_INTO = ("conv", "linear")
# what `show` may name: those families, `stacks` (identical layers in a row, each
# drawn: by default one box `3x3 conv, 64 ×2`), and `impl` (the layers `hide` leaves out)
SHOW = SHOWABLE + ("stacks", "impl", "all")
# how a residual skip meets the main path: into a "+" circle, the activation after it a
# box of its own (He et al.'s Figures 2 and 5), or box to box (their Figure 3)
MERGES = ("marked", "plain")
# layers that only change how a tensor is laid out in memory, not what it holds
LAYOUT_ONLY = ("flatten", "transpose", "permute", "reshape", "identity")


@dataclass(frozen=True)
class View:
    open: frozenset[str]
    full: bool = False  # every primitive op its own box
    fused: tuple[tuple[str, str], ...] = ()  # (node, the node whose box it joins)
    hidden: frozenset[str] = frozenset()  # nodes left out, drawn as the box they read
    # open iterations drawn for their whole repeat: (scope, how many iterations)
    repeated: tuple[tuple[str, int], ...] = ()
    # residual adds drawn as no box (`join_skips`): (the add, the last node folded into
    # the join: the add, or the activation after it); the skip runs to the box after it
    joins: tuple[tuple[str, str], ...] = ()
    # each node's scopes, outermost first (ir.scopes_of)
    chains: dict = field(default_factory=dict, compare=False, hash=False)

    def unit(self, name: str) -> str:
        """The box a node is drawn in: its outermost closed scope, or itself."""
        joined = dict(self.fused).get(name)
        if joined is not None:
            return self.unit(joined)
        if self.full:
            return name
        return next((path for path in self.chains[name] if path not in self.open), name)


def default_view(graph: nx.DiGraph, depth: int | None = None, expand=()) -> View:
    """The view for --depth / --expand ("all" expands everything)."""
    chains = {name: ir.scopes_of(graph, name) for name in graph}
    if "all" in expand:
        return View(frozenset(), full=True, chains=chains)
    if depth is not None:
        opened = {path for chain in chains.values() for path in chain[:depth - 1]}
    else:
        stages: dict[str, list[tuple[str, ...]]] = {}
        for name, chain in chains.items():
            stages.setdefault(chain[0] if chain else name, []).append(chain)
        opened = {stage for stage, members in stages.items()
                  if not _is_repeat_stage(graph, members)
                  and not _is_computation(graph, stage, members)
                  and not _interleaved(graph, stage)}
        opened |= {stage for stage, members in stages.items()  # a U-Net's levels, each a box
                   if _is_repeat_stage(graph, members) and not _alike(graph, stage)}
    for name in expand:
        for scope in instances(graph, name):
            opened |= set(ir.scopes_of(graph, scope) if scope in graph
                          else ir.ancestors(graph, scope)) | {scope}
    return _acyclic(graph, View(frozenset(opened), chains=chains))


def _acyclic(graph: nx.DiGraph, view: View) -> View:
    """`view` with the boxes opened that would make arrows go round in a circle: groups
    whose layers run interleaved with another's (diffusers' `resnets` and `attentions`:
    resnet 0, attention 0, resnet 1, ...) are drawn layer by layer.

    >>> from archdsl import compile_source
    >>> g = compile_source('''network n { input x: 3 x 8 x 8
    ...     repeat 2 as j { "a.{j}": conv(3, 1); "b.{j}": relu } }''').graph
    >>> view = _acyclic(g, View(frozenset(), chains={n: ir.scopes_of(g, n) for n in g}))
    >>> sorted(view.open)
    ['a', 'b']
    """
    while True:
        flow = nx.DiGraph((view.unit(tail), view.unit(head)) for tail, head in graph.edges
                          if view.unit(tail) != view.unit(head))
        try:
            cycle = nx.find_cycle(flow)
        except nx.NetworkXNoCycle:
            return view
        closed = {unit for edge in cycle for unit in edge[:2] if unit not in graph}
        view = replace(view, open=view.open | closed)


def instances(graph: nx.DiGraph, name: str) -> list[str]:
    """What `--expand name` opens: the scope (or layer) of that name, or else every scope
    that calls the block of that name (each `bottleneck` of a ResNet); empty when neither
    exists."""
    if name in graph or ir.scope(graph, name) is not None:
        return [name]
    return list(dict.fromkeys(path for path, _ in ir.instances(graph, name) if path))


def fuse(graph: nx.DiGraph, view: View, show=(), keep=()) -> View:
    """The view with each norm and activation (unless its family is in `show`) drawn in
    the box of the conv or linear layer it follows, where it is that layer's only reader
    and a box of its own in the same scope. Nodes in `keep` are never fused."""
    outputs = {o.node for o in ir.network(graph).outputs}
    joined: dict[str, str] = {}
    for item in ir.nodes(graph):
        op = OPS[item.op]
        if op.family not in SHOWABLE or op.family in show or item.name in keep:
            continue
        if len(item.inputs) != 1 or view.unit(item.name) != item.name:
            continue
        (producer,) = item.inputs
        head = joined.get(producer, producer)
        if (OPS[ir.node(graph, head).op].family in FUSE_INTO and producer not in outputs
                and producer not in keep and graph.out_degree(producer) == 1
                and view.unit(producer) == producer and _same_scope(graph, producer, item.name)):
            joined[item.name] = head
    if "stacks" not in show:
        _stack(graph, view, joined, outputs, keep)
    return replace(view, fused=tuple(joined.items()))


def _stack(graph: nx.DiGraph, view: View, joined: dict, outputs: set, keep) -> None:
    """Join each conv to the box of the identical conv before it (same arguments, same
    scope, the only reader of that box's output)."""
    for item in ir.nodes(graph):
        if OPS[item.op].family != "conv" or item.name in joined or item.name in keep:
            continue
        if len(item.inputs) != 1 or view.unit(item.name) != item.name:
            continue
        (producer,) = item.inputs
        head = joined.get(producer, producer)
        first = ir.node(graph, head)
        if (first.op == item.op and first.args == item.args and producer not in outputs
                and graph.out_degree(producer) == 1 and view.unit(head) == head
                and _same_scope(graph, head, item.name) and head not in keep):
            joined[item.name] = head


def _same_scope(graph: nx.DiGraph, a: str, b: str) -> bool:
    return ir.node(graph, a).scope == ir.node(graph, b).scope


def _is_repeat_stage(graph: nx.DiGraph, chains: list[tuple[str, ...]]) -> bool:
    """A labelled repeat: every layer inside a scope inside one of two or more numbered
    scopes (`stage.I.rest`), nothing else."""
    return all(len(c) >= 2 and ir.label(graph, c[1]).isdigit() for c in chains) and \
        len({c[1] for c in chains}) > 1


def _alike(graph: nx.DiGraph, stage: str) -> bool:
    """The iterations of a repeat stage hold the same blocks, or each calls its blocks
    itself (MobileNet's `bneck`s): one box, `bottleneck ×3`. Not levels that group blocks
    differently (a U-Net's, with and without attention): those are drawn a box each."""
    iterations = ir.children(graph, stage)
    held = {ir.describe_scope(graph, child.path, []) for child in iterations}
    return len(held) == 1 or all(child.calls for child in iterations)


def _interleaved(graph: nx.DiGraph, stage: str) -> bool:
    """The groups directly inside `stage` run interleaved (`resnets.0`, `attentions.0`,
    `resnets.1`): drawn open, they would be boxes with arrows in a circle, so the stage is
    one box."""
    def part(name: str) -> str:
        chain = ir.scopes_of(graph, name)
        return chain[1] if len(chain) > 1 else name
    inside = [n for n in graph if ir.scopes_of(graph, n)[:1] == (stage,)]
    flow = nx.DiGraph((part(t), part(h)) for n in inside for t, h in graph.in_edges(n)
                      if t in inside and part(t) != part(h))
    return not nx.is_directed_acyclic_graph(flow)


def _is_computation(graph: nx.DiGraph, stage: str, chains: list[tuple[str, ...]]) -> bool:
    """A stage that is one call of a block without learned tensors (a timestep or position
    embedding computed from its input): one box, named after the block."""
    held = ir.scope(graph, stage)
    return (held is not None and held.kind == "block" and len(chains) > 3 and
            not any(graph.nodes[n].get("cost", Cost()).params
                    for n in graph if ir.scopes_of(graph, n)[:1] == (stage,)))


def hide(graph: nx.DiGraph, view: View, keep=()) -> View:
    """The view with each implementation-only layer (`is_implementation`) that is a box of
    its own left out: it joins the box it reads, so the arrow from that box goes straight
    to its readers, labelled with the shape they read. Outputs and nodes in `keep` stay.

    >>> from archdsl import compile_source
    >>> g = compile_source("network n { input x: 3 x 8 x 8; conv(4, 3); flatten; "
    ...                    "linear(2) }").graph
    >>> view = hide(g, default_view(g))
    >>> sorted(view.hidden), view.unit("1")
    (['1'], '0')
    """
    outputs = {o.node for o in ir.network(graph).outputs}
    joined = dict(view.fused)
    hidden = set()
    for item in ir.nodes(graph):
        if (item.name in outputs or item.name in keep or len(item.inputs) != 1
                or view.unit(item.name) != item.name or not is_implementation(graph, item)):
            continue
        joined[item.name] = item.inputs[0]
        hidden.add(item.name)
    return replace(view, fused=tuple(joined.items()), hidden=view.hidden | hidden)


def is_implementation(graph: nx.DiGraph, item: ir.Node) -> bool:
    """A layer a paper's figure leaves out: one that only lays the tensor out anew
    (flatten, transpose, permute, reshape, identity), a dropout with p = 0, or an adaptive
    pool to the size it is given."""
    if item.op in LAYOUT_ONLY:
        return True
    if item.op in ("dropout", "stochastic_depth"):
        return item.args.get("p") == 0
    if item.op == "adaptive_avgpool":
        before, after = ir.shape(graph, item.inputs[0]), ir.shape(graph, item.name)
        return before is not None and tuple(before) == tuple(after or ())
    return False


def open_one(graph: nx.DiGraph, view: View, expand=()) -> View:
    """The view with an iteration that `expand` opens alone (`layer2.0`, not `layer2`
    nor every `basic`) drawn for its whole repeat, as papers draw one layer "×N": the
    other iterations are left out, their arrows joined through the one drawn, and
    `repeated` records N for its title.

    >>> from archdsl import compile_source
    >>> g = compile_source("block b { conv(4, 3, pad = 1); relu } network n { "
    ...                    "input x: 4 x 8 x 8; stage: repeat 3 { b } }").graph
    >>> view = open_one(g, default_view(g, expand=["stage.1"]), ["stage.1"])
    >>> view.repeated, view.unit("stage.2.0"), view.unit("stage.0.1")
    ((('stage.1', 3),), 'stage.1.1', 'x')
    """
    named = [ir.scope(graph, name) for name in expand]
    chosen = [s for s in named if s is not None and s.parent and s.parent not in expand
              and _iterations_alike(graph, s.parent)
              and sum(t is not None and t.parent == s.parent for t in named) == 1]
    joined, hidden = dict(view.fused), set(view.hidden)
    for scope in chosen:
        inside = [n for n in ir.members(graph, scope.parent) if n in graph]
        drawn = set(ir.members(graph, scope.path))
        reads = ir.node(graph, inside[0]).inputs
        if not reads:
            continue
        leaving = [n for n in drawn if any(r not in drawn for r in graph.successors(n))]
        exit_ = max(leaving, key=inside.index) if leaving else inside[-1]
        first = min(inside.index(n) for n in drawn)
        for index, name in enumerate(inside):
            if name not in drawn:  # before it: where the repeat starts; after: its end
                joined[name] = reads[0] if index < first else exit_
                hidden.add(name)
    counts = tuple((s.path, len(ir.children(graph, s.parent))) for s in chosen
                   if ir.node(graph, ir.members(graph, s.parent)[0]).inputs)
    return replace(view, fused=tuple(joined.items()), hidden=frozenset(hidden),
                   repeated=view.repeated + counts)


def _iterations_alike(graph: nx.DiGraph, path: str) -> bool:
    """The scopes directly inside `path` are two or more iterations (of a repeat, or
    labelled ones, `encoder_layer_{i}`) that hold the same blocks."""
    inside = ir.children(graph, path)
    calls = {tuple(call.title for call in child.calls) for child in inside}
    return (len(inside) > 1 and len(calls) == 1 and _alike(graph, path)
            and (all(child.index is not None for child in inside) or calls != {()}))


def join_skips(graph: nx.DiGraph, view: View, show=(), keep=()) -> View:
    """The view with each residual add that is a box of its own drawn as no box, as He et
    al.'s Figure 3 draws a network: the add joins the box of its body's output, and so does
    the activation that is its only reader (unless `show` names `act` or `all`); `joins`
    records them, and render_dot draws the skip from its box straight into the box after
    the join. Outputs and nodes in `keep` stay.

    >>> from archdsl import compile_source
    >>> g = compile_source("network n { input x: 4 x 8 x 8; r: residual { "
    ...                    "conv(4, 3, pad = 1) }; relu; conv(4, 1) }").graph
    >>> view = join_skips(g, default_view(g))
    >>> view.joins, view.unit("0"), sorted(view.hidden)
    ((('r.add', '0'),), 'r.0', ['0', 'r.add'])
    """
    outputs = {o.node for o in ir.network(graph).outputs}
    joined, hidden, joins = dict(view.fused), set(view.hidden), []
    for item in ir.nodes(graph):
        if (item.role != "residual" or len(item.inputs) != 2 or item.name in outputs
                or item.name in keep or view.unit(item.name) != item.name):
            continue
        joined[item.name] = item.inputs[0]
        end = item.name
        readers = list(graph.successors(item.name))
        after = ir.node(graph, readers[0]) if len(readers) == 1 else None
        if (after is not None and OPS[after.op].family == "act" and tuple(after.inputs) == (end,)
                and not {"act", "all"} & set(show) and after.name not in outputs
                and after.name not in keep and view.unit(after.name) == after.name):
            joined[after.name] = end
            end = after.name
        hidden |= {item.name, end}
        joins.append((item.name, end))
    return replace(view, fused=tuple(joined.items()), hidden=frozenset(hidden),
                   joins=view.joins + tuple(joins))


def drawn_view(graph: nx.DiGraph, depth=None, expand=(), style: str = "paper", show=(),
               merges: str = "marked", failed=frozenset()) -> View:
    """The view render_dot draws: blocks opened (--depth, --expand), norms and activations
    fused into their layer (style `paper`), one iteration opened alone drawn for its
    repeat, implementation-only layers hidden and, for `merges` `plain`, residual adds
    drawn as no box. The `failed` layers (--partial) and their operands stay boxes, in
    open blocks."""
    keep = set(failed) | {i for n in failed for i in ir.node(graph, n).inputs}
    view = default_view(graph, depth, tuple(expand) + tuple(sorted(failed)))  # the culprit
    if style == "paper" and "all" not in show:
        view = fuse(graph, view, show, keep=keep)
    view = open_one(graph, view, expand)  # one layer of a repeat opened: "×12" on it
    if not {"all", "impl"} & set(show):  # flatten, transpose, dropout 0: as papers, unseen
        view = hide(graph, view, keep=keep)
    if merges == "plain":
        view = join_skips(graph, view, show, keep=keep)
    return view
