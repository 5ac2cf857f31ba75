"""Backend: draw the IR as a Graphviz diagram in the papers' style.

`render_dot` is pure (IR in, DOT text out, byte-identical for the same spec); `layout`
runs Graphviz's `dot` to make SVG, PDF or PNG. Where Graphviz is not installed, the
packaged port of `dot` (`pip install graphviz-pure`, in `archdsl[diagrams]`) lays out
SVG and PNG; system `dot` is preferred whenever it is on PATH.

What is drawn is a *view* of the IR (render_view): each node of the IR belongs to one
*unit*, the shortest prefix of its hierarchical name that is not *open*; every unit is
one box. An open prefix is drawn as a cluster holding its children. By default every top-level
stage is open except labelled repeats, so `layer3: repeat 36 {...}` is one box
`bottleneck x36` while an Inception module shows its branches side by side.
`--depth N` opens every prefix shorter than N levels; `--expand NAME` opens NAME, or
every instance of the block NAME.

Papers draw a conv with its normalisation and activation as one box ("3x3 conv, 64"):
a norm, activation or dropout that is the only reader of a conv's (or linear layer's)
output, in the same scope, is *fused* into that box unless `show` names its family; and
identical convs in a row are one box, `3x3 conv, 64 ×2`, as VGG's table writes them,
unless `show` has `stacks`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import networkx as nx

from .. import ir
from ..passes.count_costs import Cost
from ..ops import OPS
from ..ops.shapes import spatial
from .layout import page_size
from .render_view import SHOWABLE, View, default_view, fuse, hide, open_one
from .report_stats import human_count

if TYPE_CHECKING:
    import graphviz

# Okabe-Ito hues, lightened: distinct for colour-blind readers and in greyscale
# (their lightness differs), with black text legible on every fill.
FAMILY_STYLE = {
    "conv": {"fillcolor": "#F5C16C"},
    "norm": {"fillcolor": "#A6D8F5"},
    "act": {"fillcolor": "#FFFFFF"},
    "pool": {"fillcolor": "#8ED1B6"},
    "linear": {"fillcolor": "#DDA5C6"},
    "attention": {"fillcolor": "#F4A582"},
    "merge": {"fillcolor": "#D9D9D9", "shape": "circle", "width": "0.3", "fixedsize": "false"},
    "reshape": {"fillcolor": "#F0F0F0"},
    "math": {"fillcolor": "#E6E0F5"},
    "reg": {"fillcolor": "#FFFFFF", "style": "rounded,filled,dashed"},
    "io": {"fillcolor": "#4D4D4D", "fontcolor": "#FFFFFF"},
    "block": {"fillcolor": "#FBE3B8", "penwidth": "1.6"},
}
FAMILY_WORDS = {"io": "input", "conv": "convolution", "norm": "normalisation",
                "act": "activation", "pool": "pooling", "linear": "fully connected",
                "attention": "attention", "merge": "merge", "reshape": "reshape", "math": "tensor algebra",
                "reg": "regularisation", "block": "block (folded)"}
FONT = "Helvetica"
ERROR_COLOUR = "#D55E00"
SKIP_COLOUR = "#0072B2"
# as He et al.'s Figure 3 draws residual skips: identity shortcuts solid, projections dashed
SKIP_STYLE = {"identity": "solid", "projection": "dashed"}
STYLES = ("paper", "detailed")
DIRECTIONS = ("TB", "LR", "BT")  # BT: bottom to top, as GoogLeNet's figure


def render_dot(graph: nx.DiGraph, *, depth: int | None = None, expand=(), direction: str = "TB",
               shapes: bool = True, style: str = "paper", partial: bool = False,
               column: str | None = None, show=(), title: bool = True,
               legend: bool = False, columns: int = 1, frames: bool = True) -> str:
    """DOT source for the network's diagram; `frames=False` leaves out the outlines and
    titles of open blocks (their boxes stay).

    >>> from archdsl import compile_source
    >>> text = render_dot(compile_source("network t { input x: 3 x 8 x 8; c: conv(4, 3) }").graph)
    >>> "3x3 conv, 4" in text
    True
    """
    dot = _digraph(ir.network(graph).name, _graph_attributes(graph, direction, column, title))
    units = _draw(dot, graph, depth, expand, shapes, style, partial, show, "", direction,
                  columns, frames)
    if legend:
        _add_legend(dot, graph, units, style)
    return dot.source


def render_many(graphs: list[nx.DiGraph], *, direction: str = "TB", column: str | None = None,
                title: bool = True, legend: bool = False, **options) -> str:
    """DOT source for several networks side by side, each in a box under its name, drawn
    at one scale and aligned by stage: the first layer of each network that gives a
    feature map of a new size (56x56, 28x28, ...) sits on one level, as in He et al.'s
    Figure 3 (VGG-19, a plain network and a ResNet).

    >>> from archdsl import compile_source
    >>> a = compile_source("network a { input x: 3 x 8 x 8; conv(4, 3) }").graph
    >>> b = compile_source("network b { input x: 3 x 8 x 8; conv(4, 3); relu }").graph
    >>> text = render_many([a, b])
    >>> "cluster_net0" in text and '"net1/0"' in text
    True
    """
    attributes = _graph_attributes(graphs[0], direction, column, False)
    dot = _digraph("networks", attributes)
    levels: dict[tuple, list[str]] = {}
    for index, graph in enumerate(graphs):
        prefix = f"net{index}/"
        with dot.subgraph(name=f"cluster_net{index}", graph_attr={
                "label": ir.network(graph).name if title else "", "color": "white",
                "fontname": FONT, "fontsize": "11"}) as box:
            units = _draw(box, graph, options.get("depth"), options.get("expand", ()),
                          options.get("shapes", True), options.get("style", "paper"), False,
                          options.get("show", ()), prefix, direction,
                          frames=options.get("frames", True))
        for size, unit in _first_of_each_size(graph, units):
            levels.setdefault(size, []).append(prefix + unit)
    for names in levels.values():
        if len(names) > 1:
            with dot.subgraph() as level:
                level.attr(rank="same")
                for name in names:
                    level.node(name)
    if legend:
        _add_legend(dot, graphs[0], {}, options.get("style", "paper"))
    return dot.source


def _first_of_each_size(graph: nx.DiGraph, units: dict) -> list[tuple[tuple, str]]:
    """(spatial size, unit) for the first unit whose output has each new spatial size."""
    seen, found = set(), []
    for unit, members in units.items():
        shape = ir.shape(graph, members[-1])
        if shape is None or len(shape) < 2:
            continue
        size = tuple(n for _, n in spatial(shape))
        if size not in seen:
            seen.add(size)
            found.append((size, unit))
    return found


def _digraph(name: str, graph_attr: dict) -> graphviz.Digraph:
    import graphviz  # here, not at the top: `archdsl check` imports this module and draws nothing
    return graphviz.Digraph(name, graph_attr=graph_attr,
                            node_attr={"fontname": FONT, "fontsize": "10", "shape": "box",
                                       "style": "rounded,filled", "height": "0.3",
                                       "margin": "0.08,0.03"},
                            edge_attr={"fontname": FONT, "fontsize": "9", "arrowsize": "0.6",
                                       "color": "#404040"})


def _draw(dot, graph: nx.DiGraph, depth, expand, shapes: bool, style: str, partial: bool,
          show, prefix: str = "", direction: str = "TB",
          columns: int = 1, frames: bool = True) -> dict[str, list[str]]:
    """Add one network's boxes and arrows to `dot`; node names start with `prefix`.
    Returns the units drawn: {box name: the IR nodes in it}."""
    failed = _failed_nodes(graph) if partial else set()
    view = default_view(graph, depth, tuple(expand) + tuple(sorted(failed)))  # show the culprit
    operands = {i for n in failed for i in ir.node(graph, n).inputs}
    if style == "paper" and "all" not in show:
        view = fuse(graph, view, show, keep=failed | operands)
    view = open_one(graph, view, expand)  # one layer of a repeat opened: "×12" on it
    if not {"all", "impl"} & set(show):  # flatten, transpose, dropout 0: as papers, unseen
        view = hide(graph, view, keep=failed | operands)
    shown = [n for n in graph if (graph.nodes[n].get("shape") is not None or n in failed)
             and n not in view.hidden]
    units: dict[str, list[str]] = {}
    for name in shown:
        units.setdefault(view.unit(name), []).append(name)
    edges = _unit_edges(graph, view, units)
    main = view.unit(ir.network(graph).outputs[0].node) if ir.network(graph).outputs else None
    spine = _spine(next(iter(units), None), main, edges) if main in units else set()
    rising, levels = _u_shape(graph, units, edges)
    _add_units(dot, graph, view, units, style, failed, prefix, set() if rising else spine,
               frames)
    across = {pair: ("s", "n") if direction == "LR" else ("e", "w") for pair in levels}
    stages = {unit: ir.outermost(graph, unit) for unit in units}
    segment = _snake(units, spine, columns, stages) if columns > 1 and not rising else {}
    free = {(t, h) for t, h, *_ in edges if segment and segment[t] != segment[h]}
    _add_edges(dot, graph, edges, shapes, failed, prefix, rising, across, free,
               _broadcasts(edges, spine))
    tops = [next(u for u in units if segment[u] == j) for j in sorted(set(segment.values()))]
    levels = levels + ([tuple(tops)] if len(tops) > 1 else [])
    for pair in levels:  # each cross skip runs level, from the encoder to the decoder
        with dot.subgraph() as level:
            level.attr(rank="same")
            for unit in pair:
                level.node(prefix + unit)
    return units


def _snake(units: dict, spine: set, columns: int, stages: dict) -> dict[str, int]:
    """Which column each box goes in when a long network snakes into `columns` columns
    side by side (as ResNet's Figure 3 does), cut only where the main path passes from
    one top-level stage to the next (after a box of the main path), into runs of about
    equal length; {} where the
    network has too few such places.

    `stages` gives each box's top-level stage (`ir.outermost`).

    >>> units = dict.fromkeys(["x", "a.0", "a.1", "b.0", "b.1", "c"])
    >>> stages = {"x": "x", "a.0": "a", "a.1": "a", "b.0": "b", "b.1": "b", "c": "c"}
    >>> _snake(units, set(units), 2, stages)
    {'x': 0, 'a.0': 0, 'a.1': 0, 'b.0': 1, 'b.1': 1, 'c': 1}
    """
    order = list(units)
    cuts = [i for i, unit in enumerate(order) if i and order[i - 1] in spine
            and stages[unit] != stages[order[i - 1]]]
    if len(cuts) < columns - 1:
        return {}
    chosen = sorted({min(cuts, key=lambda i: abs(i - j * len(order) / columns))
                     for j in range(1, columns)})
    if len(chosen) < columns - 1:
        return {}
    return {unit: sum(i >= cut for cut in chosen) for i, unit in enumerate(order)}


def _u_shape(graph, units: dict, edges: list) -> tuple[set, list]:
    """An encoder-decoder network with cross skips (U-Net) drawn as a U: the boxes after
    the main path's smallest feature map climb back up beside the encoder, and each skip
    from the encoder into the decoder runs level. Returns the arrows to lay out upwards
    (both ends in the decoder) and the (encoder box, decoder box) pairs of each skip;
    nothing for any other network.

    A U needs the feature map to shrink and grow again along the longest path through
    the network, and at least two skips that cross from before its smallest point to
    after it."""
    area = {}
    for unit, members in units.items():
        shape = ir.shape(graph, members[-1])
        sizes = [n for _, n in spatial(shape)] if shape is not None and len(shape) >= 3 else []
        if sizes:
            area[unit] = math.prod(sizes)
    flow = nx.DiGraph((tail, head) for tail, head, *_ in edges)
    path = [u for u in nx.dag_longest_path(flow) if u in area] if flow else []
    if len(path) < 3:
        return set(), []
    smallest = min(area[u] for u in path)
    bottom = next(u for u in path if area[u] == smallest)
    if area[path[-1]] <= smallest or area[path[0]] <= smallest:
        return set(), []
    order = {unit: index for index, unit in enumerate(units)}
    after = {u for u in units if order[u] > order[bottom]}
    skips = [(tail, head) for tail, head, *_ in edges
             if order[tail] < order[bottom] and head in after]
    if len(skips) < 2:
        return set(), []
    rising = {(tail, head) for tail, head, *_ in edges if head in after
              and (tail in after or tail == bottom)}
    return rising, _levels(skips, order)


def _levels(skips: list[tuple[str, str]], order: dict) -> list[tuple[str, str]]:
    """One skip per level to lay out level: from the encoder box nearest the bottom
    outwards, each to the first decoder box not yet paired (a level that sends skips to two
    decoder levels, as diffusers' U-Net does, is paired with the first).

    >>> order = {u: i for i, u in enumerate(["a", "b", "c", "d", "e"])}
    >>> _levels([("a", "d"), ("a", "e"), ("b", "d"), ("c", "d")], order)
    [('a', 'e'), ('c', 'd')]
    """
    heads: dict[str, list[str]] = {}
    for tail, head in skips:
        heads.setdefault(tail, []).append(head)
    paired, pairs = set(), []
    for tail in sorted(heads, key=order.get, reverse=True):
        free = sorted((h for h in heads[tail] if h not in paired), key=order.get)
        if free and all(order[free[0]] > order[h] for h in paired):
            paired.add(free[0])
            pairs.append((tail, free[0]))
    return sorted(pairs, key=lambda pair: order[pair[0]])


def _spine(first: str, last: str, edges: list) -> set[str]:
    """The boxes every path from the first box to the main output passes through: the main
    path. Its boxes share a `group`, so dot keeps each arrow between two of them straight
    and puts branches and skips beside them.

    >>> sorted(_spine("a", "d", [("a", "b", 0, 0, 0), ("a", "c", 0, 0, 0),
    ...                          ("b", "d", 0, 0, 0), ("c", "d", 0, 0, 0)]))
    ['a', 'd']
    """
    flow = nx.DiGraph((tail, head) for tail, head, *_ in edges)
    if first not in flow or last not in flow or not nx.has_path(flow, first, last):
        return set()
    dominators = nx.immediate_dominators(flow, first)
    spine, unit = {last}, last
    while unit != first:
        unit = dominators[unit]
        spine.add(unit)
    return spine


def _add_legend(dot, graph, units: dict, style: str) -> None:
    """One swatch per colour the diagram uses, in the table's order, in a box of its own."""
    used = {OPS[ir.node(graph, unit).op].family if unit in graph else "block"
            for unit in units}
    with dot.subgraph(name="cluster_legend", graph_attr={
            "label": "legend", "style": "rounded", "color": "#999999", "fontname": FONT,
            "fontsize": "9", "labeljust": "l"}) as box:
        previous = None
        for family, words in FAMILY_WORDS.items():
            if family not in used:
                continue
            attributes = {k: v for k, v in FAMILY_STYLE[family].items()
                          if k in ("fillcolor", "fontcolor")}
            box.node(f"legend_{family}", label=words, fontsize="9", **attributes)
            if previous:  # a column of swatches
                box.edge(previous, f"legend_{family}", style="invis")
            previous = f"legend_{family}"
        for kind in _skip_kinds(graph, units):  # a short line of each skip's style
            name = f"legend_{kind}"
            with box.subgraph() as row:
                row.attr(rank="same")
                row.node(name + "_line", label="", shape="point", width="0.03", color=SKIP_COLOUR)
                row.node(name, label=f"{kind} shortcut", shape="plaintext", style="",
                         fontsize="9", fontcolor=SKIP_COLOUR)
                row.edge(name + "_line", name, style=SKIP_STYLE[kind], color=SKIP_COLOUR,
                         arrowhead="none", minlen="2")
            if previous:
                box.edge(previous, name + "_line", style="invis")
            previous = name + "_line"


def _skip_kinds(graph, units: dict) -> list[str]:
    """The kinds of residual skip drawn as arrows between boxes: identity, projection."""
    unit_of = {m: unit for unit, members in units.items() for m in members}
    kinds = {"projection" if ir.node(graph, item.inputs[1]).role == "skip" else "identity"
             for item in ir.nodes(graph) if item.role == "residual" and len(item.inputs) > 1
             and unit_of.get(item.name) == item.name  # the add a box of its own
             and unit_of.get(item.inputs[1], item.name) != item.name}
    return [kind for kind in SKIP_STYLE if kind in kinds]


def _graph_attributes(graph: nx.DiGraph, direction: str, column: str | None,
                      title: bool) -> dict:
    # column: a paper's ("single", "double") or a Graphviz size "WIDTH,HEIGHT" in inches
    size = {"size": column if "," in column else page_size(column)} if column else {}
    named = {"label": ir.network(graph).name, "labelloc": "t"} if title else {}
    # pad: a tight bounding box (2 pt), where dot's default leaves 4 pt
    return {**size, "rankdir": direction, "fontname": FONT, "fontsize": "11", "nodesep": "0.25",
            "ranksep": "0.3", **named, "newrank": "true", "pad": "0.03"}


def _failed_nodes(graph: nx.DiGraph) -> set[str]:
    """Nodes that rejected their inputs: no shape, though every input has one."""
    return {n for n in graph if graph.nodes[n].get("shape") is None and all(
        graph.nodes[i].get("shape") is not None for i in ir.node(graph, n).inputs)}


# ---- boxes ----------------------------------------------------------------------------


def _add_units(dot, graph, view: View, units: dict, style: str, failed: set,
               prefix: str = "", spine: frozenset = frozenset(), frames: bool = True) -> None:
    clusters: dict[str, graphviz.Digraph] = {}
    operands = {i for n in failed for i in ir.node(graph, n).inputs}
    train_only = _train_only_scopes(graph)
    counts = dict(view.repeated)
    label = lambda path: _cluster_label(graph, path, counts.get(path))  # noqa: E731
    for unit, members in units.items():
        attributes = _unit_attributes(graph, unit, members, style)
        if failed & set(members):
            attributes.update(color=ERROR_COLOUR, penwidth="2.5", fontcolor=ERROR_COLOUR)
        elif operands & set(members):
            attributes.update(color=ERROR_COLOUR, penwidth="1.8")
        if unit in spine:
            attributes["group"] = "spine"
        parent = ir.parent(graph, unit)
        _cluster(dot, graph, clusters, train_only, parent, label, prefix).node(prefix + unit,
                                                                                **attributes)
    for path in sorted(clusters, key=lambda p: -len(ir.ancestors(graph, p))):
        if not frames:  # kept as clusters, so that a block's boxes still sit together
            clusters[path].graph_attr.update(label="", peripheries="0")
        if path:
            _parent_of(dot, graph, clusters, path).subgraph(clusters[path])


def _train_only_scopes(graph: nx.DiGraph) -> set[str]:
    """Every name prefix whose layers are all train-only (an auxiliary head)."""
    verdict: dict[str, bool] = {}
    for item in ir.nodes(graph):
        for path in ir.scopes_of(graph, item.name):
            verdict[path] = verdict.get(path, True) and item.train_only
    return {prefix for prefix, train in verdict.items() if train}


def _cluster_label(graph: nx.DiGraph, path: str, count: int | None = None) -> str:
    """A cluster's title in the spec's words: a stage by its name (`layer2`,
    `inception3a`), a scope inside one by its own last name (`branch2`, not
    `inception3a.branch2`: the enclosing box names the rest), and a repeat's iteration by
    the block it calls (`bottleneck`), since its index says nothing on the page; an
    iteration drawn for all `count` of them, `bottleneck ×3`.

    >>> from archdsl import compile_source
    >>> g = compile_source("block unit(c) { residual { conv(c, 3, pad = 1) } } "
    ...     "network n { input x: 8 x 4 x 4; stage: repeat 2 { unit(8) } }").graph
    >>> _cluster_label(g, "stage"), _cluster_label(g, "stage.1")
    ('stage', 'unit')
    """
    scope = ir.scope(graph, path)
    if count:  # one iteration drawn for all of them, as papers draw a layer "×N"
        return ", ".join(call.title for call in scope.calls) + f" ×{count}"
    if scope.label.isdigit():
        return ", ".join(call.title for call in scope.calls)
    return scope.label


def _cluster(dot, graph, clusters: dict, train_only: set[str], path: str, label,
             prefix: str = ""):
    if not path:
        return dot
    if path not in clusters:
        import graphviz
        train = path in train_only
        label_text = label(path) + (" (train only)" if train else "")
        clusters[path] = graphviz.Digraph(
            "cluster_" + prefix + path, graph_attr={"label": label_text, "style": "rounded,dashed" if train
                                           else "rounded", "color": "#999999",
                                           "fontname": FONT, "fontsize": "9", "labeljust": "l"})
        if ir.parent(graph, path):
            _cluster(dot, graph, clusters, train_only, ir.parent(graph, path), label, prefix)
    return clusters[path]


def _parent_of(dot, graph, clusters: dict, path: str):
    parent = ir.parent(graph, path)
    return clusters[parent] if parent else dot


def _unit_attributes(graph, unit: str, members: list[str], style: str) -> dict:
    nodes = [ir.node(graph, m) for m in members]
    if nodes[0].name == unit and all(OPS[n.op].family in SHOWABLE or (n.op, n.args) == (
            nodes[0].op, nodes[0].args) for n in nodes[1:]):
        item = nodes[0]  # one layer, with its norm and activation (and its stack) fused in
        op = OPS[item.op]
        attributes = dict(FAMILY_STYLE[op.family])
        label = op.caption(item.args)
        if item.op == "concat":  # GoogLeNet's words; a box, not a circle, for the text
            joins_channels = ir.shape(graph, item.name).axes[item.args["axis"]] == "C"
            label = "Filter concatenation" if joins_channels else "concatenation"
            attributes.update(shape="box", style="rounded,filled", fixedsize="false")
        stacked = sum((n.op, n.args) == (item.op, item.args) for n in nodes)
        if stacked > 1:
            label += f" ×{stacked}"
        if item.op in ir.SOURCE_OPS:  # a parameter by its own name, in its scope
            label = f"{ir.label(graph, unit)}: {sizes_text(graph, item.name)}"
    else:
        attributes = dict(FAMILY_STYLE["block"])
        label = _group_label(graph, unit, nodes)
    if style == "detailed":
        cost = sum((graph.nodes[m].get("cost", Cost()) for m in members), Cost())
        last = ir.label(graph, unit)
        if not (label.startswith(last) or last.isdigit() or OPS[nodes[0].op].family == "merge"):
            label = f"{unit}\n{label}"  # a name the spec gave, not an index it made
        if cost.params or cost.macs:
            label += f"\n{human_count(cost.params)} params, {human_count(cost.macs)} MACs"
    if all(n.role == "skip" for n in nodes):
        attributes["style"] = "rounded,filled,dashed"
    if all(n.train_only for n in nodes):
        attributes.update(style="rounded,filled,dashed", fontcolor="#555555")
    attributes["label"] = label
    return attributes


def _group_label(graph, unit: str, nodes: list[ir.Node]) -> str:
    described = ir.describe_scope(graph, unit, [n.name for n in nodes])
    last = ir.label(graph, unit)
    head = "" if last.isdigit() else f"{last}\n"
    if not described.endswith(" layers"):
        return head + described.replace(" x", " ×")
    captions = [OPS[n.op].caption(n.args) for n in nodes if OPS[n.op].family not in ("act", "reg")]
    if 0 < len(captions) <= 3:
        return "\n".join(captions)
    return f"{head}{len(nodes)} layers"


# ---- arrows ---------------------------------------------------------------------------


def _unit_edges(graph, view: View, units: dict) -> list[tuple[str, str, ir.Node, int, str]]:
    """(tail box, head box, the IR node read, which of its inputs, the producer) for
    each arrow between two boxes, once, in the IR's order."""
    members = {m for ms in units.values() for m in ms}
    seen, edges = set(), []
    for item in ir.nodes(graph):
        if item.name not in members:
            continue
        head = view.unit(item.name)
        for position, producer in enumerate(item.inputs):
            tail = view.unit(producer)
            if tail == head or (tail, head) in seen:
                continue
            seen.add((tail, head))
            edges.append((tail, head, item, position, producer))
    return edges


def _broadcasts(edges: list, spine: set, readers: int = 4) -> set[tuple[str, str]]:
    """The arrows of a value off the main path that `readers` boxes or more read: a
    diffusion U-Net's time embedding, a language model's rotary angles, going into every
    block. They are drawn thin and dotted, without shapes, and do not pull the layout.

    >>> edges = [("t", b, None, 0, "t") for b in "abcd"] + [("a", "b", None, 0, "a")]
    >>> sorted(_broadcasts(edges, {"a", "b"}))
    [('t', 'a'), ('t', 'b'), ('t', 'c'), ('t', 'd')]
    """
    heads: dict[str, set] = {}
    for tail, head, *_ in edges:
        heads.setdefault(tail, set()).add(head)
    return {(t, h) for t, h, *_ in edges if t not in spine and len(heads[t]) >= readers}


def sizes_text(graph, name: str) -> str:
    """A value's sizes as figures print them, `L×2048`: an axis that follows the network's
    one length symbol by the symbol's name (the size it was checked at is the bound, not
    the model's), every other by its number."""
    shape = graph.nodes[name]["shape"]
    symbols = list(ir.network(graph).sizes)
    follows = getattr(shape, "follows", ()) if len(symbols) == 1 else ()
    return "×".join(symbols[0] if axis in follows else str(size)
                    for axis, size in enumerate(shape))


def _add_edges(dot, graph, edges: list, shapes: bool, failed: set, prefix: str = "",
               rising=frozenset(), across=None, free=frozenset(),
               broadcast=frozenset()) -> None:
    """The arrows; those in `rising` are laid out from head to tail (`dir=back`), so the
    decoder of a U climbs, with their arrowheads still at their heads; `across` gives
    the (tail, head) ports of arrows between boxes on one level (a U's skips);
    `broadcast` arrows are thin and dotted (`_broadcasts`)."""
    for tail, head, item, position, producer in edges:
        attributes = _edge_attributes(graph, item, position, producer, shapes, failed)
        if (tail, head) in broadcast:
            attributes.update(style="dotted", color="#888888", arrowsize="0.4",
                              constraint="false", label=" ")
        if (tail, head) in (across or {}):
            attributes["tailport"], attributes["headport"] = across[tail, head]
        if (tail, head) in free:  # from one column of a snaked chain to the next
            attributes["constraint"] = "false"
        if (tail, head) in rising:
            swap = {"tailport": "headport", "headport": "tailport"}
            attributes = {swap.get(k, k): v for k, v in attributes.items()}
            dot.edge(prefix + head, prefix + tail, dir="back", **attributes)
        else:
            dot.edge(prefix + tail, prefix + head, **attributes)


def _edge_attributes(graph, item: ir.Node, position: int, producer: str, shapes: bool,
                     failed: set) -> dict:
    attributes = {}
    shape = graph.nodes[producer].get("shape")
    if shapes and shape:
        attributes["label"] = " " + sizes_text(graph, producer)
    elif shape:  # a blank label: dot orders branches as with shapes (as written)
        attributes["label"] = " "
    if item.role == "residual" and position == 1:
        identity = ir.node(graph, producer).role != "skip"
        attributes.update(style=SKIP_STYLE["identity" if identity else "projection"],
                          penwidth="1.2", tailport="e", headport="e", color=SKIP_COLOUR,
                          fontcolor=SKIP_COLOUR)
        if identity:
            attributes["xlabel"] = "identity"
    if item.train_only:
        attributes.update(style="dashed", color="#888888")
    if item.name in failed:
        attributes.update(color=ERROR_COLOUR, penwidth="2", fontcolor=ERROR_COLOUR)
    return attributes
