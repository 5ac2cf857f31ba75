"""Backend: a laid-out diagram as a standalone TikZ picture, for pdflatex.

`render_tikz` is pure: it takes the layout that Graphviz's dot computed for the diagram
(`dot -Tjson`, parsed) and writes LaTeX. It replays dot's own drawing operations (the
`_draw_` records: the boxes' outlines, the edges' Bézier curves and arrowheads, each
label at its baseline), so the picture has the same layout as the SVG, point for point,
and its text is typeset by LaTeX in Helvetica (where the `helvet` fonts are installed,
else Latin Modern's sans-serif face, Type 1 fonts both) at the sizes dot measured.

    >>> picture = render_tikz({"bb": "0,0,40,20", "objects": [{"name": "a", "_draw_": [
    ...     {"op": "c", "color": "#000000"},
    ...     {"op": "p", "points": [[0, 0], [40, 0], [40, 20], [0, 20]]}], "_ldraw_": [
    ...     {"op": "F", "size": 10.0, "face": "Helvetica"},
    ...     {"op": "T", "pt": [20, 6], "align": "c", "text": "3x3 conv, 64"}]}]})
    >>> print(picture[picture.index(r"\\begin{tikzpicture}"):picture.index("% end")].strip())
    \\begin{tikzpicture}[x=1bp, y=1bp, line join=round]
    \\useasboundingbox (0,0) rectangle (40,20);
    \\definecolor{c0}{HTML}{000000}
    \\path[draw=c0, line width=1bp] (0,0) -- (40,0) -- (40,20) -- (0,20) -- cycle;
    \\node[font=\\fontsize{10}{12}\\selectfont, inner sep=0, anchor=base] at (20,6) {3x3 conv, 64};
    \\end{tikzpicture}
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

# what each kind of object draws, in the order dot draws them
DRAWINGS = ("_draw_", "_ldraw_", "_hdraw_", "_tdraw_", "_hldraw_", "_tldraw_")
ANCHORS = {"c": "base", "l": "base west", "r": "base east"}
FAMILIES = {"Helvetica": "", "Arial": "", "Times-Roman": r"\rmfamily", "Times": r"\rmfamily",
            "Courier": r"\ttfamily"}
# LaTeX's special characters, and the non-ASCII ones labels use, as text-mode commands
ESCAPES = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&",
           "#": r"\#", "^": r"\^{}", "_": r"\_", "%": r"\%", "~": r"\~{}",
           "×": r"$\times$", "→": r"$\rightarrow$", "²": r"$^2$", "³": r"$^3$",
           "·": r"$\cdot$", "µ": r"$\mu$", "–": "--", "—": "---", "≤": r"$\leq$",
           "≥": r"$\geq$", "<": r"$<$", ">": r"$>$", "|": r"$|$"}

PREAMBLE = r"""\documentclass{{article}}
% A diagram drawn by archdsl: the tikzpicture below can also be pasted into a paper
% (it needs \usepackage{{tikz}}; scale it there with \resizebox or a [scale=...]).
% Type 1 fonts (no bitmap Type 3 that publishers' PDF checks refuse): Helvetica where
% installed, else Latin Modern; pasted into a paper, the labels take the paper's font.
\usepackage[T1]{{fontenc}}
\IfFileExists{{uhvr8t.tfm}}{{\usepackage{{helvet}}}}{{\IfFileExists{{lmodern.sty}}{{\usepackage{{lmodern}}}}{{}}}}
\renewcommand{{\familydefault}}{{\sfdefault}}
\usepackage{{tikz}}
\usepackage[paperwidth={width}bp, paperheight={height}bp, margin=0pt]{{geometry}}
\pagestyle{{empty}}
\begin{{document}}
\noindent
"""
CLOSING = "\\end{document}\n"


@dataclass(frozen=True)
class _Pen:
    """What dot's drawing state holds between operations."""
    draw: str | None
    fill: str | None = None
    width: float = 1.0
    dash: str = ""
    font: float = 14.0
    face: str = ""
    colour: str | None = None  # text colour, where not black


def render_tikz(layout: dict) -> str:
    """A LaTeX document with one tikzpicture: the diagram that `layout` (dot's JSON
    output) describes, scaled down as dot scales the SVG to fit the graph's `size`."""
    colours: dict[str, str] = {}
    scale = fit_scale(layout)
    lines = [_draw(obj, name, colours, scale) for obj in _objects(layout) for name in DRAWINGS]
    pad = float(layout.get("pad", 0)) * 72
    x0, y0, x1, y1 = (float(v) for v in layout["bb"].split(","))
    x0, y0, x1, y1 = ((x0 - pad) * scale, (y0 - pad) * scale, (x1 + pad) * scale,
                      (y1 + pad) * scale)
    definitions = [f"\\definecolor{{{name}}}{{HTML}}{{{hex_}}}" for hex_, name in colours.items()]
    body = "\n".join(filter(None, lines))
    picture = ("\\begin{tikzpicture}[x=1bp, y=1bp, line join=round]\n"
               f"\\useasboundingbox ({_n(x0)},{_n(y0)}) rectangle ({_n(x1)},{_n(y1)});\n"
               + "\n".join(definitions) + "\n" + body + "\n\\end{tikzpicture}\n% end\n")
    return PREAMBLE.format(width=_n(x1 - x0), height=_n(y1 - y0)) + picture + CLOSING


def fit_scale(layout: dict) -> float:
    """The factor dot shrinks a drawing by to fit the graph's `size` (inches), padding
    included; 1 where it fits or no size is set.

    >>> fit_scale({"bb": "0,0,144,1440", "size": "2,10"})
    0.5
    """
    size = re.fullmatch(r"\s*([\d.]+)\s*,\s*([\d.]+)\s*", str(layout.get("size", "")))
    if not size:
        return 1.0
    pad = float(layout.get("pad", 0)) * 72
    x0, y0, x1, y1 = (float(v) for v in layout["bb"].split(","))
    width, height = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    return min(1.0, float(size.group(1)) * 72 / width, float(size.group(2)) * 72 / height)


def _objects(layout: dict) -> list[dict]:
    """What is drawn, back to front: the graph's title, clusters, edges, then nodes (the
    graph's own background, a white rectangle, is left out so the picture is clear)."""
    title = {k: v for k, v in layout.items() if k == "_ldraw_"}
    objects = layout.get("objects", [])
    clusters = [o for o in objects if "nodes" in o or o.get("name", "").startswith("cluster")]
    nodes = [o for o in objects if o not in clusters]
    return [title, *clusters, *layout.get("edges", []), *nodes]


def _draw(obj: dict, key: str, colours: dict, scale: float) -> str:
    pen, out = _Pen(draw=_colour("#000000", colours)), []
    for op in obj.get(key, ()):
        pen, line = _operation(op, pen, colours, scale)
        if line:
            out.append(line)
    return "\n".join(out)


def _operation(op: dict, pen: _Pen, colours: dict, scale: float) -> tuple[_Pen, str]:
    kind = op["op"]
    if kind == "c":
        colour = _colour(op["color"], colours)
        black = colour == colours["000000"]
        return replace(pen, draw=colour, colour=None if black else colour), ""
    if kind == "C":
        return replace(pen, fill=_colour(op["color"], colours)), ""
    if kind == "S":
        return _style(op["style"], pen), ""
    if kind == "F":
        return replace(pen, font=float(op["size"]), face=op.get("face", "")), ""
    if kind == "T":
        return pen, _text(op, pen, scale)
    if kind in "PpLBbEe":
        return pen, _shape(op, pen, scale)
    return pen, ""  # image, gradient and font-flag records: nothing dot draws for us


def _style(style: str, pen: _Pen) -> _Pen:
    width = re.fullmatch(r"setlinewidth\(([\d.]+)\)", style)
    if width:
        return replace(pen, width=float(width.group(1)))
    if style in ("dashed", "dotted"):
        return replace(pen, dash=style)
    if style == "solid":
        return replace(pen, dash="")
    if style == "bold":
        return replace(pen, width=2.0)
    return pen


def _shape(op: dict, pen: _Pen, scale: float) -> str:
    kind = op["op"]
    filled = kind in "PBE" and pen.fill is not None
    options = [f"fill={pen.fill}"] if filled else []
    if pen.draw is not None:
        options += [f"draw={pen.draw}", f"line width={_n(pen.width * scale)}bp"]
        options += [pen.dash] if pen.dash else []
    if not (options and (pen.draw is not None or filled)):
        return ""
    command = f"\\path[{', '.join(options)}]"
    if kind in "Ee":
        (x, y), (rx, ry) = op["rect"][:2], op["rect"][2:]
        return (f"{command} ({_n(x * scale)},{_n(y * scale)}) ellipse "
                f"[x radius={_n(rx * scale)}, y radius={_n(ry * scale)}];")
    points = [f"({_n(x * scale)},{_n(y * scale)})" for x, y in op["points"]]
    if kind in "Bb":
        path = points[0] + "".join(f" .. controls {a} and {b} .. {c}" for a, b, c in
                                   zip(points[1::3], points[2::3], points[3::3]))
    else:
        path = " -- ".join(points)
    closed = " -- cycle" if kind in "PpB" else ""
    return f"{command} {path}{closed};"


def _text(op: dict, pen: _Pen, scale: float) -> str:
    size = pen.font * scale
    family = FAMILIES.get(pen.face, "")
    font = f"\\fontsize{{{_n(size)}}}{{{_n(size * 1.2)}}}\\selectfont{family}"
    colour = [f"text={pen.colour}"] if pen.colour else []
    options = ", ".join([f"font={font}", *colour, "inner sep=0",
                         f"anchor={ANCHORS.get(op.get('align', 'c'), 'base')}"])
    x, y = op["pt"]
    return f"\\node[{options}] at ({_n(x * scale)},{_n(y * scale)}) {{{escape(op['text'])}}};"


def _colour(value: str, colours: dict) -> str | None:
    """The name of dot's colour `#rrggbb[aa]` (None where fully transparent)."""
    hex_ = value.lstrip("#").upper()
    if not re.fullmatch(r"[0-9A-F]{6}([0-9A-F]{2})?", hex_):
        hex_ = NAMED.get(value.lower(), "000000")
    if len(hex_) == 8:
        if hex_[6:] == "00":
            return None
        hex_ = hex_[:6]
    return colours.setdefault(hex_, f"c{len(colours)}")


NAMED = {"black": "000000", "white": "FFFFFF", "transparent": "00000000", "none": "00000000"}


def escape(text: str) -> str:
    r"""Label text as LaTeX typesets it.

    >>> escape("3×3 conv, 64 ×2 #1_a")
    '3$\\times$3 conv, 64 $\\times$2 \\#1\\_a'
    """
    return "".join(ESCAPES.get(c, c) for c in text.strip())


def _n(value: float) -> str:
    """A coordinate to 0.01 bp, without trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
