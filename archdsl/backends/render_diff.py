"""Backend: two networks side by side, what differs between them marked (`archdsl render
--diff A B`).

A and B are drawn as `render_many` draws several networks, each under its name and its
totals; then each box that holds a block instance or layer `report_diff` found changed,
added or removed gets an outline of that kind (changed: solid, added: dotted, removed:
dashed; each in its own colour, so that the figure reads in greyscale too). A changed
scope inside a collapsed box (`bottleneck ×3`) marks that box; a box partly added to or
removed from is *changed*; a scope drawn open (a cluster) has its outline marked, not the
boxes in it. B's changed boxes are captioned with the arguments that changed, where that
is short (`groups = 32`); A's with how many instances it lost.

Pure: two IR graphs and their Diff in, DOT text out.
"""
from __future__ import annotations

import networkx as nx

from .. import ir
from ..lang.space import spec_text
from .render_dot import render_many
from .render_view import drawn_view
from .report_diff import Change, Diff
from .report_stats import human_count

# Okabe-Ito hues, as the boxes' fills; the outline's pattern tells the kinds apart in grey.
KIND_STYLE = {
    "changed": {"color": "#E69F00", "penwidth": "3"},
    "added": {"color": "#009E73", "penwidth": "3", "style": "rounded,filled,dotted"},
    "removed": {"color": "#CC79A7", "penwidth": "3", "style": "rounded,filled,dashed"},
}
CAPTION_CHARS = 32  # a longer list of changed arguments is left to `archdsl diff`


def render_diff(a: nx.DiGraph, b: nx.DiGraph, diff: Diff, *, depth: int | None = None,
                expand=(), direction: str = "TB", shapes: bool = True, style: str = "paper",
                column: str | None = None, show=(), title: bool = True,
                legend: bool = False, frames: bool = True, merges: str = "marked") -> str:
    """DOT source for A beside B, with what `diff` lists marked on both; `frames` and
    `merges` as render_dot takes them (without frames, a changed open block still has
    its marked outline, untitled).

    >>> from archdsl import compile_source
    >>> from archdsl.backends.report_diff import diff_graphs
    >>> a = compile_source("network n { input x: 8; fc: linear(4) }").graph
    >>> b = compile_source("network n { input x: 8; fc: linear(2) }").graph
    >>> text = render_diff(a, b, diff_graphs(a, b))
    >>> '"net1/fc" [color="#E69F00" penwidth=3 xlabel="features 4 → 2"]' in text
    True
    """
    import graphviz  # here, as render_dot does: `archdsl check` draws nothing
    source = render_many([a, b], depth=depth, expand=expand, direction=direction,
                         shapes=shapes, style=style, column=column, show=show, title=title,
                         legend=legend, frames=frames, merges=merges)
    marks = graphviz.Digraph()  # statements after the drawing's own: they restyle its boxes
    if title:
        _add_titles(marks, a, b, diff)
    drawn = set()
    for index, (graph, kinds) in enumerate(((a, ("changed", "removed")),
                                            (b, ("changed", "added")))):
        changes = [c for c in diff.changes if c.kind in kinds]
        view = drawn_view(graph, depth, expand, style, show, merges)  # render_many's boxes
        boxes, clusters = _marked(graph, view, changes)
        for box, held in boxes.items():
            kind = _kind(held)
            caption = _caption(a, b, held, index == 1) if kind == "changed" else ""
            marks.node(f"net{index}/{box}", **KIND_STYLE[kind],
                       **({"xlabel": caption} if caption else {}))
            drawn.add(kind)
        for path, kind in clusters.items():
            marks.subgraph(_cluster_mark(graph, f"net{index}", path, kind, frames))
            drawn.add(kind)
    _add_key(marks, [kind for kind in KIND_STYLE if kind in drawn])
    return source[:source.rstrip().rindex("}")] + "".join(marks.body) + "}\n"


def _marked(graph: nx.DiGraph, view, changes: list[Change]) -> tuple[dict, dict]:
    """({box: the change each of its layers is in, None if in none}, {open scope: kind})
    for the boxes and open scopes that hold a change."""
    named = {change.name: change for change in changes}
    units: dict[str, list] = {}
    clusters = {}
    for name in graph:
        if ir.shape(graph, name) is None:
            continue  # not drawn
        box = view.unit(name)
        change = next((named[p] for p in (*ir.scopes_of(graph, name), name) if p in named),
                      None)
        if change is not None and _drawn_open(graph, change.name, box):
            clusters[change.name] = change.kind  # its outline is marked, not its boxes
            change = None
        units.setdefault(box, []).append(change)
    return {box: held for box, held in units.items() if any(held)}, clusters


def _drawn_open(graph: nx.DiGraph, name: str, box: str) -> bool:
    """Whether a changed scope is drawn as a cluster: one of its boxes is inside it, not
    the scope itself or a box around it."""
    return name not in graph and box != name and box not in ir.ancestors(graph, name)


def _kind(held: list[Change | None]) -> str:
    """A box wholly added (or removed) is that; one that holds any other change, or
    unchanged layers beside an added one, is changed."""
    kinds = {c.kind for c in held if c is not None}
    return kinds.pop() if len(kinds) == 1 and None not in held else "changed"


