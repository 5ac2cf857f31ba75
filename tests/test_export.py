"""`archdsl export`: the standalone PyTorch file runs with torch alone and gives the lowered
module's outputs exactly; batch norm folding stays within 1e-5; ONNX (checked with
onnxruntime) and torch.export programs give torch's outputs."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from archdsl import ir  # noqa: E402
from archdsl import compile_file  # noqa: E402
from archdsl.backends.export_pytorch import constructor, export_pytorch  # noqa: E402
from archdsl.backends.lower_fx import lower_fx  # noqa: E402
from archdsl.cli import main  # noqa: E402
from archdsl.runtime.export import standalone  # noqa: E402
from archdsl.runtime.inputs import example_inputs  # noqa: E402

from conftest import BUILD_SETTINGS, ROOT  # noqa: E402


def small(name: str) -> list[str]:
    """specs/NAME.arch with the --set of conftest.BUILD_SETTINGS (the language models at
    their recorded small configurations)."""
    sets = [f"{k}={_spelt(v)}" for k, v in BUILD_SETTINGS[name].items()]
    return [f"specs/{name}.arch", *(a for item in sets for a in ("--set", item))]


def _spelt(value) -> str:
    """A value as `--set` reads it: true, 2, "text", (a, b)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_spelt, value)) + ")"
    return str(value)

# Shipped specs, made small where they allow it: residual blocks, auxiliary heads (eval
# mode), attention with a class token and position embedding, dense concatenations,
# window attention and patch merging, layer scale and stochastic depth, crops.
CASES = {
    "resnet18": ["specs/resnet18.arch", "--input", "3x64x64", "--set", "classes=10"],
    "googlenet": ["specs/googlenet.arch", "--set", "classes=7"],
    "vit": ["specs/vit_b_16.arch", "--set", "size=32", "--set", "patch=8", "--set", "layers=2",
            "--set", "heads=2", "--set", "width=32", "--set", "mlp_dim=64",
            "--input", "3x32x32"],
    "densenet121": ["specs/densenet121.arch", "--input", "3x64x64"],
    "swin_t": ["specs/swin_t.arch", "--input", "3x64x64", "--set", "embed=24"],
    "convnext_tiny": ["specs/convnext_tiny.arch", "--input", "3x64x64"],
    "unet": ["specs/unet.arch", "--input", "1x188x188"],
    "convnextv2_atto": ["specs/convnextv2_atto.arch", "--input", "3x64x64"],
    "tiny_llama": ["tests/data/tiny_llama.arch"],
    **{name: small(name) for name in ("gpt2", "llama", "mixtral", "mamba", "ddpm_unet")},
}  # tied heads, grouped-query attention, routed experts, the selective scan, two inputs

RUNNER = textwrap.dedent("""\
    # Runs with `python -I -S`: no archdsl, torch found by its own directory only.
    import importlib.util, sys
    sys.path.append(sys.argv[1])
    try:
        import archdsl
    except ModuleNotFoundError:
        print("archdsl is not importable here")
    else:
        raise SystemExit("archdsl must not be importable here")
    import torch
    for directory in sys.argv[2:]:
        name = directory.rsplit("/", 1)[-1]
        spec = importlib.util.spec_from_file_location(name, f"{directory}/{name}.py")
        code = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(code)
        cls = next(v for v in vars(code).values() if isinstance(v, type)
                   and issubclass(v, torch.nn.Module) and v.__module__ == name
                   and v.__name__.lower().replace("_", "") == name.replace("_", ""))
        model = cls()
        model.load_state_dict(torch.load(f"{directory}/weights.pt", weights_only=True))
        model.eval()
        inputs = torch.load(f"{directory}/inputs.pt", weights_only=True)
        with torch.no_grad():
            torch.save(model(*inputs), f"{directory}/outputs.pt")
    """)


def _graph(arguments):
    from archdsl.cli import build_parser, spec_options
    args = build_parser().parse_args(["check", *arguments])
    return compile_file(ROOT / args.files[0], **spec_options(args)).graph


