"""Backend: a laid-out diagram as a standalone TikZ picture, for pdflatex, written to be
edited.

`render_tikz` is pure: it takes the layout that Graphviz's dot computed for the diagram
(`dot -Tjson`, parsed) and writes LaTeX, with the SVG's layout: every box has the size
and centre dot gave it, every arrow dot's route, every label dot's place. But it is
written as a person writes TikZ, so that a figure is restyled or rearranged in the
LaTeX source:

* one `\\tikzset` block at the top names a style per role, from the colours the diagram
  gives them (`archconv`, `archnorm`, `archpool`, `archlinear`, `archattention`,
  `archmerge`, `archio`, `archblock`, ...; arrows `archedge`, `archidentity`,
  `archprojection` (dashed), `archauxiliary`, `archbroadcast`; `archshape` for the
  shapes on arrows, `archframe` and `archtitle` for the outlines of blocks), once;
* each box is a named node at its centre (`(layer1-0-conv1)`: the layer's name, its dots
  made hyphens), with what is its own (a red outline, a larger size) as options;
* each arrow is drawn between two node names, its bends relative to them and its label a
  node on it, so that moving a box (editing its `at`) moves its arrows and their labels;
  arrowheads are `Stealth` tips of TikZ's `arrows.meta` library;
* the outline of an open block is a named node where dot put it (`(frame-layer1)`), its
  title anchored to its corner.

Its text is typeset by LaTeX in Helvetica (where the `helvet` fonts are installed, else
Latin Modern's sans-serif face, Type 1 fonts both) at the sizes dot measured.

    >>> box = {"shape": "box", "style": "rounded,filled", "fontsize": "10", "width": "1",
    ...        "height": "0.30556"}
    >>> label = lambda text, y: [{"op": "T", "pt": [36, y], "align": "c", "width": 50,
    ...                           "text": text}]
    >>> picture = render_tikz({"bb": "0,0,72,80", "objects": [
    ...     {**box, "name": "conv1", "pos": "36,69", "fillcolor": "#F5C16C",
    ...      "_ldraw_": label("3x3 conv, 64", 66.5)},
    ...     {**box, "name": "bn1", "pos": "36,11", "fillcolor": "#A6D8F5",
    ...      "_ldraw_": label("batchnorm", 8.5)}], "edges": [{"tail": 0, "head": 1,
    ...     "color": "#404040", "arrowsize": "0.6", "pos": "e,36,22 36,58 36,48 36,38 36,28"}]})
    >>> print(picture[picture.index("\\\\useasboundingbox"):picture.index("\\\\end{tikz")])
    \\useasboundingbox (0,0) rectangle (72,80);
    \\node[archconv, minimum width=72bp, minimum height=22bp] (conv1) at (36,69) {3x3 conv, 64};
    \\node[archnorm, minimum width=72bp, minimum height=22bp] (bn1) at (36,11) {batchnorm};
    \\draw[archedge] (conv1) -- (bn1);
    <BLANKLINE>
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from .render_dot import FAMILY_STYLE, SKIP_COLOUR

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
% (it needs \usepackage{{tikz}} and \usetikzlibrary{{arrows.meta}}; scale it there with
% \resizebox or a [scale=...]). Restyle it in its \tikzset block, or after it with
% \tikzset{{archconv/.append style={{fill=orange!30}}}}; move a box by editing its
% `at (x,y)` (in bp): its arrows and their labels follow.
% Type 1 fonts (no bitmap Type 3 that publishers' PDF checks refuse): Helvetica where
% installed, else Latin Modern; pasted into a paper, the labels take the paper's font.
\usepackage[T1]{{fontenc}}
\IfFileExists{{uhvr8t.tfm}}{{\usepackage{{helvet}}}}{{\IfFileExists{{lmodern.sty}}{{\usepackage{{lmodern}}}}{{}}}}
\renewcommand{{\familydefault}}{{\sfdefault}}
\usepackage{{tikz}}
\usetikzlibrary{{arrows.meta}}
\usepackage[paperwidth={width}bp, paperheight={height}bp, margin=0pt]{{geometry}}
\pagestyle{{empty}}
\begin{{document}}
\noindent
"""
CLOSING = "\\end{document}\n"

