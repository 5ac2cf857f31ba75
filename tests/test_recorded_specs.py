"""Specs written in the tensor algebra equal the models they reproduce, checked without
the reference library against outputs recorded by tests/data/make_*_oracle.py (whose
"_about" gives the fill): the parameter count `check` gives, the state_dict's keys,
shapes, dtypes and order (buffers included), and the float64 eval output to 1e-9
relative, each element against the largest output where it is small."""
from __future__ import annotations

import json

import pytest

from archdsl import compile_file
from archdsl.passes.count_costs import total

from conftest import ROOT

torch = pytest.importorskip("torch")
from oracle import fill  # noqa: E402

DATA = ROOT / "tests" / "data"
RELATIVE = 1e-9


def _record(file: str, *path: str) -> dict:
    record = json.loads((DATA / file).read_text())
    for key in path:
        record = record[key]
    return record


# spec -> its recorded oracle: torchvision's Swin-V2 (cosine attention, continuous
# position bias, masked key bias, shifted-window masks) and MaxViT (MBConv, block and
# grid attention with relative position buffers), timm's ConvNeXt-V2 (GRN)
RECORDS = {
    "swin_v2_t": lambda: _record("swin_v2_oracle.json", "swin_v2_t"),
    "maxvit_t": lambda: _record("maxvit_oracle.json"),
    "convnextv2_atto": lambda: _record("timm_oracle.json", "models", "convnextv2_atto"),
}


@pytest.fixture(scope="module", params=sorted(RECORDS))
def case(request):
    result = compile_file(ROOT / "specs" / f"{request.param}.arch")
    assert result.ok, [d.message for d in result.diagnostics]
    import archdsl
    return result.graph, archdsl.lower(result.graph).double().eval(), RECORDS[request.param]()


def test_check_counts_the_references_parameters(case):
    graph, _, record = case
    assert total(graph).params == record["params"]


def test_state_dict_layout_is_the_references(case):
    _, module, record = case
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")]
            for k, v in module.state_dict().items()]
    assert ours == record["state_dict"]
    assert sum(p.numel() for p in module.parameters()) == record["params"]


def test_output_equals_the_references(case):
    _, module, record = case
    fill(module, record["state_dict"])
    x = torch.randn((1, *record["input"]), generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    with torch.no_grad():
        y = module(x).flatten()
    expected = torch.tensor(record["output"], dtype=torch.float64)
    assert y.shape == expected.shape
    scale = expected.abs().max().item()
    worst = ((y - expected).abs() / expected.abs().clamp_min(RELATIVE * scale)).max().item()
    assert worst <= RELATIVE, f"largest relative difference {worst:.3g}"
