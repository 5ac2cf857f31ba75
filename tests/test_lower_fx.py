"""Lowering to torch.fx: real shapes and parameter counts equal the IR's, torchvision's
state_dict layout, torchvision's outputs (when it is installed), random architectures
through ShapeProp, outputs of networks with auxiliary heads, and export/compile."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from torch.fx.passes.shape_prop import ShapeProp  # noqa: E402

from archdsl import ir  # noqa: E402
import archdsl  # noqa: E402
from archdsl import compile_file, compile_source, lower  # noqa: E402
from archdsl.passes.count_costs import total  # noqa: E402
from archdsl.runtime.inputs import example_inputs  # noqa: E402

from archgen import architectures  # noqa: E402
from conftest import BUILD_SETTINGS, ROOT, SPECS  # noqa: E402

STATE_DICTS = json.loads((ROOT / "tests" / "data" / "torchvision_state_dicts.json").read_text())
TORCHVISION_SPECS = [("alexnet", {}), ("vgg11", {}), ("vgg13", {}), ("vgg16", {}),
                     ("vgg19", {}), ("vgg11_bn", {"batch_norm": True}),
                     ("vgg16_bn", {"batch_norm": True}), ("resnet18", {}), ("resnet34", {}),
                     ("resnet50", {}), ("resnet101", {}), ("resnet152", {})]


def spec_file(model: str):
    return ROOT / "specs" / f"{model.removesuffix('_bn')}.arch"


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_lowers_with_the_irs_shapes_and_parameters(path):
    # at each spec's own input size (Inception-v3's aux head needs its 299x299); U-Net and
    # the language models smaller (conftest.BUILD_SETTINGS)
    result = compile_file(path, settings=BUILD_SETTINGS.get(path.stem, {}))
    assert result.ok, [d.message for d in result.diagnostics]
    graph = result.graph
    module = lower(graph).eval()
    assert sum(p.numel() for p in module.parameters()) == total(graph).params
    inputs = example_inputs(graph, 2)
    with torch.no_grad():
        out = module(*inputs)
    outputs = [o for o in ir.network(graph).outputs if not o.train_only]
    out = out if isinstance(out, dict) else {outputs[0].name: out}  # several: by name
    for output in outputs:
        assert tuple(out[output.name].shape) == (2, *graph.nodes[output.node]["shape"])


@pytest.mark.parametrize("model,settings", TORCHVISION_SPECS, ids=[m for m, _ in TORCHVISION_SPECS])
def test_state_dict_layout_equals_torchvision(model, settings):
    module = archdsl.load(spec_file(model), **settings)
    ours = [[k, list(v.shape)] for k, v in module.state_dict().items()]
    assert ours == STATE_DICTS[model]  # keys, shapes and torchvision's order


@pytest.mark.parametrize("model,settings", [("resnet18", {}), ("resnet50", {}),
                                            ("vgg11_bn", {"batch_norm": True}), ("alexnet", {})])
def test_torchvision_weights_give_torchvision_outputs(model, settings):
    torchvision = pytest.importorskip("torchvision")
    reference = getattr(torchvision.models, model)().eval()
    with torch.no_grad():  # give batch norms non-trivial running statistics
        for buffer_name, buffer in reference.named_buffers():
            if "running" in buffer_name:
                buffer.uniform_(0.5, 1.5)
    ours = archdsl.load(spec_file(model), **settings).eval()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=1e-5, rtol=1e-5)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(architectures())
def test_shape_prop_agrees_with_the_ir(arch):
    graph = compile_source(arch.text).graph
    module = lower(graph).train()
    x = torch.randn(2, *arch.shape, requires_grad=True)
    ShapeProp(module).propagate(x)
    for node in module.graph.nodes:
        if node.op in ("call_module", "call_function"):
            name = node.target if node.op == "call_module" else None
            if name is not None:
                assert tuple(node.meta["tensor_meta"].shape) == (2, *graph.nodes[name]["shape"])
    out = module(x)
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_every_fx_node_records_its_source_location():
    module = archdsl.load(ROOT / "specs" / "resnet18.arch")
    conv = next(n for n in module.graph.nodes if n.target == "layer2.0.conv1")
    trace = conv.meta["stack_trace"]
    assert 'resnet18.arch", line' in trace and "in basic" in trace and "std.resnet" in trace


def test_generated_code_is_readable():
    code = archdsl.load(ROOT / "specs" / "resnet18.arch").code
    assert "def forward(self, image):" in code
    assert "torch.flatten(avgpool, 1)" in code


def test_auxiliary_heads_only_in_training():
    module = archdsl.load(ROOT / "specs" / "googlenet.arch", classes=10)
    x = torch.randn(2, 3, 224, 224)
    module.train()
    outputs = module(x)
    assert set(outputs) == {"out", "aux1", "aux2"}
    assert all(v.shape == (2, 10) for v in outputs.values())
    module.eval()
    with torch.no_grad():
        main = module(x)
    assert main.shape == (2, 10)
    assert not any(n.target and str(n.target).startswith("aux")
                   for n in module.eval_module.graph.nodes)
    keys = module.state_dict().keys()
    assert "aux1.conv.weight" in keys and not any(k.startswith(("train_module", "eval_module"))
                                                  for k in keys)


def test_initialisation_and_zero_init_residual():
    module = archdsl.load(ROOT / "specs" / "resnet50.arch", zero_init_residual=True)
    assert torch.all(module.get_submodule("layer1.0.bn3").weight == 0)
    assert torch.all(module.get_submodule("layer1.0.bn1").weight == 1)
    assert torch.all(module.get_submodule("layer1.0.bn1").running_var == 1)
    assert torch.all(module.get_submodule("layer1.0.bn1").running_mean == 0)
    assert torch.all(module.get_submodule("fc").bias.abs() <= 1 / 2048 ** 0.5)  # torch default
    std = module.get_submodule("conv1").weight.std().item()
    assert std == pytest.approx((2 / (64 * 7 * 7)) ** 0.5, rel=0.1)  # Kaiming, fan-out
    plain = archdsl.load(ROOT / "specs" / "resnet50.arch")
    assert torch.all(plain.get_submodule("layer1.0.bn3").weight == 1)


def test_export_and_script():
    module = archdsl.load(ROOT / "specs" / "resnet18.arch", inputs={"*": (3, 64, 64)}).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = module(x)
        torch.testing.assert_close(torch.jit.script(module)(x), expected)
        exported = torch.export.export(module, (x,))
        torch.testing.assert_close(exported.module()(x), expected)


def test_channels_last_and_autocast():
    module = archdsl.load(ROOT / "specs" / "resnet18.arch", inputs={"*": (3, 64, 64)}).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = module(x)
        module = module.to(memory_format=torch.channels_last)
        torch.testing.assert_close(module(x.to(memory_format=torch.channels_last)), expected,
                                   atol=1e-4, rtol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert module(x).dtype == torch.bfloat16


@pytest.mark.slow
def test_torch_compile_matches_eager():
    module = archdsl.load(ROOT / "specs" / "resnet18.arch", inputs={"*": (3, 64, 64)}).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(module)(x), module(x), atol=1e-4, rtol=1e-4)


def test_reference_resnet_has_the_same_layout_and_outputs():
    from reference_resnet import resnet50
    reference = resnet50().eval()
    ours = archdsl.load(ROOT / "specs" / "resnet50.arch").eval()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=1e-5, rtol=1e-5)


def test_generated_code_inline():
    graph = compile_source("""network small {
        input x: 3 x 8 x 8
        stem: conv(4, 3, pad = 1)
        residual { c: conv(4, 3, pad = 1); bn: batchnorm }
        act: relu
        mix: concat { a: conv(2, 1); b: maxpool(3, stride = 1, pad = 1) }
        flatten
        fc: linear(10)
    }""").graph
    assert lower(graph).code.strip() == """\
def forward(self, x):
    stem = self.stem(x);  x = None
    c = self.c(stem)
    bn = self.bn(c);  c = None
    bn += stem;  iadd = bn;  bn = stem = None
    act = self.act(iadd);  iadd = None
    mix_a = self.mix.a(act)
    mix_b = self.mix.b(act);  act = None
    cat = torch.cat((mix_a, mix_b), 1);  mix_a = mix_b = None
    flatten = torch.flatten(cat, 1);  cat = None
    fc = self.fc(flatten);  flatten = None
    return fc"""


def test_a_spec_parameter_named_zero_init_residual_changes_no_initialisation():
    text = ("network t(zero_init_residual = true) { input x: 4 x 6 x 6\n"
            "    residual { conv(4, 3, pad = 1); batchnorm } }")
    graph = archdsl.compile_source(text).graph
    norm = next(m for m in archdsl.lower(graph).modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.all(norm.weight == 1)
    norm = next(m for m in archdsl.lower(graph, zero_init_residual=True).modules()
                if isinstance(m, torch.nn.BatchNorm2d))
    assert torch.all(norm.weight == 0)
