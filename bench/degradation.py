"""The degradation problem (He et al. 2016, section 4.2, Figure 6): with plain networks, the
deeper one trains to a higher training error; with residual networks, the deeper one
trains better. Trains the CIFAR networks of specs/cifar_resnet.arch (plain-20, plain-56,
resnet-20, resnet-56) with `archdsl train` and identical settings on the built-in shapes
data at 3x32x32, then draws the training error of each per epoch in one PNG.

    python bench/degradation.py [--data shapes:4000] [--epochs 12] [--out runs/degradation]
        [--image docs/images/degradation.png]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = [("cifar_plain", 20), ("cifar_plain", 56), ("cifar_resnet", 20), ("cifar_resnet", 56)]


def train(network: str, depth: int, args) -> list[dict]:
    out = Path(args.out) / f"{network}_{depth}"
    command = [sys.executable, "-m", "archdsl", "train", str(ROOT / "specs" / "cifar_resnet.arch"),
               "--network", network, "--set", f"depth={depth}", "--set", "classes=6",
               "--input", "3x32x32", "--data", args.data, "--epochs", str(args.epochs),
               "--batch-size", str(args.batch), "--optimizer", "sgd", "--lr", str(args.lr),
               "--weight-decay", "1e-4", "--schedule", "step", "--seed", str(args.seed),
               "--device", args.device, "--out", str(out), "--quiet"]
    if (out / "metrics.jsonl").exists():
        command += ["--resume"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    history = [json.loads(line) for line in lines if line.strip()]
    print(f"{network}-{depth}: {time.perf_counter() - start:.0f} s; training error per epoch "
          + " ".join(f"{1 - h['train_acc']:.3f}" for h in history)
          + f"; final validation error {1 - history[-1]['val_acc']:.3f}", flush=True)
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="shapes:4000")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=str(ROOT / "runs" / "degradation"))
    parser.add_argument("--image", default=str(ROOT / "docs" / "images" / "degradation.png"))
    args = parser.parse_args()
    histories = {(network, depth): train(network, depth, args) for network, depth in RUNS}

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    for ax, network, title in ((axes[0], "cifar_plain", "plain"),
                               (axes[1], "cifar_resnet", "ResNet")):
        for depth, style in ((20, "--"), (56, "-")):
            history = histories[(network, depth)]
            ax.plot([h["epoch"] for h in history], [100 * (1 - h["train_acc"]) for h in history],
                    style, label=f"{title}-{depth}")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("training error (%)")
    figure.suptitle(f"{args.data} at 3x32x32, {args.epochs} epochs, SGD lr {args.lr}, "
                    f"batch {args.batch}", fontsize=9)
    figure.tight_layout()
    Path(args.image).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.image, dpi=120)
    print(f"wrote {args.image}")


if __name__ == "__main__":
    main()
