"""Backend: the text and JSON of `archdsl debug`'s report (runtime.debug measures it),
and the located report of a non-finite value, drawn as the diagnostics are: the .arch
line and column of the layer with a caret, the layers that fed it, the chain of block
calls, the operations inside it, and a `help:` line with the usual fix. Pure: a report
in, text out."""
from __future__ import annotations

import json
import math

from .. import ir
from ..lang.context import call_chain

# The usual cause of a non-finite value, by the operation that made it (a torch
# operation inside the layer, its backward, or the layer's op).
HINTS = {
    "log": "log needs a positive input: clamp it first (`maximum(1e-6)`) or feed it a "
           "positive value (`softplus`, `exp`)",
    "sqrt": "sqrt of a negative value is NaN and its gradient at 0 infinite: clamp its "
            "input (`maximum(1e-6)`) or take `abs` and add a small constant first",
    "rsqrt": "rsqrt of 0 is infinite: add a small constant first (`add(1e-6)`)",
    "reciprocal": "1 / 0 is infinite: add a small constant first (`add(1e-6)`)",
    "div": "a division by zero: add a small constant (an eps) to the divisor, "
           "e.g. `add(1e-6)` on it",
    "pow": "pow of a negative base to a fractional power is NaN, of 0 to a negative power "
           "infinite: clamp the base (`maximum(1e-6)`)",
    "exp": "exp overflows above 88 in float32 (above 11 in float16): subtract the largest "
           "value first, as `softmax` does, or clamp its input (`minimum(80)`)",
    "norm": "a norm of a constant input divides by zero: give it an eps > 0",
    "vector_norm": "the gradient of a norm at 0 is 0 / 0: norm a value that is never all "
                   "zero, or add a small constant before it",
    "parameter": "the initialisation draws values too large for the precision: use a "
                 "smaller `std` (0.02 is usual)",
    "float16": "float16 overflows above 65504: train with --amp bf16, or compute this step in "
               "float32 (`cast(\"float32\")` before it)",
    "parameters": "the weights are not finite: the weights file is damaged, or training "
                  "diverged (lower --lr, or use --clip-grad)",
    "large": "the weights grew very large: the learning rate is likely too high (lower "
             "--lr, or use --clip-grad and a warm-up)",
}
ALIASES = {"log2": "log", "log10": "log", "log1p": "log", "xlogy": "log", "truediv": "div",
           "native_layer_norm": "norm", "layernorm": "norm",
           "native_batch_norm": "norm", "batchnorm": "norm", "native_group_norm": "norm",
           "groupnorm": "norm", "rms_norm": "norm", "layer_norm": "norm",
           "linalg_vector_norm": "vector_norm"}


def hint(fault) -> str | None:
    """The usual fix for the fault: by its precision, its parameters, what made it."""
    if fault.stage == "forward" and "inf" in fault.kind and fault.dtype == "float16":
        return HINTS["float16"]
    if fault.op == "parameter":
        return HINTS["parameter"]
    if any("holds" in note for note in fault.parameters):
        return HINTS["parameters"]
    if any("reaches" in note for note in fault.parameters):
        return HINTS["large"]
    for made in (*fault.inner, fault.op):
        key = made.removeprefix("aten.").rstrip("0123456789").removesuffix("Backward").lower()
        key = ALIASES.get(key, key)
        if key == "norm" and fault.stage == "backward":
            key = "vector_norm"
        if key in HINTS:
            return HINTS[key]
    return None


# ---- the located report ----------------------------------------------------------------------


def render_fault(graph, fault) -> str:
    """The fault as a diagnostic: where in the spec, what fed it, the chain of block calls.

    The layer that made the value is the primary label; each layer that fed it, a
    secondary one (what it gave, or the gradient it received)."""
    if not fault.layer:
        output = ir.network(graph).outputs[0]
        return _render(f"the loss is {fault.kind} though every layer's output is finite",
                       output.span, "the loss of this output", [], _notes(fault), hint(fault))
    item = ir.node(graph, fault.layer)
    secondary = [(ir.node(graph, name).span, f"`{name}` {what}") for name, what in fault.inputs]
    notes = list(call_chain(item.trace)) + _notes(fault)
    return _render(_message(fault), item.span, _label(fault), secondary, notes, hint(fault))


def _message(fault) -> str:
    where = f"`{fault.layer}` ({fault.op})"
    if fault.stage == "input":
        return f"the data gives {fault.kind} values to input {where}"
    if fault.stage == "backward":
        return f"{where} passes a non-finite gradient back (backward pass)"
    return f"{where} gives {fault.kind} (forward pass, {fault.dtype})"


def _label(fault) -> str:
    if fault.stage == "backward":
        return "its output's gradient is finite; what it passes back is not"
    share = f"{fault.count} of {fault.total} values" if fault.total else ""
    return f"first {fault.kind} here: {share}"


def _notes(fault) -> list[str]:
    notes = []
    if fault.batch:
        notes.append(f"in batch {fault.batch} of the run")
    notes += list(fault.hints)
    gave = "gradients" if fault.stage == "backward" else "inputs"
    notes += [f"inside it, {op} gave a non-finite value from finite {gave}" for op in fault.inner]
    return notes + list(fault.parameters)


