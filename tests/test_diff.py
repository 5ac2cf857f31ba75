"""`archdsl diff`: the block instances and layers two networks differ in, and the cost
deltas per stage and in total."""
from __future__ import annotations

import json

from archdsl import ir
from archdsl.cli import main
from archdsl.compile import compile_file

from conftest import REFERENCE, ROOT


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_resnet50_against_resnext50_changes_every_bottleneck(capsys):
    code, out, _ = run(capsys, "diff", ROOT / "specs" / "resnet50.arch",
                       ROOT / "specs" / "resnext50_32x4d.arch", "--format", "json")
    assert code == 1
    report = json.loads(out)
    resnet50 = compile_file(ROOT / "specs" / "resnet50.arch").graph
    instances = [path for path, scope in ir.network(resnet50).scopes.items()
                 if scope.calls and path]
    assert [c["name"] for c in report["changes"]] == instances  # the 16 bottlenecks
    assert len(instances) == 16 and {c["kind"] for c in report["changes"]} == {"changed"}
    reference = json.loads(REFERENCE.read_text())["models"]
    delta = reference["resnext50_32x4d"]["params"] - reference["resnet50"]["params"]
    assert report["totals"]["delta"]["params"] == delta == -528_128
    assert [s["stage"] for s in report["stages"]] == ["layer1", "layer2", "layer3", "layer4"]
    assert sum(s["b"]["params"] - s["a"]["params"] for s in report["stages"]) == delta


def test_one_spec_at_two_settings(capsys):
    code, out, _ = run(capsys, "diff", f"{ROOT / 'specs' / 'cifar_resnet.arch'}:cifar_resnet",
                       "--set-b", "depth=32")
    assert code == 1
    added = [line.split(":")[0] for line in out.splitlines() if line.startswith("+ ")]
    assert added == ["+ layer1.3", "+ layer1.4", "+ layer2.3", "+ layer2.4", "+ layer3.3",
                     "+ layer3.4"]
    params = [sum(g.nodes[n]["cost"].params for n in g) for g in (
        compile_file(ROOT / "specs" / "cifar_resnet.arch", network="cifar_resnet",
                     settings={"depth": d}).graph for d in (20, 32))]
    assert f"{params[0]:,} → {params[1]:,} (+{params[1] - params[0]:,})" in out


def test_a_changed_layer_outside_blocks_and_identical_networks(capsys, tmp_path):
    base = "network n(classes = 10) {{ input x: 3 x 8 x 8; c: conv(4, 3); flatten; fc: linear({}) }}"
    a, b = tmp_path / "a.arch", tmp_path / "b.arch"
    a.write_text(base.format("classes"))
    b.write_text(base.format("classes * 2"))
    code, out, _ = run(capsys, "diff", a, b)
    assert code == 1
    assert "~ fc: linear 10 -> 10\n      linear 20 -> 20\n" in out
    assert [line[:4] for line in out.splitlines() if line[:1] in "~+-" and line[1:2] == " "] \
        == ["~ fc"]
    code, out, _ = run(capsys, "diff", a, a, "--set-b", "classes=10")
    assert code == 0 and "no differences" in out


def test_diff_usage_errors(capsys, tmp_path):
    spec = ROOT / "specs" / "resnet18.arch"
    assert run(capsys, "diff", spec)[0] == 2  # nothing to compare with
    broken = tmp_path / "broken.arch"
    broken.write_text("network n { input x: 3 x 8 x 8; conv(4, 9) }")
    code, _, err = run(capsys, "diff", spec, broken)
    assert code == 2 and "E0303" in err and "B (" in err
