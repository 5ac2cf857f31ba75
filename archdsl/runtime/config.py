"""What a training run is asked to do (TrainConfig, one field per `archdsl train` option)
and the error for a run that cannot go as asked (TrainError).

    >>> config = TrainConfig("specs/resnet18.arch", epochs=90, batch_size=256)
    >>> config.data, config.optimizer, config.resume is None
    ('shapes', 'adamw', True)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..errors import UsageError

AUGMENTS = ("auto", "none", "basic", "trivial")


class TrainError(UsageError):
    """A problem with the run's inputs (data, checkpoint, settings): says how to fix it."""


@dataclass
class TrainConfig:
    spec: str
    data: str = "shapes"
    epochs: int = 10
    batch_size: int = 64  # global: split across processes
    lr: float = 1e-3
    optimizer: str = "adamw"
    schedule: str = "cosine"
    weight_decay: float = 0.05
    decay_all: bool = False  # also decay norms' scales and biases
    warmup: float = 0.0  # epochs of linear warm-up
    label_smoothing: float = 0.0
    clip_grad: float = 0.0  # max gradient norm; 0: off
    ema: float = 0.0  # EMA decay; 0: off
    mixup: float = 0.0
    cutmix: float = 0.0
    augment: str = "auto"  # auto: the data source's default
    sync_bn: bool = False
    device: str = "auto"
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    workers: int = 0
    seed: int = 0
    out: str = "runs/train"
    resume: str | None = None
    checkpoint_every: int = 100
    best_metric: str = "val_acc"
    early_stop: int = 0  # epochs without improvement; 0: off
    log: tuple[str, ...] = ()  # ("tensorboard",)
    labels: str | None = None
    init: str | None = None  # start from these weights (fine-tuning)
    zero_init_residual: bool = False  # each residual body's last norm or scale starts at 0
    settings: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    network: str | None = None
    progress: bool = True
    debug: bool = False  # check each step for non-finite values; stop with their place
    # called with each epoch's metrics on rank 0 (a sweep reports them to its pruner, which
    # may stop the run by raising); not an option of `archdsl train`
    on_epoch: Callable[[dict], None] | None = field(default=None, compare=False, repr=False)
    log_interval: float = 30.0  # seconds between plain progress lines off a terminal
