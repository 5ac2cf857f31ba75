"""The scope tree: what elaboration records of blocks, repeats, labels and branches, and
the accessors every backend reads the hierarchy through."""
from __future__ import annotations

from dataclasses import replace

import pytest

from archdsl import compile_file, compile_source, ir
from archdsl.errors import InternalError

from conftest import ROOT


def test_a_repeat_of_blocks_records_iterations_with_their_calls():
    graph = compile_file(ROOT / "specs" / "resnet18.arch").graph
    stage = ir.scope(graph, "layer2")
    assert (stage.kind, stage.parent, stage.calls) == ("repeat", "", ())
    iterations = ir.children(graph, "layer2")
    assert [(s.path, s.kind, s.index) for s in iterations] == [
        ("layer2.0", "iteration", 0), ("layer2.1", "iteration", 1)]
    assert [c.args for s in iterations for c in s.calls] == [
        (("width", 128), ("stride", 2)), (("width", 128), ("stride", 1))]
    assert ir.scope_of(graph, "layer2.0.downsample.0").path == "layer2.0.downsample"
    assert ir.scope_of(graph, "layer2.0.downsample.0").kind == "skip"
    assert ir.scopes_of(graph, "layer2.0.conv1") == ("layer2", "layer2.0")
    assert ir.describe_scope(graph, "layer2", ir.members(graph, "layer2")) == "basic x2"
    assert len(ir.instances(graph, "basic")) == 8


def test_every_kind_of_scope_is_recorded_with_its_span():
    graph = compile_source("""
block unit(c) { conv(c, 1); relu }
network t {
    input x: 4 x 8 x 8
    stem: { conv(4, 1); relu }
    b: unit(4)
    r: residual { conv(4, 3, pad = 1) } skip proj { conv(4, 1) }
    m: concat { left: { conv(2, 1) }; right: conv(2, 1) }
    s: repeat 2 as i { conv(6, 1) }
    h: aux { global_avgpool; flatten; linear(3) }
    _: { conv(5, 1) }
}""").graph
    kinds = {path: s.kind for path, s in ir.network(graph).scopes.items()}
    assert kinds == {"": "network", "stem": "group", "b": "block", "r": "residual",
                     "r.proj": "skip", "m": "merge", "m.left": "branch", "s": "repeat",
                     "s.0": "iteration", "s.1": "iteration", "h": "aux", "0": "group"}
    assert ir.scope(graph, "stem").span.text == "stem"
    assert ir.scope(graph, "b").calls[0].block == "unit"
    assert ir.scope_of(graph, "m.right").path == "m"  # a labelled layer is a node, no scope
    assert [s.label for s in ir.children(graph, "s")] == ["0", "1"]
    assert ir.members(graph, "s") == ["s.0.0", "s.1.0"]


def test_the_tree_of_every_shipped_spec_passes_lint():
    for spec in sorted((ROOT / "specs").glob("*.arch")):
        for graph in compile_file(spec).graphs.values():
            ir.lint(graph)


@pytest.mark.parametrize("break_it", ["orphan", "node outside", "index"])
def test_lint_finds_a_tree_that_disagrees_with_the_nodes(break_it):
    graph = compile_file(ROOT / "specs" / "resnet18.arch").graph
    record = ir.network(graph)
    scopes = dict(record.scopes)
    if break_it == "orphan":
        scopes["layer2.0"] = replace(scopes["layer2.0"], parent="nowhere")
    elif break_it == "node outside":
        del scopes["layer3.1"]
    else:
        scopes["layer2"] = replace(scopes["layer2"], index=3)
    ir.set_network(graph, replace(record, scopes=scopes))
    with pytest.raises(InternalError):
        ir.lint(graph)
