"""Figures: the policy that turns a network into the drawing a person asked for, for the
command line (`archdsl render`) and for Python (`archdsl.diagram(spec)`) alike.

`draw` gives one network's DOT source and, for `column`, searches for a legible layout:
when the text would print below 6 pt in that column, the other direction and the chain
snaked into 2-4 columns are tried, and the notes say what was chosen or what would help.
`draw_side_by_side` does the same for several networks in one figure. `Diagram` shows a
drawing inline in Jupyter (it has `_repr_svg_`) and saves SVG, PDF, PNG, TikZ or DOT.

    >>> import archdsl
    >>> figure = archdsl.diagram("network t { input x: 3 x 8 x 8; conv(4, 3); relu }")
    >>> "3x3 conv, 4" in figure.dot
    True
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from .backends.layout import (DOT_TIMEOUT, MIN_TEXT_POINTS, LayoutError, can_layout,
                              format_of, layout, text_points)
from .backends.render_dot import DIRECTIONS, SHOW, STYLES, instances, render_dot, render_many
from .compile import CompileError, compile_file, compile_source
from .errors import UsageError
from .files import write_atomic
from . import ir

COLUMNS = ("single", "double")


@dataclass(frozen=True)
class FigureOptions:
    """How to draw: the options of `archdsl render`, with its defaults."""
    depth: int | None = None  # open blocks this many levels deep
    expand: tuple[str, ...] = ()  # scopes or blocks to open; "all" opens everything
    direction: str = "TB"
    shapes: bool = True  # tensor shapes on the edges
    style: str = "paper"
    partial: bool = False  # draw up to a shape error, highlighted
    column: str | None = None  # fit one column ("single") or the page width ("double")
    show: tuple[str, ...] = ()  # families drawn as boxes of their own
    title: bool = True
    legend: bool = False
    dot_timeout: float = DOT_TIMEOUT  # for the legibility search's layouts

    def check(self, graphs=()) -> None:
        """UsageError naming the first option that cannot be drawn."""
        if self.depth is not None and self.depth < 1:
            raise UsageError("--depth must be at least 1")
        if not (math.isfinite(self.dot_timeout) and self.dot_timeout > 0):
            raise UsageError("--dot-timeout must be a positive number of seconds")
        for name, value, allowed in (("direction", self.direction, DIRECTIONS),
                                     ("style", self.style, STYLES),
                                     ("column", self.column, COLUMNS + (None,))):
            if value not in allowed:
                raise UsageError(f"--{name} {value}: choose from "
                                 + ", ".join(a for a in allowed if a))
        unknown = [w for w in self.show if w not in SHOW]
        if unknown:
            raise UsageError(f"--show {unknown[0]}: choose from {', '.join(SHOW)}")
        for name in self.expand:
            if name != "all" and graphs and not any(instances(g, name) for g in graphs):
                raise UsageError(f"--expand {name}: no layer, stage or block has that name "
                                 "(`archdsl ir FILE` lists the names)")


@dataclass(frozen=True)
class Drawing:
    dot: str  # Graphviz source
    notes: tuple[str, ...] = ()  # `note: ...` and `warning: ...` lines for the person


def draw(graph, options: FigureOptions = FigureOptions()) -> Drawing:
    """One network's drawing, legible at `options.column` where a layout can make it so."""
    def source(direction: str, columns: int) -> str:
        return render_dot(graph, depth=options.depth, expand=options.expand,
                          direction=direction, shapes=options.shapes, style=options.style,
                          partial=options.partial, column=options.column, show=options.show,
                          title=options.title, legend=options.legend, columns=columns)
    return _legible(source, options, ir.network(graph).name)


def draw_side_by_side(graphs, options: FigureOptions = FigureOptions()) -> Drawing:
    """Several networks in one figure, at one scale (He et al.'s Figure 3)."""
    if options.partial:
        raise UsageError("--partial draws one network; give one file")
    dot = render_many(list(graphs), depth=options.depth, expand=options.expand,
                      direction=options.direction, shapes=options.shapes, style=options.style,
                      column=options.column, show=options.show, title=options.title,
                      legend=options.legend)
    names = ", ".join(ir.network(g).name for g in graphs)
    return _legible(lambda direction, columns: dot, options, names, search=False)


