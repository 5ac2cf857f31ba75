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
unless `show` has `stacks`. A residual skip joins the main path at a "+" circle, or, with
`merges="plain"`, box to box (render_view.join_skips); the main path, each residual
block's main chain included, runs straight. An encoder-decoder is drawn as a U (render_u).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import networkx as nx

from .. import ir
from ..passes.count_costs import Cost
from ..ops import OPS
from ..ops.shapes import spatial
from .layout import page_size
from .render_u import u_rows, u_shape
from .render_view import SHOWABLE, View, drawn_view, is_implementation
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
               legend: bool = False, columns: int = 1, frames: bool = True,
               merges: str = "marked", landscape: bool = False) -> str:
    """DOT source for the network's diagram; `frames=False` leaves out the outlines and
    titles of open blocks (their boxes stay); `merges="plain"` draws each residual skip
    box to box, its add and the activation after it folded into the join (He et al.'s
    Figure 3), where `marked` draws the add as a "+" circle; `landscape` lays a U-Net's U
    in two rows (render_u), for a page's width.

    >>> from archdsl import compile_source
    >>> text = render_dot(compile_source("network t { input x: 3 x 8 x 8; c: conv(4, 3) }").graph)
    >>> "3x3 conv, 4" in text
    True
    """
    dot = _digraph(ir.network(graph).name, _graph_attributes(graph, direction, column, title))
    units, skips = _draw(dot, graph, depth, expand, shapes, style, partial, show, "",
                         direction, columns, frames, merges, landscape)
    if legend:
        _add_legend(dot, graph, units, style, skips)
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
                "label": ir.network(graph).title if title else "", "color": "white",
                "fontname": FONT, "fontsize": "11"}) as box:
            units, _ = _draw(box, graph, options.get("depth"), options.get("expand", ()),
                             options.get("shapes", True), options.get("style", "paper"),
                             False, options.get("show", ()), prefix, direction,
                             frames=options.get("frames", True),
                             merges=options.get("merges", "marked"))
        for size, unit in _first_of_each_size(graph, units):
            levels.setdefault(size, []).append(prefix + unit)
    for names in levels.values():
        if len(names) > 1:
            with dot.subgraph() as level:
                level.attr(rank="same")
                for name in names:
                    level.node(name)
    if legend:
        _add_legend(dot, graphs[0], {}, options.get("style", "paper"), [])
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
          show, prefix: str = "", direction: str = "TB", columns: int = 1,
          frames: bool = True, merges: str = "marked",
          landscape: bool = False) -> tuple[dict[str, list[str]], list[str]]:
    """Add one network's boxes and arrows to `dot`; node names start with `prefix`.
    Returns the units drawn ({box name: the IR nodes in it}) and the kinds of residual
    skip drawn as arrows (identity, projection)."""
    failed = _failed_nodes(graph) if partial else set()
    view = drawn_view(graph, depth, expand, style, show, merges, failed)
    shown = [n for n in graph if (graph.nodes[n].get("shape") is not None or n in failed)
             and n not in view.hidden]
    units: dict[str, list[str]] = {}
    for name in shown:
        units.setdefault(view.unit(name), []).append(name)
    edges = _unit_edges(graph, view, units)
    main = view.unit(ir.network(graph).outputs[0].node) if ir.network(graph).outputs else None
    spine = _spine(next(iter(units), None), main, edges) if main in units else set()
    body = _bodies(spine, edges)  # the main chain of each residual block on it
    spine |= body
    u = u_shape(graph, units, edges)
    rows = u_rows(graph, units, edges, u) if u is not None and landscape else None
    if rows is not None:  # levels side by side: the width is what counts (a box as narrow
        dot.attr("graph", nodesep="0.08")  # as its text, not dot's 0.75 in at least)
        dot.attr("node", margin="0.06,0.03", width="0.3")
    groups = ({unit: f"level{c}" for unit, c in rows.column.items() if unit not in rows.aside}
              if rows is not None
              else {} if u is not None else dict.fromkeys(spine, "spine"))
    _add_units(dot, graph, view, units, style, failed, prefix, groups, frames,
               margin="2" if rows is not None else None,
               levels=rows.outer if rows is not None else None)
    arrows, ranks = _arrangement(graph, units, edges, (spine, body), u, rows, direction,
                                 columns)
    loose = frozenset((t, h) for t, h, item, position, _ in edges  # skips joined box to box
                      if _is_skip(item, position) and item.name in dict(view.joins))
    arrows = replace(arrows, loose=loose)
    drawn = {m for members in units.values() for m in members}
    kinds = {item.name: _skip_kind(graph, item, drawn) for _, _, item, position, _ in edges
             if _is_skip(item, position)}
    _add_edges(dot, graph, edges, shapes, failed, prefix, arrows, kinds)
    for rank in ranks:  # boxes on one level: a U's skips, the heads of a snake's columns
        with dot.subgraph() as level:
            level.attr(rank="same")
            for unit in rank:
                level.node(prefix + unit)
    if rows is not None:  # the encoder's levels in order, left to right, then the bottleneck
        for left, right in zip(rows.line, rows.line[1:]):
            dot.edge(prefix + left, prefix + right, style="invis")
    return units, [kind for kind in SKIP_STYLE if kind in kinds.values()]


