"""`archdsl import`: a traced PyTorch model becomes a spec that checks, with the model's
parameters, MACs and state_dict keys, and whose lowered module gives the model's outputs
with its weights. Hand-written models of torchvision's structure here; the real
torchvision models where torchvision is installed."""
from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")

from archdsl import compile_file, compile_source, ir  # noqa: E402
from archdsl.backends.lower_fx import lower_fx  # noqa: E402
from archdsl.cli import main  # noqa: E402
from archdsl.passes.count_costs import total  # noqa: E402
from archdsl.tools.import_torch import ImportFailure, import_torch  # noqa: E402

import import_models  # noqa: E402
import reference_resnet  # noqa: E402
from conftest import ROOT  # noqa: E402


def macs_of(model, shape) -> int:
    """FlopCounterMode's count, attention on torch's math kernel (the fused CPU kernel is
    not counted at all)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        model.eval()(torch.zeros(1, *shape))
    return counter.get_total_flops() // 2


def check_import(model, shape, name="imported"):
    """The spec imported from `model`: checks, same parameters, MACs, state_dict keys in
    the same order, and the same outputs with the model's weights."""
    text = import_torch(model, shape, name)
    result = compile_source(text)
    assert result.ok, text
    graph = result.graph
    assert total(graph).params == sum(p.numel() for p in model.parameters())
    assert total(graph).macs == macs_of(model, shape)
    lowered = lower_fx(graph)
    assert list(lowered.state_dict()) == list(model.state_dict())
    lowered.load_state_dict(model.state_dict())
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(lowered.eval()(x), model.eval()(x))
    return text


@pytest.mark.parametrize("blocks", [1, 2, 10])
def test_chained_residuals_over_a_module_list_import(blocks):
    """Residuals around the members of a ModuleList, chained by a loop of forward(): each
    member its own scope (`"blocks.3"`), a run of them one repeat over the index."""
    text = check_import(import_models.ChainedResiduals(blocks), (3, 32, 32))
    assert ('repeat 10 as i' in text) == (blocks == 10)
    assert ('"blocks.' in text) == (blocks > 1)  # one member: the list is one group
    assert "mean(1, 2)" in text


def test_tensor_methods_between_layers_import():
    text = check_import(import_models.TensorMethods(), (3, 6, 4))
    for op in ("sigmoid", "amax(2, keep = true)", "sum(-1)", "permute(1, 0)",
               "transpose", "softmax(-1)", "tanh", "gelu", "mean(1)",
               "reshape(8, 1, 6)", "slice(0, 4, axis = 1)"):
        assert op in text, op


def test_attention_written_out_in_forward_imports_with_named_values():
    """Queries, keys and values, each read by the fused attention: the importer names
    them (`from qkv`, `sdpa(q, k, v, causal = true)`), in a decoder whose ModuleList of
    ModuleDicts runs apart (pre-norm residuals)."""
    text = check_import(import_models.TinyDecoder(), (10, 8))
    assert "input x: 10 x 8 as tokens" in text
    assert re.search(r"sdpa\(\w+, \w+, \w+, causal = true\)", text) and "from qkv" in text


def test_products_of_named_values_import():
    text = check_import(import_models.Products(), (3, 6, 6))
    assert "concat(a, b, axis = 1)" in text and "matmul(" in text


def test_pooling_dropout_and_resizing_functions_import():
    text = check_import(import_models.Functional(), (3, 8, 8))
    for op in ("maxpool(2)", "avgpool(3, stride = 1, pad = 1)", "dropout(p = 0.1)",
               "upsample", "resize(5, width = 7)"):
        assert op in text, op


def test_an_unmappable_function_names_its_line_of_forward():
    with pytest.raises(ImportFailure, match=r"`erfinv` in `forward` \(import_models.py:\d+\): "
                                            r"call_function `erfinv` has no archdsl equivalent"):
        import_torch(import_models.Unmappable(), (3, 4, 4))


