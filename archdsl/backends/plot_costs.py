"""Backend: per-layer cost bars of one or several networks, as lecture notes compare
AlexNet and VGG-16: activation memory, parameters and MACs, one panel each, one bar per
row of the stats report (per layer, or per block with --depth), networks side by side
on a shared scale, log scale where the bars span more than two orders of magnitude.
By default only the rows that carry multiply-adds are drawn (convolutions, fully
connected layers, attention's products), each under its name (`conv1`, ..., `fc8`);
`layers="all"` draws every row.

Pure: reports in, the figure's bytes out (SVG, PDF or PNG). Needs matplotlib, which
the `train` extra installs; nothing else in archdsl imports it. With a paper's `column`,
the figure is exactly that wide (3.28 or 6.875 in, as `render --column`), so it prints
at its fonts' sizes when included unscaled.
"""
from __future__ import annotations

import io

from .layout import COLUMN_INCHES
from .report_stats import Report

PANELS = (("activation memory / image (MiB)", lambda r: r.activation_bytes / 2 ** 20),
          ("parameters (millions)", lambda r: r.params / 1e6),
          ("MACs (multiply-adds, millions)", lambda r: r.macs / 1e6))
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7")  # Okabe-Ito
COSTS_HEIGHT = {"single": 5.0, "double": 6.5}  # inches, in a paper's column: 8 at most
SHORT_TITLES = ("activations (MiB)", "parameters (M)", "MACs (M)")  # for a narrow panel


def plot_costs(reports: list[Report], fmt: str = "svg", *, dpi: int = 300,
               column: str | None = None, layers: str = "cost") -> bytes:
    """The figure: three rows of panels (memory, parameters, MACs), one column per network,
    the y axes shared across a row so that the networks compare at a glance; `column`
    ("single", "double") makes it exactly as wide as a paper's column or text; `layers`
    ("cost", "all") picks the rows drawn (`plotted_rows`)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows_of = [plotted_rows(report, layers) for report in reports]
    widths = [max(len(rows), 4) for rows in rows_of]
    size = ((COLUMN_INCHES[column], COSTS_HEIGHT[column]) if column
            else (min(2 + 0.22 * sum(widths), 16), 7.5))
    figure, axes = plt.subplots(len(PANELS), len(reports), sharey="row", squeeze=False,
                                gridspec_kw={"width_ratios": widths}, figsize=size)
    ticks = tick_points(size[0], sum(widths))
    for index, (report, rows, colour) in enumerate(zip(reports, rows_of, COLOURS * 4)):
        for row_index, (title, value) in enumerate(PANELS):
            ax = axes[row_index][index]
            ax.bar(range(len(rows)), [value(r) for r in rows], color=colour, width=0.8)
            ax.set_xlim(-0.6, max(len(rows), 1) - 0.4)
            ax.grid(axis="y", color="#DDDDDD", linewidth=0.6)
            ax.set_axisbelow(True)
            if index == 0:
                ax.set_ylabel(SHORT_TITLES[row_index] if size[1] < 7 else title, fontsize=8)
            if row_index == 0:
                ax.set_title(report.network, fontsize=10)
            last = row_index == len(PANELS) - 1
            ax.set_xticks(range(len(rows)), [r.name if last else "" for r in rows],
                          rotation=90, fontsize=ticks)
    for row_index, (_, value) in enumerate(PANELS):
        values = [value(r) for rows in rows_of for r in rows if value(r) > 0]
        if values and max(values) / min(values) > 100:
            axes[row_index][0].set_yscale("log")
    return save(figure, fmt, dpi, exact=column is not None)


def plotted_rows(report: Report, layers: str = "cost") -> list:
    """The rows a cost plot draws: every row of the inference network (train-only heads
    left out) with `layers="all"`; with "cost", those that carry multiply-adds, the
    layers the MACs total counts (convolutions, fully connected layers, attention's
    products; with --depth, the blocks that hold them). Activations, pooling, norms,
    reshapes and embedding tables cost no MACs and are left out.

    >>> from archdsl import compile_source
    >>> from archdsl.backends.report_stats import report_stats
    >>> report = report_stats(compile_source("network n { input x: 3 x 8 x 8; "
    ...     "conv1: conv(4, 3); relu; pool: maxpool(2); flatten; fc: linear(10) }").graph)
    >>> [row.name for row in plotted_rows(report)]
    ['conv1', 'fc']
    """
    rows = [r for r in report.rows if not r.train_only]
    return rows if layers == "all" else [r for r in rows if r.macs > 0]


def tick_points(width: float, bars: int) -> float:
    """The tick labels' font size in points: as large as the bars' spacing allows on a
    figure `width` inches wide, 6 pt at the least (legible in print), 8 at the most.

    >>> tick_points(3.28, 24), tick_points(3.28, 20), tick_points(6.875, 24)
    (6.0, 7.0, 8.0)
    """
    spacing = width * 72 * 0.8 / max(bars, 1)  # about 80% of the width holds bars
    return min(8.0, max(6.0, round(spacing * 0.75 * 2) / 2))


def save(figure, fmt: str, dpi: int, exact: bool = False) -> bytes:
    """A matplotlib figure's bytes, closed after: cropped to what it draws, or at its size
    exactly (`exact`, for a paper's column), with vector fonts in PDF."""
    import matplotlib
    from matplotlib import pyplot as plt
    figure.tight_layout()
    buffer = io.BytesIO()
    # TrueType (42) fonts in PDF and PostScript: vector text that publishers' PDF checks
    # (IEEE PDF eXpress) accept, where matplotlib's default embeds Type 3 fonts
    with matplotlib.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):
        figure.savefig(buffer, format=fmt, dpi=dpi, bbox_inches=None if exact else "tight")
    plt.close(figure)
    return buffer.getvalue()
