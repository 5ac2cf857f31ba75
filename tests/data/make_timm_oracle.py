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
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_segmentation_oracle import fill, import_torchvision  # noqa: E402
PATH = HERE / "timm_oracle.json"
MODELS = {
    "convnextv2_atto": (3, 224, 224),
}


def import_timm():
    """timm, after torchvision (which it imports) is made importable even where its
    compiled ops do not load (make_segmentation_oracle.import_torchvision)."""
    import_torchvision()
    import timm
    return timm


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
