"""Backend: per-layer cost bars of one or several networks, as lecture notes compare
AlexNet and VGG-16: activation memory, parameters and MACs, one panel each, one bar per
row of the stats report (per layer, or per block with --depth), networks side by side
on a shared scale, log scale where the bars span more than two orders of magnitude.

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
               column: str | None = None) -> bytes:
    """The figure: three rows of panels (memory, parameters, MACs), one column per network,
    the y axes shared across a row so that the networks compare at a glance; `column`
    ("single", "double") makes it exactly as wide as a paper's column or text."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    widths = [max(len(r.rows), 4) for r in reports]
    size = ((COLUMN_INCHES[column], COSTS_HEIGHT[column]) if column
            else (min(2 + 0.22 * sum(widths), 16), 7.5))
    figure, axes = plt.subplots(len(PANELS), len(reports), sharey="row", squeeze=False,
                                gridspec_kw={"width_ratios": widths}, figsize=size)
    for index, (report, colour) in enumerate(zip(reports, COLOURS * 4)):
        rows = [r for r in report.rows if not r.train_only]
        for row_index, (title, value) in enumerate(PANELS):
            ax = axes[row_index][index]
            ax.bar(range(len(rows)), [value(r) for r in rows], color=colour, width=0.8)
            ax.set_xlim(-0.6, len(rows) - 0.4)
            ax.grid(axis="y", color="#DDDDDD", linewidth=0.6)
            ax.set_axisbelow(True)
            if index == 0:
                ax.set_ylabel(SHORT_TITLES[row_index] if size[1] < 7 else title, fontsize=8)
            if row_index == 0:
                ax.set_title(report.network, fontsize=10)
            if row_index == len(PANELS) - 1:
                ax.set_xticks(range(len(rows)), [_label(r) for r in rows], rotation=90,
                              fontsize=6)
            else:
                ax.set_xticks(range(len(rows)), [""] * len(rows))
    for row_index, (_, value) in enumerate(PANELS):
        values = [value(r) for report in reports for r in report.rows if value(r) > 0]
        if values and max(values) / min(values) > 100:
            axes[row_index][0].set_yscale("log")
    return save(figure, fmt, dpi, exact=column is not None)


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


def _label(row) -> str:
    """The layer's name where it has one (`conv1`, `layer3`), else its op (`relu`)."""
    return row.name if row.named else row.op