BLACK, WHITE = "000000", "FFFFFF"
BOX_HEIGHT = 22.0  # bp: dot's one-line box (render_dot's height 0.3 in, as dot rounds it)
CORNER = 12.0  # bp: dot rounds a box's corners by min(12, width / 3, height / 3)
SPACE = 0.278  # a space in Helvetica, in em: the leading space of an arrow's label
NEAR = 1.5  # bp: an end of an arrow that TikZ finds this close to dot's is left to TikZ
DASH_LENGTHS = {"dashed": (5.0, 2.0), "dotted": (1.0, 5.0)}  # as dot's SVG: on, off


@dataclass(frozen=True)
class _Look:
    """What a style (or one object) sets: outline, fill, text colour, line width, dashes,
    shape, font size; for arrows the arrowhead's size."""
    draw: str | None = BLACK
    fill: str | None = None
    text: str = BLACK
    width: float = 1.0
    dash: str = ""
    shape: str = "box"
    font: float = 10.0
    arrow: float = 0.6


# the roles of boxes, from the colours and shapes render_dot gives each family of layers
NODE_ROLES = {f"arch{family}": _Look(
    fill=attributes["fillcolor"].lstrip("#").upper(),
    text=attributes.get("fontcolor", "#000000").lstrip("#").upper(),
    width=float(attributes.get("penwidth", 1.0)),
    dash="dashed" if "dashed" in attributes.get("style", "") else "",
    shape=attributes.get("shape", "box")) for family, attributes in FAMILY_STYLE.items()}
SKIP = SKIP_COLOUR.lstrip("#").upper()
EDGE_ROLES = {"archedge": _Look(draw="404040"),
              "archidentity": _Look(draw=SKIP, text=SKIP, width=1.2),
              "archprojection": _Look(draw=SKIP, text=SKIP, width=1.2, dash="dashed"),
              "archauxiliary": _Look(draw="888888", dash="dashed"),
              "archbroadcast": _Look(draw="888888", dash="dotted", arrow=0.4)}
FRAME = _Look(draw="999999", font=9.0)
EDGE_FONT = 9.0


@dataclass(frozen=True)
class _Box:
    """A node of the picture: its TeX name, centre, size and shape, in bp."""
    name: str
    x: float
    y: float
    width: float
    height: float
    shape: str

    def border(self, toward: tuple[float, float]) -> tuple[float, float]:
        """Where TikZ starts a line from this node (by its bare name) toward a point."""
        dx, dy = toward[0] - self.x, toward[1] - self.y
        if math.hypot(dx, dy) < 1e-9:
            return self.x, self.y
        if self.shape in ("circle", "point", "ellipse"):
            t = 1 / math.hypot(2 * dx / self.width, 2 * dy / self.height)
        else:
            t = min(self.width / 2 / abs(dx) if dx else math.inf,
                    self.height / 2 / abs(dy) if dy else math.inf)
        return self.x + t * dx, self.y + t * dy

    def anchors(self) -> dict[str, tuple[float, float]]:
        """The compass anchors TikZ gives the node."""
        w, h = self.width / 2, self.height / 2
        diagonal = 1 / math.sqrt(2) if self.shape in ("circle", "point", "ellipse") else 1
        found = {"north": (0, h), "south": (0, -h), "east": (w, 0), "west": (-w, 0)}
        for vertical, sy in (("north", 1), ("south", -1)):
            for horizontal, sx in (("east", 1), ("west", -1)):
                found[f"{vertical} {horizontal}"] = (sx * w * diagonal, sy * h * diagonal)
        return {name: (self.x + dx, self.y + dy) for name, (dx, dy) in found.items()}


