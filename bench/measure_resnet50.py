"""The acceptance check of `archdsl stats --measure`: on specs/resnet50.arch, every spec
layer is listed with its forward and backward time, and the sum of the layer times is
within 15% of the whole training step measured without the profiler.

    python bench/measure_resnet50.py [--device cpu] [--batch-size 8] [--steps 5]
                                     [--warmup 2] [--threads N] [--depth N]

Prints the layer count (against the IR's), the sum of the layer times, the whole step
and their ratio; exits 1 where a layer is missing or the ratio is outside 0.85 to 1.15.
This machine may be shared: the ratio is taken over the same steps, interleaved, so
both sides see the same load; `--threads 1` keeps a busy machine's threads from
waiting on each other.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archdsl  # noqa: E402
from archdsl.backends.report_measure import format_measure, measure_report  # noqa: E402
from archdsl.runtime.measure import measure, measure_roofs, pick_device  # noqa: E402

WITHIN = 0.15


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "specs" / "resnet50.arch"))
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--depth", type=int, help="also print the table at this depth")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    graph = archdsl.compile_file(args.spec).graph
    start = time.perf_counter()
    measured = measure(graph, device, "fp32", args.batch_size, args.steps, args.warmup,
                       measure_roofs(device))
    report = measure_report(graph, measured)
    if args.depth:
        print(format_measure(measure_report(graph, measured, args.depth)))
    listed = {row.name for row in report.rows}
    missing = [name for name in graph if name not in listed]
    timed = sum(1 for row in report.rows if row.forward_ms > 0)
    print(f"{report.network} on {report.roofs.device}, torch {torch.__version__}, "
          f"batch {report.batch}, {report.steps} steps after {report.warmup} warm-up "
          f"({time.perf_counter() - start:.0f} s in all)")
    print(f"layers listed: {len(report.rows)} of the IR's {len(graph)} "
          f"({timed} with forward time; the others are inputs)")
    print(f"sum of layer times: {report.layers_ms:.1f} ms (forward "
          f"{sum(r.forward_ms for r in report.rows):.1f}, backward "
          f"{sum(r.backward_ms for r in report.rows):.1f}); in no layer "
          f"{report.unattributed_ms:.1f} ms")
    print(f"whole step (no profiler): {report.step_ms:.1f} ms")
    print(f"ratio: {report.ratio:.3f} (accepted: {1 - WITHIN:.2f} to {1 + WITHIN:.2f})")
    if missing:
        print(f"missing layers: {', '.join(missing)}")
    return 0 if not missing and abs(report.ratio - 1) <= WITHIN else 1


if __name__ == "__main__":
    sys.exit(main())
