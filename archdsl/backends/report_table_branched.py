"""Backend: GoogLeNet's Table 1, the table of one network whose modules run branches side
by side and concatenate them: a row per layer or module with its type, patch size/stride,
output size and depth, the channels of each branch in its own column (#1×1, #3×3 reduce,
#3×3, #5×5 reduce, #5×5, pool proj), then its parameters and MACs.

The columns come from the branches' layers, never from a block's name: a branch that is
one 1×1 conv is `#1×1`; a 1×1 conv then a k×k conv is `#k×k reduce` and `#k×k` (one pair
per kernel size the network has, smallest first); a k×k conv alone is `#k×k`; a pool then
a 1×1 conv is `pool proj`. A module is the layers between a concat and the one layer every
path to it comes through (its immediate dominator). A module whose branches are not plain
chains of such layers, or two of whose branches claim one column (torchvision's GoogLeNet
has 3×3 convs in two), is written in ResNet's bracket form across the # columns, a
bracket per branch. Outside the modules a 1×1 conv then a k×k conv is one row with its
reduce filled in, as the paper's `conv2`, when the network has that k×k column.

Norms (LRN too, as GoogLeNet's table leaves it out), activations and train-only heads
are left out; dropout is a row, as in the paper. A row's parameters and MACs are those of
its layers and of the left-out layers after them (a conv's bias and norm, its ReLU).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from .. import ir
from ..ops import OPS
from ..ops.shapes import spatial
from .report_stats import latex_escape
from .report_table import WIDTHS, bracket_caption, sized

ROW_FAMILIES = ("conv", "pool", "linear", "attention", "reg")  # layers that are rows
TYPES = {"conv": "convolution", "maxpool": "max pool", "avgpool": "avg pool",
         "global_avgpool": "avg pool", "global_maxpool": "max pool", "linear": "linear"}
PARAMS_UNIT, OPS_UNIT = 1_000, 1_000_000  # the paper's K and M


@dataclass
class Row:
    """A table row: its type, patch, output shape, depth, channels per # column, the
    layers it covers, and the bracket text of a module that does not fit the columns."""
    kind: str
    patch: str = ""
    shape: tuple[int, ...] = ()
    depth: int = 0
    channels: dict[str, int] = field(default_factory=dict)
    nodes: list[str] = field(default_factory=list)
    brackets: tuple[str, ...] = ()  # a bracket per branch


def has_branched_modules(graph: nx.DiGraph) -> bool:
    """Whether some concat of the network has branches that fit the # columns.

    >>> from archdsl import compile_file
    >>> has_branched_modules(compile_file("specs/googlenet.arch").graph)
    True
    >>> has_branched_modules(compile_file("specs/resnet18.arch").graph)
    False
    """
    return any(module.columns is not None for module in _modules(graph).values())


def branched_rows(graph: nx.DiGraph) -> tuple[list[str], list[Row]]:
    """(# column headers, rows) of the network, in order.

    >>> from archdsl import compile_file
    >>> headers, rows = branched_rows(compile_file("specs/googlenet.arch").graph)
    >>> headers
    ['#1×1', '#3×3 reduce', '#3×3', '#5×5 reduce', '#5×5', 'pool proj']
    >>> [(r.kind, r.depth, [r.channels.get(h) for h in headers]) for r in rows[4:5]]
    [('inception (3a)', 2, [64, 96, 128, 16, 32, 32])]
    """
    modules = _modules(graph)
    headers = _headers(modules.values())
    owned = {name for module in modules.values() for name in module.members}
    rows: list[Row] = []
    for item in ir.nodes(graph):
        if item.train_only or item.name in owned and item.name not in modules:
            continue
        if item.name in modules:
            rows.append(_module_row(graph, item, modules[item.name]))
        elif OPS[item.op].family in ROW_FAMILIES and item.role != "skip":
            rows.append(_layer_row(graph, item))
        elif rows:
            rows[-1].nodes.append(item.name)
    return headers, _merge_reduce(graph, rows, headers)


# ---- modules --------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    """A concat and the layers between it and its fork: the branches as chains of names
    (None where they are not plain chains) and the # columns they fill (None: no fit)."""
    members: frozenset[str]
    branches: tuple[tuple[str, ...], ...] | None
    columns: dict[str, int] | None


def _modules(graph: nx.DiGraph) -> dict[str, Module]:
    """The outermost concats of the network, by name."""
    rooted = graph.copy()
    rooted.add_edges_from(("", name) for name in graph if graph.in_degree(name) == 0)
    dominators = nx.immediate_dominators(rooted, "")
    found = {}
    for item in ir.nodes(graph):
        fork = dominators.get(item.name, "")
        if item.op != "concat" or item.train_only or fork == "":
            continue
        members = (nx.ancestors(graph, item.name) & nx.descendants(graph, fork)) | {item.name}
        branches = _chains(graph, item, fork)
        found[item.name] = Module(frozenset(members), branches, _fit(graph, branches))
    inner = {c for c in found for other, m in found.items() if other != c and c in m.members}
    return {c: module for c, module in found.items() if c not in inner}


def _chains(graph: nx.DiGraph, concat: ir.Node, fork: str):
    """Each input's layers back to the fork, in order; None where a branch has a layer of
    several inputs, or a layer another branch also reads."""
    chains = []
    for start in concat.inputs:
        chain, name = [], start
        while name != fork:
            item = ir.node(graph, name)
            if len(item.inputs) != 1 or graph.out_degree(name) != 1:
                return None
            chain.insert(0, name)
            name = item.inputs[0]
        chains.append(tuple(chain))
    return tuple(chains)


def _layers(graph: nx.DiGraph, names) -> list[ir.Node]:
    """The layers the columns read (convs, pools, linears): not activations or norms."""
    return [item for item in (ir.node(graph, n) for n in names)
            if OPS[item.op].family in ("conv", "pool", "linear", "attention")]


def _square(item: ir.Node) -> int:
    """A conv's kernel size k of k×k; 0 for a rectangular kernel or another layer."""
    if item.op != "conv":
        return 0
    kernel = item.args["kernel"]
    if isinstance(kernel, tuple):
        return kernel[0] if len(set(kernel)) == 1 else 0
    return kernel


def _branch_columns(layers: list[ir.Node]) -> dict[str, int] | None:
    """The # columns one branch fills, from its layers' kinds and order; None where it
    fits none."""
    if not layers or any(x.op == "conv" and x.args["groups"] != 1 for x in layers):
        return None
    kernels = [_square(x) for x in layers]
    pooled = OPS[layers[0].op].family == "pool"
    last = layers[-1].args.get("channels")
    if kernels == [1]:
        return {"#1×1": last}
    if len(kernels) == 1 and kernels[0] > 1:
        return {f"#{kernels[0]}×{kernels[0]}": last}
    if len(kernels) == 2 and kernels[0] == 1 and kernels[1] > 1:
        k = kernels[1]
        return {f"#{k}×{k} reduce": layers[0].args["channels"], f"#{k}×{k}": last}
    if pooled and kernels == [0, 1]:
        return {"pool proj": last}
    return None


def _fit(graph: nx.DiGraph, branches) -> dict[str, int] | None:
    """The # columns of a module's branches; None where a branch fits none or two
    branches claim one column."""
    if branches is None or len(branches) < 2:
        return None
    filled: dict[str, int] = {}
    for chain in branches:
        columns = _branch_columns(_layers(graph, chain))
        if columns is None or filled.keys() & columns.keys():
            return None
        filled |= columns
    return filled


def _headers(modules) -> list[str]:
    """`#1×1`, then `#k×k reduce` and `#k×k` for each k, smallest first, then `pool proj`:
    the columns some module fills."""
    used = {name for m in modules if m.columns for name in m.columns}
    sizes = sorted({int(name[1:].split("×")[0]) for name in used if name.startswith("#")})
    order = [f"#{k}×{k}{part}" for k in sizes for part in ((" reduce", "") if k > 1 else ("",))]
    return [name for name in [*order, "pool proj"] if name in used]


# ---- rows ---------------------------------------------------------------------------------


def _module_row(graph: nx.DiGraph, concat: ir.Node, module: Module) -> Row:
    members = [item.name for item in ir.nodes(graph) if item.name in module.members]
    depths = [sum(x.op in ("conv", "linear") for x in _layers(graph, chain))
              for chain in module.branches or ()]
    row = Row(_module_kind(graph, concat), "", ir.shape(graph, concat.name) or (),
              max(depths, default=0), module.columns or {}, members)
    if module.columns is None:
        row.brackets = tuple(_bracket(graph, chain)
                             for chain in _fallback(graph, module, concat))
    return row


def _fallback(graph: nx.DiGraph, module: Module, concat: ir.Node):
    """The branches to bracket: the chains, or else each input's layers in the module."""
    if module.branches is not None:
        return module.branches
    return [[n for n in ir.nodes(graph) if n.name in module.members and
             (n.name == start or nx.has_path(graph, n.name, start))]
            for start in concat.inputs]


def _bracket(graph: nx.DiGraph, chain) -> str:
    names = [n if isinstance(n, str) else n.name for n in chain]
    return "[" + "; ".join(bracket_caption(x) for x in _layers(graph, names)) + "]"


def _module_kind(graph: nx.DiGraph, concat: ir.Node) -> str:
    """`inception (3a)`: the block the module's scope calls and the rest of its label (the
    label alone where no block was called, the block where the label is its name)."""
    held = ir.scope(graph, concat.scope)
    if held is not None and ir.caption(graph, held.path):
        return ir.caption(graph, held.path)  # the author's words
    block = held.calls[0].block if held is not None and held.calls else ""
    label = held.label if held is not None and held.path else "concat"
    if block and label.startswith(block) and label != block:
        return f"{block} ({label[len(block):].strip('_')})"
    return label if not block or label == block else f"{block} ({label})"


def _layer_row(graph: nx.DiGraph, item: ir.Node) -> Row:
    kind = TYPES.get(item.op, bracket_caption(item))
    if item.op == "dropout":
        kind = f"dropout ({round(item.args['p'] * 100)}%)"
    depth = int(item.op in ("conv", "linear"))
    return Row(kind, _patch(graph, item), ir.shape(graph, item.name) or (), depth, {},
               [item.name])


def _patch(graph: nx.DiGraph, item: ir.Node) -> str:
    """`7×7/2`: a conv's or a pool's window and stride (a global pool's is its input)."""
    if item.op.startswith("global_"):
        size = [n for _, n in spatial(ir.shape(graph, item.inputs[0]) or ())]
        return "×".join(map(str, size)) + "/1" if size else ""
    if item.args.get("kernel") is None:
        return ""
    kernel = item.args["kernel"]
    kernel = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    stride = item.args.get("stride") or kernel
    stride = stride[0] if isinstance(stride, tuple) and len(set(stride)) == 1 else stride
    return "×".join(map(str, kernel)) + f"/{stride}"


def _merge_reduce(graph: nx.DiGraph, rows: list[Row], headers: list[str]) -> list[Row]:
    """A 1×1 conv row then a k×k conv row become one row with the reduce filled in, as the
    paper's `conv2`, where the table has the k×k columns."""
    out: list[Row] = []
    for row in rows:
        before = out[-1] if out else None
        pair = [ir.node(graph, r.nodes[0]) for r in (before, row)] if before else []
        columns = _branch_columns(pair) if before and not before.channels and \
            not before.brackets and all(x.op == "conv" for x in pair) else None
        if columns and len(columns) == 2 and set(columns) <= set(headers):
            out[-1] = Row(row.kind, row.patch, row.shape, 2, columns, before.nodes + row.nodes)
        else:
            out.append(row)
    return out


# ---- formatting -------------------------------------------------------------------------


def _costs(graph: nx.DiGraph, row: Row) -> tuple[int, int]:
    costs = [graph.nodes[name].get("cost") for name in row.nodes]
    return (sum(c.params for c in costs if c), sum(c.macs for c in costs if c))


def _amount(value: int, unit: int) -> str:
    """`159`, `9.5`, `0.27`, `` for none: in the column's unit, as the paper's `2.7K`."""
    if not value:
        return ""
    scaled = value / unit
    return f"{scaled:,.0f}" if scaled >= 100 else f"{scaled:.2g}" if scaled < 1 else \
        f"{scaled:.1f}".removesuffix(".0") if scaled < 10 else f"{scaled:.0f}"


def _shape_text(shape: tuple[int, ...]) -> str:
    """`28×28×256`, as the paper writes output sizes: the map, then the channels."""
    if len(shape) < 2:
        return "×".join(map(str, shape))
    return "×".join(map(str, (*shape[1:], shape[0])))


def _cells(graph: nx.DiGraph, headers: list[str], row: Row) -> list[str]:
    params, macs = _costs(graph, row)
    channels = [str(row.channels[h]) if h in row.channels else "" for h in headers]
    return [row.kind, row.patch, _shape_text(row.shape), str(row.depth) if row.depth else "",
            *channels, _amount(params, PARAMS_UNIT), _amount(macs, OPS_UNIT)]


def _header_cells(headers: list[str]) -> list[str]:
    return ["type", "patch size/stride", "output size", "depth", *headers, "params (K)",
            "ops (M MACs)"]


def _total_cells(graph: nx.DiGraph, headers: list[str], rows: list[Row]) -> list[str]:
    params, macs = (sum(c) for c in zip(*(_costs(graph, r) for r in rows)))
    return ["total", "", "", "", *[""] * len(headers), f"{params / PARAMS_UNIT:,.0f}",
            f"{macs / OPS_UNIT:,.0f}"]


def format_markdown(graph: nx.DiGraph) -> str:
    """GoogLeNet's Table 1 in GitHub Markdown; a module that does not fit the # columns
    has its branches bracketed in the first, `[1×1, 64] ‖ [1×1, 96; 3×3, 128]`."""
    headers, rows = branched_rows(graph)
    lines = ["| " + " | ".join(_header_cells(headers)) + " |",
             "|" + "---|" * (len(headers) + 6)]
    for row in rows:
        cells = _cells(graph, headers, row)
        if row.brackets:
            cells[4] = " ‖ ".join(row.brackets)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("| " + " | ".join(_total_cells(graph, headers, rows)) + " |")
    return "\n".join(lines) + "\n"


def format_latex(graph: nx.DiGraph, width: str = "natural") -> str:
    """GoogLeNet's Table 1 as a booktabs table, the # headers on two lines; a module that
    does not fit the # columns has its branches bracketed across them."""
    headers, rows = branched_rows(graph)
    n = len(headers)
    heads = [latex_escape(h) for h in _header_cells(headers)]
    heads = [h.replace(" ", r" \\ ", 1) if i else h for i, h in enumerate(heads)]
    heads = [rf"\begin{{tabular}}[b]{{@{{}}c@{{}}}}{h}\end{{tabular}}" if r"\\" in h else h
             for h in heads]
    out = [rf"\begin{{tabular}}{{lllc{'c' * n}rr}}", r"\toprule", " & ".join(heads) + r" \\",
           r"\midrule"]
    for row in rows:
        cells = [latex_escape(c) for c in _cells(graph, headers, row)]
        if row.brackets:
            text = r" $\|$ ".join(map(latex_escape, row.brackets))
            cells[4:4 + n] = [rf"\multicolumn{{{n}}}{{c}}{{{text}}}"]
        out.append(" & ".join(cells) + r" \\")
    out += [r"\midrule", " & ".join(_total_cells(graph, headers, rows)) + r" \\",
            r"\bottomrule", r"\end{tabular}"]
    return sized(out, WIDTHS[width])
