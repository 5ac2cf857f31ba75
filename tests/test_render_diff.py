"""`archdsl render --diff A B`: B drawn beside A, what `archdsl diff` finds marked. The DOT
text is golden; a layout by dot checks that the marks restyle the drawing's own boxes and
clusters (no new ones)."""
from __future__ import annotations

import re
import shutil

import pytest

from archdsl import compile_file, compile_source
from archdsl.backends.layout import layout
from archdsl.backends.render_diff import KIND_STYLE, render_diff
from archdsl.backends.render_dot import render_many
from archdsl.backends.report_diff import diff_graphs
from archdsl.cli import main

from conftest import ROOT, check_golden

GOLDEN = ROOT / "tests" / "golden"
SPECS = ROOT / "specs"
CIFAR = f"{SPECS / 'cifar_resnet.arch'}:cifar_resnet"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot not installed")
COLOURS = {kind: style["color"] for kind, style in KIND_STYLE.items()}
# one spec, a layer more in B (c2) and a changed last layer (fc)
CIFAR_PLAIN = "network net(depth = 2) { input x: 3 x 8 x 8; repeat depth { conv(4, 3, pad = 1) } }"
SHORT = "network n {{ input x: 3 x 8 x 8; c1: conv(4, 3){extra}; fc: conv({out}, 1) }}"


def graph_of(spec: str):
    return compile_file(SPECS / f"{spec}.arch").graph


def drawn(a, b, **options) -> str:
    return render_diff(a, b, diff_graphs(a, b), **options)


def marked(dot: str) -> dict[str, str]:
    """{node: kind} for each node statement that carries a kind's colour."""
    found = {}
    for name, attributes in re.findall(r'^\s+("[^"]+"|\w+) \[(.*)\]$', dot, re.M):
        if name in ("graph", "node", "edge"):
            continue
        kinds = [k for k, colour in COLOURS.items() if f'color="{colour}"' in attributes]
        if kinds:
            found[name.strip('"')] = kinds[0]
    return found


def test_golden_resnet50_against_resnext50():
    dot = drawn(graph_of("resnet50"), graph_of("resnext50_32x4d"))
    check_golden(GOLDEN / "render_diff_resnet50_resnext50.dot", dot)


def test_only_the_boxes_holding_a_change_are_marked():
    """All 16 bottlenecks changed: the four collapsed stages on each side, nothing else;
    B's captioned with the arguments that changed."""
    dot = drawn(graph_of("resnet50"), graph_of("resnext50_32x4d"))
    stages = [f"layer{i}" for i in (1, 2, 3, 4)]
    assert marked(dot) == {**{f"net{n}/{s}": "changed" for n in (0, 1) for s in stages},
                           "key_changed": "changed"}
    assert dot.count('xlabel="groups = 32, base_width = 4"') == 4
    assert "50-layer\n25.56M parameters" in dot and "resnext50_32x4d\n25.03M" in dot


def test_added_layer_marked_on_b_and_removed_on_a():
    a = compile_source(SHORT.format(extra="", out=2)).graph
    b = compile_source(SHORT.format(extra="; c2: conv(4, 3, pad = 1)", out=5)).graph
    forward = marked(drawn(a, b))
    assert forward == {"net1/c2": "added", "net0/fc": "changed", "net1/fc": "changed",
                       "key_changed": "changed", "key_added": "added"}
    assert 'xlabel="channels 2 → 5"' in drawn(a, b)
    backward = marked(drawn(b, a))
    assert backward["net0/c2"] == "removed" and "net1/c2" not in backward
    assert 'style="rounded,filled,dashed"' in drawn(b, a)  # readable without colour


def test_a_stage_grown_by_repeats_is_changed_with_the_count_added():
    a = compile_file(SPECS / "cifar_resnet.arch", network="cifar_resnet").graph
    b = compile_file(SPECS / "cifar_resnet.arch", network="cifar_resnet",
                     settings={"depth": 32}).graph
    dot = drawn(a, b)
    assert marked(dot) == {f"net1/layer{i}": "changed" for i in (1, 2, 3)} | {
        "key_changed": "changed"}
    assert dot.count('xlabel="2 added"') == 3
    assert "ResNet-20\n" in dot and "ResNet-32\n" in dot  # the caption says the depth
    plain = drawn(*(compile_source(CIFAR_PLAIN, settings={"depth": d}).graph for d in (2, 3)))
    assert "net (depth = 2)" in plain and "net (depth = 3)" in plain  # no caption: said
    opened = drawn(b, a, expand=["layer1"])  # each unit a box: the ones A loses, removed
    assert marked(opened)["net0/layer1.3"] == "removed"
    assert marked(opened)["net0/layer1.4"] == "removed"


