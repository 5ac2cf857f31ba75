"""Backend: the measured time of each spec layer, beside its MACs and bytes, as a table.

Pure: the IR graph and what archdsl.runtime.measure timed (a `Measurement`) in, a
`MeasureReport` out, and `format_measure` turns it into text (table, markdown, csv,
json). No torch: the figures are numbers by the time they come here. Conventions, also
in docs/stats.md ("Measured time per layer"):

* forward and backward ms: medians over the profiled steps of one layer's (or one
  scope's, with --depth) share of a training step: forward + backward of a mean loss;
* MACs: the spec's forward MACs (multiply-adds; FLOPs would be twice as many) for the
  whole batch; MAC/s: those over the forward time;
* bytes: what the forward pass reads and writes, its inputs, output and parameters at
  the dtype; arithmetic intensity = MACs per byte;
* % peak: MAC/s over the device's peak; % roof: MAC/s over the roofline's bound at the
  layer's intensity, min(peak, intensity x bandwidth); both measured on the device.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass

import networkx as nx

from .. import ir
from ..ops import numel
from ..ops.shapes import dtype_of
from ..passes.count_costs import Cost
from .report_stats import (DTYPE_BYTES, ELEMENT_BYTES, human_count, markdown_table, report_stats,
                           text_table)
from .report_stats import groups as layer_groups  # the rows of the stats report, by name

MEASURE_FORMATS = ("table", "markdown", "csv", "json")


@dataclass(frozen=True)
class Roofs:
    """What the device does at best, measured on it: a large matmul's MAC/s and a large
    copy's bytes per second (read and written)."""
    device: str  # `cpu (2 threads)`, `cuda:0 (NVIDIA H100 80GB HBM3)`
    macs_per_s: float
    bytes_per_s: float
    how: str  # `a 2048x2048 matmul, a 128 MiB copy`


@dataclass(frozen=True)
class LayerTime:
    forward_ms: float
    backward_ms: float


@dataclass(frozen=True)
class Measurement:
    """What archdsl.runtime.measure timed: each IR node's time (medians over `steps`
    profiled steps), the whole step's (median of as many steps without the profiler),
    and the profiled time no layer owns (the loss, gradient accumulation)."""
    roofs: Roofs
    dtype: str
    batch: int
    steps: int
    warmup: int
    layers: dict[str, LayerTime]
    step_ms: float
    unattributed_ms: float


@dataclass(frozen=True)
class MeasuredRow:
    name: str
    op: str
    forward_ms: float
    backward_ms: float
    macs: int  # forward, for the whole batch
    bytes: int  # forward: inputs + output + parameters
    macs_per_s: float
    intensity: float  # MACs per byte
    of_peak: float  # fraction of the peak MAC/s
    of_roof: float  # fraction of min(peak, intensity x bandwidth)
    train_only: bool = False


@dataclass(frozen=True)
class MeasureReport:
    network: str
    input: str
    dtype: str
    batch: int
    steps: int
    warmup: int
    roofs: Roofs
    rows: tuple[MeasuredRow, ...]
    step_ms: float  # the whole step, forward + backward, without the profiler
    layers_ms: float  # the rows' forward + backward
    unattributed_ms: float

    @property
    def ratio(self) -> float:
        return self.layers_ms / self.step_ms if self.step_ms else 0.0


def measure_report(graph: nx.DiGraph, measured: Measurement,
                   depth: int | None = None) -> MeasureReport:
    """One row per layer, or per scope `depth` levels down, with its measured times.

    >>> from archdsl import compile_source
    >>> graph = compile_source("network t { input x: 3 x 8 x 8; c: conv(4, 3) }").graph
    >>> roofs = Roofs("cpu", 1e9, 1e9, "assumed")
    >>> times = {"x": LayerTime(0, 0), "c": LayerTime(0.5, 1.0)}
    >>> report = measure_report(graph, Measurement(roofs, "fp32", 2, 3, 1, times, 2.0, 0.1))
    >>> [(r.name, r.macs, r.bytes, r.macs_per_s) for r in report.rows]
    [('x', 0, 1536, 0.0), ('c', 7776, 3136, 15552000.0)]
    >>> report.ratio
    0.75
    """
    costs = report_stats(graph, depth, measured.dtype)
    stats = {row.name: row for row in costs.rows}
    rows = tuple(_row(graph, name, members, measured, stats[name].op, stats[name].train_only)
                 for name, members in layer_groups(graph, depth))
    layers_ms = sum(r.forward_ms + r.backward_ms for r in rows)
    return MeasureReport(costs.network, costs.input, measured.dtype, measured.batch,
                         measured.steps, measured.warmup, measured.roofs, rows,
                         measured.step_ms, layers_ms, measured.unattributed_ms)