def render_tikz(layout: dict) -> str:
    """A LaTeX document with one tikzpicture: the diagram that `layout` (dot's JSON
    output) describes, scaled down as dot scales the SVG to fit the graph's `size`."""
    scale = fit_scale(layout)
    used: dict[str, None] = {}  # the styles and colours the picture uses, in order
    objects = layout.get("objects", [])
    clusters = [o for o in objects if o.get("name", "").startswith("cluster") and "bb" in o]
    boxes = _boxes(objects, scale)
    lines = [line for cluster in clusters for line in _frame(cluster, scale, used)]
    lines += _title(layout, scale, used)
    lines += [_node(obj, boxes[index], scale, used) for index, obj in enumerate(objects)
              if index in boxes]
    lines += filter(None, (_edge(edge, boxes, scale, used) for edge in layout.get("edges", [])))
    pad = float(layout.get("pad", 0)) * 72
    x0, y0, x1, y1 = (float(v) for v in layout["bb"].split(","))
    x0, y0, x1, y1 = ((x0 - pad) * scale, (y0 - pad) * scale, (x1 + pad) * scale,
                      (y1 + pad) * scale)
    picture = ("\\begin{tikzpicture}[x=1bp, y=1bp, line join=round]\n"
               + _styles(used, scale)
               + f"\\useasboundingbox ({_n(x0)},{_n(y0)}) rectangle ({_n(x1)},{_n(y1)});\n"
               + "".join(line + "\n" for line in lines) + "\\end{tikzpicture}\n% end\n")
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


# ---- the style block --------------------------------------------------------------------


def _styles(used: dict, scale: float) -> str:
    """The `\\tikzset` block of the styles the picture uses (with those they build on),
    and the colours they and the picture use."""
    base, uses = _style_table(scale)
    needed: list[str] = []

    def need(name: str) -> None:
        for word in uses[name]:
            if word in base and word not in needed:
                need(word)
        needed.append(name)

    for name in used:
        if name in base and name not in needed:
            need(name)
    colours = dict.fromkeys(word for name in [*needed, *used]
                            for word in (uses.get(name, ()) if name in base else (name,))
                            if word.startswith("colour:"))
    lines = ["\\tikzset{"] + [f"  {name}/.style={{{base[name]}}}," for name in needed] + ["}"]
    lines += [f"\\definecolor{{{_colour_name(name[7:])}}}{{HTML}}{{{name[7:]}}}"
              for name in colours]
    return "\n".join(lines) + "\n"


def _style_table(scale: float) -> tuple[dict[str, str], dict[str, dict]]:
    """Every style's options, and the styles and colours each names."""
    size = lambda value: _n(value * scale) + "bp"  # noqa: E731
    dash = lambda on, off: f"dash pattern=on {size(on)} off {size(off)}"  # noqa: E731
    uses: dict[str, dict] = {"archframe": {f"colour:{FRAME.draw}": None}}
    base = {"archbox": (f"draw, line width={size(1)}, rounded corners={size(BOX_HEIGHT / 3)}, "
                        f"inner xsep={size(2)}, inner ysep=0, outer sep=0, align=center, "
                        f"{_font(10, scale)}"),
            "archplain": f"inner sep=0, outer sep=0, align=center, {_font(10, scale)}",
            "archpoint": "circle, draw, inner sep=0, outer sep=0",
            "archdashed": dash(*DASH_LENGTHS["dashed"]),
            "archdotted": dash(*DASH_LENGTHS["dotted"]),
            "archframe": (f"draw={_colour_name(FRAME.draw)}, line width={size(1)}, "
                          f"rounded corners={size(CORNER)}, inner sep=0, outer sep=0"),
            "archtitle": f"inner sep=0, outer sep=0, anchor=base west, {_font(FRAME.font, scale)}",
            "archshape": f"inner sep=0, outer sep=0, anchor=base west, {_font(EDGE_FONT, scale)}"}
    for role, look in NODE_ROLES.items():
        uses[role] = {"archbox": None}
        base[role] = ", ".join(["archbox", *_look_options(look, _Look(), scale, uses[role])])
    for role, look in EDGE_ROLES.items():
        parent = EDGE_ROLES["archedge"] if role != "archedge" else None
        uses[role] = {"archedge": None} if parent else {}
        options = _edge_options(look, parent, scale, uses[role])
        base[role] = ", ".join((["archedge"] if parent else []) + options)
    return base, {name: uses.get(name, {}) for name in base}


