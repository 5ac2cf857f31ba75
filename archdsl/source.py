"""Source text and positions: the one `Span` type every diagnostic, IR node and syntax
tree points with. It sits on the ground floor, below the front end and the IR."""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property


class Source:
    """The text of one .arch file and the name it is shown under.

    >>> src = Source("spec.arch", "network n {\\n  relu\\n}\\n")
    >>> src.position(14)
    (2, 3)
    """

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text

    def __repr__(self) -> str:
        return f"Source({self.path!r})"

    @cached_property
    def _line_starts(self) -> list[int]:
        starts = [0]
        starts.extend(i + 1 for i, ch in enumerate(self.text) if ch == "\n")
        return starts

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]


@dataclass(frozen=True, eq=False)
class Span:
    """A range of characters [start, end) in a Source."""

    source: Source
    start: int
    end: int

    @property
    def line(self) -> int:
        return self.source.position(self.start)[0]

    @property
    def column(self) -> int:
        return self.source.position(self.start)[1]

    @property
    def text(self) -> str:
        return self.source.text[self.start:self.end]

    def __str__(self) -> str:
        return f"{self.source.path}:{self.line}:{self.column}"

    def to(self, other: "Span") -> "Span":
        """The span from the start of this one to the end of `other`."""
        return Span(self.source, self.start, max(self.end, other.end))


def format_value(value) -> str:
    """A value as a spec writes it: `true`, `"nearest"`, `64`, `1e-05`, `(3, 3)`, `(7,)`.
    A whole number kept as a float is written as the integer a person would type (a
    float argument takes either).

    >>> [format_value(v) for v in (True, "same", 2.0, 1e-05, (3, 3), (7,), 0.25)]
    ['true', '"same"', '2', '1e-05', '(3, 3)', '(7,)', '0.25']
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, tuple):
        items = ", ".join(format_value(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    return repr(value) if isinstance(value, float) else str(value)