def _legible(source, options: FigureOptions, name: str, search: bool = True) -> Drawing:
    """The drawing as asked, unless `column` would print its text below 6 pt: then the
    other direction, or the chain snaked into 2-4 columns side by side, whichever prints
    largest, and a note saying so. When none reaches 6 pt, a warning says what would."""
    asked = source(options.direction, 1)
    if not options.column or not can_layout("svg"):
        return Drawing(asked)
    try:
        points = _points(asked, options)
        best, best_points, how = asked, points, ""
        if points < MIN_TEXT_POINTS and search:
            best, best_points, how = _search(source, options, asked, points)
    except LayoutError:
        return Drawing(asked)  # the layout proper reports it
    notes = []
    if how:
        notes.append(f"note: {name} {how} so that its text prints at {best_points:.1f} pt in "
                     f"a {options.column} column (as asked: {points:.1f} pt)")
    if best_points < MIN_TEXT_POINTS:
        notes.append(f"warning: at --column {options.column}, {name}'s smallest text prints "
                     f"at {best_points:.1f} pt, below {MIN_TEXT_POINTS:g} pt: draw fewer boxes "
                     "(--depth 1, no --expand), --no-shapes"
                     + (", or --column double" if options.column == "single" else ""))
    return Drawing(best, tuple(notes))


def _search(source, options: FigureOptions, asked: str, points: float):
    """(source, text size, how it was made) of the most legible layout tried."""
    other = "LR" if options.direction == "TB" else "TB"
    tried = [(f"laid out {other}", lambda: source(other, 1))]
    tried += [(f"snaked into {k} columns", lambda k=k: source(options.direction, k))
              for k in (2, 3, 4)]
    best, best_points, how = asked, points, ""
    for words, make in tried:
        candidate = make()
        if candidate == asked:
            continue  # no place to cut the chain
        candidate_points = _points(candidate, options)
        if candidate_points > best_points:
            best, best_points, how = candidate, candidate_points, words
        if best_points >= MIN_TEXT_POINTS:
            break
    return best, best_points, how


def _points(source: str, options: FigureOptions) -> float:
    return text_points(source, layout(source, "svg", options.dot_timeout))


class Diagram:
    """A network's diagram: `dot` is its Graphviz source; laid out by `dot` on demand.
    `notes` say how the layout was chosen for a column, or that its text is too small."""

    def __init__(self, dot: str, notes: tuple[str, ...] = ()):
        self.dot, self.notes = dot, notes

    def svg(self) -> str:
        return layout(self.dot, "svg").decode()

    def _repr_svg_(self) -> str:
        return self.svg()

    def save(self, path: str | Path, *, dpi: int = 300) -> Path:
        """Write the diagram; the format is the file's extension (svg, pdf, png, dot, or
        tex for a TikZ picture)."""
        path = Path(path)
        fmt = format_of(path)
        if fmt is None:
            raise ValueError(f"{path}: give a file ending in .svg, .pdf, .png, .tex or .dot")
        write_atomic(path, layout(self.dot, fmt, dpi=dpi))
        return path


def diagram(spec, *, network: str | None = None, settings: dict | None = None,
            **options) -> Diagram:
    """The diagram of a spec (a path, .arch text, or a compiled graph), or of several side
    by side (a list of them). `options` are `FigureOptions`' fields: depth, expand,
    direction, shapes, style, column, show, title, legend; the same options give the same
    drawing as `archdsl render`. A warning is issued when the text is too small for the
    column asked for."""
    chosen = FigureOptions(**_tuples(options))
    if isinstance(spec, (list, tuple)):
        graphs = [_graph(s, network, settings) for s in spec]
        chosen.check(graphs)
        drawing = draw_side_by_side(graphs, chosen)
    else:
        graph = _graph(spec, network, settings)
        chosen.check([graph])
        drawing = draw(graph, chosen)
    for note in drawing.notes:
        if note.startswith("warning"):
            warnings.warn(note.removeprefix("warning: "), stacklevel=2)
    return Diagram(drawing.dot, drawing.notes)


def _tuples(options: dict) -> dict:
    """`expand` and `show` as tuples: one name may be given alone (`expand="layer3"`)."""
    listed = {k: (v,) if isinstance(v, str) else tuple(v)
              for k, v in options.items() if k in ("expand", "show")}
    return {**options, **listed}


def _graph(spec, network, settings):
    if not isinstance(spec, (str, Path)):
        return spec
    is_path = isinstance(spec, Path) or (spec.endswith(".arch") and "\n" not in spec)
    result = (compile_file(spec, network=network, settings=settings or {}) if is_path
              else compile_source(spec, network=network, settings=settings or {}))
    if not result.ok:
        raise CompileError(result.diagnostics)
    return result.graph


__all__ = ["Diagram", "Drawing", "FigureOptions", "diagram", "draw", "draw_side_by_side"]