def _font(points: float, scale: float) -> str:
    """A font size as dot measured it, lines 1.1 apart as dot sets them."""
    return (f"font=\\fontsize{{{_n(points * scale)}}}{{{_n(points * 1.1 * scale)}}}"
            "\\selectfont")


def _colour_name(hex_: str) -> str:
    """A colour's name in the picture: a role's own colour is named after the role
    (`archconv`), any other `arch` and its hex code (`archD55E00`)."""
    named = {BLACK: "black", WHITE: "white"}
    if hex_ in named:
        return named[hex_]
    for role, look in NODE_ROLES.items():
        if look.fill == hex_:
            return role
    roles = {"404040": "archedge", SKIP: "archskip", "888888": "archauxiliary",
             FRAME.draw: "archframe"}
    return roles.get(hex_, f"arch{hex_}")


def _use_colour(hex_: str, used: dict) -> str:
    if hex_ not in (BLACK, WHITE):
        used[f"colour:{hex_}"] = None
    return _colour_name(hex_)


def _look_options(look: _Look, role: _Look, scale: float, used: dict) -> list[str]:
    """The options that make `role`'s look into `look` (all of it, against the plain
    `_Look()`, for a role's own style)."""
    options = []
    if look.shape != role.shape:
        options.append({"circle": "circle", "ellipse": "ellipse"}.get(look.shape, "rectangle"))
    if look.fill != role.fill:
        options.append(f"fill={_use_colour(look.fill, used)}" if look.fill else "fill=none")
    if look.draw != role.draw:
        options.append(f"draw={_use_colour(look.draw, used)}" if look.draw else "draw=none")
    if look.text != role.text:
        options.append(f"text={_use_colour(look.text, used)}")
    if abs(look.width - role.width) > 0.05:
        options.append(f"line width={_n(look.width * scale)}bp")
    if look.dash != role.dash:
        options.append(_dash(look.dash, used))
    if abs(look.font - role.font) > 0.05:
        options.append(_font(look.font, scale))
    return options


def _edge_options(look: _Look, role: _Look | None, scale: float, used: dict) -> list[str]:
    """An arrow's options against its role's (everything, for a role's own style)."""
    options = []
    if role is None or look.draw != role.draw:
        options.append(f"draw={_use_colour(look.draw, used)}")
    if look.text != (role.text if role else BLACK):
        options.append(f"text={_use_colour(look.text, used)}")
    if role is None or abs(look.width - role.width) > 0.05:
        options.append(f"line width={_n(look.width * scale)}bp")
    if look.dash != (role.dash if role else ""):
        options.append(_dash(look.dash, used))
    if role is None or abs(look.arrow - role.arrow) > 0.01:
        options.append(_tip(look.arrow, scale))
    return options


def _dash(dash: str, used: dict) -> str:
    if not dash:
        return "solid"
    used[f"arch{dash}"] = None
    return f"arch{dash}"


def _tip(size: float, scale: float) -> str:
    """dot's `normal` arrowhead of `arrowsize` `size` (10 by 7 bp at 1) as a Stealth tip."""
    return (f"-{{Stealth[length={_n(10 * size * scale)}bp, width={_n(7 * size * scale)}bp, "
            "inset=0bp]}")


# ---- boxes and frames -------------------------------------------------------------------


