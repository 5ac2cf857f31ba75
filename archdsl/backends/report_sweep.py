"""Backend: the results of a sweep: a table and CSV of its trials, the Pareto front of its
objectives, and the front plotted (accuracy against MACs or parameters).

Pure: trial records in, text or the figure's bytes out. A trial is a dict: `trial` (its
number), `state` (complete, pruned, rejected, failed, running, waiting), `values` (the
search dimensions), `costs` (params, macs: multiply-adds, memory), `metrics` (the
objectives measured by training, or latency), `note` (why it was pruned, rejected or
failed), `spec` (its concrete .arch file) and `seconds`.
"""
from __future__ import annotations

import csv
import io
import math

from .report_stats import human_bytes, human_count

DIRECTIONS = {"val_acc": "maximize", "val_loss": "minimize", "params": "minimize",
              "macs": "minimize", "memory": "minimize", "latency": "minimize"}
STATIC = ("params", "macs", "memory")
HEADINGS = {"params": "params", "macs": "MACs", "memory": "memory"}  # the table's columns
LABELS = {"val_acc": "validation accuracy", "val_loss": "validation loss",
          "params": "parameters", "macs": "MACs (multiply-adds)",
          "memory": "forward activations (bytes)", "latency": "latency (ms, batch 1)"}


def value_of(trial: dict, objective: str):
    """An objective's value for a trial: a static cost or a measured metric; None when it
    has none (pruned, failed, or still running)."""
    if objective in STATIC:
        return trial.get("costs", {}).get(objective)
    return trial.get("metrics", {}).get(objective)


def show_value(name: str, value) -> str:
    if value is None:
        return "-"
    if name == "memory":
        return human_bytes(value)
    if name in ("params", "macs"):
        return human_count(value)
    if name == "val_acc":
        return f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def pareto_front(trials: list[dict], objectives: list[str]) -> list[dict]:
    """The trials no other trial beats on every objective (at least as good on all, better
    on one), among those with every objective's value; in the order given."""
    scored = [(t, [_signed(o, value_of(t, o)) for o in objectives]) for t in trials]
    scored = [(t, v) for t, v in scored if None not in v]
    if len(objectives) == 2:  # sort and sweep: n log n, for the 15,625 cells of a space
        ranked = sorted(range(len(scored)), key=lambda i: (scored[i][1], i))
        keep, best = set(), math.inf
        for i in ranked:
            if scored[i][1][1] < best:
                keep.add(i)
                best = scored[i][1][1]
        return [t for i, (t, _) in enumerate(scored) if i in keep]
    front = []
    for t, v in scored:
        if not any(all(a <= b for a, b in zip(w, v)) and w != v for _, w in scored):
            front.append(t)
    return front


def _signed(objective: str, value):
    """The value as one to minimise."""
    if value is None:
        return None
    return -value if DIRECTIONS[objective] == "maximize" else value


def _columns(trials: list[dict]) -> list[str]:
    names = []
    for trial in trials:
        names += [k for k in trial.get("values", {}) if k not in names]
    return names


def format_trials(trials: list[dict], objectives: list[str], front: list[dict] | None = None,
                  limit: int | None = None) -> str:
    """The trials as a text table: number, state, the dimensions' values, costs and
    measured objectives; `*` marks the Pareto front."""
    dims = _columns(trials)
    measured = [o for o in objectives if o not in STATIC]
    on_front = {t["trial"] for t in front or ()}
    header = ["trial", "state", *dims, *(HEADINGS[c] for c in STATIC), *measured, "seconds"]
    rows = []
    for trial in trials[:limit] if limit else trials:
        mark = "*" if trial["trial"] in on_front else ""
        rows.append([f"{trial['trial']}{mark}", trial["state"],
                     *(_text(trial.get("values", {}).get(d)) for d in dims),
                     *(show_value(c, value_of(trial, c)) for c in STATIC),
                     *(show_value(m, value_of(trial, m)) for m in measured),
                     f"{trial['seconds']:.1f}" if trial.get("seconds") is not None else "-"])
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
             for line in [header, ["-" * w for w in widths], *rows]]
    if limit and len(trials) > limit:
        lines.append(f"... {len(trials) - limit:,} more in trials.csv")
    return "\n".join(lines)


def _text(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_text, value)) + ")"
    return str(value)


def format_csv(trials: list[dict], objectives: list[str]) -> str:
    """One row per trial: every value exact (dimensions, costs, metrics), the note and the
    trial's spec path."""
    dims = _columns(trials)
    measured = [o for o in objectives if o not in STATIC]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", "state", *dims, *STATIC, *measured, "seconds", "spec", "note"])
    for trial in trials:
        writer.writerow([trial["trial"], trial["state"],
                         *(_text(trial.get("values", {}).get(d)) for d in dims),
                         *("" if value_of(trial, c) is None else value_of(trial, c)
                           for c in (*STATIC, *measured)),
                         "" if trial.get("seconds") is None else round(trial["seconds"], 3),
                         trial.get("spec") or "", trial.get("note") or ""])
    return out.getvalue()


def plot_front(trials: list[dict], x: str, y: str, fmt: str = "png", title: str = "") -> bytes:
    """Every trial with both values as a point, the Pareto front (of x and y) joined and
    labelled by trial number; a log x axis where the values span more than a decade."""
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams.update({"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none"})
    from matplotlib import pyplot as plt

    points = [t for t in trials if value_of(t, x) is not None and value_of(t, y) is not None]
    front = sorted(pareto_front(points, [x, y]), key=lambda t: value_of(t, x))
    figure, ax = plt.subplots(figsize=(3.3, 2.6))
    ax.scatter([value_of(t, x) for t in points], [value_of(t, y) for t in points], s=9,
               color="#BBBBBB", label="trials", zorder=2)
    ax.plot([value_of(t, x) for t in front], [value_of(t, y) for t in front], "-o",
            color="#0072B2", markersize=4, linewidth=1, label="Pareto front", zorder=3)
    if len(front) <= 12:
        for t in front:
            ax.annotate(str(t["trial"]), (value_of(t, x), value_of(t, y)), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
    xs = [value_of(t, x) for t in points if value_of(t, x) > 0]
    if xs and max(xs) > 10 * min(xs):
        ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter
    if x in STATIC:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(x, v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(LABELS[x], fontsize=7)
    ax.set_ylabel(LABELS[y], fontsize=7)
    ax.tick_params(which="both", labelsize=6)
    ax.grid(color="#EEEEEE", linewidth=0.5)
    ax.legend(fontsize=6, frameon=False)
    if title:
        ax.set_title(title, fontsize=7)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format=fmt, dpi=300, metadata={"Date": None} if fmt == "svg" else None)
    plt.close(figure)
    return out.getvalue()


def _tick(name: str, value: float) -> str:
    """An axis label: `10M`, `2.5M`, `512 KiB` (no trailing zeros)."""
    if name == "memory":
        return human_bytes(int(value)).replace(".0 ", " ")
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:g}{unit}"
    return f"{value:g}"


def plot_axes(objectives: list[str]) -> tuple[str, str]:
    """Which objectives the front's figure shows: a measured one (y) against a cost (x);
    MACs when the objectives name no cost."""
    measured = [o for o in objectives if o not in STATIC]
    costs = [o for o in objectives if o in STATIC] or ["macs"]
    if measured:
        return costs[0], measured[0]
    return (costs + ["params"])[:2] if len(costs) == 1 else (costs[0], costs[1])
