"""The segmentation specs equal torchvision's FCN-ResNet50, DeepLabV3-ResNet50 and
LR-ASPP-MobileNetV3-Large, checked without torchvision against
tests/data/segmentation_oracle.json (recorded by tests/data/make_segmentation_oracle.py,
whose "_about" gives the fill and the sampling): state_dict keys, shapes, dtypes and
order, parameters exactly, and the float64 output (shape, sums and a sample of values to
1e-9 relative) at 224x224 and at two sizes that are neither square nor multiples of 32,
where the final resize to the input must land exactly on the input's size."""
from __future__ import annotations

import json
import math

import pytest

from archdsl import compile_file, ir
from archdsl.passes.count_costs import total

from conftest import ROOT

torch = pytest.importorskip("torch")
from oracle import fill  # noqa: E402

ORACLE = json.loads((ROOT / "tests" / "data" / "segmentation_oracle.json").read_text())["models"]
MODELS = sorted(ORACLE)
SIZES = [(224, 224), (250, 310), (198, 270)]
CASES = [pytest.param(model, size, id=f"{model}-{size[0]}x{size[1]}")
         for model in MODELS for size in SIZES]  # about 13 s for all nine on 2 cores
RELATIVE = 1e-9


def compiled(model: str, size: tuple[int, int]):
    result = compile_file(ROOT / "specs" / f"{model}.arch", inputs={"*": (3, *size)})
    assert result.ok, [d.message for d in result.diagnostics]
    return result.graph


def output_shape(graph) -> tuple:
    (out,) = ir.network(graph).outputs
    return graph.nodes[out.node]["shape"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_check_gives_the_input_size(model, size):
    """`check` alone (no torch) knows the output is 21 x H x W at any input size."""
    graph = compiled(model, size)
    assert output_shape(graph) == (21, *size)
    assert total(graph).params == ORACLE[model]["params"]


def worst_difference(ours: list[float], theirs: list[float], scale: float) -> float:
    """The largest |ours - theirs| relative to the larger of |theirs| and 1e-9 of `scale`
    (values near 0 are compared to the output's magnitude, not to themselves)."""
    return max(abs(a - b) / max(abs(b), RELATIVE * scale) for a, b in zip(ours, theirs))


def close(ours: float, theirs: float, scale: float) -> bool:
    return math.isclose(ours, theirs, rel_tol=RELATIVE, abs_tol=RELATIVE * scale)


@pytest.mark.parametrize("model,size", CASES)
def test_spec_equals_torchvision(model, size):
    import archdsl
    recorded, expected = ORACLE[model], ORACLE[model]["outputs"][f"{size[0]}x{size[1]}"]
    graph = compiled(model, size)
    module = archdsl.lower(graph).double().eval()
    layout = recorded["state_dict"]
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")]
            for k, v in module.state_dict().items()]
    assert ours == layout  # keys, shapes, dtypes and torchvision's order
    assert sum(p.numel() for p in module.parameters()) == recorded["params"] == total(graph).params
    fill(module, layout)
    x = torch.randn((1, *expected["input"]), generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    with torch.no_grad():
        y = module(x)
    assert list(y.shape) == expected["shape"] == [1, 21, *size]
    flat = y.flatten()
    sample = {"first": flat[:16].tolist(), "last": flat[-16:].tolist(),
              "every": flat[::expected["stride"]].tolist()}
    scale = expected["max_abs"]
    worst = max(worst_difference(sample[k], expected[k], scale) for k in sample)
    assert all(len(sample[k]) == len(expected[k]) for k in sample)
    assert worst <= RELATIVE, f"sampled values differ by up to {worst:.3g} (relative)"
    assert close(flat.abs().max().item(), scale, scale)
    assert close(flat.sum().item(), expected["sum"], expected["abs_sum"])
    assert close((flat * flat).sum().item(), expected["sum_sq"], 0.0)
    assert close(flat.abs().sum().item(), expected["abs_sum"], 0.0)
