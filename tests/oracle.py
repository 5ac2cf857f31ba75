"""Compare a spec with torchvision's model of the same name, without torchvision: the
recorded state_dict layout (keys, shapes, dtypes, in order), parameter and MAC totals,
and the float64 output under the recorded deterministic fill
(tests/data/torchvision_oracle.json, whose "_about" describes the fill).

    python tests/oracle.py mobilenet_v2 specs/mobilenet_v2.arch [name=value ...]
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
ORACLE = json.loads((DATA / "torchvision_oracle.json").read_text())["models"]
REFERENCE = json.loads((DATA / "torchvision_reference.json").read_text())["models"]


def fill(module, layout) -> None:
    """The oracle's fill rule, applied in the recorded (torchvision's) order."""
    import torch
    generator = torch.Generator().manual_seed(0)
    state = module.state_dict()
    with torch.no_grad():
        for key, shape, _dtype in layout:
            tensor = state[key]
            if not tensor.is_floating_point():
                continue
            f64 = dict(generator=generator, dtype=torch.float64)
            if key.endswith("running_var"):
                value = 0.5 + torch.rand(shape, **f64)
            elif key.endswith("running_mean"):
                value = 0.1 * torch.randn(shape, **f64)
            elif len(shape) >= 2:
                value = torch.randn(shape, **f64) / math.sqrt(math.prod(shape) / shape[0])
            elif key.endswith("weight"):
                value = 1 + 0.1 * torch.randn(shape, **f64)
            else:
                value = 0.1 * torch.randn(shape, **f64)
            tensor.copy_(value)


def compare(model: str, spec: Path, **settings) -> list[str]:
    """What differs between the spec and torchvision's `model`; empty when nothing does."""
    import torch

    from archdsl import compile_file, lower
    from archdsl.passes.count_costs import total

    oracle, reference = ORACLE[model], REFERENCE[model]
    result = compile_file(spec, settings=settings, inputs={"*": tuple(oracle["input"])})
    if not result.ok:
        return [d.message for d in result.diagnostics]
    graph = result.graph
    problems = []
    counts = total(graph, train=False)  # MACs of the eval forward: no auxiliary heads
    params = total(graph).params  # torchvision's figures count its auxiliary heads
    if params != reference["params"]:
        problems.append(f"parameters {params:,} != {reference['params']:,}")
    macs = reference["gmacs"] * 1e9
    if abs(counts.macs - macs) > 1e-3 * macs:
        problems.append(f"MACs {counts.macs:,} differ from {macs:,.0f} by more than 0.1%")
    module = lower(graph).double().eval()
    ours = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")]
            for k, v in module.state_dict().items()]
    layout = oracle["state_dict"]
    if ours != layout:
        first = next((i for i, (a, b) in enumerate(zip(ours, layout)) if a != b),
                     min(len(ours), len(layout)))
        problems.append(f"state_dict differs at entry {first}: ours "
                        f"{ours[first] if first < len(ours) else 'none'}, torchvision's "
                        f"{layout[first] if first < len(layout) else 'none'} "
                        f"({len(ours)} vs {len(layout)} entries)")
        return problems
    fill(module, layout)
    x = torch.randn((1, *oracle["input"]), generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    with torch.no_grad():
        out = module(x).flatten()
    expected = torch.tensor(oracle["output"], dtype=torch.float64)
    if out.shape != expected.shape:
        problems.append(f"output has {out.numel()} values, torchvision's {expected.numel()}")
    elif not torch.allclose(out, expected, rtol=1e-9, atol=1e-9 * expected.abs().max().item()):
        worst = ((out - expected).abs() / expected.abs().max()).max().item()
        problems.append(f"outputs differ (largest difference {worst:.3g} of the largest value)")
    return problems


if __name__ == "__main__":
    name, path, *pairs = sys.argv[1:]
    from archdsl.cli import parse_value
    settings = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        settings[key] = parse_value(value)  # as --set reads it
    found = compare(name, Path(path), **settings)
    print("\n".join(found) if found else f"{path}: equal to torchvision's {name}")
    sys.exit(1 if found else 0)
