"""Backend: the architecture table of papers (ResNet's Table 1, VGG's Table 1): one column
per network, one row per feature-map size, each cell the layers that work at that size,
a repeated block as `[1×1, 64; 3×3, 64; 1×1, 256] ×3`, then parameters and MACs
(multiply-adds; FLOPs are twice as many). Parameters count a tied tensor once: its
layer says `(tied)` and a note under the table names the tie.

Pure: IR graphs in, Markdown or LaTeX out. Rows of different networks are matched by
their output size, so ResNet-18 to ResNet-152 (or VGG-11 to VGG-19) share a table.
Norms, activations, dropout and merges are left out, as papers leave them out; so are
the projections of residual skips and train-only heads. Strides are left out of conv
entries (the size column says where the size halves), kept on pools.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import networkx as nx

from .. import ir
from ..ops import OPS, numel
from ..ops.shapes import spatial
from ..passes.count_costs import total
from .report_stats import SHARED_NOTE, is_tied, latex_escape, shared_tensors

SHOWN = ("conv", "pool", "linear", "attention")  # the families a table lists
MACS_ROW = "MACs (multiply-adds)"


@dataclass(frozen=True)
class Entry:
    """Consecutive occurrences of one layer or one block: `lines` of one, `count` times."""
    lines: tuple[str, ...]
    count: int
    block: bool  # a block instance (bracketed), or a single layer


def table_rows(graph: nx.DiGraph) -> list[tuple[tuple[int, ...], str, list[Entry]]]:
    """(output size, stage names, entries) for each feature-map size, in order.

    >>> from archdsl import compile_source
    >>> g = compile_source("network t { input x: 3 x 8 x 8; c: conv(4, 3, pad = 1); "
    ...                    "d: conv(4, 3, pad = 1); maxpool(2) }").graph
    >>> [(size, [(e.lines, e.count) for e in entries]) for size, _, entries in table_rows(g)]
    [((8, 8), [(('3×3, 4',), 2)]), ((4, 4), [(('2×2 max pool, /2',), 1)])]
    """
    rows: dict[tuple[int, ...], tuple[list[str], list[Entry]]] = {}
    named: set[str] = set()  # stages already named by an earlier row
    last_size: tuple[int, ...] = ()
    for scope, nodes in _occurrences(graph):
        shape = ir.shape(graph, nodes[-1].name)
        size = tuple(n for _, n in spatial(shape)) if shape else ()
        size = size or last_size or (1,)
        last_size = size
        lines = tuple(_caption(graph, n) for n in nodes)
        stages, entries = rows.setdefault(size, ([], []))
        stage = ir.outermost(graph, nodes[0].name)
        if stage not in named:
            named.add(stage)
            stages.append(stage)
        if entries and entries[-1].lines == lines and entries[-1].block == bool(scope):
            entries[-1] = Entry(lines, entries[-1].count + 1, bool(scope))
        else:
            entries.append(Entry(lines, 1, bool(scope)))
    return [(size, ", ".join(stages), entries) for size, (stages, entries) in rows.items()]


def _occurrences(graph: nx.DiGraph):
    """(block instance scope or "", the shown layers in it), in order: a block's layers
    stay together, a layer outside any block stands alone."""
    # a scope that holds exactly one block call is that block's instance (`layer1.0`); a
    # scope of several calls (VGG's `features`) is a sequence of layers
    instances = {scope.path for scope in ir.network(graph).scopes.values()
                 if scope.path and len(scope.calls) == 1}
    current, nodes = None, []
    for item in ir.nodes(graph):
        if OPS[item.op].family not in SHOWN or item.role == "skip" or item.train_only:
            continue
        scope = next((p for p in reversed(ir.scopes_of(graph, item.name)) if p in instances), "")
        if scope and scope == current:
            nodes.append(item)
            continue
        if nodes:
            yield current, nodes
        current, nodes = scope, [item]
    if nodes:
        yield current, nodes


def _caption(graph: nx.DiGraph, item: ir.Node) -> str:
    """`3×3, 64` for a conv (its stride is the size column's business), the op's paper
    caption for the rest (`3×3 max pool, /2`, `fc 1000`); `(tied)` after a layer whose
    tensor is another's."""
    tied = " (tied)" if is_tied(graph, item.name) else ""
    if item.op == "conv":
        kernel = item.args["kernel"]
        size = "×".join(map(str, kernel)) if isinstance(kernel, tuple) else f"{kernel}×{kernel}"
        groups = f", g{item.args['groups']}" if item.args["groups"] != 1 else ""
        return f"{size}, {item.args['channels']}{groups}{tied}"
    return re.sub(r"(\d)x(\d)", r"\1×\2", OPS[item.op].caption(item.args)) + tied


def _size_text(size: tuple[int, ...]) -> str:
    return "×".join(map(str, size))


def _columns(graphs: list[nx.DiGraph]):
    """The rows of all networks, matched by output size: [(size, stage, [cell per net])]."""
    per_network = [{size: (stage, entries) for size, stage, entries in table_rows(g)}
                   for g in graphs]
    order: list[tuple[int, ...]] = []
    for rows in per_network:
        for size in rows:
            if size not in order:
                order.append(size)
    order.sort(key=lambda s: -numel(s))  # large maps first, as the networks run
    out = []
    for size in order:
        stage = next((rows[size][0] for rows in per_network if size in rows), "")
        out.append((size, stage, [rows[size][1] if size in rows else [] for rows in
                                  per_network]))
    return out


def _totals(graph: nx.DiGraph) -> tuple[int, int]:
    counts = total(graph, train=False)
    return counts.params, counts.macs


def _shared_note(graphs: list[nx.DiGraph]) -> str:
    """`Parameters count each shared tensor once: lm_head.weight = wte.weight (38,597,376).`
    (each tie named by its network where the table has several); "" without ties."""
    named = len(graphs) > 1
    ties = ["; ".join(f"{ir.network(g).name}: {tie}" if named else tie
                      for tie in shared_tensors(g)) for g in graphs if ir.network(g).ties]
    return f"{SHARED_NOTE.capitalize()}: {'; '.join(ties)}." if ties else ""


def _scientific(n: int) -> str:
    exponent = len(str(n)) - 1
    return f"{n / 10 ** exponent:.1f}×10^{exponent}"


# ---- Markdown -----------------------------------------------------------------------------


def format_markdown(graphs: list[nx.DiGraph]) -> str:
    """The table in GitHub Markdown; a block's layers read `[a; b; c] ×n`."""
    header = ["stage", "output size", *(ir.network(g).name for g in graphs)]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---|" * len(graphs)]
    for size, stage, cells in _columns(graphs):
        texts = ["<br>".join(map(_entry_markdown, entries)) for entries in cells]
        lines.append("| " + " | ".join([stage, _size_text(size), *texts]) + " |")
    params = [f"{_totals(g)[0]:,}" for g in graphs]
    macs = [_scientific(_totals(g)[1]) for g in graphs]
    lines.append("| parameters | | " + " | ".join(params) + " |")
    lines.append(f"| {MACS_ROW} | | " + " | ".join(macs) + " |")
    note = _shared_note(graphs)
    if note:  # below the table, as a paper's footnote
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _entry_markdown(entry: Entry) -> str:
    count = f" ×{entry.count}" if entry.count > 1 else ""
    if entry.block:
        return f"[{'; '.join(entry.lines)}]{count}"
    return f"{entry.lines[0]}{count}"


# ---- LaTeX --------------------------------------------------------------------------------


def format_latex(graphs: list[nx.DiGraph]) -> str:
    """A booktabs table; blocks as bracketed column vectors times their count, as in
    ResNet's Table 1. Needs `\\usepackage{booktabs}` and `amsmath`."""
    columns = "ll" + "c" * len(graphs)
    names = " & ".join(latex_escape(ir.network(g).name) for g in graphs)
    out = [r"% needs \usepackage{booktabs} and \usepackage{amsmath}",
           rf"\begin{{tabular}}{{{columns}}}", r"\toprule",
           rf"stage & output size & {names} \\", r"\midrule"]
    for size, stage, cells in _columns(graphs):
        texts = [_cell_latex(entries) for entries in cells]
        out.append(" & ".join([latex_escape(stage), latex_escape(_size_text(size)), *texts])
                   + r" \\")
        out.append(r"\addlinespace")
    out.append(r"\midrule")
    out.append("parameters & & " + " & ".join(latex_escape(f"{_totals(g)[0]:,}")
                                               for g in graphs) + r" \\")
    out.append(f"{MACS_ROW} & & " + " & ".join(_latex_power(_totals(g)[1]) for g in graphs)
               + r" \\")
    out.append(r"\bottomrule")
    note = _shared_note(graphs)
    if note:  # below the rule, as a paper's footnote
        out.append(rf"\multicolumn{{{len(graphs) + 2}}}{{l}}{{\footnotesize "
                   rf"{latex_escape(note)}}} \\")
    out.append(r"\end{tabular}")
    return "\n".join(out) + "\n"


def _cell_latex(entries: list[Entry]) -> str:
    if not entries:
        return ""
    parts = [_entry_latex(e) for e in entries]
    if len(parts) == 1:
        return parts[0]
    return r"\begin{tabular}[c]{@{}c@{}}" + r" \\ ".join(parts) + r"\end{tabular}"


def _entry_latex(entry: Entry) -> str:
    """`$\\begin{bmatrix}\\text{1$\\times$1, 64}\\\\ ...\\end{bmatrix}\\times 3$`."""
    lines = [r"\text{" + latex_escape(line) + "}" for line in entry.lines]
    count = rf"\times {entry.count}" if entry.count > 1 else ""
    if entry.block:
        return r"$\begin{bmatrix}" + r" \\ ".join(lines) + r"\end{bmatrix}" + count + "$"
    return "$" + lines[0] + count + "$"


def _latex_power(n: int) -> str:
    exponent = len(str(n)) - 1
    return rf"${n / 10 ** exponent:.1f}\times 10^{{{exponent}}}$"
