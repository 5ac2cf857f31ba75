"""What makes ConvNeXt-V2 equal timm's is its GRN: without it the recorded outputs of
tests/data/timm_oracle.json are not met (test_recorded_specs compares the spec with
them)."""
from __future__ import annotations

import copy
import json
import math

import pytest

from archdsl import compile_file

from conftest import ROOT

torch = pytest.importorskip("torch")
from oracle import fill  # noqa: E402

import archdsl  # noqa: E402

ORACLE = json.loads((ROOT / "tests" / "data" / "timm_oracle.json").read_text())["models"]
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


def mismatches(ours: list[float], expected: list[float]) -> list[int]:
    assert len(ours) == len(expected)
    return [i for i, (a, b) in enumerate(zip(ours, expected))
            if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)]


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
