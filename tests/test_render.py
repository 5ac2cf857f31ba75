"""Diagrams: golden DOT, collapsed and expanded views, SVG/PDF for every spec, --partial,
and a clear message when Graphviz's dot is missing."""
from __future__ import annotations

import os
import re
import shutil
import sys
import xml.etree.ElementTree as ElementTree
import warnings

import pytest

import archdsl
from archdsl import ir
from archdsl import compile_file, compile_source
from archdsl.cli import main
from archdsl.backends.layout import can_layout, layout
from archdsl.backends.render_dot import render_dot, render_many

from conftest import ROOT, SPECS, check_golden

GOLDEN = ROOT / "tests" / "golden"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot not installed")
needs_svg = pytest.mark.skipif(not can_layout("svg"), reason="neither dot nor graphviz-pure")
SMALL = """
block pair(c) { residual { conv(c, 3, pad = 1); batchnorm; relu } }
network small(classes = 10) {
    input image: 3 x 32 x 32
    stem: conv(16, 3, pad = 1)
    stage: repeat 2 { pair(16) }
    mix: concat { a: conv(8, 1); b: { maxpool(3, stride = 1, pad = 1); conv(8, 1) } }
    head: aux(weight = 0.3) { global_avgpool; flatten; linear(classes) }
    global_avgpool; flatten; fc: linear(classes)
}"""


# GoogLeNet's Figure 2(b): one inception module, branches in the paper's order
INCEPTION = """import std.inception
network module {
    input previous: 192 x 28 x 28
    inception3a: inception(64, 96, 128, 16, 32, 32)
}"""


def graph_of(spec: str):
    return compile_file(ROOT / "specs" / f"{spec}.arch").graph


def boxes(dot: str) -> list[str]:
    """The node statements of a DOT text (not edges, not attribute defaults)."""
    return re.findall(r'^\s+("[^"]+"|\w+) \[label=', dot, re.M)


@pytest.mark.parametrize("name,text", [
    ("resnet50", lambda: render_dot(graph_of("resnet50"))),
    ("googlenet", lambda: render_dot(graph_of("googlenet"))),
    ("small_expanded", lambda: render_dot(compile_source(SMALL).graph, expand=["all"])),
    ("vgg16_compact", lambda: render_dot(graph_of("vgg16"))),
    ("resnet50_one_level", lambda: render_dot(graph_of("resnet50"), depth=2)),
    ("inception_module", lambda: render_dot(compile_source(INCEPTION).graph, title=False)),
    ("resnet_figure3", lambda: render_many([graph_of(s) for s in ("vgg19", "plain34",
                                                                  "resnet34")],
                                           expand=["all"], show=("stacks",), shapes=False)),
])
def test_golden_dot(name, text):
    check_golden(GOLDEN / f"render_{name}.dot", text())


def test_resnet152_collapsed_shows_repeat_counts_in_few_nodes():
    dot = render_dot(graph_of("resnet152"))
    assert len(boxes(dot)) <= 40
    for stage, count in (("layer1", 3), ("layer2", 8), ("layer3", 36), ("layer4", 3)):
        words = f"conv{int(stage[-1]) + 1}_x"  # the paper's, `layer1 as "conv2_x"`
        assert f'{stage} [label="{words}\nbottleneck ×{count}"' in dot


def test_resnet152_fully_expanded_draws_every_primitive_op():
    graph = graph_of("resnet152")
    dot = render_dot(graph, expand=["all"], show=("all",))
    assert len(boxes(dot)) == len(graph)


def test_compact_boxes_fold_norms_activations_and_stacks():
    """Papers draw "3x3 conv, 64" for conv + BN + ReLU, and VGG's table "conv3-64 x2"."""
    vgg = render_dot(graph_of("vgg16"))
    assert len(boxes(vgg)) <= 20
    assert vgg.count('"3x3 conv, 512 ×3"') == 2 and "batch norm" not in vgg
    assert "ReLU" not in vgg and "dropout" not in vgg
    shown = render_dot(graph_of("vgg16"), show=("act", "reg", "stacks", "impl"))
    assert len(boxes(shown)) == len(graph_of("vgg16"))  # every layer its own box again
    resnet = graph_of("resnet50")
    compact = render_dot(resnet, expand=["all"])
    assert len(boxes(compact)) <= 0.55 * len(resnet)  # conv, BN, ReLU: one box
    assert '"layer1.0.conv1" [label="1x1 conv, 64"' in compact  # bn1 and relu folded in
    assert '"layer1.0.bn1"' not in compact


