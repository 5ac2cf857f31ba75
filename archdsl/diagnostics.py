"""Diagnostics: user errors as data, and the one renderer that prints them.

A diagnostic has a code, a message, a primary label (where the problem is), secondary
labels (who produced the values involved), notes (the chain of block expansions) and an
optional `help:` line with the fix. Every code is listed in `CODES` and documented in
docs/errors.md.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .source import Span

# code -> one-line title. docs/errors.md documents each; a test keeps them in step.
CODES = {
    "E0100": "syntax error",
    "E0101": "unexpected character",
    "E0102": "unexpected end of file",
    "E0103": "nesting too deep",
    "E0104": "not UTF-8 text",
    "E0200": "unknown layer or block",
    "E0201": "too many positional arguments",
    "E0202": "unknown keyword argument",
    "E0203": "missing required argument",
    "E0204": "argument given twice",
    "E0205": "argument has the wrong type",
    "E0206": "argument value out of range",
    "E0207": "undefined name",
    "E0208": "duplicate definition",
    "E0209": "duplicate layer name",
    "E0210": "duplicate parameter",
    "E0211": "no incoming value",
    "E0212": "expression error",
    "E0213": "only merge ops take branches",
    "E0214": "statement not allowed here",
    "E0215": "network has no input",
    "E0216": "duplicate output name",
    "E0217": "unknown attribute",
    "E0218": "not a value",
    "E0219": "reserved name",
    "E0220": "value never used",
    "E0221": "computed label is not a name",
    "E0222": "declared label never defined",
    "E0223": "pop from an empty stack",
    "E0224": "search space written where it cannot be",
    "E0300": "merge operands differ",
    "E0301": "residual operands differ",
    "E0302": "concat operands differ spatially",
    "E0303": "output size would be zero or negative",
    "E0304": "groups do not divide channels",
    "E0305": "layer needs a flat input",
    "E0306": "value has the wrong layout for the layer",
    "E0307": "invalid layer configuration",
    "E0308": "tensor too large",
    "E0309": "crop larger than its input",
    "E0310": "no such axis or size",
    "E0311": "heads do not divide the features",
    "E0312": "bad einsum equation",
    "E0313": "indices reach past what they index",
    "E0314": "tie joins no two tensors of one shape",
    "E0400": "import not found",
    "E0401": "import cycle",
    "E0402": "recursion too deep",
    "E0403": "network too large",
    "E0404": "elaboration does not end",
    "W0200": "block shadows a built-in layer",
    "W0300": "layer built for one input size",
    "W0301": "network checks at the chosen sizes only",
}


@dataclass(frozen=True)
class Label:
    span: Span
    message: str = ""


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    primary: Label
    secondary: tuple[Label, ...] = ()
    notes: tuple[str, ...] = ()
    help: str | None = None
    severity: str = "error"

    def __post_init__(self):
        if self.code not in CODES:
            raise ValueError(f"unregistered diagnostic code {self.code}")


class SpecError(Exception):
    """Raised to stop a pass at once (limits, recursion); carries its diagnostic."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@dataclass
class Sink:
    """Where passes collect diagnostics. Duplicates (same code and place) are dropped."""

    items: list[Diagnostic] = field(default_factory=list)
    _seen: set = field(default_factory=set)
    reported: int = 0  # every add, duplicates included: a second network's errors count too

    def add(self, diagnostic: Diagnostic) -> None:
        if diagnostic.severity == "error":  # a warning stops no pass
            self.reported += 1
        key = (diagnostic.code, diagnostic.message, str(diagnostic.primary.span),
               diagnostic.primary.span.end)
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(diagnostic)

    def __bool__(self) -> bool:
        return bool(self.items)


# ---- rendering -------------------------------------------------------------------


def render_diagnostic(diagnostic: Diagnostic) -> str:
    """Render a diagnostic the way rustc does: header, location, source, carets, help."""
    primary = diagnostic.primary
    labels = [(primary, "^")] + [(label, "-") for label in diagnostic.secondary]
    same_file = [(lb, m) for lb, m in labels if lb.span.source is primary.span.source]
    other_file = [(lb, m) for lb, m in labels if lb.span.source is not primary.span.source]
    gutter = max(len(str(lb.span.line)) for lb, _ in labels)
    pad = " " * gutter
    out = [f"{diagnostic.severity}[{diagnostic.code}]: {diagnostic.message}",
           f"{pad}--> {primary.span}", f"{pad} |"]
    out += _snippet_lines(same_file, gutter)
    for label, mark in other_file:
        out += [f"{pad}::: {label.span}"] + _snippet_lines([(label, mark)], gutter)
    out.append(f"{pad} |")
    out += [f"{pad} = note: {note}" for note in diagnostic.notes]
    if diagnostic.help:
        out.append(f"{pad} = help: {diagnostic.help}")
    return "\n".join(out)


MAX_SHOWN = 110  # longer source lines are shown as a window around the span


def _snippet_lines(labels, gutter: int) -> list[str]:
    """Each source line once, in line order, with one underline row per label on it."""
    lines = []
    by_line: dict[int, list] = {}
    for label, mark in labels:
        by_line.setdefault(label.span.line, []).append((label, mark))
    for number in sorted(by_line):
        text = by_line[number][0][0].span.source.line_text(number).expandtabs(1)
        shown, shift = _window(text, [label.span for label, _ in by_line[number]])
        lines.append(f"{number:>{gutter}} | {shown}".rstrip())
        for label, mark in by_line[number]:
            span = label.span
            width = max(1, min(span.end, span.start + len(text) - span.column + 1) - span.start)
            column = span.column - 1 - shift
            width = max(1, min(width, len(shown) - column))
            message = f" {label.message}" if label.message else ""
            lines.append(f"{' ' * gutter} | {' ' * column}{mark * width}{message}")
    return lines


def _window(text: str, spans) -> tuple[str, int]:
    """A long line shown as a window around its first span: (text shown, columns cut)."""
    if len(text) <= MAX_SHOWN:
        return text, 0
    column = min(span.column for span in spans) - 1
    left = max(0, column - 30)
    right = min(len(text), left + MAX_SHOWN)
    shown = ("…" if left else "") + text[left:right] + ("…" if right < len(text) else "")
    return shown, left - (1 if left else 0)


def to_json(diagnostic: Diagnostic) -> dict:
    """A diagnostic as plain data, for editors (`--format json`)."""
    def where(label: Label) -> dict:
        span = label.span
        end_line, end_column = span.source.position(span.end)
        return {"file": span.source.path, "line": span.line, "column": span.column,
                "end_line": end_line, "end_column": end_column, "label": label.message}

    return {"severity": diagnostic.severity, "code": diagnostic.code,
            "message": diagnostic.message, "primary": where(diagnostic.primary),
            "secondary": [where(label) for label in diagnostic.secondary],
            "notes": list(diagnostic.notes), "help": diagnostic.help}


def render_all(diagnostics, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps([to_json(d) for d in diagnostics], indent=2)
    return "\n\n".join(render_diagnostic(d) for d in diagnostics)
