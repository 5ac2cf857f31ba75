"""Where a run stands: the next step to take, the metrics of the epochs done, and its best
epoch so far, which picks best.pt and decides an early stop. Checkpoints carry all three,
so a resumed run goes on from the same place.

    >>> standing = Standing("val_loss")
    >>> standing.improves(0.9, epoch=1), standing.improves(1.2, epoch=2)
    (True, False)
    >>> standing.best
    {'metric': 'val_loss', 'value': 0.9, 'epoch': 1}
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Standing:
    """Position, history and best epoch of one run."""
    best_metric: str  # val_acc (higher is better) or val_loss (lower is better)
    position: dict = field(default_factory=lambda: {"epoch": 0, "step": 0, "global_step": 0})
    history: list[dict] = field(default_factory=list)  # per-epoch metrics so far
    best: dict = field(default_factory=dict)

    def __post_init__(self):
        self.best = self.best or {"metric": self.best_metric, "value": None, "epoch": 0}

    def first_step(self, epoch: int) -> int:
        """Where `epoch` starts: mid-way for the epoch a checkpoint was written in."""
        return self.position["step"] if epoch == self.position["epoch"] else 0

    def stepped(self, epoch: int, step: int) -> None:
        self.position = {"epoch": epoch, "step": step + 1,
                         "global_step": self.position["global_step"] + 1}

    def finished(self, metrics: dict) -> None:
        """An epoch is done: the next starts at its first step."""
        self.position = {"epoch": metrics["epoch"], "step": 0,
                         "global_step": self.position["global_step"]}
        self.history.append(metrics)

    def improves(self, value: float, epoch: int) -> bool:
        """Whether `value` of the best metric makes `epoch` the best so far; if so, it is."""
        best = self.best["value"]
        better = best is None or (value > best if self.best_metric == "val_acc" else value < best)
        if better and math.isfinite(value):
            self.best = {"metric": self.best_metric, "value": value, "epoch": epoch}
            return True
        return False

    def waited(self) -> int:
        """Epochs since the best one."""
        return self.history[-1]["epoch"] - self.best["epoch"] if self.history else 0

    def restore(self, state: dict) -> None:
        """From a training checkpoint's state."""
        self.position = dict(state["position"])
        self.history = list(state["history"])
        self.best = dict(state.get("best") or self.best)
