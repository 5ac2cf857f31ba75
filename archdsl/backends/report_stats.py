"""Backend: per-layer cost tables and totals, from an IR that count_costs has annotated.

Pure functions: IR in, a `Report` (rows and totals) out, and `format_report` turns a
report into text (table, markdown, csv, json, or a LaTeX booktabs table). Conventions, also in docs/stats.md:

* MACs: multiply-accumulates (multiply-adds) of conv and linear layers, one fused
  multiply-add = 1, bias additions not counted (the figure torchvision calls GFLOPS, and
  fvcore "flops"). FLOPs, where shown, are 2 x MACs (torch's FlopCounterMode). Other
  work (element-wise, pooling, normalisation) is in its own `other ops` column.
* Shared tensors (`tie`) are counted once, at their source; the tables say so.
* Memory: elements x bytes per element of the dtype (fp32: 4); token ids, indices and
  one-hot vectors (int64) take 8, masks 1, and a value cast to a precision its size.
  1 KiB = 1024 bytes, 1 MiB = 1024 KiB. Activation memory is each layer's output for
  one image.
* Train-only layers (auxiliary heads) are marked and left out of inference totals.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import networkx as nx

from .. import ir
from ..errors import UsageError
from ..passes.count_costs import Cost, total
from .plan_memory import Setup, plan_memory
from ..passes.receptive_field import receptive_fields, show_field
from ..ops import OPS, numel, show
from ..ops.shapes import ELEMENT_BYTES, dtype_of

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp64": 8, "int8": 1}
FORMATS = ("table", "markdown", "csv", "json", "latex")


@dataclass(frozen=True)
class Row:
    name: str
    op: str  # `conv 11x11/4 p2`, or for a rolled-up block `bottleneck x6`
    shape: str
    field: str  # receptive field: `11/4` (size, jump; per axis where they differ), `-`
    activation_bytes: int
    params: int
    macs: int
    other_ops: int
    train_only: bool = False
    named: bool = True  # its name is a label the spec gave, not an index it made (`features.3`)


@dataclass(frozen=True)
class Totals:
    params: int  # trainable parameters, inference network (train-only heads left out)
    params_with_train_only: int
    buffers: int  # non-trainable state (batch norm running statistics)
    macs: int  # inference: multiply-adds
    flops: int  # 2 x macs, as torch's FlopCounterMode counts (one multiply-add = 2 FLOPs)
    other_ops: int
    activation_bytes: int  # forward activations for one image, inference
    param_bytes: int  # parameters and buffers
    train_bytes_per_image: int  # estimate, see docs/stats.md
    train_bytes_fixed: int


@dataclass(frozen=True)
class Report:
    network: str
    input: str
    dtype: str
    rows: tuple[Row, ...]
    totals: Totals
    ties: tuple[str, ...] = ()  # `lm_head.weight = embed.weight`: tensors counted once
    tied_params: tuple[int, ...] = ()  # the elements of each tie's one tensor, as `ties`
    decode: "Decode | None" = None  # a causal language model's cost per generated token
    active_params: int | None = None  # with routed experts: the parameters one token uses
    attention: "Attention | None" = None  # the MACs of sdpa's two products, and their
    # causal share


@dataclass(frozen=True)
class Attention:
    """The MACs of the QKᵀ and AV products of every `sdpa`, as FlopCounterMode counts them
    (every query against every key), and of those the share a causal mask keeps: query i
    of L reads only keys 0 to i (in all, L(L+1)/2 of the L² pairs), which a kernel that
    skips masked blocks computes alone."""
    macs: int
    causal_macs: int  # the causal attentions' MACs that the mask keeps
    causal_total: int  # the causal attentions' MACs as counted


@dataclass(frozen=True)
class Decode:
    """What generating one more token costs a causal language model with a KV cache, at
    the length it is checked at (`context`): the bytes of keys and values the cache keeps
    per token, and the MACs of one step (every per-token layer once, each causal
    attention's one query against `context` keys)."""
    context: int
    kv_bytes_per_token: int
    macs_per_token: int
    state_bytes: int = 0  # a recurrent model's state, the same whatever the length: each
    # scan's h and each causal padding's last entries (Mamba's SSM and convolution states)


def report_stats(graph: nx.DiGraph, depth: int | None = None, dtype: str = "fp32") -> Report:
    """Rows (rolled up to `depth` name levels when given) and totals for one network.

    >>> from archdsl import compile_source
    >>> graph = compile_source("network t { input x: 3 x 8 x 8; c: conv(4, 3); relu }").graph
    >>> [(r.name, r.op, r.shape, r.params) for r in report_stats(graph).rows]
    [('x', 'input', '3x8x8', 0), ('c', 'conv 3x3', '4x6x6', 112), ('0', 'relu', '4x6x6', 0)]
    """
    size = DTYPE_BYTES[dtype]
    fields = receptive_fields(graph)
    rows = tuple(_row(graph, name, members, size, fields)
                 for name, members in groups(graph, depth))
    inputs = ", ".join(show(ir.shape(graph, name)) for name in ir.network(graph).inputs)
    ties = ir.network(graph).ties
    return Report(ir.network(graph).name, inputs, dtype, rows, _totals(graph, size, dtype),
                  tuple(f"{t.target} = {t.source}" for t in ties), tuple(t.numel for t in ties),
                  _decode(graph, size), _active_params(graph), _attention(graph))


SHARED_NOTE = "parameters count each shared tensor once"


def shared_tensors(graph: nx.DiGraph) -> list[str]:
    """Each tie as the tables state it, `target = source (its elements)`: the one tensor
    that the parameter counts hold once. Empty without ties.

    >>> from archdsl import compile_source
    >>> graph = compile_source('''network t { input x: 6 as token_ids
    ...     embed: embedding(10, 4); head: linear(10, bias = false)
    ...     tie head.weight = embed.weight }''').graph
    >>> shared_tensors(graph)
    ['head.weight = embed.weight (40)']
    """
    return [f"{t.target} = {t.source} ({t.numel:,})" for t in ir.network(graph).ties]


def is_tied(graph: nx.DiGraph, name: str) -> bool:
    """Whether the layer `name` holds a tied tensor (a tie's target, counted at its
    source): its row and caption say `(tied)`."""
    return any(t.owner == name for t in ir.network(graph).ties)


def _attention(graph: nx.DiGraph) -> Attention | None:
    """sdpa's MACs and the causal share of them (None without `sdpa`)."""
    attentions = [item for item in ir.nodes(graph) if item.op == "sdpa"]
    if not attentions:
        return None
    macs = kept = causal = 0
    for item in attentions:
        cost = graph.nodes[item.name]["cost"].macs
        macs += cost
        if item.args["causal"]:
            queries, keys = ir.shape(graph, item.inputs[0])[-2], ir.shape(graph, item.inputs[1])[-2]
            pairs = queries * (keys - queries) + queries * (queries + 1) // 2  # bottom-right
            causal += cost
            kept += cost * pairs // (queries * keys)
    return Attention(macs, kept, causal)


def _active_params(graph: nx.DiGraph) -> int | None:
    """The parameters one token uses where experts are routed (`routed_linear`): all
    but the share of each expert tensor its token's choices leave out. None without."""
    unused = {}
    for item in ir.nodes(graph):
        if item.op == "routed_linear":
            weight, index = (ir.shape(graph, name) for name in item.inputs[1:])
            choices = numel(index) // index[0]  # per token, the first axis (top-k: L x k)
            unused[item.inputs[1]] = numel(weight) * (weight[0] - choices) // weight[0]
    if not unused:
        return None
    return total(graph, train=False).params - sum(unused.values())


def _decode(graph: nx.DiGraph, size: int) -> Decode | None:
    """The cost of one generated token, for a network with a length symbol whose
    attentions are all causal (None otherwise)."""
    sizes = ir.network(graph).sizes
    attentions = [item for item in ir.nodes(graph) if item.op == "sdpa"]
    scans = [item for item in ir.nodes(graph) if item.op == "selective_scan"]
    if len(sizes) != 1 or not (attentions or scans) or not all(
            a.args["causal"] for a in attentions):
        return None
    (context, _), = sizes.values()
    state = 0
    for item in scans:  # h: I x N
        a = ir.shape(graph, item.inputs[2])
        state += numel(a) * ELEMENT_BYTES.get(dtype_of(a), size)
    for item in ir.nodes(graph):  # the last entries of a causal padding of the sequence
        if item.op == "pad" and OPS["pad"].lowers_to_module(
                item.args, (ir.shape(graph, item.inputs[0]),)):
            padded = ir.shape(graph, item.inputs[0])
            state += numel(padded) // padded[item.args["axis"]] * item.args["before"] * \
                ELEMENT_BYTES.get(dtype_of(padded), size)
    kv = step = 0
    for item in attentions:
        q, k, v = (ir.shape(graph, name) for name in item.inputs[:3])
        kv += (numel(k) // k[-2] + numel(v) // v[-2]) * ELEMENT_BYTES.get(dtype_of(k), size)
        step += numel(q[:-2]) * k[-2] * (q[-1] + v[-1])  # one query against every key
    everything = total(graph, train=False).macs - sum(
        graph.nodes[a.name]["cost"].macs for a in attentions)
    return Decode(context, kv, everything // context + step, state)


def groups(graph: nx.DiGraph, depth: int | None) -> list[tuple[str, list[str]]]:
    """(row name, [node names]) in first-appearance order: each node, or with `depth` the
    scope `depth` levels down the scope tree that holds it (a node in fewer scopes stands
    alone). The rows of the stats and measure reports.

    >>> from archdsl import compile_source
    >>> graph = compile_source("block b() { c: conv(4, 3); relu } "
    ...                        "network t { input x: 3 x 8 x 8; s: b(); fc: linear(2) }").graph
    >>> groups(graph, 1)
    [('x', ['x']), ('s', ['s.c', 's.0']), ('fc', ['fc'])]
    """
    rows: dict[str, list[str]] = {}
    for name in graph:
        key = name
        if depth:
            chain = ir.scopes_of(graph, name)
            key = chain[depth - 1] if len(chain) >= depth else name
        rows.setdefault(key, []).append(name)
    return list(rows.items())


def _row(graph: nx.DiGraph, name: str, members: list[str], size: int, fields: dict) -> Row:
    cost = sum((graph.nodes[m].get("cost", Cost()) for m in members), Cost())
    last = ir.shape(graph, members[-1])
    train_only = all(ir.node(graph, m).train_only for m in members)
    if len(members) == 1 and members[0] == name:
        item = ir.node(graph, name)
        op = OPS[item.op].describe(item.args) + (" (tied)" if is_tied(graph, name) else "")
    else:
        op = ir.describe_scope(graph, name, members)
    field = fields.get(members[-1])
    return Row(name, op, show(last) if last else "?", show_field(field) if field else "-",
               _activation_bytes(graph, members, size), cost.params, cost.macs,
               cost.other_ops, train_only, not ir.label(graph, name).isdigit())


def _activation_bytes(graph: nx.DiGraph, names, size: int) -> int:
    """The bytes of the nodes' activations: `size` per float of the model's precision,
    ELEMENT_BYTES for the other element types."""
    count = 0
    for name in names:
        shape = ir.shape(graph, name)
        width = ELEMENT_BYTES.get(dtype_of(shape), size) if shape is not None else size
        count += graph.nodes[name].get("cost", Cost()).activations * width
    return count


def forward_activation_bytes(graph: nx.DiGraph, dtype: str = "fp32", names=None) -> int:
    """The forward activations of one input at inference (train-only heads left out): the
    memory figure of the totals; of the layers `names` only, when given."""
    if names is None:
        names = (i.name for i in ir.nodes(graph) if not i.train_only)
    return _activation_bytes(graph, names, DTYPE_BYTES[dtype])


def _totals(graph: nx.DiGraph, size: int, dtype: str) -> Totals:
    inference, everything = total(graph, train=False), total(graph)
    param_bytes = (everything.params + everything.buffers) * size
    kept = _activation_bytes(graph, (i.name for i in ir.nodes(graph) if not i.train_only), size)
    fixed, per_image = training_memory(graph, dtype)
    return Totals(inference.params, everything.params, everything.buffers, inference.macs,
                  2 * inference.macs, inference.other_ops, kept, param_bytes, per_image, fixed)


def training_memory(graph: nx.DiGraph, dtype: str = "fp32") -> tuple[int, int]:
    """(fixed, per image) bytes of the peak of a training step as `archdsl train` runs it
    (AdamW; autocast for a 16-bit dtype), from the memory plan (`stats --train`): the
    peak at a batch of N is about fixed + N x per image."""
    amp = dtype if dtype in ("bf16", "fp16") else "none"
    one, two = (plan_memory(graph, Setup(batch=b, amp=amp)).peak for b in (1, 2))
    return one - (two - one), two - one


# ---- formatting ------------------------------------------------------------------------


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def human_count(n: int) -> str:
    """Decimal units, as MAC and FLOP counts are quoted: 1.82G = 1.82e9."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


COLUMNS = ("layer", "op", "output", "RF", "memory", "params", "MACs", "other ops")
MACS_LABEL = "MACs (multiply-adds, conv + linear)"
FLOPS_LABEL = "FLOPs (= 2 × MACs)"


def _cells(row: Row) -> tuple[str, ...]:
    op = row.op + (" [train]" if row.train_only else "")
    return (row.name, op, row.shape, row.field, human_bytes(row.activation_bytes),
            f"{row.params:,}", human_count(row.macs), human_count(row.other_ops))


def _total_lines(report: Report) -> list[tuple[str, str]]:
    t = report.totals
    lines = [("parameters", f"{t.params:,}")]
    lines += [("  counting each shared tensor once", f"{tie} ({n:,})")
              for tie, n in zip(report.ties, report.tied_params)]
    if t.params_with_train_only != t.params:
        lines.append(("parameters with train-only heads", f"{t.params_with_train_only:,}"))
    lines += [("non-trainable (buffers)", f"{t.buffers:,}"),
              (MACS_LABEL, f"{human_count(t.macs)} ({t.macs:,})"),
              (FLOPS_LABEL, f"{human_count(t.flops)} ({t.flops:,})"),
              ("other ops", human_count(t.other_ops)),
              ("forward activations / image", human_bytes(t.activation_bytes)),
              ("parameter memory", human_bytes(t.param_bytes)),
              ("training step (AdamW)", f"{human_bytes(t.train_bytes_fixed)} + "
                                  f"{human_bytes(t.train_bytes_per_image)} / image")]
    if report.active_params is not None:
        lines.append(("active parameters / token", f"{report.active_params:,}"))
    if report.attention is not None and report.attention.causal_total:
        a = report.attention
        lines += [("attention MACs (QKᵀ, AV; in the total)", human_count(a.macs)),
                  ("  of which a causal mask keeps",
                   f"{human_count(a.causal_macs)} ({a.causal_macs / a.causal_total:.1%} of "
                   "the causal attentions')")]
    if report.decode is not None:
        d = report.decode
        if d.kv_bytes_per_token:
            lines.append(("KV cache / token", human_bytes(d.kv_bytes_per_token)))
        if d.state_bytes:
            lines.append(("recurrent state / sequence", human_bytes(d.state_bytes)))
        lines.append((f"MACs / generated token (context {d.context:,})",
                      f"{human_count(d.macs_per_token)} ({d.macs_per_token:,})"))
    return lines


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width // 2 - 1] + "…" + text[-(width - width // 2):]


def text_table(heading: str, columns: tuple[str, ...], cells: list[tuple[str, ...]],
               right: set[int], totals: list[tuple[str, str]]) -> str:
    """Aligned columns for the terminal (cells cut to 28 characters), columns `right`
    aligned right, then a blank line and the totals as `label  value` lines."""
    cells = [tuple(_shorten(c, 28) for c in row) for row in cells]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(columns)]

    def line(values):
        return "  ".join(v.rjust(w) if i in right else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    out = [heading, line(columns), line(["-" * w for w in widths])]
    out += [line(c) for c in cells]
    label_width = max(len(k) for k, _ in totals)
    out += [""] + [f"{k.ljust(label_width)}  {v}" for k, v in totals]
    return "\n".join(out) + "\n"


def markdown_table(heading: str, columns: tuple[str, ...], cells: list[tuple[str, ...]],
                   right: set[int], totals: list[tuple[str, str]]) -> str:
    """The same as a GitHub-flavoured Markdown table under the `heading` line (the first
    cell as code), then the totals as a two-column table."""
    def line(values):
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    out = [heading, "", line(columns),
           "|" + "|".join("--:" if i in right else "---" for i in range(len(columns))) + "|"]
    out += [line([f"`{c[0]}`", *c[1:]]) for c in cells]
    out += ["", "| total | |", "|---|--:|"] + [f"| {k} | {v} |" for k, v in totals]
    return "\n".join(out) + "\n"


def format_table(report: Report) -> str:
    """Aligned columns for the terminal, readable at 110 columns."""
    return text_table(f"{report.network}  (input {report.input}, {report.dtype})", COLUMNS,
                      [_cells(r) for r in report.rows], {4, 5, 6, 7}, _total_lines(report))


def format_markdown(report: Report) -> str:
    """A GitHub-flavoured Markdown table, for papers and READMEs."""
    return markdown_table(f"**{report.network}** (input {report.input}, {report.dtype})", COLUMNS,
                          [_cells(r) for r in report.rows], {4, 5, 6, 7}, _total_lines(report))


def format_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["layer", "op", "output", "receptive_field", "activation_bytes", "params",
                     "macs", "other_ops", "train_only"])
    for r in report.rows:
        writer.writerow([r.name, r.op, r.shape, r.field, r.activation_bytes, r.params, r.macs,
                         r.other_ops, str(r.train_only).lower()])
    return buffer.getvalue()


def format_json(report: Report) -> str:
    return json.dumps(asdict(report), indent=2) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$",
                  "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "…": r"\ldots{}", "×": r"$\times$",
                  "ᵀ": r"\textsuperscript{T}"}


def latex_escape(text: str) -> str:
    """Text that LaTeX prints as written.

    >>> print(latex_escape("layer1.0 & conv_1 50%"))
    layer1.0 \\& conv\\_1 50\\%
    """
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def _latex_shape(shape: str) -> str:
    return "$" + shape.replace("x", r"\times ") + "$" if shape else ""


def _latex_field(field: str) -> str:
    if field == "-":
        return "--"
    size, jump = field.split("/")
    return _latex_shape(size) + r", /" + _latex_shape(jump)[1:-1].join("$$")


def format_latex(report: Report) -> str:
    """A booktabs table (`\\usepackage{booktabs}`) to paste into a paper: one row per
    layer (or per block with --depth), the totals below a rule."""
    columns = ("layer", "op", "output", "receptive field", "memory", "params", "MACs",
               "other ops")
    out = [f"% {report.network} (input {report.input}, {report.dtype}); needs "
           r"\usepackage{booktabs}", r"\begin{tabular}{llllrrrr}", r"\toprule",
           " & ".join(columns) + r" \\", r"\midrule"]
    for row in report.rows:
        name, op, shape, field, *numbers = _cells(row)
        out.append(" & ".join([r"\texttt{" + latex_escape(name) + "}", latex_escape(op),
                               _latex_shape(shape), _latex_field(field),
                               *map(latex_escape, numbers)]) + r" \\")
    out.append(r"\midrule")
    for label, value in _total_lines(report):
        out.append(rf"\multicolumn{{5}}{{l}}{{{latex_escape(label)}}} & "
                   rf"\multicolumn{{3}}{{r}}{{{latex_escape(value)}}} \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


FORMATTERS = {"table": format_table, "markdown": format_markdown, "csv": format_csv,
              "json": format_json, "latex": format_latex}


def format_report(report: Report, fmt: str = "table") -> str:
    return FORMATTERS[fmt](report)


# ---- side by side -----------------------------------------------------------------------

_COMPARED = (("parameters", "params", lambda n: f"{n:,}"),
             ("MACs (multiply-adds)", "macs", human_count),
             ("FLOPs (= 2 × MACs)", "flops", human_count),
             ("forward activations / image", "activation_bytes", human_bytes),
             ("parameter memory", "param_bytes", human_bytes),
             ("training step (AdamW) / image", "train_bytes_per_image", human_bytes))


def format_comparison(reports: list[Report], fmt: str = "table") -> str:
    """Totals of several networks side by side, with ratios against the first."""
    base = reports[0].totals
    if fmt == "json":
        return json.dumps([{"network": r.network, **asdict(r.totals)} for r in reports],
                          indent=2) + "\n"
    header = ["", *(r.network for r in reports)]
    body = []
    for label, key, fmt_value in _COMPARED:
        cells = [label]
        for r in reports:
            value, ref = getattr(r.totals, key), getattr(base, key)
            ratio = f" (x{value / ref:.2f})" if r is not reports[0] and ref else ""
            cells.append(fmt_value(value) + ratio)
        body.append(cells)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["network", *(k for _, k, _ in _COMPARED)])
        for r in reports:
            writer.writerow([r.network, *(getattr(r.totals, k) for _, k, _ in _COMPARED)])
        return buffer.getvalue()
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|---" + "|--:" * len(reports) + "|"]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in body]) + "\n"
    if fmt == "latex":
        lines = [r"% needs \usepackage{booktabs}",
                 r"\begin{tabular}{l" + "r" * len(reports) + "}", r"\toprule",
                 " & ".join(map(latex_escape, header)) + r" \\", r"\midrule"]
        lines += [" & ".join(map(latex_escape, c)) + r" \\" for c in body]
        return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip()
                     for row in [header, *body]) + "\n"


# ---- one-line summaries --------------------------------------------------------------


def _outputs(graph) -> list[tuple[str, str, bool]]:
    return [(o.name, show(graph.nodes[o.node]["shape"]), o.train_only)
            for o in ir.network(graph).outputs]


def summary_line(graph) -> str:
    """`resnet18: 69 layers, 11,689,512 parameters, outputs out 1000`: what `check` prints."""
    layers = len(graph) - len(ir.network(graph).inputs)
    outs = ", ".join(f"{name} {shape}" + (" (train)" if train else "")
                     for name, shape, train in _outputs(graph))
    params, inference = total(graph).params, total(graph, train=False).params
    without = f" ({inference:,} without train-only heads)" if inference != params else ""
    ties = len(ir.network(graph).ties)
    shared = f" ({ties} shared tensor{'s' * (ties > 1)} counted once)" if ties else ""
    return (f"{ir.network(graph).name}: {layers} layers, {params:,} parameters{shared}"
            f"{without}, outputs {outs}")


def summary(graph) -> dict:
    """The facts of summary_line as data (`check --format json`)."""
    return {"network": ir.network(graph).name, "layers": len(graph) - len(ir.network(graph).inputs),
            "parameters": total(graph).params,
            "outputs": [{"name": n, "shape": s, "train_only": t} for n, s, t in _outputs(graph)]}


def plot_format_of(path: str | None) -> str | None:
    """The format of --plot OUT, from its extension; refused early if matplotlib is missing."""
    if path is None:
        return None
    fmt = Path(path).suffix.lstrip(".").lower()
    if fmt not in ("svg", "pdf", "png"):
        raise UsageError(f"--plot {path}: give a file ending in .svg, .pdf or .png")
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        raise UsageError("--plot needs matplotlib: pip install matplotlib "
                         "(or archdsl[train])") from None
    return fmt
