"""Figures: the policy that turns a network into the drawing a person asked for, for the
command line (`archdsl render`) and for Python (`archdsl.diagram(spec)`) alike.

`draw` gives one network's DOT source and, for `column`, searches for a legible layout:
the figure is scaled down to fit the column's width and `max_height` (8 in by default, a
paper's text block less a caption), and when its text would then print below 6 pt, the
other direction, a U-Net's U on its side (two rows: encoder above decoder) and the chain
snaked into 2-4 columns are tried. The notes give the printed size and the smallest
text's point size, what was chosen, and what would help.
`draw_side_by_side` does the same for several networks in one figure, `draw_given` for
DOT made elsewhere (`render --diff`). `Diagram` shows a drawing inline in Jupyter (it has
`_repr_svg_`) and saves SVG, PDF, PNG, TikZ or DOT; a too-small text is a warning there.

    >>> import archdsl
    >>> figure = archdsl.diagram("network t { input x: 3 x 8 x 8; conv(4, 3); relu }")
    >>> "3x3 conv, 4" in figure.dot
    True
"""
from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from .backends.layout import (DOT_TIMEOUT, MAX_HEIGHT_INCHES, MIN_TEXT_POINTS, LayoutError,
                              can_layout, format_of, layout, page_size, printed_size,
                              text_points)
from .backends.render_dot import DIRECTIONS, STYLES, render_dot, render_many
from .backends.render_view import MERGES, SHOW, instances
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
    max_height: float | None = None  # inches, with `column`; None: MAX_HEIGHT_INCHES
    frames: bool = True  # outlines and titles around open blocks
    captions: tuple[tuple[str, str], ...] = ()  # (name, words): the network's title, a
    # stage's or a layer's text, over the spec's `as "..."` (`render --caption`)
    merges: str = "marked"  # residual skips into a "+" circle, or `plain`: box to box

    def check(self, graphs=()) -> None:
        """UsageError naming the first option that cannot be drawn."""
        if self.depth is not None and self.depth < 1:
            raise UsageError("--depth must be at least 1")
        if self.max_height is not None:
            if not (math.isfinite(self.max_height) and self.max_height > 0):
                raise UsageError("--max-height must be a positive number of inches")
            if self.column is None:
                raise UsageError("--max-height bounds a figure made for a paper's column: "
                                 "add --column single or --column double")
        if not (math.isfinite(self.dot_timeout) and self.dot_timeout > 0):
            raise UsageError("--dot-timeout must be a positive number of seconds")
        for name, value, allowed in (("direction", self.direction, DIRECTIONS),
                                     ("style", self.style, STYLES),
                                     ("merges", self.merges, MERGES),
                                     ("column", self.column, COLUMNS + (None,))):
            if value not in allowed:
                raise UsageError(f"--{name} {value}: choose from "
                                 + ", ".join(a for a in allowed if a))
        unknown = [w for w in self.show if w not in SHOW]
        if unknown:
            raise UsageError(f"--show {unknown[0]}: choose from {', '.join(SHOW)}")
        check_captions(self.captions, graphs)
        for name in self.expand:
            if name != "all" and graphs and not any(instances(g, name) for g in graphs):
                raise UsageError(f"--expand {name}: no layer, stage or block has that name "
                                 "(`archdsl ir FILE` lists the names)")

    def size(self) -> str | None:
        """Graphviz's `size` for the column asked for (None: drawn at full size).

        >>> FigureOptions(column="single").size(), FigureOptions().size()
        ('3.28,8', None)
        """
        return page_size(self.column, self.max_height) if self.column else None


def check_captions(captions, graphs) -> None:
    """UsageError for a --caption NAME that no network of `graphs` has (the network's
    name, a stage's path or a layer's name); nothing to check without graphs."""
    for name, _ in captions:
        if graphs and not any(ir.captionable(g, name) for g in graphs):
            raise UsageError(f"--caption {name}=...: neither a network nor a stage or layer "
                             "has that name (`archdsl ir FILE` lists the names)")


@dataclass(frozen=True)
class Drawing:
    dot: str  # Graphviz source
    notes: tuple[str, ...] = ()  # `note: ...` and `warning: ...` lines for the person
    points: float | None = None  # its smallest text, printed at `column`; None: not measured


def draw(graph, options: FigureOptions = FigureOptions()) -> Drawing:
    """One network's drawing, legible at `options.column` where a layout can make it so."""
    graph = ir.recaptioned(graph, dict(options.captions))

    def source(direction: str, columns: int, landscape: bool = False) -> str:
        return render_dot(graph, depth=options.depth, expand=options.expand,
                          direction=direction, shapes=options.shapes, style=options.style,
                          partial=options.partial, column=options.size(), show=options.show,
                          title=options.title, legend=options.legend, columns=columns,
                          frames=options.frames, merges=options.merges, landscape=landscape)
    return _legible(source, options, ir.network(graph).name)


def draw_side_by_side(graphs, options: FigureOptions = FigureOptions()) -> Drawing:
    """Several networks in one figure, at one scale (He et al.'s Figure 3); at a `column`,
    laid out the other way when that prints larger."""
    if options.partial:
        raise UsageError("--partial draws one network; give one file")
    graphs = [ir.recaptioned(g, dict(options.captions)) for g in graphs]

    def source(direction: str, columns: int, landscape: bool = False) -> str:
        return render_many(graphs, depth=options.depth, expand=options.expand,
                           direction=direction if columns == 1 else options.direction,
                           shapes=options.shapes, style=options.style, column=options.size(),
                           show=options.show, title=options.title, legend=options.legend,
                           frames=options.frames, merges=options.merges)
    return _legible(source, options, ", ".join(ir.network(g).name for g in graphs))


