"""Every shipped spec checks cleanly, and its parameter count equals torchvision's."""
from __future__ import annotations

import pytest

from archdsl import ir
from archdsl import compile_file
from archdsl.passes.count_costs import total
from archdsl.ir import lint

from conftest import ROOT, SPECS

# spec file -> (reference model, settings)
TORCHVISION = {
    "alexnet": ("alexnet", {}), "vgg11": ("vgg11", {}), "vgg13": ("vgg13", {}),
    "vgg16": ("vgg16", {}), "vgg19": ("vgg19", {}), "resnet18": ("resnet18", {}),
    "resnet34": ("resnet34", {}), "resnet50": ("resnet50", {}), "resnet101": ("resnet101", {}),
    "resnet152": ("resnet152", {}),
}
BATCH_NORM = [("vgg11", "vgg11_bn"), ("vgg16", "vgg16_bn")]


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_checks_cleanly(path):
    result = compile_file(path)
    assert result.ok, [d.message for d in result.diagnostics]
    assert result.graphs
    for graph in result.graphs.values():
        lint(graph)
        assert all(graph.nodes[n]["shape"] for n in graph)


@pytest.mark.parametrize("spec", sorted(TORCHVISION))
def test_parameters_equal_torchvision(spec, reference):
    model, settings = TORCHVISION[spec]
    graph = compile_file(ROOT / "specs" / f"{spec}.arch", settings=settings).graph
    assert total(graph).params == reference[model]["params"]


@pytest.mark.parametrize("spec,model", BATCH_NORM)
def test_batch_norm_option_equals_torchvision_bn(spec, model, reference):
    graph = compile_file(ROOT / "specs" / f"{spec}.arch", settings={"batch_norm": True}).graph
    assert total(graph).params == reference[model]["params"]


def test_every_spec_names_its_source():
    for path in SPECS:
        header = path.read_text().splitlines()[0]
        assert header.startswith("# "), f"{path.name} lacks a header comment naming its source"


def test_googlenet_follows_the_paper():
    """The paper's GoogLeNet (Table 1, no batch norm, 5x5 convs) differs from torchvision's
    on purpose; check it against the paper's own numbers instead."""
    graph = compile_file(ROOT / "specs" / "googlenet.arch").graph
    shapes = {n: graph.nodes[n]["shape"] for n in graph}
    # Table 1: output sizes and depths after each stage
    assert shapes["maxpool1"] == (64, 56, 56)
    assert shapes["maxpool2"] == (192, 28, 28)
    assert shapes["inception3a.concat"] == (256, 28, 28)
    assert shapes["inception3b.concat"] == (480, 28, 28)
    assert shapes["inception4a.concat"] == (512, 14, 14)
    assert shapes["inception4e.concat"] == (832, 14, 14)
    assert shapes["inception5b.concat"] == (1024, 7, 7)
    # Table 1's "params" column, in thousands, sums to about 6.8M for the main network
    main = total(graph, train=False).params
    assert 6_700_000 < main < 7_100_000
    # aux heads: 4x4x512 after the 5x5/3 pool, train-only, weight 0.3
    assert shapes["aux1.pool"] == (512, 4, 4)
    outputs = {o.name: o for o in ir.network(graph).outputs}
    assert outputs["aux1"].train_only and outputs["aux1"].weight == 0.3
    assert not outputs["out"].train_only


def test_alexnet_2012_has_the_two_gpu_grouping():
    graph = compile_file(ROOT / "specs" / "alexnet_2012.arch").graph
    groups = {n: graph.nodes[n]["node"].args["groups"] for n in graph
              if graph.nodes[n]["node"].op == "conv"}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    assert graph.nodes["pool5"]["shape"] == (256, 6, 6)


def test_zfnet_widths():
    graph = compile_file(ROOT / "specs" / "zfnet.arch").graph
    widths = [graph.nodes[f"conv{i}"]["shape"][0] for i in range(1, 6)]
    assert widths == [96, 256, 512, 1024, 512]
    assert graph.nodes["conv1"]["node"].args["kernel"] == 7


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_reinferring_shapes_changes_nothing(path):
    """The whole-graph shape pass agrees with the shapes elaboration gave each node."""
    from archdsl.diagnostics import Sink
    from archdsl.passes.infer_shapes import infer_shapes
    graph = compile_file(path).graph
    before = {n: graph.nodes[n]["shape"] for n in graph}
    sink = Sink()
    infer_shapes(graph, sink)
    assert not sink.items
    assert {n: graph.nodes[n]["shape"] for n in graph} == before