def _boxes(objects: list[dict], scale: float) -> dict[int, _Box]:
    """{index in dot's objects: box} for every node, each with a TeX-safe name of its
    own made from its name in the diagram."""
    boxes, taken = {}, set()
    for index, obj in enumerate(objects):
        if "pos" not in obj or obj.get("name", "").startswith("cluster"):
            continue
        name = tex_name(obj["name"])
        while name in taken:
            name += "'"
        taken.add(name)
        x, y = (float(v) * scale for v in obj["pos"].split(","))
        width, height = _size(obj)
        boxes[index] = _Box(name, x, y, width * scale, height * scale, obj.get("shape", "box"))
    return boxes


def tex_name(name: str) -> str:
    """A node's name as TikZ reads it in `(name.anchor)`: letters, digits and hyphens,
    starting with a letter.

    >>> tex_name("layer1.0.conv1"), tex_name("net0/fc"), tex_name("0")
    ('layer1-0-conv1', 'net0-fc', 'n0')
    """
    safe = re.sub(r"[^A-Za-z0-9]", "-", name) or "n"
    return safe if safe[0].isalpha() else "n" + safe


def _size(obj: dict) -> tuple[float, float]:
    """A node's drawn size in bp: its ellipse's where dot draws one, else its box's."""
    for op in obj.get("_draw_", ()):
        if op["op"] in "Ee":
            return 2 * op["rect"][2], 2 * op["rect"][3]
    return float(obj.get("width", 0.75)) * 72, float(obj.get("height", 0.5)) * 72


def _node(obj: dict, box: _Box, scale: float, used: dict) -> str:
    """`\\node[role, what is its own, size] (name) at (x,y) {label};`"""
    role = _node_role(obj)
    used[role] = None
    options = [role, *_own_options(obj, role, box, scale, used)]
    if box.shape in ("circle", "point") and abs(box.width - box.height) < 0.01:
        options.append(f"minimum size={_n(box.width)}bp")
    else:
        options += [f"minimum width={_n(box.width)}bp", f"minimum height={_n(box.height)}bp"]
    text = "\\\\".join(escape(op["text"]) for op in _texts(obj.get("_ldraw_", ())))
    return f"\\node[{', '.join(options)}] ({box.name}) at ({_n(box.x)},{_n(box.y)}) {{{text}}};"


def _own_options(obj: dict, role: str, box: _Box, scale: float, used: dict) -> list[str]:
    """What a node has that its role's style does not give it: an outline that marks an
    error, a dashed one, another font size, rounder corners for a taller box."""
    look = _node_look(obj)
    if role == "archpoint":
        colour = _use_colour(look.draw or BLACK, used)
        return [f"fill={colour}", f"draw={colour}"]
    if role == "archplain":
        return _look_options(replace(look, draw=BLACK, fill=None, width=1.0, dash="",
                                     shape="box"), _Look(), scale, used)
    options = _look_options(look, NODE_ROLES.get(role, _Look()), scale, used)
    radius = min(CORNER, box.width / scale / 3, box.height / scale / 3)
    if look.shape == "box" and "rounded" not in obj.get("style", "rounded"):
        options.append("sharp corners")
    elif look.shape == "box" and abs(radius - BOX_HEIGHT / 3) * scale > 0.5:
        options.append(f"rounded corners={_n(radius * scale)}bp")
    return options


def _node_role(obj: dict) -> str:
    """The style of a node: its family's, told by the fill render_dot gave it (a white
    box with a dashed outline is a regularisation layer, a white one an activation)."""
    shape = obj.get("shape", "box")
    if shape in ("plaintext", "plain", "none"):
        return "archplain"
    if shape == "point":
        return "archpoint"
    fill = obj.get("fillcolor", "").lstrip("#").upper()
    roles = [role for role, look in NODE_ROLES.items() if look.fill == fill]
    if len(roles) > 1:  # act and reg share white
        dashed = "dashed" in obj.get("style", "")
        roles = [r for r in roles if (NODE_ROLES[r].dash == "dashed") == dashed] or roles
    return roles[0] if roles and "filled" in obj.get("style", "") else "archbox"