def test_a_parameter_read_in_forward_imports_as_a_param_statement():
    """A layer scale, `x + gamma * conv(x)`: `param gamma` of the module that holds it,
    read by the element-wise op with the current value."""
    model = import_models.LayerScaled()
    with torch.no_grad():
        model.gamma.normal_()
    text = check_import(model, (3, 4, 4))
    assert "param gamma: 3 x 1 x 1" in text and "mul(gamma)" in text


def test_a_head_only_training_computes_imports_as_aux():
    """GoogLeNet's auxiliary heads: the model traced again in training mode, the head
    written where it taps the main path, its layers under the head's name."""
    model = import_models.AuxHeaded().eval()
    text = import_torch(model, (3, 8, 8))
    assert "aux1: aux {" in text and "pool: global_avgpool" in text
    assert text.index("aux1: aux {") < text.index("body:")
    graph = compile_source(text).graph
    assert [o.name for o in ir.network(graph).outputs] == ["out", "aux1"]
    lowered = lower_fx(graph)
    assert list(lowered.state_dict()) == list(model.state_dict())
    lowered.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(lowered.eval()(x), model(x))
        assert torch.equal(lowered.train()(x)["aux1"], model.train()(x)[1])


def test_layers_registered_in_another_order_than_called_are_declared():
    text = check_import(import_models.LateRegistered(), (3, 4, 4))
    assert "declare norm\n" in text


def test_a_function_is_not_numbered_like_a_module_of_its_scope():
    """A chunk written as two slices between layers `0` and `1`: the slices are named, so
    that neither takes the number `1` of the layer after them."""
    text = check_import(import_models.SplitNumbered(), (3, 4, 4))
    assert "slice: slice(0, 2)" in text and re.search(r"\n +1: +conv\(2, 3, pad = 1\)", text)


def test_slices_of_two_axes_at_once_import_as_one_slice_each():
    text = check_import(import_models.CentreCropped(), (1, 12, 12))
    assert "slice(1, 9, axis = 1)" in text and "slice(1, 9, axis = 2)" in text
    assert "conv_transpose(4, 2, stride = 2)" in text


def test_a_buffer_read_in_forward_is_named_in_the_refusal():
    model = import_models.LayerScaled()
    del model.gamma
    model.register_buffer("gamma", torch.ones(3, 1, 1))
    with pytest.raises(ImportFailure, match="forward\\(\\) reads the tensor `gamma` itself"):
        import_torch(model, (3, 4, 4))


def test_resnet_imports_with_residuals_blocks_and_repeats():
    """One bottleneck block for the identity and the projected instances, the projection
    under the condition that holds exactly where the model has one; a stage whose first
    block differs in its stride one repeat over the index."""
    text = check_import(reference_resnet.ResNet((2, 3, 1, 1), classes=10), (3, 64, 64))
    assert text.count("block ") == 1 and "block bottleneck(channels, channels2, stride = 1)" \
        in text
    assert "} skip downsample when stride != 1 or in.channels != channels2 {" in text
    assert "layer1:  repeat 2 { bottleneck(64, 256) }" in text
    assert "layer2:  repeat 3 as i { bottleneck(128, 512, stride = i == 0 ? 2 : 1) }" in text


def shipped_lines(spec: str, block: str) -> int:
    """The lines of a shipped spec and of the std.resnet block it calls."""
    stdlib = (ROOT / "archdsl/stdlib/resnet.arch").read_text()
    start = stdlib.index(f"block {block}(")
    return len((ROOT / spec).read_text().splitlines()) + \
        stdlib[start:stdlib.index("\n}\n", start) + 2].count("\n") + 1


def test_resnet50_imports_as_long_as_the_shipped_spec_and_its_block():
    text = import_torch(reference_resnet.resnet50(), (3, 224, 224), "resnet50")
    assert text.count("block ") == 1 and "skip downsample when " in text
    assert "layer3:  repeat 6 as i { bottleneck(256, 1024, stride = i == 0 ? 2 : 1) }" in text
    lines, shipped = len(text.splitlines()), shipped_lines("specs/resnet50.arch", "bottleneck")
    assert lines <= shipped, (lines, shipped)  # 31 lines against 21 + 20