def test_exported_file_runs_without_archdsl_and_equals_the_lowered_module(tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.chdir(ROOT)
    expected, directories = {}, []
    for case, arguments in CASES.items():
        graph = _graph(arguments)
        name = ir.network(graph).name
        out = tmp_path / name
        assert main(["export", *arguments, "-o", str(out)]) == 0
        assert sorted(p.name for p in out.iterdir()) == [".archdsl-manifest.json", f"{name}.py",
                                                         "weights.pt"]
        lowered = lower_fx(graph)
        weights = torch.load(out / "weights.pt", weights_only=True)
        assert list(weights) == list(lowered.state_dict()), case  # same keys, same order
        lowered.load_state_dict(weights)
        inputs = example_inputs(graph, seed=len(directories))
        torch.save(inputs, out / "inputs.pt")
        with torch.no_grad():
            expected[name] = lowered.eval()(*inputs)
        directories.append(str(out))
    (tmp_path / "runner.py").write_text(RUNNER)
    site = os.path.dirname(os.path.dirname(torch.__file__))
    run = subprocess.run([sys.executable, "-I", "-S", str(tmp_path / "runner.py"), site,
                          *directories], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ""},
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "archdsl is not importable here" in run.stdout
    for name, want in expected.items():
        got = torch.load(tmp_path / name / "outputs.pt", weights_only=True)
        assert got.shape == want.shape and torch.equal(got, want), name


def test_the_file_reads_as_plain_torch_with_the_spec_names():
    source = export_pytorch(_graph(CASES["resnet18"])).source
    assert "class Resnet18(nn.Module):" in source and "archdsl." not in source.split('"""')[2]
    assert "self.layer2 = nn.ModuleList([" in source
    assert '"downsample": nn.ModuleList([' in source
    assert "layer2_0_downsample = self.layer2[0].downsample[0](layer1_1)" in source
    assert "layer1_0 += x" in source  # torchvision's in-place residual add
    assert "getattr(self." not in source


def test_custom_modules_travel_with_their_source():
    source = export_pytorch(_graph(CASES["swin_t"])).source
    for needed in ("class ShiftedWindowAttention", "def shifted_window_attention",
                   "class PatchMerging", "class StochasticDepth"):
        assert needed in source
    assert "class SelfAttention" not in source  # only what the network uses


def test_auxiliary_heads_are_computed_in_training_mode_only():
    graph = _graph(CASES["googlenet"])
    lowered = lower_fx(graph)
    exported = export_pytorch(graph, lowered)
    module = standalone(exported)
    inputs = example_inputs(graph)
    torch.manual_seed(0)
    module.train()
    lowered.train()
    torch.manual_seed(1)
    got = module(*inputs)
    torch.manual_seed(1)
    want = lowered(*inputs)
    assert list(got) == list(want) == ["out", "aux1", "aux2"]
    assert all(got[k].shape == want[k].shape for k in want)
    assert "if not self.training:" in exported.source


@pytest.mark.parametrize("case", ["resnet18", "densenet121", "convnext_tiny"])
def test_folded_batch_norms_give_the_same_outputs_within_1e_5(case):
    graph = _graph(CASES[case])
    lowered = lower_fx(graph)
    generator = torch.Generator().manual_seed(3)
    for module in lowered.modules():  # trained-looking statistics, not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.2)
            module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
            with torch.no_grad():
                module.weight.copy_(torch.rand(shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(shape, generator=generator) * 0.1)
    folded = export_pytorch(graph, lowered, fold_bn=True)
    module = standalone(folded)
    inputs = example_inputs(graph)
    with torch.no_grad():
        want, got = lowered.eval()(*inputs), module(*inputs)
    assert (got - want).abs().max() <= 1e-5 * max(1.0, want.abs().max())
    kept = sum(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())
    before = sum(isinstance(m, torch.nn.BatchNorm2d) for m in lowered.modules())
    if case == "resnet18":
        assert kept == 0 and before == 20 and "BatchNorm" not in folded.source
    else:  # pre-activation batch norms (DenseNet) follow no conv and stay
        assert kept < before or before == 0


def test_constructors_rebuild_torch_modules():
    assert constructor(torch.nn.Conv2d(3, 8, 3, 2, 1, bias=False)) == \
        "nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)"
    assert constructor(torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)) == \
        "nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)"
    assert constructor(torch.nn.LayerNorm(16, eps=1e-6)) == "nn.LayerNorm((16,), eps=1e-06)"


def test_export_usage_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "two.arch").write_text("network a { input x: 4; linear(2) }\n"
                                       "network b { input x: 4; linear(3) }\n")
    assert main(["export", "two.arch"]) == 2
    assert "--network NAME" in capsys.readouterr().err
    (tmp_path / "dir").mkdir()
    assert main(["export", "two.arch", "--network", "a", "--to", "torch-export",
                 "-o", "dir"]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["export", str(ROOT / "tests/invalid/residual_missing_projection.arch"),
                 "-o", "bad"]) == 1
    assert not (tmp_path / "bad").exists()


