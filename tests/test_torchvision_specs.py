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
    ("resnext50_32x4d", "resnext50_32x4d", {}),
    ("wide_resnet50_2", "wide_resnet50_2", {}),
    ("densenet121", "densenet121", {}),
    ("densenet169", "densenet121", {"block_config": (6, 12, 32, 32)}),
    ("squeezenet1_0", "squeezenet1_0", {}),
    ("squeezenet1_1", "squeezenet1_1", {}),
    ("inception_v3", "inception_v3", {}),
    ("googlenet", "googlenet_bn", {}),
    ("convnext_tiny", "convnext_tiny", {}),
    ("mobilenet_v2", "mobilenet_v2", {}),
    ("mobilenet_v3_large", "mobilenet_v3_large", {}),
    ("mobilenet_v3_small", "mobilenet_v3_small", {}),
    ("mnasnet1_0", "mnasnet1_0", {}),
    ("efficientnet_b0", "efficientnet_b0", {}),
    ("efficientnet_b1", "efficientnet_b0", {"width_mult": 1.0, "depth_mult": 1.1}),
    ("efficientnet_v2_s", "efficientnet_v2_s", {}),
    ("shufflenet_v2_x1_0", "shufflenet_v2_x1_0", {}),
    ("regnet_x_400mf", "regnet_x_400mf", {}),
    ("regnet_y_400mf", "regnet_y_400mf", {}),
    ("vit_b_16", "vit_b_16", {}),
    ("swin_t", "swin_t", {}),
    ("r3d_18", "r3d_18", {}),
]
# float64 forwards of several GMACs: run with the slow tests
SLOW = {"resnext50_32x4d", "wide_resnet50_2", "densenet121", "densenet169", "inception_v3", "convnext_tiny",
        "efficientnet_v2_s", "vit_b_16", "r3d_18"}


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


TRAIN_MODE = ["mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "googlenet_bn",
              "shufflenet_v2_x1_0", "regnet_y_400mf", "densenet121"]
OFF = {"efficientnet_b0": {"stochastic_depth_prob": 0.0, "dropout": 0.0},
       "convnext_tiny": {"stochastic_depth_prob": 0.0},
       "mobilenet_v3_small": {"dropout": 0.0}, "googlenet_bn": {"dropout": 0.0},
       "densenet121": {}, "shufflenet_v2_x1_0": {}, "regnet_y_400mf": {}}


@pytest.mark.parametrize("spec", TRAIN_MODE)
def test_training_mode_equals_torchvision(spec):
    """With torchvision importable: its weights in our module give its outputs in training
    mode too (batch statistics; stochastic depth and dropout off)."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    import archdsl
    name = "googlenet" if spec == "googlenet_bn" else spec
    options = {"stochastic_depth_prob": 0.0} if "stochastic_depth_prob" in OFF[spec] else {}
    if "dropout" in OFF[spec]:
        options["dropout"] = 0.0
    reference = getattr(torchvision.models, name)(**options).double().train()
    ours = archdsl.load(ROOT / "specs" / f"{spec}.arch", **OFF[spec]).double().train()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    theirs, mine = reference(x), ours(x)
    if isinstance(mine, dict):  # auxiliary heads: torchvision returns a named tuple
        mine, theirs = mine["out"], theirs[0]
    torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-9)