def _node_look(obj: dict) -> _Look:
    style = obj.get("style", "")
    shape = obj.get("shape", "box")
    return _Look(draw=_hex(obj.get("color", "#000000")),
                 fill=_hex(obj["fillcolor"]) if "filled" in style and "fillcolor" in obj else None,
                 text=_hex(obj.get("fontcolor", "#000000")) or BLACK,
                 width=float(obj.get("penwidth", 1.0)),
                 dash="dashed" if "dashed" in style else "dotted" if "dotted" in style else "",
                 shape="circle" if shape == "circle" else "ellipse" if shape in (
                     "ellipse", "oval") else "box",
                 font=float(obj.get("fontsize", 14.0)))


def _texts(ops) -> list[dict]:
    """The text operations of a `_ldraw_` list, each with the font size and colour in
    force: {"text", "pt", "align", "width", "size", "colour"}."""
    size, colour, found = 14.0, BLACK, []
    for op in ops:
        if op["op"] == "F":
            size = float(op["size"])
        elif op["op"] == "c":
            colour = _hex(op["color"]) or BLACK
        elif op["op"] == "T":
            found.append({**op, "size": size, "colour": colour})
    return found


def _frame(cluster: dict, scale: float, used: dict) -> list[str]:
    """A block's outline, a named node where dot put it, and its title anchored to it."""
    x0, y0, x1, y1 = (float(v) * scale for v in cluster["bb"].split(","))
    name = "frame-" + tex_name(cluster["name"][len("cluster"):].lstrip("_"))
    drawn = any(op["op"] in "bBpP" for op in cluster.get("_draw_", ()))
    style = cluster.get("style", "")
    look = _Look(draw=_hex(cluster.get("color", "#999999")) if drawn else None,
                 width=float(cluster.get("penwidth", 1.0)),
                 dash="dashed" if "dashed" in style else "", font=FRAME.font)
    used["archframe"] = None
    used[f"colour:{FRAME.draw}"] = None
    options = ["archframe", *_look_options(look, FRAME, scale, used)]
    if "rounded" not in style:
        options.append("sharp corners")
    lines = [f"\\node[{', '.join(options)}, minimum width={_n(x1 - x0)}bp, minimum height="
             f"{_n(y1 - y0)}bp] ({name}) at ({_n((x0 + x1) / 2)},{_n((y0 + y1) / 2)}) {{}};"]
    for text in _texts(cluster.get("_ldraw_", ())):
        x, y = _west(text, scale)
        used["archtitle"] = None
        extra = _text_options(text, FRAME.font, BLACK, scale, used)
        lines.append(f"\\node[{', '.join(['archtitle', *extra])}] at ([shift={{({_n(x - x0)},"
                     f"{_n(y - y1)})}}]{name}.north west) {{{escape(text['text'])}}};")
    return lines


def _title(layout: dict, scale: float, used: dict) -> list[str]:
    """The diagram's title (the network's name), where dot put it."""
    lines = []
    for text in _texts(layout.get("_ldraw_", ())):
        used["archtitle"] = None
        x, y = _west(text, scale)
        extra = _text_options(text, FRAME.font, BLACK, scale, used)
        lines.append(f"\\node[{', '.join(['archtitle', *extra])}] at ({_n(x)},{_n(y)}) "
                     f"{{{escape(text['text'])}}};")
    return lines


def _west(text: dict, scale: float) -> tuple[float, float]:
    """The left end of a text's baseline, past the leading spaces `escape` drops."""
    x, y = text["pt"]
    width = float(text.get("width", 0))
    left = {"l": x, "r": x - width}.get(text.get("align", "c"), x - width / 2)
    spaces = len(text["text"]) - len(text["text"].lstrip(" "))
    return (left + spaces * SPACE * text["size"]) * scale, y * scale


def _text_options(text: dict, font: float, colour: str, scale: float, used: dict) -> list[str]:
    options = [f"text={_use_colour(text['colour'], used)}"] if text["colour"] != colour else []
    if abs(text["size"] - font) > 0.05:
        options.append(_font(text["size"], scale))
    return options