@dataclass(frozen=True)
class _Arrows:
    """How arrows are laid out, each set of (tail box, head box) (see _add_edges)."""
    rising: frozenset = frozenset()  # a portrait U's decoder: laid out upwards
    across: dict = field(default_factory=dict)  # (tail port, head port) of a U's skips
    free: frozenset = frozenset()  # from one column of a snake to the next
    broadcast: frozenset = frozenset()  # thin and dotted (_broadcasts)
    back: frozenset = frozenset()  # against the ranks (render_u.Rows.back)
    slant: frozenset = frozenset()  # labelled beside, not on them (render_u.Rows.slant)
    quiet: frozenset = frozenset()  # unlabelled: another arrow labels the value
    straight: frozenset = frozenset()  # along the main path: weighted, so it stays straight
    loose: frozenset = frozenset()  # set no ranks: skips drawn box to box, beside the path


def _arrangement(graph, units: dict, edges: list, path: tuple[set, set], u, rows,
                 direction: str, columns: int) -> tuple[_Arrows, list[tuple[str, ...]]]:
    """How the arrows run, and the sets of boxes that share a rank: a U's (portrait, or
    in `rows`), a chain snaked into `columns` columns, or the main path straight down.
    `path`: the main path's boxes, and those of the residual bodies among them."""
    spine, body = path
    broadcast = frozenset(_broadcasts(edges, spine))
    if rows is not None:
        return (_Arrows(broadcast=broadcast, back=rows.back, slant=rows.slant,
                        quiet=rows.quiet), list(rows.tops))
    if u is not None:  # each cross skip runs level, from the encoder to the decoder
        across = {pair: ("s", "n") if direction == "LR" else ("e", "w") for pair in u.pairs}
        return _Arrows(rising=u.rising, across=across, broadcast=broadcast), list(u.pairs)
    stages = {unit: ir.outermost(graph, unit) for unit in units}
    segment = _snake(units, spine, columns, stages) if columns > 1 else {}
    free = frozenset((t, h) for t, h, *_ in edges if segment and segment[t] != segment[h])
    tops = [next(u for u in units if segment[u] == j) for j in sorted(set(segment.values()))]
    # a residual block's main chain: a labelled arrow is two segments to dot, which the
    # `group` alone does not keep in line
    skips = {(t, h) for t, h, item, position, _ in edges if _is_skip(item, position)}
    block = body | {h for _, h in skips}
    straight = frozenset((t, h) for t, h, *_ in edges if t in spine and h in spine
                         and (t in block or h in block) and (t, h) not in skips)
    return (_Arrows(free=free, broadcast=broadcast, straight=straight),
            [tuple(tops)] if len(tops) > 1 else [])


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


def _bodies(spine: set, edges: list) -> set[str]:
    """The boxes of each residual body that ends on the main path: walking back from each
    box of `spine` that a skip arrow enters, along the one other arrow into each box, to
    the main path. They join its `group`, so a block's main chain stays one straight line
    with its projection beside it."""
    into: dict[str, list[str]] = {}
    joined = set()
    for tail, head, item, position, _ in edges:
        if _is_skip(item, position):
            joined.add(head)
        else:
            into.setdefault(head, []).append(tail)
    body = set()
    for unit in joined & spine:
        tails = into.get(unit, [])
        while len(tails) == 1 and tails[0] not in spine | body:
            body.add(tails[0])
            tails = into.get(tails[0], [])
    return body


def _is_skip(item: ir.Node, position: int) -> bool:
    """Whether an arrow into `item`'s input `position` is a residual's skip."""
    return item.role == "residual" and position == 1


