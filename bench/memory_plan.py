"""The memory plan (`archdsl stats --train`) against measurement: for each network, at
two batch sizes, float32 and mixed precision, the planned peak of one AdamW training
step beside the measured one (archdsl.runtime.memory: torch's profiler on the CPU,
torch.cuda.max_memory_allocated on CUDA), and their ratio.

    python bench/memory_plan.py [--device cpu|cuda] [--specs resnet18,resnet50,...]
                                [--batches 2,8] [--amp none,bf16]

Exits 1 where a plan is more than 10% from its measurement.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl import compile_file  # noqa: E402
from archdsl.backends.plan_memory import Setup, plan_memory  # noqa: E402
from archdsl.runtime.memory import measure_peak  # noqa: E402

WITHIN = 0.10
SPECS = "resnet18,resnet50,vit_b_16,mobilenet_v2,gpt2"
MIB = 2 ** 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--specs", default=SPECS)
    parser.add_argument("--batches", default="2,8",
                        help="batch sizes (default 2,8; GPT-2 at 1,2: 8 sequences of 1,024 "
                             "tokens need about 25 GiB)")
    parser.add_argument("--amp", default=None, help="default: none and bf16 on the CPU, "
                                                    "none and fp16 on CUDA")
    parser.add_argument("--set", action="append", default=[], metavar="SPEC:NAME=VALUE",
                        help="a spec setting, e.g. gpt2:n_layer=2")
    args = parser.parse_args()
    amps = (args.amp or ("none,fp16" if args.device == "cuda" else "none,bf16")).split(",")
    print(f"{'network':14} {'batch':>5} {'amp':>5} {'planned MiB':>12} {'measured MiB':>13} "
          f"{'ratio':>6}  peak at")
    worst = 0.0
    for name in args.specs.split(","):
        settings = dict(s.split(":", 1)[1].split("=") for s in args.set
                        if s.startswith(name + ":"))
        graph = compile_file(ROOT / "specs" / f"{name}.arch",
                             settings={k: int(v) for k, v in settings.items()}).graph
        batches = "1,2" if name == "gpt2" and args.batches == "2,8" else args.batches
        for batch in map(int, batches.split(",")):
            for amp in amps:
                plan = plan_memory(graph, Setup(batch=batch, amp=amp, device=args.device))
                measured = measure_peak(graph, batch, amp=amp, device=args.device)
                ratio = plan.peak / measured
                worst = max(worst, abs(ratio - 1))
                print(f"{name:14} {batch:5} {amp:>5} {plan.peak / MIB:12.1f} "
                      f"{measured / MIB:13.1f} {ratio:6.3f}  {plan.peak_at}", flush=True)
    print(f"largest difference: {worst:.1%} (limit {WITHIN:.0%})")
    return 0 if worst <= WITHIN else 1


if __name__ == "__main__":
    sys.exit(main())