# ---- arrows -----------------------------------------------------------------------------


def _edge(edge: dict, boxes: dict[int, _Box], scale: float, used: dict) -> str | None:
    """`\\draw[role] (tail) -- node[archshape, ...] {shape} (head);`, or a curve whose
    bends are placed relative to the two nodes."""
    spline = _spline(edge.get("pos", ""), scale)
    if spline is None or "invis" in edge.get("style", "") or not (
            edge.get("tail") in boxes and edge.get("head") in boxes):
        return None
    points, head_tip, tail_tip = spline
    tail, head = boxes[edge["tail"]], boxes[edge["head"]]
    if tail_tip and not head_tip:  # laid out head first (dir=back): drawn tail to head
        points, tail, head, head_tip, tail_tip = points[::-1], head, tail, True, False
    role = _edge_role(edge)
    used[role] = None
    texts = [t for key in ("_ldraw_", "_hldraw_", "_tldraw_") for t in _texts(edge.get(key, ()))]
    look = _edge_look(edge)
    if not texts:  # a text colour of its own matters only to labels
        look = replace(look, text=EDGE_ROLES[role].text)
    options = [role, *_edge_options(look, EDGE_ROLES[role], scale, used)]
    if not head_tip:
        options.append("-" if not tail_tip else "{Stealth}-")
    elif tail_tip:
        options.append(_tip(look.arrow, scale).replace("-", "{Stealth}-", 1))
    labels = [_label(text, look.text, scale, used) for text in texts]
    anchors = [_west(text, scale) for text in texts]
    return f"\\draw[{', '.join(options)}] {_path(points, tail, head, labels, anchors)};"


def _spline(pos: str, scale: float):
    """dot's route of an arrow, `pos`, as the points of a chain of Bézier curves from the
    tail's end to the arrowhead's tip, and whether it has a head and a tail arrowhead."""
    head = tail = None
    points = []
    for token in pos.split(";")[0].split():
        parts = token.split(",")
        if parts[0] in ("e", "s") and len(parts) == 3:
            point = (float(parts[1]) * scale, float(parts[2]) * scale)
            head, tail = (point, tail) if parts[0] == "e" else (head, point)
        elif len(parts) == 2:
            points.append((float(parts[0]) * scale, float(parts[1]) * scale))
    if len(points) < 4 or (len(points) - 1) % 3:
        return None
    points[0] = tail or points[0]
    points[-1] = head or points[-1]
    return points, head is not None, tail is not None


def _edge_role(edge: dict) -> str:
    """The style of an arrow, from the colour and dashes render_dot gave it."""
    look = _edge_look(edge)
    for role, expected in EDGE_ROLES.items():
        if (expected.draw, expected.dash) == (look.draw, look.dash):
            return role
    return "archedge"


def _edge_look(edge: dict) -> _Look:
    style = edge.get("style", "")
    return _Look(draw=_hex(edge.get("color", "#000000")) or BLACK,
                 text=_hex(edge.get("fontcolor", "#000000")) or BLACK,
                 width=float(edge.get("penwidth", 1.0)),
                 dash="dashed" if "dashed" in style else "dotted" if "dotted" in style else "",
                 arrow=float(edge.get("arrowsize", 1.0)), font=EDGE_FONT)


def _label(text: dict, colour: str, scale: float, used: dict) -> str:
    """An arrow's label as a node on it, its baseline's left end at `{dx},{dy}` from the
    middle of its piece of the arrow (DX, DY: filled in by `_placed`)."""
    options = ["archshape", "midway", "shift={(DX,DY)}",
               *_text_options(text, EDGE_FONT, colour, scale, used)]
    used["archshape"] = None
    return f" node[{', '.join(options)}] {{{escape(text['text'])}}}"


