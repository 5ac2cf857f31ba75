"""The papers' drawing conventions in `archdsl render`: identity skips solid and
projections dashed (with a legend entry each), implementation-only layers left out,
bottom-to-top direction, frames optional; the Python API draws the same as the CLI."""
from __future__ import annotations

import re

import pytest

import archdsl
from archdsl import compile_file, compile_source
from archdsl.backends.render_dot import render_dot
from archdsl.cli import main

from conftest import ROOT, check_golden

GOLDEN = ROOT / "tests" / "golden"
# an identity skip, a projection, and a skip that holds only an `identity` layer
RESIDUALS = """
block unit(c) {
    residual { conv(c, 3, pad = 1); relu; conv(c, 3, pad = 1) } skip shortcut { identity }
    relu
}
block down(c) {
    residual { conv(c, 3, stride = 2, pad = 1); relu; conv(c, 3, pad = 1) } skip shortcut {
        conv(c, 1, stride = 2)
    }
    relu
}
network residuals {
    input x: 8 x 16 x 16
    stem: conv(8, 3, pad = 1)
    a: unit(8)
    b: down(16)
    c: residual { conv(16, 3, pad = 1) }
    relu; pool: global_avgpool; flatten; fc: linear(10)
}"""


def graph_of(stem: str):
    return compile_file(ROOT / "specs" / f"{stem}.arch").graph


def boxes(dot: str) -> list[str]:
    return re.findall(r'^\s+("[^"]+"|\w+) \[label=', dot, re.M)


def labels(dot: str) -> list[str]:
    return [quoted or bare for quoted, bare in
            re.findall(r'\[label=(?:"([^"]*)"|([^ \]]+))', dot)]


def test_identity_skips_are_solid_projections_dashed_and_the_legend_names_both():
    dot = render_dot(graph_of("resnet18"), expand=["layer2", "layer2.0", "layer2.1"],
                     legend=True)
    projection = re.search(r'"layer2\.0\.downsample" -> "layer2\.0\.add" \[([^\]]*)\]', dot)
    identity = re.search(r'-> "layer2\.1\.add" \[(label=identity[^\]]*)\]', dot)
    assert "style=dashed" in projection.group(1) and "style=solid" in identity.group(1)
    assert 'legend_identity [label="identity shortcut"' in dot
    assert 'legend_projection [label="projection shortcut"' in dot
    assert re.search(r"legend_identity_line -> legend_identity \[[^\]]*style=solid", dot)
    assert re.search(r"legend_projection_line -> legend_projection \[[^\]]*style=dashed", dot)
    folded = render_dot(graph_of("resnet18"), legend=True)  # no skip drawn: no entry
    assert "shortcut" not in folded


def test_resnets_flatten_is_left_out_and_the_arrow_joins_through_it():
    graph = graph_of("resnet18")
    dot = render_dot(graph)
    assert "flatten" not in labels(dot)
    assert 'avgpool -> fc [label=" 512"]' in dot  # the shape fc reads
    shown = render_dot(graph, show=("impl",))
    assert "flatten" in labels(shown) and len(boxes(shown)) == len(boxes(dot)) + 1
    assert labels(render_dot(graph, show=("all",))).count("flatten") == 1


def test_vits_transposes_and_zero_dropouts_are_left_out():
    graph = graph_of("vit_b_16")
    dot = render_dot(graph, expand=["all"])
    drawn = labels(dot)
    assert not {"flatten", "transpose", "dropout 0.0"} & set(drawn)
    assert 'conv_proj -> sequence [label=" 196×768"]' in dot  # after flatten and transpose
    impl = labels(render_dot(graph, expand=["all"], show=("impl",)))
    assert impl.count("transpose") == 1 and impl.count("flatten") == 1
    assert impl.count("dropout 0.0") == 13  # the others fold into the fc before them
    every = render_dot(graph, expand=["all"], show=("all",))
    assert labels(every).count("dropout 0.0") == 37
    assert len(boxes(every)) == len(graph)


def test_only_no_op_adaptive_pools_and_zero_dropouts_are_left_out():
    source = """network n { input x: 8 x 7 x 7
        same: adaptive_avgpool(7); smaller: adaptive_avgpool(1)
        flatten; kept: dropout(0.5); gone: dropout(0.0); fc: linear(4) }"""
    dot = render_dot(compile_source(source).graph, show=("reg",))
    assert boxes(dot) == ["x", "smaller", "kept", "fc"]
    assert 'x -> smaller [label=" 8×7×7"]' in dot and 'kept -> fc [label=" 8"]' in dot


def test_bottom_to_top_and_no_frames():
    graph = graph_of("googlenet")
    assert "rankdir=BT" in render_dot(graph, direction="BT")
    framed = render_dot(graph, expand=["inception3a"])
    bare = render_dot(graph, expand=["inception3a"], frames=False)
    assert "label=inception3a " in framed and "label=inception3a " not in bare
    assert bare.count("peripheries=0") == framed.count("subgraph cluster_") > 0
    assert boxes(bare) == boxes(framed)  # the boxes remain


@pytest.mark.parametrize("argv, options", [
    (["--direction", "BT"], {"direction": "BT"}),
    (["--no-frames", "--expand", "layer1"], {"frames": False, "expand": "layer1"}),
    (["--show", "impl", "--legend", "--expand", "layer2.0"],
     {"show": "impl", "legend": True, "expand": ["layer2.0"]}),
    (["--merges", "plain", "--expand", "layer1.0"], {"merges": "plain", "expand": "layer1.0"}),
])
def test_the_python_api_takes_the_same_options_as_the_command_line(argv, options,
                                                                  capsysbinary):
    path = ROOT / "specs" / "resnet18.arch"
    assert main(["render", str(path), "--format", "dot", "-o", "-", *argv]) == 0
    assert archdsl.diagram(path, **options).dot == capsysbinary.readouterr().out.decode()


