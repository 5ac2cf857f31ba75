"""Backend: the roofline of a measured network (`stats --measure --plot OUT`): each layer
with MACs as a point at its arithmetic intensity (MACs per byte, x) and its achieved
forward MAC/s (y), log-log, under the device's two roofs: its bandwidth times the
intensity (memory-bound, left) and its peak MAC/s (compute-bound, right), both measured
on the device. The layers that take the most time are labelled.

Pure: measure reports in, the figure's bytes out (SVG, PDF or PNG), as plot_costs, and
as wide as a paper's `column` where one is given.
"""
from __future__ import annotations

from .layout import COLUMN_INCHES
from .report_measure import MeasureReport
from .plot_costs import COLOURS, save

LABELLED = 6  # the slowest layers of each network get their names


def plot_roofline(reports: list[MeasureReport], fmt: str = "svg", *, dpi: int = 300,
                  column: str | None = None) -> bytes:
    """One log-log panel: the roofs of the first report's device, a point per layer;
    `column` ("single", "double") makes it exactly a paper's column or text wide."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    width = COLUMN_INCHES[column] if column else 7
    figure, ax = plt.subplots(figsize=(width, max(2.6, width * 0.65) if column else 4.8))
    points = [r for report in reports for r in report.rows if r.macs and r.forward_ms > 0]
    roofs = reports[0].roofs
    low = min([r.intensity for r in points] + [0.5]) / 2
    high = max([r.intensity for r in points] + [2 * roofs.macs_per_s / roofs.bytes_per_s]) * 2
    ridge = roofs.macs_per_s / roofs.bytes_per_s
    xs = [low, ridge, high]
    ax.plot(xs, [min(roofs.macs_per_s, x * roofs.bytes_per_s) for x in xs], color="#444444",
            linewidth=1.2, label=f"roofs of {roofs.device}")
    for report, colour in zip(reports, COLOURS * 4):
        _draw_layers(ax, report, colour)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MACs per byte)")
    ax.set_ylabel("achieved MAC/s (forward)")
    ax.set_title(f"{', '.join(r.network for r in reports)}: batch {reports[0].batch}, "
                 f"{reports[0].dtype}", fontsize=10)
    ax.grid(which="both", color="#EEEEEE", linewidth=0.5)
    ax.legend(fontsize=7, loc="lower right")
    return save(figure, fmt, dpi, exact=column is not None)


def _draw_layers(ax, report: MeasureReport, colour: str) -> None:
    rows = [r for r in report.rows if r.macs and r.forward_ms > 0]
    ax.scatter([r.intensity for r in rows], [r.macs_per_s for r in rows], s=14,
               color=colour, alpha=0.8, label=report.network)
    for row in sorted(rows, key=lambda r: -r.forward_ms)[:LABELLED]:
        ax.annotate(row.name, (row.intensity, row.macs_per_s), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
