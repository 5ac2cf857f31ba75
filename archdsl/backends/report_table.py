"""Backend: the architecture table of papers (ResNet's Table 1, VGG's Table 1): one column
per network, one row per feature-map size, each cell the layers that work at that size,
then parameters and MACs (multiply-adds; FLOPs are twice as many), each of those two rows
in one unit (the largest value's power of 1000, as `×10^9`). Parameters count a tied
tensor once: its layer says `(tied)` and a note under the table names the tie.

Two notations: `bracket` (ResNet's), where anything repeated is bracketed, `[3×3, 64] ×2`,
`[1×1, 64; 3×3, 64; 1×1, 256] ×3`, so the count never reads as a channel count; and
`vgg` (VGG's), `conv3-64`, a repeated layer written out on a line each (up to four).
A third, `branched`, is GoogLeNet's Table 1 for one network of branched modules (a row
per layer or module, a column per kind of branch: report_table_branched); `auto`, the
default, takes it for one network that has such a module, `bracket` otherwise.

Pure: IR graphs in, Markdown or LaTeX out. Rows of different networks are matched by
their output size, so ResNet-18 to ResNet-152 (or VGG-11 to VGG-19) share a table; in
LaTeX the layers every column has at the start or end of a row span all columns. Norms
(LRN excepted), activations, dropout and merges are left out, as papers leave them out;
so are the projections of residual skips and train-only heads. Strides are left out of
conv entries (the size column says where the size halves), kept on pools.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import networkx as nx

from .. import ir
from ..ops import OPS, numel
from ..ops.shapes import spatial
from ..passes.count_costs import total
from .report_stats import SHARED_NOTE, is_tied, latex_escape, shared_tensors

SHOWN = ("conv", "pool", "linear", "attention")  # the families a table lists
PAPER_VISIBLE = ("lrn",)  # layers of other families that papers print (AlexNet, VGG A-LRN)
NOTATIONS = ("auto", "bracket", "vgg", "branched")
VGG_WRITTEN_OUT = 4  # the vgg notation writes a layer repeated up to 4 times line by line
WIDTHS = {"natural": "", "column": r"\columnwidth", "text": r"\textwidth"}
TOTAL_ROWS = (("parameters", ""), ("MACs", "multiply-adds"))  # (label, what it counts)


@dataclass(frozen=True)
class Entry:
    """Consecutive occurrences of one layer or one block: `lines` of one, `count` times."""
    lines: tuple[str, ...]
    count: int
    block: bool  # a block instance, or a single layer

    @property
    def bracketed(self) -> bool:
        """A block, or a repeated layer: `[3×3, 64] ×2`, never `3×3, 64 ×2`."""
        return self.block or self.count > 1


def table_rows(graph: nx.DiGraph, notation: str = "bracket"
               ) -> list[tuple[tuple[int, ...], str, list[Entry]]]:
    """(output size, stage names, entries) for each feature-map size, in order.

    >>> from archdsl import compile_source
    >>> g = compile_source("network t { input x: 3 x 8 x 8; c: conv(4, 3, pad = 1); "
    ...                    "d: conv(4, 3, pad = 1); maxpool(2) }").graph
    >>> [(size, [(e.lines, e.count) for e in entries]) for size, _, entries in table_rows(g)]
    [((8, 8), [(('3×3, 4',), 2)]), ((4, 4), [(('2×2 max pool, /2',), 1)])]
    >>> [e.lines for _, _, entries in table_rows(g, "vgg") for e in entries]
    [('conv3-4',), ('maxpool',)]
    """
    rows: dict[tuple[int, ...], tuple[list[str], list[Entry]]] = {}
    named: set[str] = set()  # stages already named by an earlier row
    last_size: tuple[int, ...] = ()
    for scope, nodes in _occurrences(graph):
        shape = ir.shape(graph, nodes[-1].name)
        size = tuple(n for _, n in spatial(shape)) if shape else ()
        size = size or last_size or (1,)
        last_size = size
        lines = tuple(_caption(graph, n, notation) for n in nodes)
        stages, entries = rows.setdefault(size, ([], []))
        stage = ir.outermost(graph, nodes[0].name)
        if stage not in named:
            named.add(stage)
            stages.append(stage)
        if entries and entries[-1].lines == lines and entries[-1].block == bool(scope):
            entries[-1] = Entry(lines, entries[-1].count + 1, bool(scope))
        else:
            entries.append(Entry(lines, 1, bool(scope)))
    return [(size, _stage_words(graph, stages), entries)
            for size, (stages, entries) in rows.items()]


def _stage_words(graph: nx.DiGraph, stages: list[str]) -> str:
    """The stage column: the stages' names (`maxpool, layer1`), or where the author
    captioned some of them (`layer1 as "conv2_x"`), those words only (`conv2_x`), as the
    paper names the row after its stage."""
    words = [ir.caption(graph, s) for s in stages if ir.caption(graph, s)]
    return ", ".join(dict.fromkeys(words)) if words else ", ".join(stages)


def _shown(item: ir.Node) -> bool:
    return ((OPS[item.op].family in SHOWN or item.op in PAPER_VISIBLE)
            and item.role != "skip" and not item.train_only)


def _occurrences(graph: nx.DiGraph):
    """(block instance scope or "", the shown layers in it), in order: a block's layers
    stay together, a layer outside any block stands alone."""
    # a scope that holds exactly one block call is that block's instance (`layer1.0`); a
    # scope of several calls (VGG's `features`) is a sequence of layers
    instances = {scope.path for scope in ir.network(graph).scopes.values()
                 if scope.path and len(scope.calls) == 1}
    current, nodes = None, []
    for item in filter(_shown, ir.nodes(graph)):
        scope = next((p for p in reversed(ir.scopes_of(graph, item.name)) if p in instances), "")
        if scope and scope == current:
            nodes.append(item)
            continue
        if nodes:
            yield current, nodes
        current, nodes = scope, [item]
    if nodes:
        yield current, nodes


def _caption(graph: nx.DiGraph, item: ir.Node, notation: str) -> str:
    """The layer as the notation writes it; `(tied)` after a layer whose tensor is
    another's."""
    tied = " (tied)" if is_tied(graph, item.name) else ""
    return (_vgg_caption if notation == "vgg" else bracket_caption)(item) + tied