def test_expand_takes_block_names_and_the_order_of_branches_is_the_papers():
    graph = graph_of("resnet50")
    opened = render_dot(graph, expand=["bottleneck"])
    assert '"layer3.5.conv2" [label="3x3 conv, 256"' in opened
    assert all(f'"layer{s}" [label=' not in opened for s in (1, 2, 3, 4))
    assert "Filter concatenation" in render_dot(graph_of("googlenet"))


@needs_svg
@pytest.mark.parametrize("shapes", [True, False])
def test_inception_branches_read_left_to_right_in_source_order(shapes):
    """As the paper's Figure 2(b): 1x1, 3x3, 5x5, pool, with or without edge labels."""
    svg = layout(render_dot(graph_of("googlenet"), shapes=shapes), "svg").decode()
    left = {}
    for node in re.findall(r'<g id="node\d+" class="node">(.*?)</g>', svg, re.S):
        title = re.search(r"<title>(.*?)</title>", node).group(1)
        if title.startswith("inception3a.branch"):
            left[title] = float(re.search(r'<text[^>]*x="([-\d.]+)"', node).group(1))
    assert sorted(left, key=left.get) == [f"inception3a.branch{i}" for i in (1, 2, 3, 4)]


def test_title_legend_and_tight_box_are_options():
    graph = graph_of("resnet18")
    assert 'label="18-layer"' in render_dot(graph)  # its caption, `as "18-layer"`
    assert 'label="18-layer"' not in render_dot(graph, title=False)
    legend = render_dot(graph, legend=True)
    assert 'legend_conv [label=convolution' in legend and "legend_norm" not in legend
    assert "legend_norm" in render_dot(graph, legend=True, show=("norm",))
    assert "pad=0.03" in legend


def test_depth_and_expand_open_level_by_level():
    graph = graph_of("resnet50")
    assert len(boxes(render_dot(graph, depth=1, show=("all",)))) == 12
    assert len(boxes(render_dot(graph, depth=2, show=("all",)))) == 12 - 4 + 16  # stages open
    assert len(boxes(render_dot(graph, depth=1))) == 9  # bn1 and relu in conv1's box, no flatten
    opened = render_dot(graph, expand=["layer2", "layer2.0"])
    assert '"layer2.0.conv2" [label="3x3 conv, 128, /2"' in opened
    assert '"layer2.1" [label=bottleneck ' in opened


def test_skips_and_aux_heads_are_drawn_distinctly():
    dot = render_dot(compile_source(SMALL).graph, expand=["all"])
    assert 'label=identity' in dot and 'headport=e' in dot  # identity skip arc
    assert 'cluster_head' in dot and "(train only)" in dot
    projection = render_dot(graph_of("resnet18"), expand=["layer2", "layer2.0"])
    assert '"layer2.0.downsample" -> "layer2.0.add"' in projection
    # as He et al.'s Figure 3: identity shortcuts solid, projections dashed
    identity = re.search(r'-> "layer1\.0\.add" \[label=identity[^\]]*\]',
                         render_dot(graph_of("resnet18"), expand=["layer1", "layer1.0"]))
    assert identity and "style=solid" in identity.group(0)
    projected = re.search(r'"layer2\.0\.downsample" -> "layer2\.0\.add" \[[^\]]*\]',
                          projection).group(0)
    assert "style=dashed" in projected


def test_a_cost_plot_pdf_embeds_no_type3_font():
    """Publishers' PDF checks refuse Type 3 fonts: the plot's text is TrueType."""
    pytest.importorskip("matplotlib")
    from archdsl.backends.plot_costs import plot_costs
    from archdsl.backends.report_stats import report_stats
    pdf = plot_costs([report_stats(graph_of("alexnet"))], "pdf")
    assert b"/Type3" not in pdf and b"/CIDFontType2" in pdf  # TrueType outlines


def test_partial_highlights_the_failing_node():
    broken = compile_file(ROOT / "tests" / "invalid" / "residual_missing_projection.arch")
    dot = render_dot(broken.graph, partial=True)
    failing = re.search(r'"layer1\.0\.add" \[label=[^\]]*\]', dot).group(0)
    assert "#D55E00" in failing and "penwidth=2.5" in failing
    assert '"layer1.0.bn3" -> "layer1.0.add"' in dot
    assert "layer1.1" not in dot  # nothing after the failure


