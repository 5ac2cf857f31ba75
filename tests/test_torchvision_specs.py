"""The shipped specs of torchvision's models equal torchvision's, checked without
torchvision (tests/oracle.py): state_dict keys, shapes, dtypes and order, parameters
exactly, MACs within 0.1%, and the float64 output under the recorded fill (relative
1e-9). And the paper networks that torchvision does not have: U-Net and the CIFAR ResNets."""
from __future__ import annotations

import pytest

from archdsl import compile_file
from archdsl.passes.count_costs import total

from conftest import ROOT

pytest.importorskip("torch")
from oracle import compare  # noqa: E402

# (torchvision model, spec file, network settings)
SPECS = [
    ("resnet18", "resnet18", {}),
]
SLOW = set()


@pytest.mark.parametrize("model,spec,settings", [
    pytest.param(m, s, k, id=m, marks=[pytest.mark.slow] if m in SLOW else [])
    for m, s, k in SPECS])
def test_spec_equals_torchvision(model, spec, settings):
    assert compare(model, ROOT / "specs" / f"{spec}.arch", **settings) == []


# He et al. 2016, Table 6: parameters of the CIFAR-10 ResNets (and, with option A
# shortcuts, of their plain counterparts too).
@pytest.mark.parametrize("depth,millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85),
                                            (110, 1.7)])
def test_cifar_resnets_have_the_papers_parameters(depth, millions):
    for network in ("cifar_resnet", "cifar_plain"):
        graph = compile_file(ROOT / "specs" / "cifar_resnet.arch", network=network,
                             settings={"depth": depth}).graph
        params = total(graph).params
        assert round(params / 1e6, 2 if millions < 1 else 1) == millions
        adds = sum(1 for n in graph if graph.nodes[n]["node"].op == "add")
        assert adds == (3 * (depth - 2) // 6 if network == "cifar_resnet" else 0)


def test_cifar_resnet_option_a_shortcut_is_parameter_free_and_runs():
    import torch
    import archdsl
    model = archdsl.load(ROOT / "specs" / "cifar_resnet.arch", network="cifar_resnet")
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_unet_as_published():
    import torch
    import archdsl
    graph = compile_file(ROOT / "specs" / "unet.arch").graph
    assert graph.nodes["head"]["shape"] == (2, 388, 388)
    assert total(graph).params == 31_030_658  # the paper's network
    crops = [n for n in graph if graph.nodes[n]["node"].op == "crop"]
    assert [graph.nodes[n]["shape"][1] for n in crops] == [56, 104, 200, 392]
    small = archdsl.load(ROOT / "specs" / "unet.arch", width=4, inputs={"image": (1, 188, 188)})
    assert small(torch.randn(1, 1, 188, 188)).shape == (1, 2, 4, 4)