def _row(graph, name: str, members: list[str], measured: Measurement, op: str,
         train_only: bool) -> MeasuredRow:
    times = [measured.layers.get(m, LayerTime(0.0, 0.0)) for m in members]
    forward = sum(t.forward_ms for t in times)
    backward = sum(t.backward_ms for t in times)
    macs = measured.batch * sum(graph.nodes[m].get("cost", Cost()).macs for m in members)
    moved = sum(layer_bytes(graph, m, measured.dtype, measured.batch) for m in members)
    rate = macs / (forward / 1000) if forward > 0 else 0.0
    intensity = macs / moved if moved else 0.0
    roofs = measured.roofs
    roof = min(roofs.macs_per_s, intensity * roofs.bytes_per_s)
    return MeasuredRow(name, op, forward, backward, macs, moved, rate, intensity,
                       rate / roofs.macs_per_s if roofs.macs_per_s else 0.0,
                       rate / roof if roof else 0.0, train_only)


def layer_bytes(graph: nx.DiGraph, name: str, dtype: str, batch: int) -> int:
    """The bytes one layer's forward pass reads and writes: its inputs and its output for
    the batch, and its parameters once.

    >>> from archdsl import compile_source
    >>> graph = compile_source("network t { input x: 3 x 8 x 8; c: conv(4, 3) }").graph
    >>> layer_bytes(graph, "c", "fp32", 1)   # (192 in + 144 out) x 4 + 112 parameters x 4
    1792
    """
    size = DTYPE_BYTES[dtype]
    item = ir.node(graph, name)
    values = [*item.inputs, name] if item.op != "input" else [name]
    moved = 0
    for value in values:
        shape = ir.shape(graph, value)
        if shape is not None:
            moved += batch * numel(shape) * ELEMENT_BYTES.get(dtype_of(shape), size)
    return moved + graph.nodes[name].get("cost", Cost()).params * size


# ---- formatting ------------------------------------------------------------------------


COLUMNS = ("layer", "op", "forward ms", "backward ms", "MACs", "MAC/s", "MAC/B", "% peak",
           "% roof")


def _cells(row: MeasuredRow) -> tuple[str, ...]:
    op = row.op + (" [train]" if row.train_only else "")
    rate = human_count(int(row.macs_per_s)) if row.macs else "-"
    return (row.name, op, f"{row.forward_ms:.3f}", f"{row.backward_ms:.3f}",
            human_count(row.macs) if row.macs else "-", rate,
            f"{row.intensity:.1f}" if row.macs else "-",
            f"{row.of_peak:.1%}" if row.macs else "-", f"{row.of_roof:.1%}" if row.macs else "-")


def _heading(report: MeasureReport) -> str:
    return (f"{report.network}  (input {report.input}, {report.dtype}, batch {report.batch}) "
            f"on {report.roofs.device}: medians of {report.steps} profiled steps after "
            f"{report.warmup} warm-up")


def _total_lines(report: MeasureReport) -> list[tuple[str, str]]:
    r = report.roofs
    forward = sum(row.forward_ms for row in report.rows)
    return [("device peak (measured here)",
             f"{human_count(int(r.macs_per_s))} MAC/s (= {human_count(int(2 * r.macs_per_s))} "
             f"FLOP/s), {r.bytes_per_s / 1e9:.1f} GB/s ({r.how})"),
            ("whole step (forward + backward)", f"{report.step_ms:.1f} ms (without the profiler)"),
            ("sum of layer times", f"{report.layers_ms:.1f} ms = {report.ratio:.1%} of the "
                                   f"step (forward {forward:.1f} ms, backward "
                                   f"{report.layers_ms - forward:.1f} ms)"),
            ("in no layer (loss, gradients)", f"{report.unattributed_ms:.1f} ms")]


def format_measure_table(report: MeasureReport) -> str:
    """Aligned columns for the terminal, then the whole step against the layers' sum."""
    return text_table(_heading(report), COLUMNS, [_cells(r) for r in report.rows],
                      set(range(2, len(COLUMNS))), _total_lines(report))


def format_measure_markdown(report: MeasureReport) -> str:
    return markdown_table(f"**{_heading(report)}**", COLUMNS, [_cells(r) for r in report.rows],
                          set(range(2, len(COLUMNS))), _total_lines(report))


def format_measure_csv(report: MeasureReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["layer", "op", "forward_ms", "backward_ms", "macs", "bytes",
                     "macs_per_s", "intensity", "of_peak", "of_roof", "train_only"])
    for r in report.rows:
        writer.writerow([r.name, r.op, f"{r.forward_ms:.6f}", f"{r.backward_ms:.6f}", r.macs,
                         r.bytes, f"{r.macs_per_s:.6g}", f"{r.intensity:.6g}",
                         f"{r.of_peak:.6g}", f"{r.of_roof:.6g}", str(r.train_only).lower()])
    return buffer.getvalue()


def format_measure_json(report: MeasureReport) -> str:
    return json.dumps({**asdict(report), "ratio": report.ratio}, indent=2) + "\n"


FORMATTERS = {"table": format_measure_table, "markdown": format_measure_markdown,
              "csv": format_measure_csv, "json": format_measure_json}


def format_measure(report: MeasureReport, fmt: str = "table") -> str:
    return FORMATTERS[fmt](report)
