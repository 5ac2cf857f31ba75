"""Backend: `stats --train`, the memory plan of a training step (plan_memory) as a table
per layer (or per scope at --depth) and totals: weights, gradients, the optimizer's
state, the activations kept for the backward pass, the peak and where it is, what
checkpointing saves, and the largest batch that fits a memory size. Pure: IR in, text.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, dataclass, replace

import networkx as nx

from .. import ir
from ..errors import UsageError
from ..ops import OPS, show
from .plan_memory import OPTIMIZER_STATES, Setup, largest_batch, plan_memory
from .report_stats import groups, human_bytes, latex_escape, markdown_table, text_table

OPTIMIZER_NAMES = {"adamw": "AdamW", "sgd": "SGD with momentum"}
UNITS = {"": 1, "B": 1, "K": 1024, "KiB": 1024, "KB": 1000, "M": 1024 ** 2, "MiB": 1024 ** 2,
         "MB": 1000 ** 2, "G": 1024 ** 3, "GiB": 1024 ** 3, "GB": 1000 ** 3, "T": 1024 ** 4,
         "TiB": 1024 ** 4, "TB": 1000 ** 4}


@dataclass(frozen=True)
class MemoryRow:
    name: str
    op: str
    shape: str
    params: int
    weights: int  # bytes, with buffers
    gradients: int
    state: int
    kept: int


@dataclass(frozen=True)
class MemoryReport:
    network: str
    input: str
    setup: Setup
    rows: tuple[MemoryRow, ...]
    weights: int
    gradients: int
    state: int
    batch_bytes: int
    kept: int
    peak: int
    peak_at: str
    kept_without_checkpoint: int | None = None  # with --checkpoint: what it would keep
    peak_without_checkpoint: int | None = None
    memory: int | None = None  # --memory, bytes
    largest_batch: int | None = None
    memory_text: str = ""  # --memory as written (`80GB`)


def parse_memory(text: str) -> int:
    """Bytes of a size as people write it: `24GiB`, `24G` (binary), `16 GB` (decimal).

    >>> parse_memory("24GiB"), parse_memory("1.5 GB"), parse_memory("512M")
    (25769803776, 1500000000, 536870912)
    """
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]i?B?|B)?\s*", text, re.IGNORECASE)
    unit = found and next((u for u in UNITS if u.lower() == (found.group(2) or "").lower()),
                          None)
    if not found or unit is None:
        raise UsageError(f"--memory {text}: give a size such as 24GiB, 80GB or 512MiB")
    return int(float(found.group(1)) * UNITS[unit])


def checkpoint_scopes(graph: nx.DiGraph, names: list[str]) -> tuple[str, ...]:
    """The scope paths --checkpoint names: a scope (`layer3`, `layer3.1`) or a block,
    every instance of it (`bottleneck`)."""
    paths: list[str] = []
    for name in names:
        found = [name] if ir.scope(graph, name) is not None and name else \
            [path for path, _call in ir.instances(graph, name)
             if ir.scope(graph, path) is not None]
        if not found:
            stages = [s.path for s in ir.children(graph, "")]
            raise UsageError(f"--checkpoint {name}: {ir.network(graph).name} has no scope or "
                             f"block of that name; its stages are {', '.join(stages) or 'none'}")
        paths += found
    return tuple(dict.fromkeys(paths))


def memory_report(graph: nx.DiGraph, setup: Setup, depth: int | None = None,
                  memory: str | None = None) -> MemoryReport:
    """The plan of `graph` at `setup` as rows and totals; with `memory` (`24GiB`), the
    largest batch whose peak fits in it."""
    plan = plan_memory(graph, setup)
    size = parse_memory(memory) if memory else None
    layers = {layer.name: layer for layer in plan.layers}
    rows = tuple(_row(graph, name, members, layers) for name, members in groups(graph, depth))
    inputs = ", ".join(show(ir.shape(graph, name)) for name in ir.network(graph).inputs)
    plain = plan_memory(graph, replace(setup, checkpoint=())) if setup.checkpoint else None
    return MemoryReport(ir.network(graph).name, inputs, setup, rows, plan.weights,
                        plan.gradients, plan.state, plan.batch_bytes, plan.kept, plan.peak,
                        plan.peak_at, plain and plain.kept, plain and plain.peak, size,
                        largest_batch(graph, setup, size) if size else None,
                        (memory or "").replace(" ", ""))


def _row(graph: nx.DiGraph, name: str, members: list[str], layers: dict) -> MemoryRow:
    found = [layers[m] for m in members if m in layers]
    if len(members) == 1 and members[0] == name:
        item = ir.node(graph, name)
        op = OPS[item.op].describe(item.args)
    else:
        op = ir.describe_scope(graph, name, members)
    last = ir.shape(graph, members[-1])
    return MemoryRow(name, op, show(last) if last else "?",
                     *(sum(getattr(f, key) for f in found)
                       for key in ("params", "weights", "gradients", "state", "kept")))


# ---- formatting ------------------------------------------------------------------------

COLUMNS = ("layer", "op", "output", "params", "weights", "gradients", "optimizer", "kept")


def describe_setup(setup: Setup) -> str:
    """`batch 32, AdamW, bf16 autocast, cpu`."""
    precision = "fp32" if setup.amp == "none" else f"{setup.amp} autocast"
    checkpoint = f", checkpointing {', '.join(setup.checkpoint)}" if setup.checkpoint else ""
    return (f"batch {setup.batch}, {OPTIMIZER_NAMES[setup.optimizer]}, {precision}, "
            f"{setup.device}{checkpoint}")


def _cells(row: MemoryRow) -> tuple[str, ...]:
    return (row.name, row.op, row.shape, f"{row.params:,}", human_bytes(row.weights),
            human_bytes(row.gradients), human_bytes(row.state), human_bytes(row.kept))


def _total_lines(report: MemoryReport) -> list[tuple[str, str]]:
    states = OPTIMIZER_STATES[report.setup.optimizer]
    lines = [("weights and buffers (float32)", human_bytes(report.weights)),
             ("gradients (float32)", human_bytes(report.gradients)),
             (f"optimizer state ({OPTIMIZER_NAMES[report.setup.optimizer]})",
              f"{human_bytes(report.state)} ({states} float32 tensor"
              f"{'s' if states > 1 else ''} per parameter)"),
             (f"batch ({report.setup.batch} x {report.input})", human_bytes(report.batch_bytes)),
             ("activations kept for backward", human_bytes(report.kept))]
    if report.kept_without_checkpoint is not None:
        saved = report.kept_without_checkpoint - report.kept
        lines.append(("  without checkpointing", f"{human_bytes(report.kept_without_checkpoint)}"
                                                 f" (checkpointing saves {human_bytes(saved)})"))
    lines.append(("peak of one training step", f"{human_bytes(report.peak)}, at the "
                                               f"{report.peak_at}"))
    if report.peak_without_checkpoint is not None:
        lines.append(("  without checkpointing", human_bytes(report.peak_without_checkpoint)))
    if report.memory is not None:
        fits = (f"{report.largest_batch}" if report.largest_batch else
                "none: not even a batch of 1 fits")
        lines.append((f"largest batch in {report.memory_text or human_bytes(report.memory)}",
                      fits))
    return lines


def _heading(report: MemoryReport) -> str:
    return (f"{report.network}  (input {report.input}; one training step: "
            f"{describe_setup(report.setup)})")


def format_table(report: MemoryReport) -> str:
    return text_table(_heading(report), COLUMNS, [_cells(r) for r in report.rows],
                      set(range(3, len(COLUMNS))), _total_lines(report))


def format_markdown(report: MemoryReport) -> str:
    return markdown_table(f"**{report.network}** (input {report.input}; one training step: "
                          f"{describe_setup(report.setup)})", COLUMNS,
                          [_cells(r) for r in report.rows], set(range(3, len(COLUMNS))),
                          _total_lines(report))


def format_csv(report: MemoryReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["layer", "op", "output", "params", "weight_bytes", "gradient_bytes",
                     "optimizer_bytes", "kept_bytes"])
    for r in report.rows:
        writer.writerow([r.name, r.op, r.shape, r.params, r.weights, r.gradients, r.state,
                         r.kept])
    return buffer.getvalue()


def format_json(report: MemoryReport) -> str:
    return json.dumps(asdict(report), indent=2) + "\n"


def format_latex(report: MemoryReport) -> str:
    out = [f"% {report.network}: one training step ({describe_setup(report.setup)}); needs "
           r"\usepackage{booktabs}", r"\begin{tabular}{lllrrrrr}", r"\toprule",
           " & ".join(COLUMNS) + r" \\", r"\midrule"]
    for name, *rest in map(_cells, report.rows):
        out.append(" & ".join([r"\texttt{" + latex_escape(name) + "}",
                               *map(latex_escape, rest)]) + r" \\")
    out.append(r"\midrule")
    for label, value in _total_lines(report):
        out.append(rf"\multicolumn{{4}}{{l}}{{{latex_escape(label)}}} & "
                   rf"\multicolumn{{4}}{{r}}{{{latex_escape(value)}}} \\")
    return "\n".join(out + [r"\bottomrule", r"\end{tabular}"]) + "\n"


FORMATTERS = {"table": format_table, "markdown": format_markdown, "csv": format_csv,
              "json": format_json, "latex": format_latex}


def format_memory(report: MemoryReport, fmt: str = "table") -> str:
    return FORMATTERS[fmt](report)
