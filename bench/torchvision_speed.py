"""Lowered specs vs torchvision's own modules: forward+backward time at the spec's input
size (224x224 images; 16x112x112 clips for video), in one process, alternating steps
(this machine is shared and noisy: only the ratio means anything). Needs torchvision,
which archdsl never depends on: run it in an environment that has it.

    python bench/torchvision_speed.py [--models mobilenet_v2 efficientnet_b0 convnext_tiny
        vit_b_16 swin_t r3d_18] [--batch 8] [--steps 6] [--device cpu|cuda]

Target: ratio (lowered / torchvision) <= 1.05 for each model.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl import ir  # noqa: E402
import archdsl  # noqa: E402


def step(model, x, sync) -> float:
    sync()
    start = time.perf_counter()
    model(x).sum().backward()
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+",
                        default=["mobilenet_v2", "efficientnet_b0", "convnext_tiny"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torchvision
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    torch.manual_seed(0)
    import torchvision.models.video
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {args.device}, "
          f"{torch.get_num_threads()} threads, batch {args.batch}, forward+backward")
    for name in args.models:
        spec = ROOT / "specs" / f"{name}.arch"
        graph = archdsl.compile_file(spec).graph
        ours = archdsl.load(spec).to(args.device).train()
        factory = getattr(torchvision.models, name, None) or getattr(torchvision.models.video,
                                                                     name)
        theirs = factory().to(args.device).train()
        theirs.load_state_dict(ours.state_dict())  # same weights, same work
        shape = graph.nodes[ir.network(graph).inputs[0]]["shape"]
        x = torch.randn(args.batch, *shape, device=args.device)
        step(ours, x, sync), step(theirs, x, sync)  # warm up
        times = {"ours": [], "theirs": []}
        for _ in range(args.steps):
            times["ours"].append(step(ours, x, sync))
            times["theirs"].append(step(theirs, x, sync))
        a, b = statistics.median(times["ours"]), statistics.median(times["theirs"])
        print(f"{name}: lowered {a * 1000:.0f} ms, torchvision {b * 1000:.0f} ms per step "
              f"(medians of {args.steps}); ratio {a / b:.3f}", flush=True)


if __name__ == "__main__":
    main()
