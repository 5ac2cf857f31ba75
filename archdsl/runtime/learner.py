"""What learns in a run: the model and the recipe's parts that change it (optimizer,
learning-rate schedule, gradient scaler, EMA of the weights), made once from the
options, updated once a step, and carried whole by every checkpoint."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import recipes
from .config import TrainConfig


@dataclass
class Learner:
    """The model and the parts of the recipe that change its weights."""
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    ema: torch.optim.swa_utils.AveragedModel | None

    @classmethod
    def create(cls, model: torch.nn.Module, config: TrainConfig, steps_per_epoch: int,
               device: torch.device) -> Learner:
        optimizer = recipes.optimizer(model, config.optimizer, config.lr, config.weight_decay,
                                      config.decay_all)
        scheduler = recipes.scheduler(optimizer, config.schedule, config.epochs * steps_per_epoch,
                                      round(config.warmup * steps_per_epoch))
        scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
        ema = recipes.ema(model, config.ema) if config.ema else None
        return cls(model, optimizer, scheduler, scaler, ema)

    def judged(self) -> torch.nn.Module:
        """The weights that are validated and saved: the EMA's when --ema is on."""
        return self.ema.module if self.ema is not None else self.model

    def update(self, loss: torch.Tensor, clip_grad: float) -> None:
        """One optimizer step on `loss`: backward (scaled for fp16), clip, step, then
        advance the schedule and the EMA."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if clip_grad:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def state_dict(self) -> dict:
        """The checkpoint's entries for these parts, in the checkpoint's order."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None}

    def load_recipe_state(self, state: dict, total_steps: int) -> None:
        """All but the model's weights from a checkpoint; the schedule stretches to end at
        `total_steps` (a resumed run may have more --epochs)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        recipes.stretch(self.scheduler, total_steps)
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