def test_render_help_names_the_conventions(capsys):
    with pytest.raises(SystemExit):
        main(["render", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--no-frames" in text and "{TB,LR,BT}" in text and "impl (flatten" in text
    assert "--merges {marked,plain}" in text and "as their Figure 3 of a network" in text


def test_one_layer_of_a_repeat_opened_alone_is_drawn_for_all_of_them():
    """As the Transformer's figure draws its layer "N×": ViT's first encoder layer opened
    stands for the twelve, titled so, the arrows running on from it."""
    dot = render_dot(graph_of("vit_b_16"), expand=["encoder.layers.encoder_layer_0"])
    assert 'label="encoder_block ×12"' in dot and "encoder_layer_1" not in dot
    assert ('"encoder.layers.encoder_layer_0.add_1" -> "encoder.ln" [label=" 197×768" '
            'weight=10]') in dot  # the block's main chain kept straight
    assert '"encoder.0" -> "encoder.layers.encoder_layer_0.ln_1"' in dot
    both = render_dot(graph_of("resnet18"), expand=["layer2", "layer2.0"])  # named: all
    assert '"layer2.1" [label=basic' in both and 'label="basic ×2"' not in both
    alone = render_dot(graph_of("resnet18"), expand=["layer2.0"])
    assert 'label="basic ×2"' in alone and '"layer2.1' not in alone
    assert re.search(r'"layer2\.0\.\w+" -> layer3 \[label=" 128×28×28"\]', alone)


def edge(dot: str, tail: str, head: str) -> str:
    """The attributes of the arrow from box `tail` to box `head`."""
    found = re.search(rf'^\s*"?{re.escape(tail)}"? -> "?{re.escape(head)}"? \[(.*)\]$', dot, re.M)
    assert found, f"no arrow {tail} -> {head}"
    return found.group(1)


def test_plain_merges_draw_each_skip_box_to_box_without_the_add_or_its_relu():
    """He et al.'s Figure 3: the skip leaves the block's input box and enters the box after
    the add; no "+" circle, the ReLU after the add folded into the join."""
    graph = compile_source(RESIDUALS).graph
    marked = render_dot(graph, expand=["all"])
    plain = render_dot(graph, expand=["all"], merges="plain", legend=True)
    assert labels(marked).count("+") == 3 and "ReLU" in labels(marked)
    assert "+" not in labels(plain) and "ReLU" not in labels(plain)
    unlisted = render_dot(graph, expand=["all"], merges="plain")
    assert len(boxes(unlisted)) == len(boxes(marked)) - 3 - 3  # 3 adds, the ReLU after each
    assert "label=identity" in edge(plain, "stem", "b.0")  # a's input to b's first box
    assert "style=dashed" in edge(plain, "b.shortcut.0", "c.0")  # the projection
    assert "label=identity" in edge(plain, "b.2", "pool")  # c's, past its ReLU
    assert '"a.0" -> "b.shortcut.0"' in plain  # b's input: a's join, in a's last box
    assert 'legend_identity [label="identity shortcut"' in plain
    assert 'legend_projection [label="projection shortcut"' in plain
    check_golden(GOLDEN / "render_residuals_plain.dot", plain)


def test_plain_merges_keep_the_relu_when_act_is_shown():
    graph = compile_source(RESIDUALS).graph
    dot = render_dot(graph, expand=["all"], merges="plain", show=("act",))
    assert "+" not in labels(dot)
    assert "label=identity" in edge(dot, "stem", "a.3")  # into the ReLU after a's add


def test_a_skip_that_holds_only_an_identity_layer_is_an_identity_skip():
    graph = compile_source(RESIDUALS).graph
    dot = render_dot(graph, expand=["all"], legend=True)
    assert re.search(r'stem -> "a\.add" \[label=identity [^\]]*style=solid', dot)
    shown = render_dot(graph, expand=["all"], show=("impl",))  # drawn: still an identity
    assert re.search(r'"a\.shortcut\.0" -> "a\.add" \[label=identity [^\]]*style=solid', shown)
    assert "style=dashed" in edge(dot, "b.shortcut.0", "b.add")


def test_merges_must_be_marked_or_plain(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["render", str(ROOT / "specs" / "resnet18.arch"), "--merges", "round"])
    assert stopped.value.code == 2 and "invalid choice: 'round'" in capsys.readouterr().err
    with pytest.raises(archdsl.errors.UsageError, match="--merges round: choose from marked"):
        archdsl.diagram(ROOT / "specs" / "resnet18.arch", merges="round")


def test_render_diff_takes_no_frames_and_plain_merges(capsysbinary):
    """Without frames a changed open block keeps a marked outline, without its title."""
    specs = [str(ROOT / "specs" / f"{s}.arch") for s in ("resnet50", "resnext50_32x4d")]
    argv = ["render", "--diff", *specs, "--expand", "layer1", "--expand", "layer1.0",
            "--format", "dot", "-o", "-"]
    assert main(argv) == 0
    framed = capsysbinary.readouterr().out.decode()
    assert main(argv + ["--no-frames", "--merges", "plain"]) == 0
    bare = capsysbinary.readouterr().out.decode()
    assert "peripheries=0" not in framed and "peripheries=0" in bare
    assert re.search(r'subgraph "cluster_net1/layer1\.0" \{\s*graph \[color="#E69F00" '
                     r'penwidth=3 peripheries=1 style=rounded\]', bare)
    assert '"net1/layer1.0.add"' in framed and '"net1/layer1.0.add"' not in bare