def _path(points: list, tail: _Box, head: _Box, labels: list[str], anchors: list) -> str:
    """The route: a line between the two nodes where dot's is straight, else dot's curves,
    each point relative to the nearer end's node; each label on the piece it is nearest."""
    if _straight(points):
        middles = [_between(points[0], points[-1])]
        bare = (_near(tail.border((head.x, head.y)), points[0])
                and _near(head.border((tail.x, tail.y)), points[-1]))
        start = f"({tail.name})" if bare else _end(tail, points[0], points[-1])
        end = f"({head.name})" if bare else _end(head, points[-1], points[0])
        return f"{start} --{_placed(labels, anchors, middles, 0)} {end}"
    middles = [_bezier(points[i:i + 4], 0.5) for i in range(0, len(points) - 1, 3)]
    half = len(points) / 2
    relative = lambda i: _relative(points[i], tail if i < half else head)  # noqa: E731
    path = _end(tail, points[0], points[1])
    for piece, i in enumerate(range(0, len(points) - 1, 3)):
        last = i + 3 == len(points) - 1
        end = _end(head, points[-1], points[-2]) if last else relative(i + 3)
        path += (f" .. controls {relative(i + 1)} and {relative(i + 2)} .."
                 f"{_placed(labels, anchors, middles, piece)} {end}")
    return path


def _placed(labels: list[str], anchors: list, middles: list, piece: int) -> str:
    """The labels nearest to piece `piece` of the route, shifted from its middle."""
    placed = ""
    for label, anchor in zip(labels, anchors):
        nearest = min(range(len(middles)), key=lambda k: math.dist(middles[k], anchor))
        if nearest == piece:
            x, y = middles[piece]
            placed += label.replace("(DX,DY)", f"({_n(anchor[0] - x)},{_n(anchor[1] - y)})", 1)
    return placed


def _end(box: _Box, point: tuple, toward: tuple) -> str:
    """One end of an arrow: the bare node name where TikZ finds dot's end by itself (on
    the node's border toward the next point), a compass anchor where dot's end is one,
    else dot's end relative to the node's centre."""
    if _near(box.border(toward), point):
        return f"({box.name})"
    for anchor, at in box.anchors().items():
        if _near(at, point):
            return f"({box.name}.{anchor})"
    return _relative(point, box)


def _relative(point: tuple, box: _Box) -> str:
    return f"([shift={{({_n(point[0] - box.x)},{_n(point[1] - box.y)})}}]{box.name}.center)"


def _straight(points: list) -> bool:
    """Whether every point of a route lies on the line from its first to its last."""
    (x0, y0), (x1, y1) = points[0], points[-1]
    length = math.hypot(x1 - x0, y1 - y0)
    if length < 1e-9:
        return False
    return all(abs((x1 - x0) * (y0 - y) - (x0 - x) * (y1 - y0)) / length < 0.5
               for x, y in points[1:-1])


def _bezier(points: list, t: float) -> tuple[float, float]:
    (a, b, c, d), s = points, 1 - t
    return tuple(s ** 3 * p + 3 * s * s * t * q + 3 * s * t * t * r + t ** 3 * u
                 for p, q, r, u in zip(a, b, c, d))


def _between(a: tuple, b: tuple) -> tuple[float, float]:
    return (a[0] + b[0]) / 2, (a[1] + b[1]) / 2


def _near(a: tuple, b: tuple) -> bool:
    return math.dist(a, b) <= NEAR


def _hex(value: str) -> str | None:
    """dot's colour `#rrggbb[aa]` or name as six hex digits (None where transparent)."""
    hex_ = value.lstrip("#").upper()
    if not re.fullmatch(r"[0-9A-F]{6}([0-9A-F]{2})?", hex_):
        hex_ = NAMED.get(value.lower(), BLACK)
    if len(hex_) == 8:
        return None if hex_[6:] == "00" else hex_[:6]
    return hex_


NAMED = {"black": BLACK, "white": WHITE, "transparent": "00000000", "none": "00000000"}


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