def _skip_kind(graph, add: ir.Node, drawn: set) -> str:
    """`projection` where the skip's path holds a layer that is drawn and computes
    something, else `identity`: the block's input itself, or an `identity` layer (drawn
    with --show impl, or left out)."""
    stack = [add.inputs[1]]
    while stack:
        item = ir.node(graph, stack.pop())
        if item.role != "skip":
            continue
        if item.name in drawn and not is_implementation(graph, item):
            return "projection"
        stack.extend(item.inputs)
    return "identity"


def _add_legend(dot, graph, units: dict, style: str, skips: list[str]) -> None:
    """One swatch per colour the diagram uses, in the table's order, in a box of its own,
    and a line for each kind of skip drawn (`skips`)."""
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
        for kind in skips:  # a short line of each skip's style
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


def _graph_attributes(graph: nx.DiGraph, direction: str, column: str | None,
                      title: bool) -> dict:
    # column: a paper's ("single", "double") or a Graphviz size "WIDTH,HEIGHT" in inches
    size = {"size": column if "," in column else page_size(column)} if column else {}
    named = {"label": ir.network(graph).title, "labelloc": "t"} if title else {}
    # pad: a tight bounding box (2 pt), where dot's default leaves 4 pt
    return {**size, "rankdir": direction, "fontname": FONT, "fontsize": "11", "nodesep": "0.25",
            "ranksep": "0.3", **named, "newrank": "true", "pad": "0.03"}


def _failed_nodes(graph: nx.DiGraph) -> set[str]:
    """Nodes that rejected their inputs: no shape, though every input has one."""
    return {n for n in graph if graph.nodes[n].get("shape") is None and all(
        graph.nodes[i].get("shape") is not None for i in ir.node(graph, n).inputs)}


# ---- boxes ----------------------------------------------------------------------------


def _add_units(dot, graph, view: View, units: dict, style: str, failed: set,
               prefix: str = "", groups=None, frames: bool = True,
               margin: str | None = None, levels: dict | None = None) -> None:
    """The boxes, each in the clusters of its open blocks; `groups` gives a box's `group`
    (the main path's boxes share one, so dot keeps the arrows between them straight);
    `margin`: the clusters' margin in points (dot's default: 8); `levels` puts each
    top-level box or block it names in an unframed cluster of the level it gives (a U
    on its side: so a level's boxes stay together, in the order of the levels)."""
    clusters: dict[str, graphviz.Digraph] = {}
    hosts: dict[int, graphviz.Digraph] = {}
    host = lambda name: _level(dot, hosts, (levels or {}).get(name), prefix)  # noqa: E731
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
        if unit in (groups or {}):
            attributes["group"] = groups[unit]
        box = _cluster(dot, graph, clusters, train_only, ir.parent(graph, unit), label, prefix)
        (host(unit) if box is dot else box).node(prefix + unit, **attributes)
    for path in sorted(clusters, key=lambda p: -len(ir.ancestors(graph, p))):
        if not frames:  # kept as clusters, so that a block's boxes still sit together
            clusters[path].graph_attr.update(label="", peripheries="0")
        elif levels:  # inside a level's unframed cluster, whose peripheries it inherits;
            # its title centred, clear of a skip coming down into its left-hand box
            clusters[path].graph_attr.update(peripheries="1", labeljust="c")
        if margin is not None:
            clusters[path].graph_attr["margin"] = margin
        if path:
            parent = _parent_of(dot, graph, clusters, path)
            (host(path) if parent is dot else parent).subgraph(clusters[path])
    for level in sorted(hosts):
        dot.subgraph(hosts[level])


def _level(dot, hosts: dict, level: int | None, prefix: str):
    """The unframed cluster of a U's level, `dot` itself for None."""
    if level is None:
        return dot
    if level not in hosts:
        import graphviz
        hosts[level] = graphviz.Digraph(f"cluster_{prefix}level{level}", graph_attr={
            "label": "", "peripheries": "0", "margin": "0"})
    return hosts[level]


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
    words = ir.caption(graph, path)  # the author's (`layer1 as "conv2_x": ...`)
    if count:  # one iteration drawn for all of them, as papers draw a layer "×N"
        return (words or ", ".join(call.title for call in scope.calls)) + f" ×{count}"
    if words:
        return words
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
    words = ir.caption(graph, unit)  # the author's box text (`conv1 as "weight layer":`)
    if words and style != "detailed":
        label = words if nodes[0].name == unit else _group_label(graph, unit, nodes, words)
    if all(n.role == "skip" for n in nodes):
        attributes["style"] = "rounded,filled,dashed"
    if all(n.train_only for n in nodes):
        attributes.update(style="rounded,filled,dashed", fontcolor="#555555")
    attributes["label"] = label
    return attributes


