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

from conftest import ROOT


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
    identity = re.search(r'-> "layer2\.1\.add" \[([^\]]*xlabel=identity[^\]]*)\]', dot)
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


def test_one_layer_of_a_repeat_opened_alone_is_drawn_for_all_of_them():
    """As the Transformer's figure draws its layer "N×": ViT's first encoder layer opened
    stands for the twelve, titled so, the arrows running on from it."""
    dot = render_dot(graph_of("vit_b_16"), expand=["encoder.layers.encoder_layer_0"])
    assert 'label="encoder_block ×12"' in dot and "encoder_layer_1" not in dot
    assert '"encoder.layers.encoder_layer_0.add_1" -> "encoder.ln" [label=" 197×768"]' in dot
    assert '"encoder.0" -> "encoder.layers.encoder_layer_0.ln_1"' in dot
    both = render_dot(graph_of("resnet18"), expand=["layer2", "layer2.0"])  # named: all
    assert '"layer2.1" [label=basic' in both and 'label="basic ×2"' not in both
    alone = render_dot(graph_of("resnet18"), expand=["layer2.0"])
    assert 'label="basic ×2"' in alone and '"layer2.1' not in alone
    assert re.search(r'"layer2\.0\.\w+" -> layer3 \[label=" 128×28×28"\]', alone)
