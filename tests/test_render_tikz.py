"""`archdsl render --format tikz`: an editable TikZ picture with the SVG's layout. Styles
are defined once, each box is a named node at its centre, each arrow runs between two
node names, and a node moved in the source still compiles with its arrows attached."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from xml.etree import ElementTree

import pytest

from archdsl import compile_file, compile_source
from archdsl.backends.layout import can_layout, layout
from archdsl.backends.render_dot import render_dot
from archdsl.backends.render_tikz import escape, fit_scale, render_tikz, tex_name
from archdsl.cli import main

from conftest import ROOT, UPDATE, check_golden

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")
needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None,
                                    reason="pdflatex not installed")
SVG = "{http://www.w3.org/2000/svg}"
NODE = re.compile(r"^\\node\[([^\]]*)\] \(([\w'-]+)\) at \(([-\d.]+),([-\d.]+)\) \{(.*)\};$",
                  re.MULTILINE)
DRAW = re.compile(r"^\\draw\[([^\]]*)\] (.*);$", re.MULTILINE)
SMALL = """network small {
    input image: 3 x 32 x 32
    conv1: conv(16, 3, pad = 1); bn1: batchnorm; relu
    same: residual { conv(16, 3, pad = 1); batchnorm; relu; conv(16, 3, pad = 1); batchnorm }
    down: residual { conv(32, 3, pad = 1, stride = 2); batchnorm } skip { conv(32, 1, stride = 2); batchnorm }
    pool: global_avgpool; flatten; fc: linear(10)
}"""


def graph_of(spec: str):
    return compile_file(ROOT / "specs" / f"{spec}.arch").graph


def boxes(tex: str) -> dict[str, tuple[str, float, float, str]]:
    """{node name: (options, x, y, text)} of every named box (frames left out)."""
    return {name: (options, float(x), float(y), text)
            for options, name, x, y, text in NODE.findall(tex)
            if not name.startswith("frame-")}


def size_of(options: str) -> tuple[float, float]:
    one = re.search(r"minimum size=([\d.]+)bp", options)
    if one:
        return float(one.group(1)), float(one.group(1))
    return tuple(float(re.search(rf"minimum {side}=([\d.]+)bp", options).group(1))
                 for side in ("width", "height"))


def svg_boxes(svg: bytes) -> dict[str, tuple[float, float, float, float]]:
    """{node name: (x, y, width, height)} of each node's outline in an SVG from dot, in
    dot's coordinates (y up: the SVG's are dot's with y negated, under one transform)."""
    found = {}
    for group in ElementTree.fromstring(svg).iter(f"{SVG}g"):
        if group.get("class") != "node":
            continue
        name = group.find(f"{SVG}title").text
        numbers = []
        for shape in group:
            if shape.tag == f"{SVG}ellipse":
                cx, cy, rx, ry = (float(shape.get(k)) for k in ("cx", "cy", "rx", "ry"))
                numbers += [(cx - rx, cy - ry), (cx + rx, cy + ry)]
            elif shape.tag in (f"{SVG}path", f"{SVG}polygon"):
                text = shape.get("d") or shape.get("points")
                values = [float(v) for v in re.findall(r"-?[\d.]+", text)]
                numbers += list(zip(values[::2], values[1::2]))
        if numbers:
            xs, ys = [p[0] for p in numbers], [-p[1] for p in numbers]
            found[name] = ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2,
                           max(xs) - min(xs), max(ys) - min(ys))
    return found


@needs_dot
@pytest.mark.parametrize("spec,options", [("googlenet", {}), ("resnet50", {"expand": ("all",)}),
                                          ("vgg16", {"column": "single"}),
                                          ("unet", {"legend": True})])
def test_every_box_is_a_named_node_where_the_svg_has_it(spec, options):
    source = render_dot(graph_of(spec), **options)
    tex = layout(source, "tikz").decode()
    scale = fit_scale(json.loads(layout(source, "json")))  # dot's own SVG scale, unrounded
    assert (scale < 1) == ("column" in options)
    drawn, svg = boxes(tex), svg_boxes(layout(source, "svg"))
    assert len(drawn) == len(svg) > 10
    for name, (x, y, width, height) in svg.items():
        options_, tx, ty, _ = drawn[tex_name(name)]
        tw, th = size_of(options_)
        assert abs(tx - x * scale) < 1 and abs(ty - y * scale) < 1, (name, tx, ty, x, y)
        assert abs(tw - width * scale) < 2 and abs(th - height * scale) < 2, (name, tw, th)


