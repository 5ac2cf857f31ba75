"""Record timm_oracle.json: for each timm model, its state_dict layout, parameter count and
output under a deterministic fill of every tensor, in float64.

    python tests/data/make_timm_oracle.py [NAME ...]    # needs torch and timm; writes beside this file

The fill rule is that of torchvision_oracle.json (the project's make_oracle.py), so a test
can apply it to any module with the same state_dict keys, without timm: convert the model
to float64; walk the recorded state_dict list in its order (timm's) with ONE
torch.Generator().manual_seed(0) on the CPU; for each floating tensor t with key k:
  k ends with "running_var"   -> 0.5 + torch.rand(t.shape, generator=g, dtype=torch.float64)
  k ends with "running_mean"  -> 0.1 * torch.randn(t.shape, generator=g, dtype=torch.float64)
  t.dim() >= 2                -> torch.randn(t.shape, generator=g, dtype=torch.float64)
                                 / sqrt(t.numel() / t.shape[0])
  t.dim() < 2, k ends "weight"-> 1 + 0.1 * torch.randn(t.shape, generator=g, dtype=torch.float64)
  otherwise                   -> 0.1 * torch.randn(t.shape, generator=g, dtype=torch.float64)
Integer tensors (num_batches_tracked, index buffers) keep their values. Models are built
with timm.create_model(name, pretrained=False) and timm's defaults (no drop path). The
input is torch.randn((1, *input), generator=torch.Generator().manual_seed(1),
dtype=torch.float64); the output is the eval-mode output, attention (if any) computed by
torch's math kernel. Values drawn from a seeded CPU generator are the same for the same
torch version (recorded in the file).

To add a model, add its timm name and input shape (C, H, W) to MODELS and run the script
with that name: the other models' records are kept.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATH = HERE / "timm_oracle.json"
MODELS = {
    "convnextv2_atto": (3, 224, 224),
}


def import_timm():
    """timm, even where torchvision's compiled ops do not load (a CUDA build of torchvision
    beside a CPU build of torch): timm imports torchvision, whose import then fails
    registering fake kernels for ops that were never defined, so define their schemas
    first. The models need none of them."""
    import torch
    try:
        import timm
        return timm
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
    for name in [m for m in sys.modules
                 if m.split(".")[0] in ("torchvision", "timm")]:
        del sys.modules[name]
    library = torch.library.Library("torchvision", "DEF")  # kept alive by the registry
    for op in ("nms", "qnms"):
        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import_timm.library = library
    import timm
    return timm


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


def record(timm, name) -> dict:
    import torch
    shape = list(MODELS[name])
    model = timm.create_model(name, pretrained=False).double().eval()
    state = model.state_dict()
    model.load_state_dict(fill(state))
    x = torch.randn((1, *shape), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad(), torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        y = model(x)
    return {
        "input": shape,
        "state_dict": [[k, list(t.shape), str(t.dtype).replace("torch.", "")]
                       for k, t in state.items()],
        "params": sum(p.numel() for p in model.parameters()),
        "output": [float(v) for v in y.flatten()],
    }


def main():
    import torch
    timm = import_timm()
    names = sys.argv[1:] or list(MODELS)
    data = json.loads(PATH.read_text()) if PATH.exists() else {"models": {}}
    data["_about"] = (__doc__.split("\n\n", 2)[2].split("\n\nTo add")[0].strip()
                      + f" Recorded with torch {torch.__version__.split('+')[0]}, "
                      f"timm {timm.__version__}.")
    for name in names:
        data["models"][name] = record(timm, name)
        print(name, len(data["models"][name]["state_dict"]), "tensors,",
              data["models"][name]["params"], "parameters", flush=True)
    data["models"] = dict(sorted(data["models"].items()))
    PATH.write_text(json.dumps(data, separators=(",", ":")))


if __name__ == "__main__":
    main()