def test_resnext_like_imports_with_one_grouped_block():
    text = check_import(import_models.ResNeXt(), (3, 32, 32))
    assert text.count("block ") == 1 and "groups = 4" in text
    assert "skip downsample when stride != 1 or in.channels != channels2 {" in text


def test_a_projection_no_condition_tells_apart_is_a_parameter_of_its_own():
    """Instances alike in every number, one of them projected: `project` says which."""
    text = check_import(import_models.chosen_projections(), (3, 16, 16))
    assert "block maybe_projected(project = false) {" in text and "skip when project {" in text
    assert "2: maybe_projected(project = true)" in text


def test_resnet50_imports_to_the_shipped_spec_s_costs():
    text = import_torch(reference_resnet.resnet50(), (3, 224, 224), "resnet50")
    ours, shipped = compile_source(text).graph, compile_file(ROOT / "specs/resnet50.arch").graph
    assert (total(ours).params, total(ours).macs) == (total(shipped).params, total(shipped).macs)
    keys = {n for n in ours if ours.nodes[n]["node"].op in ("conv", "batchnorm", "linear")}
    assert keys == {n for n in shipped if shipped.nodes[n]["node"].op
                    in ("conv", "batchnorm", "linear")}


def test_vgg_like_imports():
    text = check_import(import_models.VGG(), (3, 32, 32))
    assert "features: {" in text and "adaptive_avgpool(2)" in text


def test_mobilenet_v2_like_imports_with_conditional_residuals():
    text = check_import(import_models.MobileNetV2(), (3, 32, 32))
    assert text.count("block ") == 1 and "block inverted_residual(" in text and "relu6" in text
    assert "residual when stride == 1 and in.channels == channels2 {" in text


def test_densenet_like_imports_with_chained_concatenations():
    text = check_import(import_models.DenseNet(), (3, 16, 16))
    assert "block dense_layer {" in text and "denselayer3: dense_layer" in text
    assert "concat {" in text


