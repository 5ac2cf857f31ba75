"""Where dot puts things, read from its layout (`dot -Tjson`): a residual block's main
chain in one straight line with its projection beside it, no label on another label or on
a box, and a U-Net laid on its side (encoder above decoder) where that makes its text
larger on a page's width. Skips where Graphviz's dot is missing."""
from __future__ import annotations

import json
import shutil

import pytest

from archdsl import compile_file, figures
from archdsl.backends.layout import layout
from archdsl.backends.render_dot import render_dot

from conftest import ROOT, check_golden

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot not installed")
GOLDEN = ROOT / "tests" / "golden"
# ResNet-50's first stage, every block opened, and the first block of the second, whose
# skip is a projection
RESNET_OPENED = ["layer1", "layer1.0", "layer1.1", "layer1.2", "layer2.0"]


def graph_of(stem: str):
    return compile_file(ROOT / "specs" / f"{stem}.arch").graph


def laid_out(dot: str) -> dict:
    return json.loads(layout(dot, "json"))


def centres(laid: dict) -> dict[str, float]:
    """Each box's x, in points."""
    return {o["name"]: float(o["pos"].split(",")[0]) for o in laid["objects"] if "pos" in o}


@needs_dot
@pytest.mark.parametrize("merges", ["marked", "plain"])
def test_a_residual_blocks_main_chain_is_straight_and_its_projection_beside_it(merges):
    x = centres(laid_out(render_dot(graph_of("resnet50"), expand=RESNET_OPENED,
                                    merges=merges)))
    chain = [name for name in x if name.startswith(("layer1.", "layer2.0."))
             and ".downsample" not in name]
    assert len(chain) >= 12 and max(x[n] for n in chain) - min(x[n] for n in chain) <= 1
    assert min(x["layer1.0.downsample"], x["layer2.0.downsample"]) > x[chain[0]] + 40


def text_boxes(drawn: list[dict]):
    """The box of each line of text in dot's drawing operations: (x0, y0, x1, y1, text),
    from the baseline, its alignment and width, and the font size (ascent 0.8 em,
    descent 0.2 em)."""
    size = 14.0
    for op in drawn:
        if op["op"] == "F":
            size = op["size"]
        elif op["op"] == "T" and op["text"].strip():
            (x, y), width = op["pt"], op["width"]
            left = {"c": x - width / 2, "l": x, "r": x - width}[op["align"]]
            yield left, y - 0.2 * size, left + width, y + 0.8 * size, op["text"]


def labels_and_boxes(laid: dict) -> tuple[list, list]:
    """The labels (of arrows, skips and frames) and the boxes of a laid-out diagram."""
    labels, boxes = [], []
    for obj in laid.get("objects", []):
        if "nodes" in obj:  # a frame: its title
            labels += [("frame", *box) for box in text_boxes(obj.get("_ldraw_", []))]
        elif "pos" in obj:
            x, y = (float(v) for v in obj["pos"].split(","))
            w, h = float(obj["width"]) * 36, float(obj["height"]) * 36
            boxes.append((x - w, y - h, x + w, y + h, obj["name"]))
    for arrow in laid.get("edges", []):
        for key in ("_ldraw_", "_hldraw_", "_tldraw_"):
            labels += [("arrow", *box) for box in text_boxes(arrow.get(key, []))]
    return labels, boxes


def overlap(a, b, slack: float = 0.5) -> bool:
    return (a[0] < b[2] - slack and b[0] < a[2] - slack
            and a[1] < b[3] - slack and b[1] < a[3] - slack)


DIAGRAMS = {
    "resnet50": ("resnet50", {"expand": RESNET_OPENED}),
    "resnet50 plain": ("resnet50", {"expand": RESNET_OPENED, "merges": "plain"}),
    "googlenet": ("googlenet", {}),
    "vit_b_16": ("vit_b_16", {"expand": ["encoder.layers.encoder_layer_0"]}),
    "unet": ("unet", {}),
    "unet on its side": ("unet", {"landscape": True}),
}


@needs_dot
@pytest.mark.parametrize("name", DIAGRAMS)
def test_no_label_overlaps_another_label_or_a_box(name):
    """Arrow labels, skip labels ("identity") and frame titles each have room of their
    own: an identity skip says `identity` as its label (not an `xlabel` that dot places
    after the layout, which landed on the arrow's shape in ViT's encoder layer)."""
    spec, options = DIAGRAMS[name]
    labels, boxes = labels_and_boxes(laid_out(render_dot(graph_of(spec), **options)))
    assert len(labels) > 10 and len(boxes) > 10
    if "resnet" in name or "vit" in name:
        assert any(text == "identity" for *_, text in labels)
    clashes = [(a[-1], b[-1]) for i, a in enumerate(labels) for b in labels[i + 1:] + boxes
               if overlap(a[1:5], b[:4] if len(b) == 5 else b[1:5])]
    assert not clashes