def _kernel_text(item: ir.Node) -> str:
    kernel = item.args["kernel"]
    return "×".join(map(str, kernel)) if isinstance(kernel, tuple) else f"{kernel}"


def bracket_caption(item: ir.Node) -> str:
    """`3×3, 64` for a conv (its stride is the size column's business), the op's paper
    caption for the rest (`3×3 max pool, /2`, `fc 1000`)."""
    if item.op == "conv":
        kernel = _kernel_text(item)
        size = kernel if "×" in kernel else f"{kernel}×{kernel}"
        groups = f", g{item.args['groups']}" if item.args["groups"] != 1 else ""
        return f"{size}, {item.args['channels']}{groups}"
    return re.sub(r"(\d)x(\d)", r"\1×\2", OPS[item.op].caption(item.args))


def _vgg_caption(item: ir.Node) -> str:
    """VGG's Table 1: `conv3-64`, `maxpool`, `FC-4096`, `LRN`; the bracket caption for
    layers VGG has no word for."""
    if item.op == "conv":
        groups = f", g{item.args['groups']}" if item.args["groups"] != 1 else ""
        return f"conv{_kernel_text(item)}-{item.args['channels']}{groups}"
    words = {"maxpool": "maxpool", "avgpool": "avgpool", "lrn": "LRN"}
    if item.op == "linear":
        return f"FC-{item.args['features']}"
    return words.get(item.op) or bracket_caption(item)


def _written_out(entries: list[Entry], notation: str) -> list[Entry]:
    """The vgg notation writes a layer repeated a few times on a line each, as VGG does."""
    if notation != "vgg":
        return entries
    out: list[Entry] = []
    for entry in entries:
        if not entry.block and 1 < entry.count <= VGG_WRITTEN_OUT:
            out += [Entry(entry.lines, 1, False)] * entry.count
        else:
            out.append(entry)
    return out


def _size_text(size: tuple[int, ...]) -> str:
    return "×".join(map(str, size))


