"""Record swin_v2_oracle.json: torchvision's swin_v2_t (weights=None) at its native 3x256x256,
its state_dict layout, parameter count and float64 output under a deterministic fill of
every tensor.

    python tests/data/make_swin_v2_oracle.py      # needs torch and torchvision

The fill is make_segmentation_oracle.py's (that of torchvision_oracle.json), imported from
it: convert the model to float64; walk the recorded state_dict list in its order
(torchvision's) with ONE torch.Generator().manual_seed(0) on the CPU and draw every floating
tensor by its key and shape (tests/oracle.py's `fill` applies the same rule to a built
spec). Swin-V2's coordinate table (relative_coords_table, a floating buffer) is drawn like a
weight, so the spec must compute the relative position bias from its buffer, as torchvision
does; the int64 relative_position_index keeps its values. The input is
torch.randn((1, 3, 256, 256), generator=torch.Generator().manual_seed(1), dtype=torch.float64);
"output" is the eval-mode output, all 1000 values.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_segmentation_oracle import fill, import_torchvision  # noqa: E402

INPUT = (3, 256, 256)


def record() -> dict:
    import torch
    from torchvision.models import swin_v2_t
    model = swin_v2_t(weights=None).double().eval()
    state = model.state_dict()
    model.load_state_dict(fill(state))
    x = torch.randn((1, *INPUT), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        output = model(x).flatten()
    return {"input": list(INPUT),
            "state_dict": [[k, list(t.shape), str(t.dtype).replace("torch.", "")]
                           for k, t in state.items()],
            "params": sum(p.numel() for p in model.parameters()),
            "output": output.tolist()}


def main():
    import torch
    torchvision = import_torchvision()
    about = (__doc__.split("\n\n", 2)[2].strip() + f" Recorded with torch "
             f"{torch.__version__.split('+')[0]}, torchvision {torchvision.__version__.split('+')[0]}.")
    data = {"_about": about, "swin_v2_t": record()}
    print("swin_v2_t:", len(data["swin_v2_t"]["state_dict"]), "tensors,",
          data["swin_v2_t"]["params"], "parameters")
    (HERE / "swin_v2_oracle.json").write_text(json.dumps(data, separators=(",", ":")))


if __name__ == "__main__":
    main()
