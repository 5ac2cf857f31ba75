"""Record maxvit_oracle.json: torchvision's maxvit_t (weights=None), its state_dict layout,
parameter count and float64 eval output under the deterministic fill of
make_segmentation_oracle.py.

    python tests/data/make_maxvit_oracle.py     # needs torch and torchvision

The fill rule is that of torchvision_oracle.json (the project's make_oracle.py): convert
the model to float64; walk the state_dict in its order (torchvision's) with ONE
torch.Generator().manual_seed(0) on the CPU and fill each floating tensor by its key and
shape (running_var, running_mean, 2-D and up, 1-D weights, the rest; see
make_segmentation_oracle.py). Integer tensors (num_batches_tracked, the
relative_position_index buffers) keep their values. The input is
torch.randn((1, 3, 224, 224), generator=torch.Generator().manual_seed(1),
dtype=torch.float64); "output" holds the 1000 logits of the eval-mode forward.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_segmentation_oracle import fill, import_torchvision  # noqa: E402

SIZE = (3, 224, 224)


def record() -> dict:
    import torch
    from torchvision.models import maxvit_t
    model = maxvit_t(weights=None).double().eval()
    state = model.state_dict()
    model.load_state_dict(fill(state))
    x = torch.randn((1, *SIZE), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        output = model(x).flatten().tolist()
    return {"input": list(SIZE),
            "state_dict": [[k, list(t.shape), str(t.dtype).replace("torch.", "")]
                           for k, t in state.items()],
            "params": sum(p.numel() for p in model.parameters()),
            "output": output}


def main():
    import torch
    torchvision = import_torchvision()
    about = (__doc__.split("\n\n", 2)[2].strip() + f" Recorded with torch "
             f"{torch.__version__.split('+')[0]}, torchvision {torchvision.__version__.split('+')[0]}.")
    data = {"_about": about, **record()}
    print("maxvit_t", len(data["state_dict"]), "tensors,", data["params"], "parameters")
    (HERE / "maxvit_oracle.json").write_text(json.dumps(data, separators=(",", ":")))


if __name__ == "__main__":
    main()
