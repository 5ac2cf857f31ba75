"""What a training run reports: a header, progress (a bar on a terminal, plain lines at
intervals elsewhere), metrics.jsonl (step and epoch rows), metrics.csv (epoch rows),
TensorBoard event files (`--log tensorboard`) and curves.png.

    >>> epoch_csv([{"kind": "epoch", "epoch": 1, "train_loss": 0.5}])
    'epoch,train_loss\\n1,0.5\\n'
"""
from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path

from ..files import write_atomic


def header(network: str, device, amp: str, params: int, macs: int, train_size: int,
           val_size: int, batch: int, world: int, extra: list[str]) -> str:
    """The lines a run starts with: what trains, where, on how much data."""
    dtype = {"bf16": "bf16 autocast", "fp16": "fp16 autocast"}.get(amp, "fp32")
    lines = [f"{network}: {params:,} parameters, {macs / 1e6:,.1f} M MACs per input",
             f"device {device}, {dtype}, global batch {batch}"
             + (f" ({world} processes x {batch // world})" if world > 1 else ""),
             f"data: {train_size:,} training, {val_size:,} validation examples"]
    return "\n".join(lines + extra)


def recipe_line(config, augment: str) -> str:
    """The header's line on how a run (a TrainConfig) trains: the recipe's options that
    are on.

        recipe: adamw lr 0.001, cosine schedule, weight decay 0.05 (not on norms and
        biases), augment basic, label smoothing 0.1, EMA 0.999
    """
    recipe = [f"augment {augment}"]
    for name, value in (("warmup", config.warmup), ("label smoothing", config.label_smoothing),
                        ("clip grad", config.clip_grad), ("EMA", config.ema),
                        ("mixup", config.mixup), ("cutmix", config.cutmix)):
        if value:
            recipe.append(f"{name} {value:g}")
    return (f"recipe: {config.optimizer} lr {config.lr:g}, {config.schedule} "
            f"schedule, weight decay {config.weight_decay:g}"
            + ("" if config.decay_all else " (not on norms and biases)")
            + ", " + ", ".join(recipe))


def epoch_line(metrics: dict, epochs: int, best: bool) -> str:
    """The line that closes an epoch.

    >>> epoch_line({"epoch": 2, "train_loss": 0.61, "train_acc": 0.8, "val_loss": 0.7,
    ...             "val_acc": 0.75, "images_per_s": 1234.5}, 10, best=True)
    'epoch 2/10: train loss 0.6100 acc 0.800, val loss 0.7000 acc 0.750, 1234 images/s (best)'
    """
    text = "val_ppl" in metrics  # a language model: per-token figures, and perplexity
    return (f"epoch {metrics['epoch']}/{epochs}: "
            f"train loss {metrics['train_loss']:.4f} acc {metrics['train_acc']:.3f}"
            f", val loss {metrics['val_loss']:.4f} acc {metrics['val_acc']:.3f}"
            + (f" perplexity {metrics['val_ppl']:.2f}" if text else "") + ", "
            f"{metrics['images_per_s']:.0f} {'tokens' if text else 'images'}/s"
            + (" (best)" if best else ""))


def early_stop_line(metric: str, waited: int, best: dict) -> str:
    return (f"early stop: {metric} has not improved for {waited} "
            f"epochs (best {best['value']:.4f} at epoch {best['epoch']}, in best.pt)")


