"""Work that makes a network's weights first asks whether they fit: on a machine with too
little memory for them, build, export, train and `archdsl.lower` refuse in one line with
the figures and a fix (exit 2), before a weight is made and without writing a file,
rather than being killed by the system part-way through."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import archdsl  # noqa: E402
from archdsl.cli import main  # noqa: E402
from archdsl.errors import UsageError  # noqa: E402
from archdsl.runtime import device  # noqa: E402

from conftest import ROOT  # noqa: E402

SPEC = str(ROOT / "specs" / "m5.arch")  # a small one-network spec


@pytest.fixture
def params_bytes() -> int:
    return archdsl.stats(archdsl.compile_file(SPEC).graph).totals.param_bytes


def _machine(monkeypatch, ram: int) -> None:
    monkeypatch.setattr(device, "physical_memory", lambda: ram)


def test_export_refuses_weights_past_memory_and_writes_nothing(monkeypatch, tmp_path, capsys,
                                                               params_bytes):
    _machine(monkeypatch, params_bytes)  # one copy fits in the machine, not two and more
    out = tmp_path / "out"
    assert main(["export", SPEC, "--to", "pytorch", "-o", str(out)]) == 2
    error = capsys.readouterr().err
    assert "exporting m5 needs about" in error and "--set NAME=VALUE" in error
    assert not out.exists()


def test_export_goes_ahead_where_the_weights_fit(monkeypatch, tmp_path, params_bytes):
    _machine(monkeypatch, 100 * params_bytes)
    assert main(["export", SPEC, "--to", "pytorch", "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "weights.pt").exists()


def test_lower_raises_before_making_weights(monkeypatch, params_bytes):
    graph = archdsl.compile_file(SPEC).graph
    _machine(monkeypatch, params_bytes // 2)
    with pytest.raises(UsageError, match="lowering m5 needs about"):
        archdsl.lower(graph)
    _machine(monkeypatch, 100 * params_bytes)
    made = sum(p.numel() for p in archdsl.lower(graph).parameters())
    assert made == archdsl.stats(graph).totals.params


def test_a_batch_past_memory_is_told_to_shrink_the_batch(monkeypatch, tmp_path, capsys,
                                                        params_bytes):
    _machine(monkeypatch, 4 * params_bytes)
    code = main(["build", SPEC, "-o", str(tmp_path / "b"), "--batch", "100000"])
    assert code == 2
    error = capsys.readouterr().err
    assert "activations for a batch of 100000" in error and "try a smaller --batch\n" in error
    assert not (tmp_path / "b").exists()