def test_the_u_on_its_side_runs_the_encoder_above_the_decoder():
    """Two rows, each level a column: the encoder's level heads share a rank left to
    right, then the bottleneck; the decoder's first boxes a rank below, each beside its
    skip's end; arrows from level to level within a row run against the ranks, labelled
    beside; a value that two arrows carry, or two arrows into one box, is labelled once."""
    dot = render_dot(graph_of("unet"), landscape=True)
    assert 'rank=same\n\t\t"enc1.0"\n\t\t"enc2.0"\n\t\t"enc3.0"\n\t\t"enc4.0"' in dot
    assert 'rank=same\n\t\t"dec1.up"\n\t\t"dec2.up"\n\t\t"dec3.up"\n\t\t"dec4.up"' in dot
    assert 'rank=same\n\t\t"dec3.cropped"\n\t\t"dec3.up"' in dot
    assert '"dec3.up" -> "dec4.1" [dir=back xlabel="512×52×52"]' in dot
    assert '"enc1.0" -> "dec1.cropped" [label=" 64×568×568"]' in dot  # not on the pool's
    assert '"enc1.0" -> 0 [label=" "]' in dot and '"enc2.0" -> 0 [label=" 64×284×284" ' \
        'dir=back]' in dot
    assert '"dec1.up" -> "dec1.0" [label=" "]' in dot  # the crop's arrow says 64×392×392
    assert '"enc4.0" -> "bottom.0" [style=invis]' in dot and "constraint=false" not in dot
    assert "subgraph cluster_level0 {" in dot and '"dec1.up" [label="2x2 up-conv, 64" ' \
        'fillcolor="#F5C16C"]' in dot  # beside the skip's line, not on it
    check_golden(GOLDEN / "render_unet_on_its_side.dot", dot)


def frame(laid: dict, name: str) -> tuple[float, ...]:
    """A frame's (x0, y0, x1, y1), in points, y upwards."""
    return next(tuple(map(float, o["bb"].split(","))) for o in laid["objects"]
                if o["name"] == "cluster_" + name)


def strokes(arrow: dict) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """An arrow's line as short straight strokes, from its Bézier curves."""
    points = next(op["points"] for op in arrow["_draw_"] if op["op"] == "b")
    path = [points[0]]
    for i in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = points[i:i + 4]
        for t in (k / 8 for k in range(1, 9)):
            path.append(tuple((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b
                              + 3 * (1 - t) * t ** 2 * c + t ** 3 * d
                              for a, b, c, d in zip(p0, p1, p2, p3)))
    return list(zip(path, path[1:]))


def cross(a, b) -> bool:
    """Whether two strokes cross (properly: not where one ends on the other)."""
    def side(p, q, r):
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    return (side(*a, b[0]) * side(*a, b[1]) < 0) and (side(*b, a[0]) * side(*b, a[1]) < 0)


@needs_dot
@pytest.mark.parametrize("frames", [True, False])
def test_the_u_on_its_side_has_each_decoder_level_under_its_encoder_level(frames):
    """Each decoder stage's frame lies below its encoder stage's, overlapping it across, the
    levels left to right and the bottleneck at the right end; no skip crosses another
    arrow, and the decoder's path (coming in from the right) meets each level beside its
    skip, right of the skip's end."""
    laid = laid_out(render_dot(graph_of("unet"), landscape=True, frames=frames))
    names = [o["name"] for o in laid["objects"]]
    x = centres(laid)
    for level in range(1, 5):
        (ex0, ey0, ex1, _), (dx0, _, dx1, dy1) = frame(laid, f"enc{level}"), frame(laid, f"dec{level}")
        assert dy1 < ey0 and dx0 < ex1 and ex0 < dx1
        assert x[f"dec{level}.cropped"] < x[f"dec{level}.up"]
    heads = [x[f"enc{level}.0"] for level in range(1, 5)] + [x["bottom.0"]]
    assert heads == sorted(heads)
    arrows = {(names[a["tail"]], names[a["head"]]): strokes(a) for a in laid["edges"]
              if "_draw_" in a and a.get("style") != "invis"}
    skips = [(f"enc{level}.0", f"dec{level}.cropped") for level in range(1, 5)]
    assert all(skip in arrows for skip in skips) and len(arrows) > 25
    clashes = [(skip, other) for skip in skips for other in arrows if other != skip
               and not set(skip) & set(other) and any(cross(a, b) for a in arrows[skip]
                                                       for b in arrows[other])]
    assert not clashes


@needs_dot
def test_unet_at_double_column_is_laid_on_its_side_and_prints_at_6pt():
    graph = graph_of("unet")
    double = figures.draw(graph, figures.FigureOptions(column="double"))
    assert double.points >= 6.0 and "group=level0" in double.dot
    assert "laid out as a U on its side" in double.notes[0]
    single = figures.draw(graph, figures.FigureOptions(column="single"))
    assert "dir=back" in single.dot and "group=level0" not in single.dot  # portrait
