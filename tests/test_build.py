"""`archdsl build`: what it writes, that the weights load back, and that a failed build
writes nothing."""
from __future__ import annotations


import pytest

torch = pytest.importorskip("torch")

import archdsl  # noqa: E402
from archdsl.backends.layout import can_layout  # noqa: E402
from archdsl.cli import main  # noqa: E402

from conftest import ROOT  # noqa: E402


def test_build_writes_weights_code_stats_and_diagram(tmp_path, capsys, in_root):
    out = tmp_path / "r18"
    assert main(["build", "specs/resnet18.arch", "-o", str(out), "--input", "3x64x64",
                 "--set", "classes=10", "--device", "cpu"]) == 0
    summary = capsys.readouterr().out
    assert "built resnet18 on cpu (fp32)" in summary and "outputs out 10" in summary
    expected = {".archdsl-manifest.json", "weights.pt", "forward.py", "stats.md"} | (
        {"diagram.svg"} if can_layout("svg") else set())
    assert {p.name for p in out.iterdir()} == expected
    model = archdsl.load(ROOT / "specs" / "resnet18.arch", classes=10)
    model.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
    assert "def forward(self, image):" in (out / "forward.py").read_text()
    assert "| `layer1.0.conv1` | conv 3x3 p1 | 64x16x16 |" in (out / "stats.md").read_text()


def test_build_checks_auxiliary_outputs_in_training_mode(tmp_path, capsys, in_root):
    assert main(["build", "specs/googlenet.arch", "-o", str(tmp_path / "g"),
                 "--set", "classes=5", "--batch", "1"]) == 0
    assert "aux1 5 (train)" in capsys.readouterr().out


def test_failed_build_writes_nothing(tmp_path, capsys, in_root):
    out = tmp_path / "broken"
    code = main(["build", "tests/invalid/residual_missing_projection.arch", "-o", str(out)])
    assert code == 1 and "error[E0301]" in capsys.readouterr().err
    assert not out.exists()


def test_build_on_missing_cuda_is_a_usage_error(tmp_path, capsys, in_root):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["build", "specs/resnet18.arch", "--device", "cuda", "-o", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_a_diagram_that_cannot_be_drawn_does_not_stop_the_build(tmp_path, capsys, monkeypatch,
                                                                in_root):
    from archdsl.backends import layout

    def too_slow(source, fmt, timeout):
        raise layout.LayoutError(f"Graphviz's dot did not finish within {timeout:g} s")
    monkeypatch.setattr(layout, "layout", too_slow)
    out = tmp_path / "r18"
    assert main(["build", "specs/resnet18.arch", "-o", str(out), "--input", "3x32x32",
                 "--dot-timeout", "0.5"]) == 0
    assert {p.name for p in out.iterdir()} == {".archdsl-manifest.json", "weights.pt",
                                               "forward.py", "stats.md"}
    assert "warning: no diagram.svg: Graphviz's dot did not finish within 0.5 s" in \
        capsys.readouterr().err


def test_a_rebuild_replaces_the_whole_directory(tmp_path, capsys, in_root):
    out = tmp_path / "r18"
    assert main(["build", "specs/resnet18.arch", "-o", str(out), "--input", "3x32x32"]) == 0
    first = (out / "weights.pt").read_bytes()
    assert main(["build", "specs/resnet18.arch", "-o", str(out), "--input", "3x32x32",
                 "--set", "classes=7"]) == 0
    assert (out / "weights.pt").read_bytes() != first and "| 7 |" in (out / "stats.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r18"]
    (out / "mine.txt").write_text("keep")
    assert main(["build", "specs/resnet18.arch", "-o", str(out), "--input", "3x32x32"]) == 2
    assert "archdsl did not write (mine.txt)" in capsys.readouterr().err