def _caption(a: nx.DiGraph, b: nx.DiGraph, held: list, on_b: bool) -> str:
    """What changed in a box, where it is short: on B the changed arguments and the
    instances added, on A the instances removed."""
    changes = list(dict.fromkeys(c for c in held if c is not None))
    parts = [_changed_arguments(a, b, c.name) for c in changes if c.kind == "changed" and on_b]
    for kind in ("added", "removed"):
        count = sum(c.kind == kind for c in changes)
        if count:
            parts.append(f"{count} {kind}")
    text = "; ".join(dict.fromkeys(p for p in parts if p))
    return text if len(text) <= CAPTION_CHARS else ""


def _changed_arguments(a: nx.DiGraph, b: nx.DiGraph, name: str) -> str:
    """`groups = 32`: what differs between a layer's (or an instance's) two calls; ""
    for a layer that became a block, or a block a layer."""
    scopes = ir.scope(a, name), ir.scope(b, name)
    if name in a and name in b:
        before, after = ir.node(a, name), ir.node(b, name)
        calls = [((before.op, before.args), (after.op, after.args))]
    elif None in scopes:
        return ""
    else:
        calls = [((x.block, x.args), (y.block, y.args)) for x, y in
                 zip(scopes[0].calls, scopes[1].calls)]
    parts = []
    for (old_name, old_args), (new_name, new_args) in calls:
        if old_name != new_name:
            parts.append(f"{old_name} → {new_name}")
        parts += argument_changes(tuple(old_args), tuple(new_args))
    return ", ".join(parts)


def argument_changes(before: tuple, after: tuple) -> list[str]:
    """The arguments that differ, ((name, value), ...) before and after, as B has them:
    an argument renamed with its value kept (`width = 64` as `planes = 64`) is not a
    change, and one that B's block does not take is left to `archdsl diff` (a caption
    says what B's boxes are).

    >>> argument_changes((("width", 64), ("stride", 1)),
    ...                  (("planes", 64), ("stride", 2), ("groups", 32)))
    ['stride 1 → 2', 'groups = 32']
    """
    old, new = dict(before), dict(after)
    unmatched = {k: v for k, v in old.items() if k not in new}
    parts = []
    for key, value in new.items():
        if key in old:
            if old[key] != value:
                parts.append(f"{key} {spec_text(old[key])} → {spec_text(value)}")
            continue
        renamed = next((k for k, v in unmatched.items() if v == value), None)
        if renamed is None:
            parts.append(f"{key} = {spec_text(value)}")
        else:
            del unmatched[renamed]
    return parts


def _cluster_mark(graph: nx.DiGraph, net: str, path: str, kind: str, frames: bool = True):
    """An open scope's outline restyled (drawn again where frames are left out). Graphviz
    finds a subgraph by its name among its parent's only, so the statement is nested in
    every cluster that holds the scope."""
    import graphviz
    chain = [net] + [f"{net}/{p}" for p in ir.ancestors(graph, path)]
    marked = graphviz.Digraph(name=f"cluster_{chain[-1]}", graph_attr={
        **KIND_STYLE[kind], "style": KIND_STYLE[kind].get("style", "").replace("filled,", "")
        or "rounded", **({} if frames else {"peripheries": "1"})})
    for name in reversed(chain[:-1]):
        outer = graphviz.Digraph(name=f"cluster_{name}")
        outer.subgraph(marked)
        marked = outer
    return marked


def _add_titles(marks, a: nx.DiGraph, b: nx.DiGraph, diff: Diff) -> None:
    """Each network's name, and its totals as `archdsl diff` counts them; one network at
    two settings (`--set-b depth=32`) is named with the parameters that differ."""
    params = [ir.network(g).params for g in (a, b)]
    titles = [ir.network(g).title for g in (a, b)]  # the author's may say the settings
    differ = [k for k in dict.fromkeys([*params[0], *params[1]])
              if params[0].get(k) != params[1].get(k) and titles[0] == titles[1]]
    for index, totals in enumerate(diff.totals):
        settings = ", ".join(f"{k} = {spec_text(params[index][k])}" for k in differ
                             if k in params[index])
        label = (titles[index] + (f" ({settings})" if settings else "")
                 + f"\n{human_count(totals['params'])} parameters, "
                 f"{human_count(totals['macs'])} MACs")
        with marks.subgraph(name=f"cluster_net{index}") as box:
            box.attr(label=label)


def _add_key(marks, kinds: list[str]) -> None:
    """One swatch per kind of mark the figure uses, in a row."""
    if not kinds:
        return
    with marks.subgraph(name="cluster_diff_key", graph_attr={
            "label": "", "style": "rounded", "color": "#999999"}) as box:
        box.attr(rank="same")
        for kind in kinds:
            box.node(f"key_{kind}", label=kind, fillcolor="#FFFFFF", fontsize="9",
                     **KIND_STYLE[kind])
        for left, right in zip(kinds, kinds[1:]):  # keeps the row in the table's order
            box.edge(f"key_{left}", f"key_{right}", style="invis")