def test_torch_export_program_loads_and_matches(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = [str(ROOT / "specs/resnet18.arch"), "--input", "3x32x32", "--set", "classes=5"]
    assert main(["export", *arguments, "--to", "torch-export", "-o", "r.pt2"]) == 0
    graph = _graph(["specs/resnet18.arch", "--input", "3x32x32", "--set", "classes=5"])
    program = torch.export.load(str(tmp_path / "r.pt2")).module()
    lowered = lower_fx(graph)
    # the .pt2 holds freshly initialised weights: load them into the lowered module
    lowered.load_state_dict({k: v for k, v in program.state_dict().items()})
    inputs = example_inputs(graph, batch=3)  # another batch size than the example's
    with torch.no_grad():
        assert torch.allclose(program(*inputs), lowered.eval()(*inputs), atol=1e-5)


ONNX_CASES = {  # a plain CNN; channel shuffle and attention's fused inference kernel,
    # which ONNX has no operators for; shifted windows
    "resnet18": ["specs/resnet18.arch", "--input", "3x32x32", "--set", "classes=5"],
    "shufflenet": ["specs/shufflenet_v2_x1_0.arch", "--input", "3x64x64"],
    "vit": CASES["vit"],
    "swin_t": CASES["swin_t"],
    "tiny_llama": CASES["tiny_llama"],  # token ids, RoPE, causal sdpa, the algebra
    **{name: CASES[name] for name in ("gpt2", "llama", "mixtral", "mamba", "ddpm_unet")},
}


@pytest.mark.parametrize("case", ONNX_CASES)
def test_onnx_export_matches_torch_in_onnxruntime(case, tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    arguments = ONNX_CASES[case]
    graph = _graph(arguments)
    exported = export_pytorch(graph)
    from archdsl.runtime.export import _onnx
    data = _onnx(standalone(exported), example_inputs(graph), graph)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inputs = example_inputs(graph, batch=3, seed=5)  # another batch size than the example's
    (got,) = session.run(None, {name: value.numpy()
                                for name, value in zip(ir.network(graph).inputs, inputs)})
    with torch.no_grad():
        want = standalone(exported)(*inputs)
    assert got.shape == tuple(want.shape)
    assert torch.allclose(torch.from_numpy(got), want, atol=1e-4, rtol=1e-4)
    if case == "resnet18":
        assert main(["export", str(ROOT / arguments[0]), *arguments[1:], "--to", "onnx"]) == 0
        assert (tmp_path / "resnet18.onnx").stat().st_size > 1000
        assert "Warning" not in capsys.readouterr().err


@pytest.mark.parametrize("to", ["onnx", "torch-export"])
def test_a_module_the_exporter_refuses_is_one_line_and_exit_1(to, tmp_path, capsys, monkeypatch):
    if to == "onnx":
        pytest.importorskip("onnx")
    from torch._dynamo.exc import Unsupported
    monkeypatch.chdir(tmp_path)
    reason = "Exporting the operator 'aten::x' is not supported."

    def refuse(*args, **kwargs):
        error = torch.onnx.errors.OnnxExporterError if to == "onnx" else Unsupported
        raise error(reason + "\nTorch IR graph ...")
    monkeypatch.setattr(torch.onnx if to == "onnx" else torch.export, "export", refuse)
    arguments = ONNX_CASES["resnet18"]
    assert main(["export", str(ROOT / arguments[0]), *arguments[1:], "--to", to]) == 1
    others = " or ".join(f"--to {t}" for t in ("pytorch", "onnx", "torch-export") if t != to)
    assert capsys.readouterr().err.strip() == (
        f"archdsl: error: cannot export resnet18 to {to}: {reason} (try {others})")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("body", ["scale; conv(4, 1)", "features: { scale; conv(4, 1) }; s1: scale",
                                  "stage: repeat 2 { scale }"])
def test_layer_scales_by_number_export_and_equal_the_build(body, tmp_path):
    from archdsl import compile_source
    graph = compile_source(f"network t {{ input x: 4 x 6 x 6; {body} }}").graph
    lowered = lower_fx(graph)
    with torch.no_grad():
        for tensor in lowered.state_dict().values():
            tensor.uniform_(0.5, 1.5)
    exported = export_pytorch(graph)
    module = standalone(exported)
    module.load_state_dict(lowered.state_dict())
    x = torch.randn(2, 4, 6, 6)
    assert torch.equal(module(x), lowered(x))
    try:
        import onnx  # noqa: F401
    except ModuleNotFoundError:
        return
    from archdsl.runtime.export import _onnx
    assert len(_onnx(module, example_inputs(graph), graph)) > 100


def test_a_segmentation_head_resized_to_its_input_exports_and_equals_the_build():
    from archdsl import compile_source
    graph = compile_source("""network seg {
    input image: 3 x 25 x 31
    f: conv(4, 3, stride = 2, pad = 1)
    r: resize(9, 11)
    resize_like(r, image)
}""").graph
    lowered = lower_fx(graph)
    module = standalone(export_pytorch(graph))
    module.load_state_dict(lowered.state_dict())
    x = torch.randn(2, 3, 25, 31)
    assert torch.equal(module(x), lowered(x))
    y = torch.randn(1, 3, 40, 50)  # another size: resized to it, as torchvision's FCN does
    assert module(y).shape == (1, 4, 40, 50)
    try:
        import onnx  # noqa: F401
    except ModuleNotFoundError:
        return
    from archdsl.runtime.export import _onnx
    assert len(_onnx(module, example_inputs(graph), graph)) > 100


@pytest.mark.parametrize("to", ["onnx", "torch-export"])
def test_an_exported_language_model_runs_at_another_length(to, tmp_path, monkeypatch):
    """Exported at its checked length (16), Llama runs at 5 tokens: the length is a
    dynamic axis of the ONNX graph and of the exported program. It is causal, so its
    logits for a 5-token prefix are those of the first 5 positions of 16 tokens."""
    if to == "onnx":
        pytest.importorskip("onnx")
        ort = pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    arguments = CASES["llama"]
    assert main(["export", str(ROOT / arguments[0]), *arguments[1:], "--to", to]) == 0
    if to == "onnx":
        session = ort.InferenceSession(str(tmp_path / "llama.onnx"),
                                       providers=["CPUExecutionProvider"])

        def run(ids):
            return torch.from_numpy(session.run(None, {"input_ids": ids.numpy()})[0])
    else:
        program = torch.export.load(str(tmp_path / "llama.pt2")).module()

        def run(ids):
            with torch.no_grad():
                return program(ids)
    ids = torch.randint(0, 128, (2, 16))
    whole, prefix = run(ids), run(ids[:, :5])
    assert whole.shape == (2, 16, 128) and prefix.shape == (2, 5, 128)
    assert torch.allclose(prefix, whole[:, :5], atol=1e-4, rtol=1e-4)