@needs_svg
@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_renders_in_every_format(path):
    graph = compile_file(path).graph
    source = render_dot(graph)
    svg = layout(source, "svg")
    text = ElementTree.tostring(ElementTree.fromstring(svg), encoding="unicode")
    stages = {n.split(".")[0] for n in graph if "." in n}
    assert all(stage in text for stage in stages)
    tikz = layout(source, "tikz").decode()
    named = re.findall(r"^\\node\[[^\]]*\] \((?!frame-)[\w'-]+\) at", tikz, re.MULTILINE)
    assert len(named) == len(re.findall(r'class="node"', text)) > 0  # every box a named node
    assert layout(source, "png", dpi=30).startswith(b"\x89PNG")
    if can_layout("pdf"):
        assert layout(source, "pdf").startswith(b"%PDF")


def test_without_graphviz_the_packaged_dot_draws_svg_and_png(tmp_path, capsys, monkeypatch,
                                                             in_root):
    packaged = shutil.which("graphviz-pure", path=os.pathsep.join(
        [os.environ.get("PATH", ""), os.path.dirname(sys.executable)]))
    if packaged is None or os.environ.get("ARCHDSL_PACKAGED_DOT") == "0":
        pytest.skip("graphviz-pure not installed")
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, **kw: None if name == "dot"
                        else real(name, **kw))
    assert main(["render", "specs/resnet18.arch", "-o", str(tmp_path / "r.svg")]) == 0
    assert b"7x7 conv, 64, /2" in (tmp_path / "r.svg").read_bytes()
    assert main(["render", "specs/resnet18.arch", "-o", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["render", "specs/resnet18.arch", "-o", str(tmp_path / "r.pdf")]) == 3
    assert "PDF needs Graphviz's dot" in capsys.readouterr().err
    monkeypatch.setenv("ARCHDSL_PACKAGED_DOT", "0")
    assert main(["render", "specs/resnet18.arch", "-o", str(tmp_path / "s.svg")]) == 3


def test_missing_dot_writes_dot_and_explains(tmp_path, capsys, monkeypatch, in_root):
    monkeypatch.setattr(shutil, "which", lambda name, **kw: None)
    code = main(["render", "specs/resnet18.arch", "-o", str(tmp_path / "r.svg")])
    err = capsys.readouterr().err
    assert code == 3
    assert "apt-get install graphviz" in err and "brew install graphviz" in err
    assert (tmp_path / "r.dot").read_text().startswith("digraph resnet18")
    assert not (tmp_path / "r.svg").exists()


def test_render_cli_dot_format_needs_no_layout(tmp_path, capsys, in_root):
    assert main(["render", "specs/googlenet.arch", "-o", str(tmp_path / "g.dot")]) == 0
    assert "inception3a" in (tmp_path / "g.dot").read_text()


def test_column_width_for_papers():
    assert 'size="3.28,8"' in render_dot(graph_of("resnet18"), column="single")
    assert 'size="6.875,5"' in render_dot(graph_of("resnet18"), column="6.875,5")
    assert " size=" not in render_dot(graph_of("resnet18"))


@needs_dot
def test_dot_past_its_time_is_a_clear_error(tmp_path, capsys, in_root):
    nested = "x".join(["residual { conv(4, 3, pad = 1); "] * 60) .replace("x", "") + "}" * 60
    spec = tmp_path / "nested.arch"
    spec.write_text("network deep { input x: 4 x 8 x 8\n" + nested + "\n}\n")
    code = main(["render", str(spec), "-o", str(tmp_path / "d.svg"), "--dot-timeout", "0.01"])
    err = capsys.readouterr().err
    assert code == 3 and "did not finish within 0.01 s" in err and "--dot-timeout" in err
    assert (tmp_path / "d.dot").read_text().startswith("digraph deep")
    assert main(["render", str(spec), "--dot-timeout", "0", "-o", str(tmp_path / "e.svg")]) == 2


def test_transformer_encoder_folds_like_a_resnet_stage():
    """ViT's 12 encoder layers are one box, as ResNet's stages are; opened, a layer shows
    attention in the paper's words."""
    graph = graph_of("vit_b_16")
    dot = render_dot(graph)
    assert '"encoder.layers" [label="layers\nencoder_block ×12"' in dot
    assert '"Multi-Head Attention"' not in dot
    opened = render_dot(graph, expand=["encoder.layers", "encoder.layers.encoder_layer_0"])
    assert ('"encoder.layers.encoder_layer_0.self_attention" [label="Multi-Head Attention"'
            in opened)
    assert 'class_token [label="class_token: 1×768"' in dot


def test_swin_stages_fold_and_name_patch_merging():
    dot = render_dot(graph_of("swin_t"))
    assert dot.count("swin_block ×2") == 3 and dot.count("swin_block ×6") == 1
    assert dot.count('[label="Patch Merging"') == 3


def test_diagram_shows_inline_in_notebooks_and_saves(tmp_path):
    import archdsl
    figure = archdsl.diagram(ROOT / "specs" / "vgg16.arch", title=False)
    assert "3x3 conv, 64 ×2" in figure.dot and "label=vgg16" not in figure.dot
    assert figure.save(tmp_path / "v.dot").read_text() == figure.dot
    with pytest.raises(ValueError):
        figure.save(tmp_path / "v.jpeg")
    with pytest.raises(archdsl.CompileError):
        archdsl.diagram("network t { input x: 3 x 8 x 8; attention(2) }")
    if shutil.which("dot"):
        assert figure._repr_svg_().lstrip().startswith("<?xml")
        assert figure.save(tmp_path / "v.png", dpi=50).read_bytes()[:4] == b"\x89PNG"
        assert "\\begin{tikzpicture}" in figure.save(tmp_path / "v.tex").read_text()


@pytest.mark.parametrize("argv,message", [
    (["--show", "bn"], "--show bn: choose from norm, act, reg, stacks, impl, all"),
    (["--dpi", "5"], "--dpi must be between 10 and 2400"),
    (["--expand", "bottlenek"], "--expand bottlenek: no layer, stage or block has that name"),
])
def test_render_options_that_cannot_work_say_why(argv, message, tmp_path, capsys, in_root):
    code = main(["render", "specs/resnet50.arch", "-o", str(tmp_path / "r.svg"), *argv])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r.svg").exists()


def test_several_networks_side_by_side_are_aligned_by_feature_map_size(tmp_path, capsys,
                                                                       in_root):
    from archdsl.backends.render_dot import render_many
    graphs = [graph_of(s) for s in ("vgg19", "plain34", "resnet34")]
    dot = render_many(graphs, expand=["all"])
    assert dot.count("subgraph cluster_net") == 3
    assert all(f'label="{ir.network(g).title}"' in dot or f"label={ir.network(g).title}" in dot
               for g in graphs)
    levels = re.findall(r"\{\s*rank=same\s*([^}]*)\}", dot)
    first = [set(re.findall(r'"(net\d)/', level)) for level in levels]
    assert sum(nets == {"net0", "net1", "net2"} for nets in first) >= 5  # 224, 112, ..., 7
    assert all(len(nets) >= 2 for nets in first)
    assert '"net2/layer1.0.conv1"' in dot and '"net0/features.0"' in dot
    out = tmp_path / "f.dot"
    assert main(["render", "specs/vgg19.arch", "specs/resnet34.arch", "-o", str(out)]) == 0
    assert out.read_text().count("subgraph cluster_net") == 2
    assert main(["render", "specs/vgg19.arch", "specs/resnet34.arch", "--partial"]) == 2


def test_detailed_style_names_what_the_spec_named_only():
    dot = render_dot(graph_of("resnet18"), style="detailed", show=("impl",))
    assert "0 [label=flatten " in dot  # an index the spec did not write stays out
    assert 'conv1 [label="conv1\n7x7 conv, 64, /2' in dot


@needs_svg
@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_single_column_text_is_legible_or_the_renderer_says_so(path, tmp_path, capsys):
    """At --column single every text prints at 6 pt or more, or a warning says it does
    not and what would help."""
    from archdsl.backends.layout import printed_size, text_points
    out = tmp_path / "d.svg"
    first = ["--network", next(iter(compile_file(path).graphs))]  # one per file
    assert main(["render", str(path), "--column", "single", "-o", str(out), *first]) == 0
    assert printed_size(out.read_bytes())[0] <= 3.28 + 1 / 72
    assert printed_size(out.read_bytes())[1] <= 8.0 + 1 / 72  # the text block less a caption
    err = capsys.readouterr().err
    assert re.search(r"note: \w+: [\d.]+ x [\d.]+ in, smallest text [\d.]+ pt", err)
    if "warning:" in err:
        assert "below 6 pt" in err and "--column double" in err
        return
    source = (tmp_path / "d.dot")
    assert main(["render", str(path), "--column", "single", "--format", "dot", "-o",
                 str(source), *first] + (["--direction", "LR"] if "laid out LR" in err
                                         else [])) == 0
    assert text_points(source.read_text(), out.read_bytes()) >= 6.0


@needs_svg
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
@pytest.mark.parametrize("argv", [["specs/googlenet.arch"],
                                  ["specs/resnet50.arch", "--expand", "bottleneck"],
                                  ["specs/vgg19.arch", "specs/plain34.arch", "specs/resnet34.arch",
                                   "--expand", "all", "--show", "stacks", "--no-shapes"]],
                         ids=["googlenet", "resnet50", "figure3"])
def test_tikz_compiles_with_pdflatex(argv, tmp_path, in_root):
    import subprocess
    assert main(["render", *argv, "-o", str(tmp_path / "d.tex")]) == 0
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "d.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "d.pdf").read_bytes().startswith(b"%PDF")
    assert "Overfull" not in done.stdout and "Missing character" not in done.stdout


def test_file_colon_network_picks_one_network_of_a_file(tmp_path, capsys, in_root):
    spec = "specs/cifar_resnet.arch"
    out = tmp_path / "pair.dot"
    assert main(["render", f"{spec}:cifar_plain", f"{spec}:cifar_resnet", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.index('label="plain-20"') < text.index('label="ResNet-20"')
    assert main(["render", spec, "--side-by-side", "-o", str(tmp_path / "all.dot")]) == 0
    assert "cluster_net1" in (tmp_path / "all.dot").read_text()
    assert main(["render", f"{spec}:cifar_plain", "-o", str(tmp_path / "one.dot")]) == 0
    assert (tmp_path / "one.dot").read_text().startswith("digraph cifar_plain")
    capsys.readouterr()
    assert main(["render", f"{spec}:nope", "specs/vgg16.arch", "-o", str(out)]) == 2
    assert "no network `nope`" in capsys.readouterr().err
    assert main(["render", spec, "specs/vgg16.arch", "-o", str(out)]) == 2
    assert f"name one as {spec}:NETWORK" in capsys.readouterr().err


def _positions(source: str) -> dict[str, tuple[float, float]]:
    import json
    laid = json.loads(layout(source, "json"))
    return {o["name"]: tuple(map(float, o["pos"].split(","))) for o in laid["objects"]
            if "pos" in o}


@needs_dot  # the packaged port of dot does not honour `group`
def test_the_main_path_is_one_straight_column():
    graph = graph_of("googlenet")
    source = render_dot(graph)
    spine = re.findall(r'^\s+("[^"]+"|\w+) \[[^\]]*group=spine', source, re.M)
    assert {"conv1", "inception3a.concat", "inception5b.concat", "fc"} <= {
        s.strip('"') for s in spine}
    assert not any("branch" in s for s in spine)  # branches sit beside it
    positions = _positions(source)
    stem = ["image", "conv1", "maxpool1", "conv2", "conv3", "maxpool2"]
    assert len({positions[name][0] for name in stem}) == 1
    assert abs(positions["inception3a.concat"][0] - positions["image"][0]) < 20


def test_nested_clusters_are_titled_in_the_specs_words():
    source = render_dot(graph_of("googlenet"), expand=("all",))
    assert "label=branch2" in source and 'label="inception3a.branch2"' not in source
    source = render_dot(graph_of("resnet50"), expand=("layer1",))
    assert source.count("label=bottleneck ") == 3 and 'label="layer1.0"' not in source


@needs_svg
def test_an_encoder_decoder_with_cross_skips_is_drawn_as_a_u():
    source = render_dot(graph_of("unet"))
    positions = _positions(source)
    y = {name: xy[1] for name, xy in positions.items()}
    x = {name: xy[0] for name, xy in positions.items()}
    assert y["head"] > y["bottom.0"] and y["image"] > y["bottom.0"]  # both arms rise
    for level in (1, 2, 3, 4):  # each skip runs level, encoder left, decoder right
        assert y[f"enc{level}.0"] == y[f"dec{level}.cropped"]
        assert x[f"enc{level}.0"] < x[f"dec{level}.cropped"]
    assert y["dec1.0"] > y["dec2.0"] > y["dec3.0"] > y["dec4.0"]


@needs_svg
def test_the_diffusion_u_net_is_a_u_of_levels_with_its_time_embedding_beside_it():
    """diffusers' U-Net: each level of the down and up paths one box, named by its blocks;
    the middle one box (its resnets and attention run interleaved); the decoder climbs;
    the time embedding goes into every block as thin dotted arrows."""
    graph = graph_of("ddpm_unet")
    source = render_dot(graph)
    assert "dir=back" in source
    for level in range(4):
        assert f'"down_blocks.{level}" [' in source and f'"up_blocks.{level}" [' in source
    assert 'label="ResBlock ×2, Self-Attention ×2"' in source  # the blocks' captions
    assert 'label="mid_block\nResBlock ×2, Self-Attention"' in source
    assert "time_proj\nTimestep embedding" in source  # a computation: one box
    assert source.count("style=dotted") == 4 + 1 + 4  # into each box that holds resnets
    y = {name: xy[1] for name, xy in _positions(source).items()}
    assert y["up_blocks.3"] > y["up_blocks.0"] and y["conv_in"] > y["down_blocks.2"]


@pytest.mark.parametrize("spec", [p.stem for p in SPECS if p.stem not in ("unet", "ddpm_unet")])
def test_only_the_u_nets_are_drawn_as_a_u(spec):
    assert "dir=back" not in render_dot(graph_of(spec))


@needs_svg
def test_a_long_chain_snakes_into_columns_when_that_prints_larger(tmp_path, capsys, in_root):
    from archdsl.backends.layout import text_points
    graph = graph_of("vgg19")
    straight = render_dot(graph, show=("stacks",), column="single")
    snaked = render_dot(graph, show=("stacks",), column="single", columns=2)
    assert "constraint=false" in snaked and "constraint=false" not in straight
    column = _positions(snaked)
    first, second = (n.strip('"') for n in re.search(r"rank=same\s+(\S+)\s+(\S+)",
                                                           snaked).groups())
    assert first == "image" and column[first][1] == column[second][1]  # tops level
    assert column[second][0] > column[first][0]  # the next column to the right
    assert text_points(snaked, layout(snaked, "svg")) > text_points(straight, layout(straight, "svg"))
    assert main(["render", "specs/vgg19.arch", "--show", "stacks", "--column", "single",
                 "-o", str(tmp_path / "v.svg")]) == 0
    assert "snaked into" in capsys.readouterr().err


@pytest.mark.parametrize("spec", sorted(p.name for p in (ROOT / "specs").glob("*.arch")))
def test_the_python_api_and_the_command_line_draw_the_same(spec, capsysbinary):
    """archdsl.diagram and archdsl render share the figure policy (archdsl.figures): the
    same options give the same DOT, the legibility search at --column included."""
    from archdsl.cli import main
    path = ROOT / "specs" / spec
    graphs = archdsl.compile_file(path).graphs
    for network in graphs:
        assert main(["render", str(path), "--network", network, "--column", "single",
                     "--format", "dot", "-o", "-"]) == 0
        drawn = capsysbinary.readouterr().out.decode()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figure = archdsl.diagram(path, network=network, column="single")
        assert figure.dot == drawn, f"{spec}:{network}"


def test_block_captions_name_the_boxes_in_the_papers_words():
    from archdsl import compile_source
    graph = compile_source('''
block mha(heads) as "Multi-Head Attention" { attention(heads) }
network n { input x: 16 x 64 as tokens
    encoder: repeat 6 { mha(4) }
    last: mha(4) }''').graph
    source = render_dot(graph)
    assert 'label="encoder\nMulti-Head Attention ×6"' in source
    assert "mha" not in source.replace("label=\"last", "")
    causal = render_dot(graph_of("llama"), expand=("llama_layer",))
    assert "Masked Grouped-Query Attention" in causal and "Decoder layer" in causal
    assert "RMSNorm" in causal and "SwiGLU" in causal and "Rotary embedding" in causal


def test_a_sequence_length_is_drawn_as_its_symbol_not_its_bound():
    source = render_dot(graph_of("gpt2"))
    assert 'label="input_ids: L"' in source and 'label=" L×768"' in source
    assert "1024×768" not in source  # the bound it is checked at
    assert 'label="h\nDecoder block ×12"' in source