@needs_dot
def test_styles_are_defined_once_and_every_arrow_joins_two_named_nodes():
    tex = layout(render_dot(graph_of("resnet18"), expand=("all",), legend=True), "tikz").decode()
    block = tex[tex.index("\\tikzset{"):tex.index("\n}\n")]
    defined = re.findall(r"^  (\w+)/\.style=", block, re.MULTILINE)
    picture = tex[tex.index("\\begin{tikzpicture}"):]
    assert len(defined) == len(set(defined)) and picture.count("\\tikzset{") == 1
    assert {"archconv", "archpool", "archlinear", "archmerge", "archio", "archedge",
            "archidentity", "archprojection", "archshape", "archframe"} <= set(defined)
    assert tex.count("\\definecolor{archconv}") == 1 and "\\definecolor{c0}" not in tex
    named = set(boxes(tex))
    for options, path in DRAW.findall(tex):
        assert options.split(",")[0] in defined
        ends = re.findall(r"^\((?:\[shift=\{\([-\d.,]+\)\}\])?([\w'-]+)[.)]", path), \
            re.findall(r"\((?:\[shift=\{\([-\d.,]+\)\}\])?([\w'-]+)(?:\.[a-z ]+)?\)$", path)
        assert ends[0] and ends[1] and {ends[0][0], ends[1][0]} <= named, path
        assert "Stealth" not in path and "\\path[" not in path  # no drawn arrowheads
    assert "\\draw[archidentity]" in tex and "\\draw[archprojection]" in tex
    used = set(re.findall(r"(?:draw|fill|text)=(arch\w+)", tex))
    assert used <= {c for c in re.findall(r"\\definecolor\{(\w+)\}", tex)}


@needs_dot
def test_labels_are_escaped_and_put_on_their_arrows(tmp_path, in_root):
    assert main(["render", "specs/resnet18.arch", "-o", str(tmp_path / "r.tex")]) == 0
    tex = (tmp_path / "r.tex").read_text()
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")
    assert "\\usetikzlibrary{arrows.meta}" in tex
    assert boxes(tex)["conv1"][3] == "7x7 conv, 64, /2"
    assert re.search(r"\\draw\[archedge\] \(image\) -- node\[archshape, midway, shift=\{\([-\d.]+,"
                     r"[-\d.]+\)\}\] \{3\$\\times\$224\$\\times\$224\} \(conv1\);", tex)
    assert "×" not in tex  # every non-ASCII character a command
    assert escape(" 64×56×56") == "64$\\times$56$\\times$56"


def test_a_small_networks_picture_matches_its_golden_file():
    """From a stored layout (so that the picture does not depend on Graphviz's version);
    ARCHDSL_UPDATE_GOLDEN=1 lays the spec out again where dot is installed."""
    stored = ROOT / "tests" / "data" / "tikz_small_layout.json"
    if UPDATE and can_layout("svg") and shutil.which("dot"):
        source = render_dot(compile_source(SMALL).graph, legend=True)
        stored.write_text(json.dumps(json.loads(layout(source, "json"))) + "\n")
    check_golden(ROOT / "tests" / "golden" / "render_small.tex",
                 render_tikz(json.loads(stored.read_text())))


def moved(tex: str, name: str, dx: float, dy: float) -> str:
    """The picture with node `name` moved by (dx, dy), as an author edits its `at`."""
    options, x, y, _ = boxes(tex)[name]
    old = f"({name}) at ({x:g},{y:g})"
    assert old in tex
    return tex.replace(old, f"({name}) at ({x + dx:g},{y + dy:g})")


@needs_pdflatex
def test_a_moved_node_still_compiles_with_its_arrows(tmp_path):
    tex = render_tikz(json.loads((ROOT / "tests" / "data" / "tikz_small_layout.json").read_text()))
    assert "(conv1)" in tex and re.search(r"\\draw\[[^\]]*\] \(conv1\)", tex)
    edited = moved(moved(tex, "conv1", 40, -5), "down-add", -30, 0)
    (tmp_path / "moved.tex").write_text(edited)
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "moved.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "moved.pdf").read_bytes().startswith(b"%PDF")