def _group_label(graph, unit: str, nodes: list[ir.Node], words: str | None = None) -> str:
    """A collapsed scope's box: its name (or the author's `words`) over what it holds."""
    described = ir.describe_scope(graph, unit, [n.name for n in nodes])
    last = words or ir.label(graph, unit)
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
    each arrow between two boxes, once, in the IR's order. A skip whose add is folded
    into the join (`View.joins`) runs from its box into the first box after the join on
    the main path (not a projection), as the add's input 1."""
    members = {m for ms in units.values() for m in ms}
    ends = {end: ir.node(graph, add) for add, end in view.joins}  # the join's last node
    folded = {name for pair in view.joins for name in pair}
    seen, edges = set(), []
    for item in ir.nodes(graph):
        if item.name not in members:  # a hidden layer after a join passes the skip on
            if item.name not in folded:
                ends.update((item.name, ends[p]) for p in item.inputs if p in ends)
            continue
        head = view.unit(item.name)
        arrows = [(item, position, producer) for position, producer in enumerate(item.inputs)]
        joined = [ends.pop(p) for p in item.inputs if p in ends and item.role != "skip"]
        arrows += [(add, 1, add.inputs[1]) for add in joined]
        for read, position, producer in arrows:
            tail = view.unit(producer)
            if tail == head or (tail, head) in seen:
                continue
            seen.add((tail, head))
            edges.append((tail, head, read, position, producer))
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
               arrows: _Arrows = _Arrows(), kinds=None) -> None:
    """The arrows, laid out as `arrows` says: those in `rising` from head to tail
    (`dir=back`), so the decoder of a U climbs, with their arrowheads still at their
    heads; `across` gives the (tail, head) ports of arrows between boxes on one level (a
    U's skips); `broadcast` arrows are thin and dotted (`_broadcasts`); `back` ones are laid
    out from head to tail, as `rising` ones; `slant` ones have their label beside them
    (`xlabel`). `kinds` gives each residual add's skip kind."""
    for tail, head, item, position, producer in edges:
        attributes = _edge_attributes(graph, item, position, producer, shapes, failed,
                                      (kinds or {}).get(item.name, "identity"))
        pair = (tail, head)
        if pair in arrows.broadcast:
            attributes.update(style="dotted", color="#888888", arrowsize="0.4",
                              constraint="false", label=" ")
        if pair in arrows.across:
            attributes["tailport"], attributes["headport"] = arrows.across[pair]
        if pair in arrows.free:  # from one column of a snaked chain to the next
            attributes["constraint"] = "false"
        if pair in arrows.straight:
            attributes["weight"] = "10"
        if pair in arrows.loose:
            attributes["constraint"] = "false"
        if pair in arrows.quiet and "label" in attributes:
            attributes["label"] = " "
        if pair in arrows.slant and attributes.get("label", " ") != " ":
            attributes["xlabel"] = attributes.pop("label").strip()
        if pair in arrows.rising or pair in arrows.back:
            swap = {"tailport": "headport", "headport": "tailport"}
            attributes = {swap.get(k, k): v for k, v in attributes.items()}
            dot.edge(prefix + head, prefix + tail, dir="back", **attributes)
        else:
            dot.edge(prefix + tail, prefix + head, **attributes)


def _edge_attributes(graph, item: ir.Node, position: int, producer: str, shapes: bool,
                     failed: set, kind: str = "identity") -> dict:
    attributes = {}
    shape = graph.nodes[producer].get("shape")
    if shapes and shape:
        attributes["label"] = " " + sizes_text(graph, producer)
    elif shape:  # a blank label: dot orders branches as with shapes (as written)
        attributes["label"] = " "
    if _is_skip(item, position):
        attributes.update(style=SKIP_STYLE[kind], penwidth="1.2", tailport="e",
                          headport="e", color=SKIP_COLOUR, fontcolor=SKIP_COLOUR)
        if kind == "identity":  # its shape is the block input's, on the body's first arrow
            attributes["label"] = "identity"
    if item.train_only:
        attributes.update(style="dashed", color="#888888")
    if item.name in failed:
        attributes.update(color=ERROR_COLOUR, penwidth="2", fontcolor=ERROR_COLOUR)
    return attributes
