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
            merged = ("two values by name: `crop(a, b)`" if op.operands == 2
                      else "values to merge, or branches")
            arguments = "<br>".join(filter(None, (merged, arguments)))
        arguments = arguments or "—"
        rows.append(f"| `{op.name}` | {arguments} | {op.rule} | {op.lowers} |")
    return "\n".join(rows) + "\n"
