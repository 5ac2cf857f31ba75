"""`archdsl debug` and `archdsl train --debug`: per-layer statistics, dead units, and the
place in the spec where the first non-finite value appears.

The injected faults are the specs of tests/data/faults/: in each, the line of the layer
that makes the first NaN or infinity is marked `# fault`, and each block call on the way
to it `# call N`, the innermost 1. The expected place is read from those marks, not from a recorded output:
a located report points, as a diagnostic does, at the layer's call (after its label) or
at a `param` statement, and notes each block call at the called block's name.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from archdsl.cli import main
from archdsl.runtime.debug import Moments

from conftest import ROOT

FAULTS = ROOT / "tests" / "data" / "faults"
SHAPES = ["--data", "shapes:64"]

# spec, what it gets wrong, options for both commands, options for debug only, for train only
CASES = [
    ("log_negative", "log", SHAPES, [], []),
    ("div_by_zero", "div", SHAPES, [], []),
    ("fp16_overflow", "inf", [*SHAPES, "--amp", "fp16"], [], []),
    ("huge_init", "inf", SHAPES, [], []),
    ("sqrt_negative", "sqrt", SHAPES, [], []),
    ("pow_negative", "pow", SHAPES, [], []),
    ("reciprocal_zero", "reciprocal", SHAPES, [], []),
    ("norm_of_constant", "native_layer_norm", SHAPES, [], []),
    ("exp_overflow", "exp", SHAPES, [], []),
    ("sqrt_at_zero", "SqrtBackward0", SHAPES, [], []),
    ("rsqrt_zero", "rsqrt", ["--data", "waves:64"], [], []),
    ("diverging_lr", "weight", SHAPES, ["--weights", "DIVERGED"],
     ["--lr", "1e38", "--optimizer", "sgd"]),
]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def marked(name: str):
    """(place of the `# fault` line, places of the `# call N` lines, innermost first) of a
    fault spec, as `path:line:column` of the call after its label (a `param` statement:
    its start)."""
    path = f"tests/data/faults/{name}.arch"
    fault, calls = None, []
    for number, line in enumerate((ROOT / path).read_text().splitlines(), 1):
        code = line.partition("#")[0]
        if "# fault" in line or "# call" in line:
            column = len(code) - len(code.lstrip()) + 1 if code.lstrip().startswith("param ") \
                else code.index(": ") + 3
            place = f"{path}:{number}:{column}"
            if "# fault" in line:
                fault = place
            else:
                calls.append((int(line.partition("# call ")[2].split()[0]), place))
    return fault, [place for _, place in sorted(calls)]


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """Weights of the one-layer spec trained at a learning rate of 1e38: not finite."""
    out = tmp_path_factory.mktemp("diverged")
    assert main(["train", str(FAULTS / "diverging_lr.arch"), *SHAPES, "--epochs", "1",
                 "--batch-size", "16", "--lr", "1e38", "--optimizer", "sgd", "--quiet",
                 "--out", str(out)]) == 0
    return out / "last.pt"


def _options(options, diverged):
    return [str(diverged) if option == "DIVERGED" else option for option in options]


@pytest.mark.parametrize("name,made_by,common,debug_only,train_only", CASES,
                         ids=[case[0] for case in CASES])
def test_debug_locates_the_fault(name, made_by, common, debug_only, train_only, capsys,
                                 in_root, request):
    fault, calls = marked(name)
    weights = request.getfixturevalue("diverged") if "DIVERGED" in debug_only else None
    code, out, _ = run(capsys, "debug", f"tests/data/faults/{name}.arch", *common,
                       *_options(debug_only, weights), "--check")
    assert code == 1, out
    report = out[out.index("\nerror: ") + 1:]
    assert report.splitlines()[1].strip() == f"--> {fault}"
    chain = [line for line in report.splitlines() if "called at" in line]
    assert [line.rpartition(" ")[2] for line in chain] == calls
    assert made_by in report


@pytest.mark.parametrize("name,made_by,common,debug_only,train_only", CASES,
                         ids=[case[0] for case in CASES])
def test_train_debug_stops_at_the_fault(name, made_by, common, debug_only, train_only,
                                        capsys, in_root, tmp_path):
    fault, calls = marked(name)
    code, _, err = run(capsys, "train", f"tests/data/faults/{name}.arch", *common, *train_only,
                       "--epochs", "2", "--batch-size", "16", "--debug", "--quiet",
                       "--out", tmp_path / "run")
    assert code == 2, err
    assert "training stopped at epoch 1, step " in err and "(--debug)" in err
    lines = err.splitlines()
    assert f" --> {fault}" in lines
    assert [line.rpartition(" ")[2] for line in lines if "called at" in line] == calls


def test_at_least_ten_faults():
    assert len(CASES) >= 10 and all(marked(case[0])[0] for case in CASES)


def test_the_fault_is_in_the_json_report_with_its_block_calls(capsys, in_root):
    fault, calls = marked("exp_overflow")
    code, out, _ = run(capsys, "debug", "tests/data/faults/exp_overflow.arch", *SHAPES,
                       "--format", "json")
    assert code == 0
    found = json.loads(out)["non_finite"]
    assert f"{found['file']}:{found['line']}:{found['column']}" == fault
    assert [f"{c['file']}:{c['line']}:{c['column']}" for c in found["calls"]] == calls[::-1]
    assert found["layer"] == "g.s.e" and found["stage"] == "forward" and found["kind"] == "inf"
    assert found["inner"] == ["aten.exp"] and "exp overflows" in found["help"]


def test_fp16_overflow_is_no_fault_in_float32(capsys, in_root, tmp_path):
    """The gain of a million overflows float16 only: in float32 both commands go on."""
    spec = "tests/data/faults/fp16_overflow.arch"
    code, out, _ = run(capsys, "debug", spec, *SHAPES, "--check")
    assert code == 0 and "non-finite values: none" in out
    assert run(capsys, "train", spec, *SHAPES, "--epochs", "1", "--batch-size", "16",
               "--debug", "--quiet", "--out", tmp_path / "run")[0] == 0


HEALTHY = """
network healthy {
    input image: 3 x 16 x 16
    c: conv(4, 3)
    live: relu
    from c
    a: abs
    n: neg
    dead: relu            # relu(-|x|) is zero everywhere: every unit dead
    z: mul(0.0)
    add(live, z)
    global_avgpool
    flatten
    head: linear(6)
}
"""


def test_statistics_and_dead_units(capsys, tmp_path):
    spec = tmp_path / "healthy.arch"
    spec.write_text(HEALTHY)
    code, out, _ = run(capsys, "debug", spec, *SHAPES, "--batches", "2", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["batches"] == 2 and report["non_finite"] is None
    layers = {layer["layer"]: layer for layer in report["layers"]}
    assert layers["dead"]["dead_units"] == [0, 1, 2, 3] and layers["dead"]["units"] == 4
    assert layers["live"]["dead_units"] == []  # a conv of noisy images is positive somewhere
    zero = layers["z"]["activation"]
    assert (zero["mean"], zero["std"], zero["max_abs"], zero["zero_fraction"]) == (0, 0, 0, 1)
    assert 0.2 < layers["live"]["activation"]["zero_fraction"] < 0.8
    assert layers["n"]["activation"]["max_abs"] == layers["a"]["activation"]["max_abs"]
    # cross-entropy's gradient of the logits sums to zero over the classes of each example
    assert abs(layers["head"]["gradient"]["mean"]) < 1e-7
    assert layers["head"]["gradient"]["max_abs"] > 0
    # `z` reaches the loss through the add; `dead` only through `z`, which multiplies by
    # 0; and relu passes no gradient where it gave zero, which for `dead` is everywhere
    assert layers["z"]["gradient"]["max_abs"] > 0
    assert layers["dead"]["gradient"]["max_abs"] == layers["n"]["gradient"]["max_abs"] == 0


def test_text_report(capsys, tmp_path):
    spec = tmp_path / "healthy.arch"
    spec.write_text(HEALTHY)
    code, out, _ = run(capsys, "debug", spec, *SHAPES, "--batches", "1")
    assert code == 0
    assert out.startswith("healthy on shapes:64: 1 batch of 16, train mode, float32, cpu")
    assert "  dead (relu): 4 of 4 units: 0, 1, 2, 3" in out.splitlines()
    assert out.rstrip().endswith("non-finite values: none, forward or backward, in 1 batch")


def test_moments_match_torch():
    first, second = torch.tensor([0.0, 1.0, -3.0]), torch.tensor([[2.0, 0.0], [float("nan"), 5.0]])
    moments = Moments()
    moments.add(first)
    moments.add(second)
    finite = torch.tensor([0.0, 1.0, -3.0, 2.0, 0.0, 5.0], dtype=torch.float64)
    assert math.isclose(moments.mean, finite.mean().item())
    assert math.isclose(moments.std, finite.std(unbiased=False).item())
    assert moments.largest == 5.0 and moments.nans == 1 and moments.infs == 0
    assert moments.zero_fraction == 2 / 7


def test_train_debug_without_a_fault_trains(capsys, in_root, tmp_path):
    code, out, err = run(capsys, "train", "tests/data/faults/diverging_lr.arch", *SHAPES,
                         "--epochs", "1", "--batch-size", "16", "--debug",
                         "--out", tmp_path / "run")
    assert code == 0, err
    assert (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("argv,message", [
    (["debug", "missing.arch"], "no such file: missing.arch"),
    (["debug", "tests/data/faults/log_negative.arch", "--data", "nowhere"],
     "unknown data source `nowhere`"),
    (["debug", "tests/data/faults/log_negative.arch", "--batches", "0"],
     "--batches must be at least 1"),
    (["debug", "tests/data/faults/log_negative.arch", "--weights", "missing.pt"],
     "no weights file at missing.pt"),
    (["debug", "tests/data/faults/rsqrt_zero.arch", *SHAPES], "for a 1-D signal use --data waves"),
])
def test_bad_input_is_a_usage_error(argv, message, capsys, in_root):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_weights_of_another_network_are_refused(capsys, in_root, diverged):
    code, _, err = run(capsys, "debug", "tests/data/faults/log_negative.arch", *SHAPES,
                       "--weights", diverged)
    assert code == 2
    assert "does not fit log_negative" in err and "head.weight is (6, 768), not (6, 4)" in err


def test_a_spec_with_errors_is_reported_as_check_does(capsys, tmp_path):
    spec = tmp_path / "broken.arch"
    spec.write_text("network broken {\n    input x: 3 x 8 x 8\n    conv(4, 3, padding = 1)\n}\n")
    code, _, err = run(capsys, "debug", spec)
    assert code == 1 and "error[E0202]" in err and "Traceback" not in err


def test_non_finite_data_is_located_at_the_input(tmp_path):
    """A NaN in the data is no layer's doing: the report names the input statement."""
    from archdsl import compile_source
    from archdsl.backends.lower_fx import lower_fx
    from archdsl.backends.report_debug import render_fault
    from archdsl.runtime.debug import observe
    graph = compile_source("network n {\n    input image: 3 x 8 x 8\n    flatten\n"
                           "    linear(6)\n}\n", "n.arch").graph
    x = torch.zeros(2, 3, 8, 8)
    x[1, 0, 2, 2] = float("nan")
    probe, _ = observe(graph, lower_fx(graph), [(x, torch.tensor([0, 1]))])
    fault = probe.fault
    assert (fault.layer, fault.stage, fault.kind, fault.count) == ("image", "input", "NaN", 1)
    assert render_fault(graph, fault).splitlines()[1] == " --> n.arch:2:5"
    assert probe.layers["image"].activation.nans == 1