def _render(message: str, primary, label: str, secondary, notes, help_line) -> str:
    """Drawn as diagnostics.render_diagnostic draws a diagnostic (a fault has no code)."""
    labels = [(primary, "^", label)] + [(span, "-", text) for span, text in secondary]
    gutter = max(len(str(span.line)) for span, _, _ in labels)
    pad = " " * gutter
    out = [f"error: {message}", f"{pad}--> {primary}", f"{pad} |"]
    here = [entry for entry in labels if entry[0].source is primary.source]
    for span, mark, text in sorted(here, key=lambda entry: (entry[0].line, entry[1] != "^")):
        out += _snippet(span, mark, text, gutter)
    for span, mark, text in labels:
        if span.source is not primary.source:
            out += [f"{pad}::: {span}"] + _snippet(span, mark, text, gutter)
    out.append(f"{pad} |")
    out += [f"{pad} = note: {note}" for note in notes]
    if help_line:
        out.append(f"{pad} = help: {help_line}")
    return "\n".join(out)


def _snippet(span, mark: str, text: str, gutter: int) -> list[str]:
    line = span.source.line_text(span.line).expandtabs(1)
    width = max(1, min(span.end - span.start, len(line) - span.column + 1))
    return [f"{span.line:>{gutter}} | {line}".rstrip(),
            f"{' ' * gutter} | {' ' * (span.column - 1)}{mark * width} {text}".rstrip()]


# ---- the whole report --------------------------------------------------------------------


def format_debug(graph, report) -> str:
    """The report as text: a header, a table of the layers' figures, the dead units,
    and the non-finite values (none, or the located report)."""
    out = [_header(report), ""] + _table(report) + [""] + _dead(report) + [""]
    if report.fault is None:
        out.append(f"non-finite values: none, forward or backward, in {report.batches} "
                   f"batch{'es' if report.batches != 1 else ''}")
    else:
        out.append(render_fault(graph, report.fault))
    return "\n".join(out) + "\n"


def _header(report) -> str:
    losses = ", ".join(f"{loss:.4g}" for loss in report.losses)
    return (f"{report.network} on {report.data}: {report.batches} batch"
            f"{'es' if report.batches != 1 else ''} of {report.batch_size}, {report.mode} "
            f"mode, {report.precision}, {report.device}; loss {losses}")


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3g}"


def _share(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0%}"


def _table(report) -> list[str]:
    """One row per layer that gave floats: activation and gradient mean, std, largest
    |value| and share of zeros; `!` marks a layer whose values were not all finite."""
    rows = [("layer", "op", "mean", "std", "max|x|", "zero", "grad mean", "grad std",
             "grad max|x|", "grad zero")]
    for layer in report.layers:
        a, g = layer.activation, layer.gradient
        if not a.seen:
            continue
        flag = " !" if a.nans + a.infs + g.nans + g.infs else ""
        rows.append((layer.name + flag, layer.op, _number(a.mean), _number(a.std),
                     _number(a.largest) if a.count else "-", _share(a.zero_fraction),
                     _number(g.mean), _number(g.std), _number(g.largest) if g.count else "-",
                     _share(g.zero_fraction)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]


def _dead(report) -> list[str]:
    watched = [layer for layer in report.layers if layer.alive is not None]
    if not watched:
        return ["dead units: no ReLU layer"]
    units = sum(len(layer.alive) for layer in watched)
    dead = [layer for layer in watched if layer.dead]
    if not dead:
        return [f"dead units: none ({units} units of {len(watched)} ReLU layer"
                f"{'s' if len(watched) != 1 else ''} fired at least once)"]
    lines = ["dead units (zero for every example, at every position):"]
    for layer in dead:
        shown = ", ".join(map(str, layer.dead[:12])) + (" ..." if len(layer.dead) > 12 else "")
        lines.append(f"  {layer.name} ({layer.op}): {len(layer.dead)} of {len(layer.alive)} "
                     f"units: {shown}")
    return lines


def debug_json(graph, report) -> str:
    """The report as JSON: the run, each layer's figures, dead units, and the fault with
    its place in the spec."""
    layers = [{"layer": layer.name, "op": layer.op, "activation": layer.activation.record(),
               "gradient": layer.gradient.record(),
               **({"dead_units": list(layer.dead), "units": len(layer.alive)}
                  if layer.alive is not None else {})}
              for layer in report.layers if layer.activation.seen]
    fault = None
    if report.fault is not None:
        fault = report.fault.record()
        if report.fault.layer:
            item = ir.node(graph, report.fault.layer)
            fault.update(file=item.span.source.path, line=item.span.line,
                         column=item.span.column,
                         calls=[{"block": f.block, "file": f.call.source.path,
                                 "line": f.call.line, "column": f.call.column}
                                for f in item.trace])
        fault["help"] = hint(report.fault)
    return json.dumps(_plain({"network": report.network, "data": report.data,
                       "batches": report.batches, "batch_size": report.batch_size,
                       "mode": report.mode, "precision": report.precision,
                       "device": report.device, "losses": report.losses, "layers": layers,
                       "non_finite": fault}), indent=2, allow_nan=False)


def _plain(value):
    """JSON has no NaN nor infinity: a figure there is none (null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
