"""Eager inference speed of `archdsl export --to pytorch --fold-bn` against torchvision's
eager model (eval mode, torch.no_grad), in one process, alternating batches: this machine
is shared and noisy, so only the ratio means anything. The exported module has the
reference's weights, folded; its outputs are checked against the reference's first.
Without torchvision, the reference is tests/reference_resnet.py's hand-written ResNet-50.

    python bench/export_speed.py [--models resnet50 resnet18] [--batch 1] [--steps 20]

Figures: median exported time / median reference time, per model (below 1: faster), and
the same against the reference with its batch norms folded by torch.fx's `fuse`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from archdsl import ir  # noqa: E402
import archdsl  # noqa: E402
from archdsl.backends.export_pytorch import export_pytorch  # noqa: E402
from archdsl.backends.lower_fx import lower_fx  # noqa: E402
from archdsl.runtime.export import standalone  # noqa: E402


def reference(name: str):
    """torchvision's model, or the hand-written ResNet-50 where torchvision is missing."""
    try:
        import torchvision
    except ModuleNotFoundError:
        from reference_resnet import ResNet
        if name != "resnet50":
            raise SystemExit(f"{name} needs torchvision; without it only resnet50 is "
                             "compared") from None
        return ResNet(), "tests/reference_resnet.py"
    return getattr(torchvision.models, name)(), f"torchvision {torchvision.__version__}"


def timed(model, x) -> float:
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
          "eval mode, no_grad")
    for name in args.models:
        graph = archdsl.compile_file(ROOT / "specs" / f"{name}.arch").graph
        theirs, where = reference(name)
        theirs.eval()
        lowered = lower_fx(graph)
        lowered.load_state_dict(theirs.state_dict())
        ours = standalone(export_pytorch(graph, lowered, fold_bn=True))
        shape = graph.nodes[ir.network(graph).inputs[0]]["shape"]
        x = torch.randn(args.batch, *shape)
        fused = fx_fused(theirs)
        models = {"ours": ours, "theirs": theirs, "fused": fused}
        with torch.no_grad():
            want = theirs(x)
            error, size = (ours(x) - want).abs().max().item(), want.abs().max().item()
            times = {k: [] for k in models}
            for model in models.values():
                timed(model, x)  # warm up
            order = list(models)
            for step in range(args.steps):  # each model first, second and third in turn
                for key in order[step % 3:] + order[:step % 3]:
                    times[key].append(timed(models[key], x))
        a, b, c = (statistics.median(times[k]) for k in ("ours", "theirs", "fused"))
        print(f"{name}: exported with folded batch norms {a * 1000:.1f} ms, {where} "
              f"{b * 1000:.1f} ms, ratio {a / b:.2f}; against the reference with its batch "
              f"norms folded by torch.fx ({c * 1000:.1f} ms) {a / c:.2f} (outputs differ by "
              f"{error:.1e} at most, of values up to {size:.1f})", flush=True)


def fx_fused(model):
    """The reference with torch.fx's own conv + batch norm folding, for a like-for-like
    figure."""
    from torch.fx.experimental.optimization import fuse
    return fuse(model)

if __name__ == "__main__":
    main()