def test_identical_networks_are_drawn_with_nothing_marked():
    graph = graph_of("resnet18")
    dot = drawn(graph, graph_of("resnet18"))
    assert marked(dot) == {} and "cluster_diff_key" not in dot
    assert dot.startswith(render_many([graph, graph]).rstrip()[:-1])  # the same drawing


@needs_dot
def test_open_changed_instances_mark_their_own_clusters():
    """Marks are statements after the drawing's; a cluster's must reach it through its
    parents, or dot would draw a new, empty one."""
    a, b = graph_of("resnet50"), graph_of("resnext50_32x4d")
    dot = drawn(a, b, expand=["bottleneck"])
    assert marked(dot) == {"key_changed": "changed"}  # boxes inside stay plain
    svg = layout(dot, "svg").decode()
    outlines = dict(re.findall(r'<title>cluster_(net\d/layer[\d.]+)</title>\n<path fill="none" '
                               r'stroke="(#\w+)"', svg))
    assert {s for s, colour in outlines.items() if colour == "#e69f00"} == {
        f"net{n}/layer{i}.{j}" for n in (0, 1) for i, count in ((1, 3), (2, 4), (3, 6), (4, 3))
        for j in range(count)}
    plain = layout(render_many([a, b], expand=["bottleneck"]), "svg").decode()
    assert svg.count('class="cluster"') == plain.count('class="cluster"') + 1  # the key's


def test_a_layer_that_became_a_block_is_changed():
    a = compile_source("network n { input x: 8; fc: linear(4) }").graph
    b = compile_source("block head(c) { linear(c) } network n { input x: 8; fc: head(4) }").graph
    assert marked(drawn(a, b, depth=1)) == {"net0/fc": "changed", "net1/fc": "changed",
                                            "key_changed": "changed"}
    assert 'subgraph "cluster_net1/fc" {\n\t\t\tgraph [color="#E69F00"' in drawn(a, b)


def test_a_long_change_is_left_uncaptioned():
    a = compile_source("network n { input x: 8; fc: linear(4) }").graph
    b = compile_source("network n { input x: 8; fc: linear(4000000, bias = false) }").graph
    dot = drawn(a, b)
    assert marked(dot)["net1/fc"] == "changed" and "xlabel" not in dot


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_dot_for_one_spec_at_two_settings(capsys, tmp_path):
    out = tmp_path / "d.dot"
    code, printed, _ = run(capsys, "render", "--diff", CIFAR, "--set-b", "depth=32", "-o", out)
    assert code == 0 and "what differs marked" in printed
    assert "ResNet-32" in out.read_text()
    code, _, err = run(capsys, "render", "--diff", CIFAR, "--set-b", "depth=20", "-o", out)
    assert code == 0 and "no differences" in err


@pytest.mark.parametrize("argv,message", [
    (["--diff", SPECS / "resnet18.arch"], "needs two networks"),
    (["--diff", SPECS / "missing.arch", SPECS / "resnet18.arch"], "missing.arch"),
    (["--diff", SPECS / "resnet18.arch", SPECS / "resnet34.arch", SPECS / "vgg16.arch"],
     "3 given"),
    (["--diff", SPECS / "resnet18.arch", SPECS / "resnet34.arch", "--side-by-side"],
     "drop --side-by-side"),
    (["--diff", SPECS / "resnet18.arch", SPECS / "resnet34.arch", "--partial"],
     "drop --partial"),
    (["--diff", SPECS / "cifar_resnet.arch", "--set-b", "depth=32"], "name one"),
    ([SPECS / "resnet18.arch", "--set-b", "depth=3"], "add --diff"),
])
def test_cli_usage_errors(capsys, tmp_path, argv, message):
    code, _, err = run(capsys, "render", *argv, "-o", tmp_path / "x.dot")
    assert code == 2 and message in err


def test_cli_a_spec_with_errors_is_reported(capsys, tmp_path):
    broken = tmp_path / "broken.arch"
    broken.write_text("network n { input x: 8; linear(q) }")
    code, _, err = run(capsys, "render", "--diff", broken, SPECS / "resnet18.arch",
                       "-o", tmp_path / "x.dot")
    assert code == 1 and "error[" in err