def draw_given(dot: str, options: FigureOptions, name: str) -> Drawing:
    """DOT made elsewhere for `options.column` (`render --diff`), with the notes on its
    printed size and a warning when its text is too small; no other layout is tried."""
    return _legible(lambda direction, columns, landscape=False: dot, options, name)


def _legible(source, options: FigureOptions, name: str) -> Drawing:
    """The drawing as asked, unless `column` would print its text below 6 pt: then the
    other direction, a U on its side, or the chain snaked into 2-4 columns side by side,
    whichever prints largest, and a note saying so. A note gives the printed size; when no layout reaches
    6 pt, a warning says what would."""
    asked = source(options.direction, 1)
    if not options.column or not can_layout("svg"):
        return Drawing(asked)
    try:
        points, inches = _measure(asked, options)
        best, best_points, how = asked, points, ""
        if points < MIN_TEXT_POINTS:
            best, best_points, how, inches = _search(source, options, asked, points, inches)
    except LayoutError:
        return Drawing(asked)  # the layout proper reports it
    notes = [f"note: {name} {how} so that its text prints at {best_points:.1f} pt in a "
             f"{options.column} column (as asked: {points:.1f} pt)"] if how else []
    notes.append(f"note: {name}: {inches[0]:.2f} x {inches[1]:.2f} in, smallest text "
                 f"{best_points:.1f} pt, when included at that size (not scaled up)")
    if best_points < MIN_TEXT_POINTS:
        notes.append(_too_small(options, name, best_points, inches))
    return Drawing(best, tuple(notes), best_points)


def _too_small(options: FigureOptions, name: str, points: float, inches) -> str:
    """The warning for text below MIN_TEXT_POINTS, with what would help."""
    height = options.max_height or MAX_HEIGHT_INCHES
    helps = [] if options.depth == 1 and not options.expand else [
        "draw fewer boxes (--depth 1, no --expand)"]
    helps += ["--no-shapes"] if options.shapes else []
    if inches[1] >= height - 0.02:  # the height, not the width, set the scale
        helps.append(f"a taller --max-height (now {height:g} in)")
    if options.column == "single":
        helps.append("--column double")
    helps = helps or ["fewer networks or layers in the figure"]
    return (f"warning: at --column {options.column}, {name}'s smallest text prints at "
            f"{points:.1f} pt, below {MIN_TEXT_POINTS:g} pt: "
            + (", ".join(helps[:-1]) + ", or " if len(helps) > 1 else "") + helps[-1])


def _search(source, options: FigureOptions, asked: str, points: float, inches):
    """(source, text size, how it was made, printed size) of the most legible layout
    tried."""
    other = "TB" if options.direction == "LR" else "LR"
    upright = "TB" if options.direction == "LR" else options.direction
    tried = [(f"laid out {other}", lambda: source(other, 1)),
             ("laid out as a U on its side (encoder above decoder)",
              lambda: source(upright, 1, True))]
    tried += [(f"snaked into {k} columns", lambda k=k: source(options.direction, k))
              for k in (2, 3, 4)]
    best, best_points, how = asked, points, ""
    for words, make in tried:
        candidate = make()
        if candidate == asked:
            continue  # no place to cut the chain
        candidate_points, candidate_inches = _measure(candidate, options)
        if candidate_points > best_points:
            best, best_points, how, inches = candidate, candidate_points, words, candidate_inches
        if best_points >= MIN_TEXT_POINTS:
            break
    return best, best_points, how, inches


def _measure(source: str, options: FigureOptions) -> tuple[float, tuple[float, float]]:
    """The smallest text's printed point size, and the printed (width, height) in inches."""
    svg = layout(source, "svg", options.dot_timeout)
    return text_points(source, svg), printed_size(svg)


class Diagram:
    """A network's diagram: `dot` is its Graphviz source; laid out by `dot` on demand.
    `notes` give its printed size and say how the layout was chosen for a column, or that
    its text is too small; `points` is its smallest text's printed size (None without a
    column)."""

    def __init__(self, dot: str, notes: tuple[str, ...] = (), points: float | None = None):
        self.dot, self.notes, self.points = dot, notes, points

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
    direction (TB, LR, BT), shapes, style, column, max_height, show, title, legend, frames,
    captions (a dict: the network's name to its title, a stage or layer to its text);
    the same options give the same drawing as `archdsl render`. At a `column`, `points` is the smallest
    text's printed size, and a UserWarning is issued when it is below 6 pt."""
    chosen = FigureOptions(**_tuples(options))
    if isinstance(chosen.captions, dict):  # `captions={"layer1": "conv2_x"}`
        chosen = replace(chosen, captions=tuple(chosen.captions.items()))
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
            warnings.warn(note.removeprefix("warning: "), stacklevel=_outside_archdsl())
    return Diagram(drawing.dot, drawing.notes, drawing.points)


def _outside_archdsl() -> int:
    """The stack level, for warnings.warn, of the first caller outside archdsl: the line
    of the person's code that asked for the diagram."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "archdsl":
        frame, level = frame.f_back, level + 1
    return level


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


__all__ = ["Diagram", "Drawing", "FigureOptions", "diagram", "draw", "draw_given",
           "draw_side_by_side"]