def test_the_command_writes_a_spec_that_checks(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    assert main(["import", "import_models:vgg", "-o", "vgg.arch", "--input", "3x32x32"]) == 0
    assert "parameters" in capsys.readouterr().err
    assert compile_file(tmp_path / "vgg.arch").ok
    path = ROOT / "tests" / "import_models.py"
    assert main(["import", f"{path}:mobilenet_v2", "--input", "3x32x32"]) == 0
    assert capsys.readouterr().out.startswith("block ")


def test_a_layer_without_equivalent_names_its_path_and_type(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    assert main(["import", "import_models:unknown", "--input", "3x8x8"]) == 1
    err = capsys.readouterr().err
    assert "`shuffle` (torch.nn.modules.pixelshuffle.PixelShuffle) has no archdsl equivalent" \
        in err and "Traceback" not in err


@pytest.mark.parametrize("reference, message", [
    ("no_colon", "write MODULE:FACTORY"),
    ("no_such_module_here:f", "cannot import no_such_module_here"),
    ("import_models:missing", "has no function or class `missing`"),
    ("missing.py:f", "no such file"),
])
def test_bad_references_are_usage_errors(reference, message, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    assert main(["import", reference]) == 2
    assert message in capsys.readouterr().err


def renamed_keys(state: dict, renames: dict[str, str]) -> dict:
    """The model's state_dict under the spec's names: each key under a renamed module
    takes the spec's path of the deepest one."""
    def key(name):
        for path in sorted(renames, key=len, reverse=True):
            if name.startswith(path + "."):
                return renames[path] + name[len(path):]
        return name
    return {key(name): value for name, value in state.items()}


def test_module_names_no_label_holds_are_quoted_or_renamed_and_listed(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    assert main(["import", "import_models:oddly_named", "--input", "3x4x4"]) == 0
    text = capsys.readouterr().out
    renames = dict(re.findall(r"^#   (.+) -> (.+)$", text, re.MULTILINE))
    assert renames == {"layers.input._norm": "layers.input.norm",
                       "layers.block 2": "layers.block_2",
                       "layers.block 2._norm": "layers.block_2.norm",
                       "layers.007": "layers.layer_007", "type": "type_", "ñ": "n",
                       "_head": "head"}
    assert '"input":   oddly_named_unit' in text and '"in":     conv(8, 3' in text
    assert '"conv-1":' in text and 'skip {\n            "when": {' in text
    assert "input inputs: 3 x 4 x 4" in text and '"x":' in text  # `x` is a module's
    model = import_models.OddlyNamed().eval()
    lowered = lower_fx(compile_source(text).graph).eval()
    state = renamed_keys(model.state_dict(), renames)
    assert list(lowered.state_dict()) == list(state)
    lowered.load_state_dict(state)
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(lowered(x), model(x))


FACTORIES = """
import sys
from torch import nn


def needs(width, depth=2):
    return nn.Linear(width, 2)


class NeedsToo(nn.Module):
    def __init__(self, channels, *layers, **options):
        super().__init__()


def raises():
    raise ValueError("no weights here\\nsecond line")


def exits():
    sys.exit(3)


def exits_quietly():
    sys.exit()


def not_a_module():
    return 42
"""


@pytest.mark.parametrize("factory, message", [
    ("needs", "the factory needs arguments (width); give a factory that takes none"),
    ("NeedsToo", "the factory needs arguments (channels); give a factory that takes none"),
    ("raises", "the factory raised ValueError: no weights here"),
    ("exits", "the factory called sys.exit(3)"),
    ("exits_quietly", "the factory called sys.exit()"),
    ("not_a_module", "the factory returned an object of type int, not a torch.nn.Module"),
])
def test_a_factory_that_cannot_give_a_model_is_one_line_and_exit_1(factory, message, tmp_path,
                                                                    capsys):
    path = tmp_path / "factories.py"
    path.write_text(FACTORIES)
    assert main(["import", f"{path}:{factory}", "--input", "3x8x8"]) == 1
    out, err = capsys.readouterr()
    assert err == f"archdsl: error: cannot import {path}:{factory}: {message}\n" and out == ""


@pytest.mark.parametrize("source, message", [
    ("raise RuntimeError('no GPU here')", "raised RuntimeError: no GPU here"),
    ("import sys\nsys.exit(0)", "called sys.exit(0)"),
    ("import archdsl_no_such_dependency",
     "raised ModuleNotFoundError: No module named 'archdsl_no_such_dependency'"),
    ("def f(:\n    pass", "raised SyntaxError: "),
])
def test_a_module_whose_import_fails_is_one_line_and_exit_1(source, message, tmp_path, capsys,
                                                            monkeypatch):
    (tmp_path / "failing_model.py").write_text(source)
    monkeypatch.chdir(tmp_path)  # MODULE is found in the current directory
    assert main(["import", "failing_model:make", "--input", "3x8x8"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"archdsl: error: cannot import failing_model:make: importing "
                          f"failing_model {message}") and err.count("\n") == 1


def test_a_model_that_does_not_run_on_the_input_is_one_line_without_traceback(capsys,
                                                                            monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    assert main(["import", "import_models:vgg", "--input", "3x2x2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("archdsl: error: cannot import import_models:vgg: the model does not "
                          "run on a 3x2x2 input: RuntimeError: ") and err.count("\n") == 1


@pytest.mark.parametrize("name", ["resnet50", "vgg16", "mobilenet_v2", "densenet121"])
def test_torchvision_models_import(name):
    models = pytest.importorskip("torchvision.models")
    check_import(getattr(models, name)(), (3, 224, 224), name)


@pytest.mark.parametrize("dim", [-1, 2, -2])
def test_a_softmax_module_over_an_axis_counted_from_the_end_imports(dim):
    """nn.Softmax(dim=-1) is the spec's softmax over the last axis, as dim=2 is: its
    module is rebuilt with the axis counted from the front and compared so."""
    from torch import nn
    text = check_import(nn.Sequential(nn.Linear(8, 8), nn.Softmax(dim=dim)), (4, 8))
    assert f"softmax({dim - 1 if dim > 0 else dim})" in text
