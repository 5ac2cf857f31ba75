"""Diagrams from Python and in notebooks: `archdsl.diagram(spec)` shows the network inline
in Jupyter (it has `_repr_svg_`) and saves SVG, PDF, PNG or DOT.

    >>> import archdsl
    >>> figure = archdsl.diagram("network t { input x: 3 x 8 x 8; conv(4, 3); relu }")
    >>> "3x3 conv, 4" in figure.dot
    True
"""
from __future__ import annotations

from pathlib import Path

from .backends.render_dot import FORMATS, format_of, layout, render_dot
from .compile import CompileError, compile_file, compile_source
from .files import write_atomic



class Diagram:
    """A network's diagram: `dot` is its Graphviz source; laid out by `dot` on demand."""

    def __init__(self, dot: str):
        self.dot = dot

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
    """The diagram of a spec (a path, .arch text, or a compiled graph). `options` are
    `render_dot`'s: depth, expand, direction, shapes, style, column, show, title."""
    graph = spec
    if isinstance(spec, (str, Path)):
        is_path = isinstance(spec, Path) or (spec.endswith(".arch") and "\n" not in spec)
        result = (compile_file(spec, network=network, settings=settings or {}) if is_path
                  else compile_source(spec, network=network, settings=settings or {}))
        if not result.ok:
            raise CompileError(result.diagnostics)
        graph = result.graph
    return Diagram(render_dot(graph, **options))
