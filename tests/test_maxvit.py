"""specs/maxvit_t.arch equals torchvision's maxvit_t, checked without torchvision against
tests/data/maxvit_oracle.json (recorded by tests/data/make_maxvit_oracle.py, whose
"_about" gives the fill): state_dict keys, shapes, dtypes and order (the relative position
index buffers included), parameters exactly, and the float64 eval output at 3x224x224 to
1e-9 relative."""
from __future__ import annotations

import json

import pytest

from archdsl import compile_file
from archdsl.passes.count_costs import total

from conftest import ROOT

torch = pytest.importorskip("torch")
from oracle import fill  # noqa: E402

ORACLE = json.loads((ROOT / "tests" / "data" / "maxvit_oracle.json").read_text())
RELATIVE = 1e-9


@pytest.fixture(scope="module")
def graph():
    result = compile_file(ROOT / "specs" / "maxvit_t.arch")
    assert result.ok, [d.message for d in result.diagnostics]
    return result.graph


@pytest.fixture(scope="module")
def module(graph):
    import archdsl
    return archdsl.lower(graph).double().eval()


def layout(module) -> list:
    return [[k, list(v.shape), str(v.dtype).removeprefix("torch.")]
            for k, v in module.state_dict().items()]


def test_check_counts_torchvisions_parameters(graph):
    """`check` alone (no torch) counts torchvision's 30,919,624 parameters."""
    assert total(graph).params == ORACLE["params"] == 30_919_624


def test_state_dict_is_torchvisions(module):
    """Keys, shapes, dtypes and order: MBConv's `proj` before its `layers`, each
    attention's bias table and int64 index before `to_qkv` and `merge`."""
    assert layout(module) == ORACLE["state_dict"]
    assert sum(p.numel() for p in module.parameters()) == ORACLE["params"]


def test_output_equals_torchvision(module):
    """About 7 s on 2 cores: the fill walks 582 tensors, the forward runs in float64."""
    fill(module, ORACLE["state_dict"])
    x = torch.randn((1, *ORACLE["input"]), generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    with torch.no_grad():
        y = module(x).flatten()
    expected = torch.tensor(ORACLE["output"], dtype=torch.float64)
    assert y.shape == expected.shape == (1000,)
    scale = expected.abs().max().item()
    worst = ((y - expected).abs() / expected.abs().clamp_min(RELATIVE * scale)).max().item()
    assert worst <= RELATIVE, f"largest relative difference {worst:.3g}"
