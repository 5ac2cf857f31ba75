"""Training benchmarks on the CPU (or --device cuda):

1. `archdsl train specs/resnet18.arch` at 3x32x32 on the built-in shapes data; reports the
   best validation accuracy, wall time and training images/s. Target: >= 95% accuracy.
2. training throughput (forward, backward, SGD step) of the lowered resnet50 against the
   reference ResNet-50 module, in one process, alternating steps. Target: ratio >= 0.98.
3. (--augment-compare) epochs to reach --target validation accuracy for resnet18 at
   3x32x32 on shapes with `--augment basic` and with `--augment none`, same everything else.
4. (--loop-compare) images/s of `archdsl train`'s loop against a hand-written PyTorch loop
   over the same lowered resnet18, data, optimizer and schedule, epochs in rotating order
   in one process; the hand-written loop with torch's default AdamW and with the fused
   one archdsl uses. Target: ratio >= 0.95.

    python bench/train_shapes.py [--epochs 15] [--skip-accuracy] [--skip-throughput]
    python bench/train_shapes.py --skip-accuracy --skip-throughput --augment-compare --loop-compare
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import archdsl  # noqa: E402
from archdsl.runtime.train import TrainConfig, train  # noqa: E402


def accuracy(args) -> None:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        history = train(TrainConfig(str(ROOT / "specs" / "resnet18.arch"), data=args.data,
                                    epochs=args.epochs, batch_size=args.batch, device=args.device,
                                    out=out, inputs={"*": (3, 32, 32)},
                                    progress=False))
        wall = time.perf_counter() - start
    best = max(h["val_acc"] for h in history)
    rate = statistics.mean(h["images_per_s"] for h in history)
    print(f"resnet18 on {args.data} at 3x32x32, {args.epochs} epochs, batch {args.batch}, "
          f"{args.device}: best validation accuracy {best:.4f} (last {history[-1]['val_acc']:.4f}),"
          f" wall {wall:.0f} s, {rate:.0f} training images/s")


def throughput(args) -> None:
    from reference_resnet import resnet50
    size = args.size
    lowered = archdsl.load(ROOT / "specs" / "resnet50.arch", inputs={"*": (3, size, size)})
    reference = resnet50()
    reference.load_state_dict(lowered.state_dict())
    models = {"lowered": lowered.to(args.device).train(), "reference": reference.to(args.device).train()}
    optimizers = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for k, m in models.items()}
    x = torch.randn(args.batch, 3, size, size, device=args.device)
    y = torch.randint(0, 1000, (args.batch,), device=args.device)
    times = {k: [] for k in models}
    for step in range(args.steps + 2):
        for name in (("lowered", "reference") if step % 2 else ("reference", "lowered")):
            start = time.perf_counter()
            loss = F.cross_entropy(models[name](x), y)
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            if args.device == "cuda":
                torch.cuda.synchronize()
            if step >= 2:
                times[name].append(time.perf_counter() - start)
    rates = {k: args.batch / statistics.median(v) for k, v in times.items()}
    print(f"resnet50 training step (SGD), batch {args.batch}, {size}x{size}, {args.device}: "
          f"lowered {rates['lowered']:.1f} images/s, reference {rates['reference']:.1f} images/s,"
          f" ratio {rates['lowered'] / rates['reference']:.3f}")


def augment_compare(args) -> None:
    reached = {}
    for name in ("basic", "none"):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            history = train(TrainConfig(str(ROOT / "specs" / "resnet18.arch"), data=args.data,
                                        epochs=args.epochs, batch_size=args.batch,
                                        device=args.device, out=out, augment=name,
                                        inputs={"*": (3, 32, 32)}, progress=False))
            wall = time.perf_counter() - start
        curve = [h["val_acc"] for h in history]
        first = next((h["epoch"] for h in history if h["val_acc"] >= args.target), None)
        reached[name] = first
        print(f"resnet18 on {args.data} at 3x32x32, --augment {name}: target {args.target:.2f} "
              f"reached at epoch {first if first else f'- (not in {args.epochs})'}; validation "
              f"accuracy per epoch {' '.join(f'{a:.3f}' for a in curve)}; last training "
              f"accuracy {history[-1]['train_acc']:.3f}; wall {wall:.0f} s",
              flush=True)


def loop_compare(args) -> None:
    """archdsl's loop and a hand-written one, same model, data, AdamW and cosine schedule:
    the hand-written loop with torch's default AdamW (what a user writes), and with the
    fused AdamW that archdsl uses (the loop's own overhead)."""
    from archdsl.runtime.data import open_source
    spec = str(ROOT / "specs" / "resnet18.arch")
    split, _ = open_source(args.data, (3, 32, 32), 0)
    steps = len(split) // args.batch
    rates = {"archdsl": [], "hand-written": [], "hand-written, fused AdamW": []}

    def hand_written_epoch(fused):
        torch.manual_seed(0)
        model = archdsl.load(spec, inputs={"*": (3, 32, 32)}, classes=6).to(args.device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05,
                                      fused=fused or None)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
        order = torch.randperm(len(split))
        start = time.perf_counter()
        for step in range(steps):
            x, y = split.batch(order[step * args.batch:(step + 1) * args.batch].tolist())
            x, y = x.to(args.device), y.to(args.device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss.item()  # archdsl's loop reads the loss every step too
        return steps * args.batch / (time.perf_counter() - start)

    names = list(rates)
    for round_ in range(args.rounds):
        for name in names[round_ % 3:] + names[:round_ % 3]:  # each first, second, third in turn
            if name == "archdsl":
                with tempfile.TemporaryDirectory() as out:
                    history = train(TrainConfig(spec, data=args.data, epochs=1, batch_size=args.batch,
                                                device=args.device, out=out, augment="none",
                                                inputs={"*": (3, 32, 32)}, progress=False))
                rates[name].append(history[0]["images_per_s"])
            else:
                rates[name].append(hand_written_epoch(fused=name.endswith("fused AdamW")))
    ours = statistics.median(rates["archdsl"])
    plain, fused = (statistics.median(rates[k]) for k in names[1:])
    print(f"resnet18 3x32x32 training on {args.data}, batch {args.batch}, {args.device}, "
          f"{args.rounds} epochs each in rotating order: archdsl train {ours:.1f} images/s; "
          f"hand-written loop {plain:.1f} images/s with torch's default AdamW, ratio "
          f"{ours / plain:.3f}; {fused:.1f} images/s with the fused AdamW archdsl uses, ratio "
          f"{ours / fused:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--data", default="shapes:10000")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--augment-compare", action="store_true")
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--loop-compare", action="store_true")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    if args.loop_compare:
        loop_compare(args)
    if args.augment_compare:
        augment_compare(args)
    if not args.skip_accuracy:
        accuracy(args)
    if not args.skip_throughput:
        args.batch = 8
        throughput(args)


if __name__ == "__main__":
    main()