class Progress:
    """A tqdm bar on a terminal; elsewhere (a pipe, a log file) one plain line every
    `interval` seconds, so a log holds lines rather than thousands of bar redraws."""

    def __init__(self, enabled: bool, total: int, first: int, label: str, interval: float = 30.0,
                 stream=None):
        self.stream = stream or sys.stderr
        self.total, self.step, self.label = total, first, label
        self.interval, self.last = interval, time.perf_counter()
        self.bar = None
        self.enabled = enabled
        if enabled and self.stream.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=first, desc=label, unit="step",
                            file=self.stream, dynamic_ncols=True, leave=False)

    def update(self, **values) -> None:
        self.step += 1
        if self.bar is not None:
            self.bar.set_postfix(**values)
            self.bar.update(1)
        elif self.enabled and time.perf_counter() - self.last >= self.interval:
            self.last = time.perf_counter()
            shown = " ".join(f"{k} {v}" for k, v in values.items())
            print(f"{self.label} step {self.step}/{self.total}: {shown}", file=self.stream,
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class MetricsLog:
    """Rank 0's metric files in OUT. Step rows carry "kind": "step", epoch rows "epoch"."""

    def __init__(self, out: Path, tensorboard: bool):
        self.out = out
        self.jsonl = out / "metrics.jsonl"
        self.pending: list[dict] = []
        self.board = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                from ..errors import UsageError
                raise UsageError("--log tensorboard needs the tensorboard package: "
                                 "pip install tensorboard (or archdsl[tensorboard])") from None
            self.board = SummaryWriter(str(out / "tensorboard"))

    def resume(self, history: list[dict], global_step: int, before: Path) -> None:
        """Continue the files of a run resumed at `global_step` (from the run in folder
        `before`, which may be another): step rows written after the checkpoint are
        dropped (they will be written again), epoch rows come from the checkpoint."""
        kept = []
        source = self.jsonl if self.jsonl.exists() else before / "metrics.jsonl"
        if source.exists():
            for line in source.read_text().splitlines():
                row = json.loads(line) if line.strip() else None
                if row and row.get("kind") == "step" and row["global_step"] <= global_step:
                    kept.append(row)
        epochs = [{"kind": "epoch", **row} for row in history]
        rows = sorted(kept + epochs, key=lambda r: (r.get("global_step", 0), r["kind"] == "epoch"))
        write_atomic(self.jsonl, "".join(json.dumps(r) + "\n" for r in rows).encode())

    def step(self, row: dict) -> None:
        self.pending.append({"kind": "step", **row})
        if self.board is not None:
            for key in ("loss", "lr"):
                self.board.add_scalar(f"step/{key}", row[key], row["global_step"])
        if len(self.pending) >= 50:
            self.flush()

    def epoch(self, row: dict, history: list[dict]) -> None:
        self.pending.append({"kind": "epoch", **row})
        self.flush()
        write_atomic(self.out / "metrics.csv", epoch_csv(history).encode())
        if self.board is not None:
            for key, value in row.items():
                if key not in ("epoch", "kind", "global_step") and isinstance(value, (int, float)):
                    self.board.add_scalar(f"epoch/{key}", value, row["epoch"])
            self.board.flush()

    def flush(self) -> None:
        if self.pending:
            append(self.jsonl, self.pending)
            self.pending = []

    def close(self) -> None:
        self.flush()
        if self.board is not None:
            self.board.close()


def append(path: Path, rows: list[dict]) -> None:
    """Append metrics as JSON lines; a failure (a full disk) names the file."""
    try:
        with open(path, "a") as stream:
            stream.writelines(json.dumps(row) + "\n" for row in rows)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None


def epoch_csv(history: list[dict]) -> str:
    columns = []
    for row in history:
        columns += [k for k in row if k not in columns and k != "kind"]
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return text.getvalue()


def read_epochs(path: Path) -> list[dict]:
    """The epoch rows of a metrics.jsonl."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    return [row for row in rows if row.get("kind", "epoch") == "epoch"]


def plot_metrics(rows: list[dict], png_path: Path) -> None:
    """Loss and accuracy curves from per-epoch metrics (as in metrics.jsonl), as a PNG."""
    if not rows:
        return
    from matplotlib import pyplot
    figure = curves_figure(rows)
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=120)
    pyplot.close(figure)
    write_atomic(png_path, image.getvalue())


def curves_figure(rows: list[dict]):
    """The matplotlib figure of plot_metrics: loss and accuracy against whole epochs."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in rows]
    figure, (loss_axis, acc_axis) = pyplot.subplots(1, 2, figsize=(9, 3.5))
    loss_axis.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    loss_axis.plot(epochs, [r["val_loss"] for r in rows], "s--", label="validation")
    loss_axis.set(xlabel="epoch", ylabel="loss", title="loss")
    acc_axis.plot(epochs, [r["train_acc"] for r in rows], "o-", label="train")
    acc_axis.plot(epochs, [r["val_acc"] for r in rows], "s--", label="validation")
    acc_axis.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for axis in (loss_axis, acc_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs
        axis.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    return figure