def _columns(graphs: list[nx.DiGraph], notation: str):
    """The rows of all networks, matched by output size: [(size, stage, [cell per net])]."""
    per_network = [{size: (stage, entries) for size, stage, entries in table_rows(g, notation)}
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


def _shared_parts(cells: list[list[Entry]]) -> list[tuple[bool, list[list[Entry]]]]:
    """A row split where its columns agree: (shared, cells) for the entries every column
    starts with, those they differ in, and those every column ends with, as ResNet's
    Table 1 spans `3×3 max pool` over its five columns above their blocks.

    >>> a, b, c = (Entry((t,), 1, False) for t in "abc")
    >>> _shared_parts([[a, b, c], [a, c]])
    [(True, [[Entry(lines=('a',), count=1, block=False)]]), \
(False, [[Entry(lines=('b',), count=1, block=False)], []]), \
(True, [[Entry(lines=('c',), count=1, block=False)]])]
    """
    if len(cells) < 2 or not all(cells):
        return [(False, cells)]
    if all(cell == cells[0] for cell in cells):
        return [(True, [cells[0]])]
    shortest = min(map(len, cells))
    start = next((i for i in range(shortest) if any(c[i] != cells[0][i] for c in cells)),
                 shortest)
    end = next((i for i in range(1, shortest - start + 1)
                if any(c[-i] != cells[0][-i] for c in cells)), shortest - start + 1) - 1
    parts = [(True, [cells[0][:start]]),
             (False, [cell[start:len(cell) - end] for cell in cells]),
             (True, [cells[0][len(cells[0]) - end:]])]
    return [(shared, part) for shared, part in parts if any(part)]


def _totals(graphs: list[nx.DiGraph]) -> tuple[list[int], list[int]]:
    counts = [total(g, train=False) for g in graphs]
    return [c.params for c in counts], [c.macs for c in counts]


def in_one_unit(values: list[int]) -> tuple[int, list[str]]:
    """The power of 1000 of the largest value, and every value in it: one unit per row,
    never 7.8×10^9 beside 1.2×10^10.

    >>> in_one_unit([1_819_066_368, 11_580_000_000, 41_000_000])
    (9, ['1.8', '11.6', '0.041'])
    >>> in_one_unit([120, 96])
    (0, ['120', '96'])
    """
    exponent = 3 * ((len(str(max(values, default=0))) - 1) // 3)
    return exponent, [_mantissa(v / 10 ** exponent, exponent) for v in values]


def _mantissa(value: float, exponent: int) -> str:
    if exponent == 0:
        return f"{round(value):,}"
    if value >= 1 or value == 0:
        return f"{value:.1f}"
    return f"{value:.{1 - math.floor(math.log10(value))}f}"  # two significant digits


def _shared_note(graphs: list[nx.DiGraph]) -> str:
    """`Parameters count each shared tensor once: lm_head.weight = wte.weight (38,597,376).`
    (each tie named by its network where the table has several); "" without ties."""
    named = len(graphs) > 1
    ties = ["; ".join(f"{ir.network(g).name}: {tie}" if named else tie
                      for tie in shared_tensors(g)) for g in graphs if ir.network(g).ties]
    return f"{SHARED_NOTE.capitalize()}: {'; '.join(ties)}." if ties else ""


def _row_label(label: str, counts: str, unit: str) -> str:
    """`MACs (multiply-adds, ×10^9)`, `parameters (×10^6)`."""
    said = ", ".join(filter(None, (counts, unit)))
    return f"{label} ({said})" if said else label


def _is_branched(graphs: list[nx.DiGraph], notation: str) -> bool:
    """`branched` (one network only), or `auto` for one network with a branched module."""
    if notation == "branched" and len(graphs) != 1:
        raise ValueError(f"the branched form tabulates one network, not {len(graphs)}")
    if notation != "auto" or len(graphs) != 1:
        return notation == "branched"
    from .report_table_branched import has_branched_modules
    return has_branched_modules(graphs[0])


def _headers(graphs: list[nx.DiGraph], headers: list[str] | None) -> list[str]:
    return list(headers) if headers is not None else [ir.network(g).title for g in graphs]


# ---- Markdown -----------------------------------------------------------------------------


def format_markdown(graphs: list[nx.DiGraph], headers: list[str] | None = None,
                    notation: str = "auto") -> str:
    """The table in GitHub Markdown; a block's layers read `[a; b; c] ×n`. `headers`
    name the columns (default: the networks)."""
    if _is_branched(graphs, notation):
        from . import report_table_branched  # it builds on this module's captions
        return report_table_branched.format_markdown(graphs[0])
    header = ["stage", "output size", *_headers(graphs, headers)]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---|" * len(graphs)]
    for size, stage, cells in _columns(graphs, notation):
        texts = ["<br>".join(map(_entry_markdown, _written_out(entries, notation)))
                 for entries in cells]
        lines.append("| " + " | ".join([stage, _size_text(size), *texts]) + " |")
    for (label, counts), values in zip(TOTAL_ROWS, _totals(graphs)):
        exponent, texts = in_one_unit(values)
        unit = _row_label(label, counts, f"×10^{exponent}" if exponent else "")
        lines.append(f"| {unit} | | " + " | ".join(texts) + " |")
    note = _shared_note(graphs)
    if note:  # below the table, as a paper's footnote
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _entry_markdown(entry: Entry) -> str:
    count = f" ×{entry.count}" if entry.count > 1 else ""
    if entry.bracketed:
        return f"[{'; '.join(entry.lines)}]{count}"
    return entry.lines[0]


# ---- LaTeX --------------------------------------------------------------------------------


def format_latex(graphs: list[nx.DiGraph], headers: list[str] | None = None,
                 notation: str = "auto", width: str = "natural") -> str:
    """A booktabs table; blocks as bracketed column vectors times their count, as in
    ResNet's Table 1; what every column has spans them all (`\\multicolumn`). `width`
    `column` or `text` shrinks it to `\\columnwidth` or `\\textwidth` where it is wider.
    Needs `\\usepackage{booktabs}` and `amsmath` (and `graphicx` for `width`)."""
    if _is_branched(graphs, notation):
        from . import report_table_branched  # it builds on this module's captions
        return report_table_branched.format_latex(graphs[0], width)
    n = len(graphs)
    names = " & ".join(map(latex_escape, _headers(graphs, headers)))
    out = [rf"\begin{{tabular}}{{ll{'c' * n}}}", r"\toprule",
           rf"stage & output size & {names} \\", r"\midrule"]
    for size, stage, cells in _columns(graphs, notation):
        labels = [latex_escape(stage), latex_escape(_size_text(size))]
        for shared, part in _shared_parts(cells):
            texts = [_cell_latex(_written_out(entries, notation)) for entries in part]
            if shared and n > 1:
                texts = [rf"\multicolumn{{{n}}}{{c}}{{{texts[0]}}}"]
            out.append(" & ".join([*labels, *texts]) + r" \\")
            labels = ["", ""]
        out.append(r"\addlinespace")
    out.append(r"\midrule")
    for (label, counts), values in zip(TOTAL_ROWS, _totals(graphs)):
        exponent, texts = in_one_unit(values)
        unit = _row_label(label, counts, rf"$\times 10^{{{exponent}}}$" if exponent else "")
        out.append(rf"\multicolumn{{2}}{{l}}{{{unit}}} & " + " & ".join(texts) + r" \\")
    out.append(r"\bottomrule")
    note = _shared_note(graphs)
    if note:  # below the rule, as a paper's footnote
        out.append(rf"\multicolumn{{{n + 2}}}{{l}}{{\footnotesize {latex_escape(note)}}} \\")
    out.append(r"\end{tabular}")
    return sized(out, WIDTHS[width])


def sized(tabular: list[str], width: str) -> str:
    """The tabular, shrunk to `width` where it is wider (never enlarged), with less space
    between columns so that the shrinking is less."""
    if not width:
        return "\n".join([r"% needs \usepackage{booktabs} and \usepackage{amsmath}",
                          *tabular]) + "\n"
    return "\n".join([
        r"% needs \usepackage{booktabs}, \usepackage{amsmath} and \usepackage{graphicx}",
        rf"% at most {width} wide" + (" (in two columns: table*)" if "text" in width else ""),
        r"\begingroup\setlength{\tabcolsep}{4pt}%",
        rf"\resizebox{{\ifdim\width>{width}{width}\else\width\fi}}{{!}}{{%",
        *tabular[:-1], tabular[-1] + "}%", r"\endgroup"]) + "\n"


def _cell_latex(entries: list[Entry]) -> str:
    if not entries:
        return ""
    parts = [_entry_latex(e) for e in entries]
    if len(parts) == 1:
        return parts[0]
    return r"\begin{tabular}[c]{@{}c@{}}" + r" \\ ".join(parts) + r"\end{tabular}"


def _entry_latex(entry: Entry) -> str:
    """`$\\begin{bmatrix}\\text{1$\\times$1, 64}\\\\ ...\\end{bmatrix}\\times 3$`, or the
    layer as text."""
    if not entry.bracketed:
        return latex_escape(entry.lines[0])
    lines = [r"\text{" + latex_escape(line) + "}" for line in entry.lines]
    count = rf"\times {entry.count}" if entry.count > 1 else ""
    return r"$\begin{bmatrix}" + r" \\ ".join(lines) + r"\end{bmatrix}" + count + "$"
