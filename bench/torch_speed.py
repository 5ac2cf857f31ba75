"""Lowered module vs a hand-written reference module, in one process, alternating runs.

    python bench/torch_speed.py [--device cpu|cuda] [--batch 8] [--size 224] [--steps 10]
                                [--amp bf16] [--channels-last]

1. forward+backward time of the lowered resnet50 vs the reference ResNet-50 (the same
   layers as torchvision's, tests/reference_resnet.py; or torchvision's own when
   installed). Target: ratio <= 1.00.
2. time to lower resnet152 (spec -> GraphModule, initialised) vs constructing the
   reference ResNet-152. Target: ratio <= 1.2.
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

import archdsl  # noqa: E402
import reference_resnet  # noqa: E402


def reference(name: str):
    try:
        import torchvision
        return getattr(torchvision.models, name)(), "torchvision"
    except ImportError:
        return getattr(reference_resnet, name)(), "tests/reference_resnet.py"


def step_time(model, x, args) -> float:
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
        loss = model(x).float().sum()
    loss.backward()
    sync()
    return time.perf_counter() - start


def forward_backward(args) -> None:
    lowered = archdsl.load(ROOT / "specs" / "resnet50.arch", inputs={"*": (3, args.size, args.size)})
    ref, where = reference("resnet50")
    ref.load_state_dict(lowered.state_dict())
    models = {"lowered": lowered, "reference": ref}
    memory = torch.channels_last if args.channels_last else torch.contiguous_format
    for name, model in models.items():
        models[name] = model.to(args.device, memory_format=memory).train()
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    x = x.to(memory_format=memory)
    times = {name: [] for name in models}
    for step in range(args.warmup + args.steps):
        for name in (("lowered", "reference") if step % 2 else ("reference", "lowered")):
            elapsed = step_time(models[name], x, args)
            if step >= args.warmup:
                times[name].append(elapsed)
    low, ref_t = (statistics.median(times[n]) for n in ("lowered", "reference"))
    print(f"resnet50 forward+backward, batch {args.batch}, {args.size}x{args.size}, "
          f"{args.device}, amp {args.amp}, channels_last {args.channels_last} "
          f"(reference: {where}, median of {args.steps} alternating steps)")
    print(f"  lowered   {low * 1000:8.1f} ms/step  {args.batch / low:8.1f} images/s")
    print(f"  reference {ref_t * 1000:8.1f} ms/step  {args.batch / ref_t:8.1f} images/s")
    print(f"  ratio lowered/reference: {low / ref_t:.3f}")


def lowering_time(runs: int = 5) -> None:
    spec = ROOT / "specs" / "resnet152.arch"
    lower, build = [], []
    for _ in range(runs):
        start = time.perf_counter()
        archdsl.load(spec)
        lower.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference("resnet152")
        build.append(time.perf_counter() - start)
    a, b = statistics.median(lower), statistics.median(build)
    print(f"resnet152: lower (parse+check+fx+init) {a * 1000:.0f} ms, construct reference "
          f"{b * 1000:.0f} ms, ratio {a / b:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--amp", choices=("off", "bf16"), default="off")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    forward_backward(args)
    lowering_time()


if __name__ == "__main__":
    main()
