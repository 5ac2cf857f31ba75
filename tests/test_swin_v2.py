"""specs/swin_v2_t.arch equals torchvision's swin_v2_t, checked without torchvision against
tests/data/swin_v2_oracle.json (recorded by tests/data/make_swin_v2_oracle.py, whose
"_about" gives the fill): the parameter count, the state_dict's keys, shapes, dtypes and
order, and the float64 eval output at 3x256x256 to 1e-9 relative. The spec writes Swin-V2's
window attention from the tensor algebra (no `window_attention` layer), so this is the
test that its cosine attention, continuous position bias, masked key bias and shifted
window mask are torchvision's."""
from __future__ import annotations

import json

import pytest

from archdsl import compile_file
from archdsl.passes.count_costs import total

from conftest import ROOT

torch = pytest.importorskip("torch")
from oracle import fill  # noqa: E402

SPEC = ROOT / "specs" / "swin_v2_t.arch"
ORACLE = json.loads((ROOT / "tests" / "data" / "swin_v2_oracle.json").read_text())["swin_v2_t"]
RELATIVE = 1e-9


@pytest.fixture(scope="module")
def graph():
    result = compile_file(SPEC)
    assert result.ok, [d.message for d in result.diagnostics]
    return result.graph


@pytest.fixture(scope="module")
def module(graph):
    import archdsl
    return archdsl.lower(graph).double().eval()


def test_check_counts_torchvisions_parameters(graph):
    assert total(graph).params == ORACLE["params"]


def test_state_dict_layout_is_torchvisions(module):
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")]
            for k, v in module.state_dict().items()]
    assert ours == ORACLE["state_dict"]  # keys, shapes, dtypes and torchvision's order
    assert sum(p.numel() for p in module.parameters()) == ORACLE["params"]


def test_output_equals_torchvisions(module):
    fill(module, ORACLE["state_dict"])
    x = torch.randn((1, *ORACLE["input"]), generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    with torch.no_grad():
        y = module(x).flatten()
    expected = torch.tensor(ORACLE["output"], dtype=torch.float64)
    assert y.shape == expected.shape == (1000,)
    worst = ((y - expected).abs() / expected.abs().max()).max().item()
    assert worst < RELATIVE, f"largest difference {worst:.3g} of the largest value"
