"""`archdsl import`: a traced PyTorch model becomes a spec that checks, with the model's
parameters, MACs and state_dict keys, and whose lowered module gives the model's outputs
with its weights. Hand-written models of torchvision's structure here; the real
torchvision models where torchvision is installed."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from archdsl import compile_file, compile_source  # noqa: E402
from archdsl.backends.lower_fx import lower_fx  # noqa: E402
from archdsl.cli import main  # noqa: E402
from archdsl.passes.count_costs import total  # noqa: E402
from archdsl.tools.import_torch import import_torch  # noqa: E402

import import_models  # noqa: E402
import reference_resnet  # noqa: E402
from conftest import ROOT  # noqa: E402


def macs_of(model, shape) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
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


def test_resnet_imports_with_residuals_blocks_and_repeats():
    text = check_import(reference_resnet.ResNet((2, 3, 1, 1), classes=10), (3, 64, 64))
    assert "} skip downsample {" in text and "block bottleneck(channels, channels2)" in text
    assert 'repeat 2 as i { "{i + 1}": bottleneck(128, 512) }' in text


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
    assert "block inverted_residual(" in text and "residual {" in text and "relu6" in text


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


@pytest.mark.parametrize("name", ["resnet50", "vgg16", "mobilenet_v2", "densenet121"])
def test_torchvision_models_import(name):
    models = pytest.importorskip("torchvision.models")
    check_import(getattr(models, name)(), (3, 224, 224), name)
