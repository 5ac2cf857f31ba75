"""The layer table of docs/language.md, written from the ops themselves: arguments in
positional order with kind, default and bounds, the shape rule, and what each layer
lowers to."""
from __future__ import annotations

from collections.abc import Iterable

from ..source import format_value
from .args import REQUIRED, Arg, Derived
from .op import Op


def _argument_text(arg: Arg) -> str:
    text = f"`{arg.name}` {arg.kind}"
    if arg.default is REQUIRED:
        text += " (required)"
    elif isinstance(arg.default, Derived):
        text += f" = same as `{arg.default.source}`"
    else:
        text += f" = `{format_value(arg.default)}`"
    bounds = [f"≥ {arg.minimum}" for _ in [0] if arg.minimum is not None]
    bounds += [f"≤ {arg.maximum}" for _ in [0] if arg.maximum is not None]
    bounds += [f"< {arg.below}" for _ in [0] if arg.below is not None]
    bounds += [f"> {arg.above}" for _ in [0] if arg.above is not None]
    if bounds:
        text += f" ({', '.join(bounds)})"
    if arg.choices:
        text += " (" + " or ".join(f"`{format_value(c)}`" for c in arg.choices) + ")"
    return text


_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def markdown_table(ops: Iterable[Op]) -> str:
    """The markdown table of `ops`, one row each in their order, `input` left out (the
    language writes it as a statement)."""
    rows = ["| op | arguments, in positional order | shape rule | lowers to |",
            "|---|---|---|---|"]
    for op in ops:
        if op.name == "input":
            continue
        arguments = "<br>".join(map(_argument_text, op.args))
        if op.merge:
            counts = op.operand_counts
            merged = ("values to merge, or branches" if counts is None else
                      " or ".join(_WORDS[n] for n in counts) + " values by name"
                      + (" (one alone: with the current value first)" if counts == (2,)
                         else ""))
            arguments = "<br>".join(filter(None, (merged, arguments)))
        arguments = arguments or "—"
        rows.append(f"| `{op.name}` | {arguments} | {op.rule} | {op.lowers} |")
    return "\n".join(rows) + "\n"


COST_TABLES = {  # column heading, attribute of Op, the row for the ops it does not name
    "macs": ("MACs", "macs_rule", "0 (its work is in `other ops`)"),
    "other": ("other ops", "other_rule", None),
    "params": ("parameters", "params_rule", "0"),
    "kept": ("kept for the backward pass (backends/plan_memory)", "kept_rule", None),
}


def cost_table(ops: Iterable[Op], kind: str) -> str:
    """One of docs/stats.md's tables: ops that count alike share a row, in the order of
    the table; the ops without a word for it (or whose other ops are 0) come last."""
    heading, attribute, rest = COST_TABLES[kind]
    rows: dict[str, list[str]] = {}
    zero: list[str] = []
    for op in ops:
        text = getattr(op, attribute)
        if not text or (kind in ("other", "kept") and text in ("0", "nothing")):
            zero.append(op.name)
        else:
            rows.setdefault(text, []).append(op.name)
    lines = [f"| op | {heading} |", "|---|---|"]
    lines += [f"| {', '.join(f'`{n}`' for n in names)} | {text} |" for text, names in rows.items()]
    lines.append(f"| every other op | {rest} |" if rest is not None
                 else f"| {', '.join(f'`{n}`' for n in zero)} | "
                      f"{'nothing' if kind == 'kept' else 0} |")
    return "\n".join(lines) + "\n"

