"""Record segmentation_oracle.json: for torchvision's segmentation models, their state_dict
layout, parameter count and float64 output under a deterministic fill of every tensor, at
224x224 and at two sizes that are neither square nor multiples of 32.

    python tests/data/make_segmentation_oracle.py     # needs torch and torchvision

The fill rule is that of torchvision_oracle.json (the project's make_oracle.py), so a test
can apply it to any module with the same state_dict keys, without torchvision: convert the
model to float64; walk the recorded state_dict list in its order (torchvision's) with ONE
torch.Generator().manual_seed(0) on the CPU; for each floating tensor t with key k:
  k ends with "running_var"   -> 0.5 + torch.rand(t.shape, generator=g, dtype=torch.float64)
  k ends with "running_mean"  -> 0.1 * torch.randn(t.shape, generator=g, dtype=torch.float64)
  t.dim() >= 2                -> torch.randn(t.shape, generator=g, dtype=torch.float64)
                                 / sqrt(t.numel() / t.shape[0])
  t.dim() < 2, k ends "weight"-> 1 + 0.1 * torch.randn(t.shape, generator=g, dtype=torch.float64)
  otherwise                   -> 0.1 * torch.randn(t.shape, generator=g, dtype=torch.float64)
Integer tensors (num_batches_tracked) keep their values. The input is
torch.randn((1, 3, H, W), generator=torch.Generator().manual_seed(1), dtype=torch.float64);
the output is the eval-mode output["out"] (no auxiliary head). The outputs are too large
to keep whole (21 x H x W), so each size records: the output's shape; its sum, sum of
squares, sum of absolute values and largest absolute value (float64, torch's reductions);
and a deterministic sample of the flattened output: "first" and "last", its first and
last 16 values, and "every", the values at indices 0, 977, 2 * 977, ... ("stride").
Values drawn from a seeded CPU generator are the same for the same torch version
(recorded in the file).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("fcn_resnet50", "deeplabv3_resnet50", "lraspp_mobilenet_v3_large")
SIZES = ((224, 224), (250, 310), (198, 270))
STRIDE = 977
ENDS = 16


def import_torchvision():
    """torchvision, even where its compiled ops do not load (a CUDA build of torchvision
    beside a CPU build of torch): its import then fails registering fake kernels for ops
    that were never defined, so define their schemas first. The models need none of them."""
    import torch
    try:
        import torchvision
        return torchvision
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    library = torch.library.Library("torchvision", "DEF")  # kept alive by the registry
    for op in ("nms", "qnms"):
        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import_torchvision.library = library
    import torchvision
    return torchvision


def fill(state):
    """make_oracle.py's fill, unchanged."""
    import torch
    g = torch.Generator().manual_seed(0)
    out = type(state)()
    out._metadata = getattr(state, "_metadata", None)  # some modules read their version from it
    for k, t in state.items():
        if not t.is_floating_point():
            out[k] = t
            continue
        f64 = dict(generator=g, dtype=torch.float64)
        if k.endswith("running_var"):
            v = 0.5 + torch.rand(t.shape, **f64)
        elif k.endswith("running_mean"):
            v = 0.1 * torch.randn(t.shape, **f64)
        elif t.dim() >= 2:
            v = torch.randn(t.shape, **f64) / math.sqrt(t.numel() / t.shape[0])
        elif k.endswith("weight"):
            v = 1 + 0.1 * torch.randn(t.shape, **f64)
        else:
            v = 0.1 * torch.randn(t.shape, **f64)
        out[k] = v
    return out


def build(name):
    from torchvision.models import segmentation
    options = dict(weights=None, weights_backbone=None, num_classes=21)
    if name != "lraspp_mobilenet_v3_large":  # LR-ASPP has no auxiliary head to leave out
        options["aux_loss"] = False
    return getattr(segmentation, name)(**options)


def summary(y) -> dict:
    """What a test compares of one output: shape, four reductions and a sample."""
    flat = y.flatten()
    return {"shape": list(y.shape), "sum": flat.sum().item(), "sum_sq": (flat * flat).sum().item(),
            "abs_sum": flat.abs().sum().item(), "max_abs": flat.abs().max().item(),
            "stride": STRIDE, "first": flat[:ENDS].tolist(), "last": flat[-ENDS:].tolist(),
            "every": flat[::STRIDE].tolist()}


def record(name) -> dict:
    import torch
    model = build(name).double().eval()
    state = model.state_dict()
    model.load_state_dict(fill(state))
    outputs = {}
    for h, w in SIZES:
        x = torch.randn((1, 3, h, w), generator=torch.Generator().manual_seed(1),
                        dtype=torch.float64)
        with torch.no_grad():
            outputs[f"{h}x{w}"] = {"input": [3, h, w], **summary(model(x)["out"])}
    return {"state_dict": [[k, list(t.shape), str(t.dtype).replace("torch.", "")]
                           for k, t in state.items()],
            "params": sum(p.numel() for p in model.parameters()),
            "outputs": outputs}


def main():
    import torch
    torchvision = import_torchvision()
    about = (__doc__.split("\n\n", 2)[2].strip() + f" Recorded with torch "
             f"{torch.__version__.split('+')[0]}, torchvision {torchvision.__version__.split('+')[0]}.")
    data = {"_about": about, "models": {}}
    for name in MODELS:
        data["models"][name] = record(name)
        print(name, len(data["models"][name]["state_dict"]), "tensors,",
              data["models"][name]["params"], "parameters", flush=True)
    (HERE / "segmentation_oracle.json").write_text(json.dumps(data, separators=(",", ":")))


if __name__ == "__main__":
    main()
