"""The author's words: `network ... as "18-layer"`, `layer1 as "conv2_x": ...` and
`LABEL as "...":` on a layer, in figures and tables, and the same from the command line
(`--caption`) and the Python API (`captions=`). Names, keys and costs do not change."""
from __future__ import annotations

import pytest

from archdsl import compile_source, figures, ir
from archdsl.backends import report_table
from archdsl.backends.render_dot import render_dot
from archdsl.cli import main

SPEC = """\
import std.resnet

network resnet(depth = 18) as "{depth}-layer" {
    input image: 3 x 64 x 64
    conv1 as "weight layer {depth // 9}": conv(16, 7, stride = 2, pad = 3, bias = false)
    bn1:     batchnorm
    relu:    relu
    maxpool: maxpool(3, stride = 2, pad = 1)
    layer1 as "conv2_x": repeat 2 { basic(16) }
    layer2 as "conv{2 + 1}_x": {
        0 as "unit 1": basic(32, stride = 2)
        1 as "unit 2": basic(32)
    }
    avgpool: global_avgpool
             flatten
    fc:      linear(10)
}
"""
PLAIN = SPEC.replace(' as "{depth}-layer"', "").replace(' as "weight layer {depth // 9}"', "") \
    .replace(' as "conv2_x"', "").replace(' as "conv{2 + 1}_x"', "").replace(' as "unit 1"', "") \
    .replace(' as "unit 2"', "")


def graph_of(text: str = SPEC, **settings):
    return compile_source(text, settings=settings).graph


def test_captions_fill_in_parameters_and_repeat_indices():
    record = ir.network(graph_of(depth=34))
    assert record.title == "34-layer" and record.name == "resnet"
    assert record.captions["conv1"] == "weight layer 3"
    assert record.captions["layer2"] == "conv3_x"
    assert [record.captions[f"layer2.{i}"] for i in (0, 1)] == ["unit 1", "unit 2"]


def test_repeat_indices_fill_in_captions():
    text = ('network n { input x: 8 x 4 x 4\n'
            '    s: repeat 3 as i { "{i}" as "step {i + 1}": conv(8, 1) } }')
    captions = ir.network(graph_of(text)).captions
    assert [captions[f"s.{i}.{i}"] for i in range(3)] == ["step 1", "step 2", "step 3"]


def test_captions_change_no_name_key_or_cost():
    captioned, plain = graph_of(), graph_of(PLAIN)
    assert list(captioned) == list(plain)
    assert [captioned.nodes[n]["cost"] for n in captioned] == [plain.nodes[n]["cost"] for n in plain]
    assert ir.network(plain).title == "resnet" and not ir.network(plain).captions


def test_a_block_with_captions_inside_is_expanded_for_every_call():
    text = ("block unit(c) { residual { a as \"weight layer\": conv(c, 3, pad = 1) } }\n"
            "network n { input x: 8 x 4 x 4; s: repeat 3 { unit(8) } }")
    captions = ir.network(graph_of(text)).captions
    assert [captions.get(f"s.{i}.a") for i in range(3)] == ["weight layer"] * 3


def test_a_caption_of_a_tensor_is_e0221():
    bad = SPEC.replace('as "conv2_x": repeat 2', 'as "{image}": repeat 2')
    result = compile_source(bad)
    assert [d.code for d in result.diagnostics] == ["E0221"]
    assert "caption" in result.diagnostics[0].message


def test_the_table_reads_the_authors_words():
    table = report_table.format_markdown([graph_of(), graph_of(depth=34)], None, "bracket")
    header = table.splitlines()[0]
    assert "| 18-layer | 34-layer |" in header and "resnet" not in header
    stages = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert "conv2_x" in stages and "conv3_x" in stages and "layer1" not in "".join(stages)
    rows = {line.split("|")[1].strip() for line in table.splitlines()[2:]}
    assert "conv2_x" in rows  # the max pool's row takes the stage's words: no `maxpool, `


def test_the_figure_reads_the_authors_words():
    dot = render_dot(graph_of(), expand=("layer2",))
    assert 'label="18-layer"' in dot and 'label="weight layer 2"' in dot
    assert "label=conv3_x" in dot and 'label="unit 1\n' in dot and 'label="unit 2\n' in dot
    assert "label=layer2" not in dot and "label=conv1" not in dot


def test_command_line_and_api_give_the_same_words(tmp_path, capsys):
    spec = tmp_path / "plain.arch"
    spec.write_text(PLAIN)
    assert main(["render", str(spec), "--format", "dot", "-o", str(tmp_path / "a.dot"),
                 "--caption", "resnet=ResNet-18", "--caption", "layer1=conv2_x"]) == 0
    api = figures.diagram(str(spec), captions={"resnet": "ResNet-18", "layer1": "conv2_x"})
    assert (tmp_path / "a.dot").read_text() == api.dot
    assert 'label="ResNet-18"' in api.dot and "conv2_x" in api.dot
    assert main(["table", str(spec), "--caption", "resnet=ResNet-18",
                 "--caption", "layer1=conv2_x"]) == 0
    out = capsys.readouterr().out
    assert "| ResNet-18 |" in out and "conv2_x" in out


@pytest.mark.parametrize("command", ["render", "table"])
@pytest.mark.parametrize("given, message", [("layer9=x", "neither"), ("layer1", "NAME=TEXT")])
def test_a_caption_for_nothing_is_a_usage_error(tmp_path, capsys, command, given, message):
    spec = tmp_path / "plain.arch"
    spec.write_text(PLAIN)
    extra = ["--format", "dot", "-o", str(tmp_path / "a.dot")] if command == "render" else []
    assert main([command, str(spec), "--caption", given, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_branched_table_names_a_module_by_its_caption():
    from archdsl import compile_file
    from conftest import ROOT
    graph = compile_file(ROOT / "specs" / "googlenet.arch").graph
    plain = report_table.format_markdown([graph], None, "branched")
    words = report_table.format_markdown(
        [ir.recaptioned(graph, {"inception3a": "module 3a"})], None, "branched")
    assert "| inception (3a) |" in plain and "| module 3a |" not in plain
    assert "| module 3a |" in words and "| inception (3a) |" not in words
    assert words.replace("module 3a", "inception (3a)") == plain


def test_two_columns_of_one_caption_are_told_apart_by_their_settings(capsys):
    from conftest import ROOT
    spec = str(ROOT / "specs" / "resnet50.arch")
    assert main(["table", spec, f"{spec}?stride_on=1x1"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "| 50-layer | 50-layer (stride_on=1x1) |" in header


def test_render_diff_takes_the_same_captions(tmp_path, capsys):
    spec = tmp_path / "plain.arch"
    spec.write_text(PLAIN)
    out = tmp_path / "d.dot"
    assert main(["render", "--diff", str(spec), "--set-b", "depth=34", "--caption",
                 "layer1=conv2_x", "-o", str(out)]) == 0
    assert out.read_text().count("conv2_x") == 2  # A's and B's stage
