"""The shipped specs of timm's models equal timm's, checked without timm against the outputs
recorded by tests/data/make_timm_oracle.py (tests/data/timm_oracle.json): parameters
exactly, state_dict keys, shapes, dtypes and order, and the float64 output under the
recorded fill, value by value (relative 1e-9)."""
from __future__ import annotations

import copy
import json
import math

import pytest

from archdsl import compile_file
from archdsl.passes.count_costs import total

from conftest import ROOT

torch = pytest.importorskip("torch")
from oracle import fill  # noqa: E402

import archdsl  # noqa: E402

ORACLE = json.loads((ROOT / "tests" / "data" / "timm_oracle.json").read_text())["models"]
# (timm model, spec file, network settings)
SPECS = [
    ("convnextv2_atto", "convnextv2_atto", {}),
]


class Built:
    """A spec compiled at the oracle's input size, lowered to float64 and filled as the
    oracle was."""

    def __init__(self, model: str, spec: str, settings: dict):
        self.oracle = ORACLE[model]
        result = compile_file(ROOT / "specs" / f"{spec}.arch", settings=settings,
                              inputs={"*": tuple(self.oracle["input"])})
        assert result.ok, [d.message for d in result.diagnostics]
        self.graph = result.graph
        self.module = archdsl.lower(self.graph).double().eval()
        self.layout = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")]
                       for k, v in self.module.state_dict().items()]

    def run(self, module=None) -> list[float]:
        x = torch.randn((1, *self.oracle["input"]), generator=torch.Generator().manual_seed(1),
                        dtype=torch.float64)
        with torch.no_grad():
            return (module or self.module)(x).flatten().tolist()


@pytest.fixture(scope="module", params=SPECS, ids=[m for m, _, _ in SPECS])
def built(request) -> Built:
    return Built(*request.param)


def mismatches(ours: list[float], expected: list[float]) -> list[int]:
    assert len(ours) == len(expected)
    return [i for i, (a, b) in enumerate(zip(ours, expected))
            if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)]


def test_parameters_equal_timms(built):
    assert total(built.graph).params == built.oracle["params"]


def test_state_dict_keys_order_and_shapes_equal_timms(built):
    assert built.layout == built.oracle["state_dict"]


def test_float64_output_equals_timms(built):
    fill(built.module, built.oracle["state_dict"])
    ours, expected = built.run(), built.oracle["output"]
    worst = max(abs(a - b) / abs(b) for a, b in zip(ours, expected) if b)
    assert mismatches(ours, expected) == [], f"largest relative difference {worst:.3g}"


def test_convnextv2_without_its_grn_would_not_match():
    """The fill gives every GRN a weight near 1 and a bias near 0.1 * randn; zeroed, each
    GRN is the identity, V1's MLP, and the comparison above must fail."""
    built = Built("convnextv2_atto", "convnextv2_atto", {})
    fill(built.module, built.oracle["state_dict"])
    ablated = copy.deepcopy(built.module)
    grn = [k for k, _, _ in built.layout if ".mlp.grn." in k]
    assert len(grn) == 2 * 12  # weight and bias in each of the 2 + 2 + 6 + 2 blocks
    with torch.no_grad():
        for key in grn:
            ablated.get_parameter(key).zero_()
    expected = built.oracle["output"]
    assert mismatches(built.run(), expected) == []
    assert len(mismatches(built.run(ablated), expected)) > 900
