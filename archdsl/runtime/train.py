"""`archdsl train`: train a spec's network.

Training is exact to resume: a batch is a function of (seed, epoch, step) alone (the
order of the data and every augmentation choice, see runtime.loader), every checkpoint
holds the model, optimizer, scheduler, grad scaler, EMA, RNG states and the position
inside the epoch, and is written to a temporary file and renamed. Under torchrun (or
`--nproc N`) the same loop runs data-parallel with DistributedDataParallel: each of the W
processes takes 1/W of every global batch, and rank 0 alone logs and writes files.

The pieces live next door: transforms (preprocessing, augmentation, mixup), loader
(batches and workers), recipes (optimizer, schedule, loss, EMA, SyncBatchNorm), runlog
(header, progress, metric files, curves), checkpoint (the file format), predict (eval, run).
"""
from __future__ import annotations

import hashlib
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from .. import ir
from ..backends.lower_fx import lower_fx
from ..backends.report_stats import report_stats
from ..compile import CompileError, compile_file
from ..errors import UsageError
from ..files import claim_directory, owned_files, write_atomic
from ..ir import nodes as ir_nodes
from ..ops import OPS, show
from . import recipes
from .checkpoint import load_checkpoint, load_weights, pack, serialise
from .data import DataError, open_source, read_labels
from .device import pick_device
from .predict import evaluate
from .loader import Loader, batch_seed
from .runlog import MetricsLog, Progress, header, plot_metrics
from .transforms import mix, policy

CHECKPOINT = "checkpoint.pt"
# everything a run writes into its --out, listed in the directory's manifest
RUN_FILES = (CHECKPOINT, "model.pt", "best.pt", "last.pt", "metrics.jsonl", "metrics.csv",
             "curves.png", "tensorboard", ".lock")
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
    log_interval: float = 30.0  # seconds between plain progress lines off a terminal


# ---- the run ----------------------------------------------------------------------------


def train(config: TrainConfig) -> list[dict]:
    """Train; returns the per-epoch metrics (also appended to OUT/metrics.jsonl)."""
    rank, world = _init_distributed(config)
    try:
        return _Run(config, rank, world).run()
    finally:
        if world > 1:
            dist.destroy_process_group()


def _init_distributed(config: TrainConfig) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    backend = "nccl" if pick_device(config.device).type == "cuda" else "gloo"
    dist.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), world


class _Run:
    def __init__(self, config: TrainConfig, rank: int, world: int):
        self.config, self.rank, self.world = config, rank, world
        self.device = pick_device(config.device)
        if config.batch_size % world:
            raise TrainError(f"--batch-size {config.batch_size} must divide evenly over "
                             f"{world} processes")
        self.notes: list[str] = []
        self._open_data()
        self.out = Path(config.out or Path("runs") / ir.network(self.graph).name)
        config.out = str(self.out)
        self.checkpoint_path = self.out / CHECKPOINT
        if rank == 0:
            self._claim_out()
        self.lock = _lock(self.out) if rank == 0 else None
        resume_from = self.resume_from = self._resume_path()
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self._build_model()
        self.loader = Loader(self.train_split, self.augment, self.preprocess, seed=config.seed,
                             batch_size=config.batch_size, rank=rank, world=world,
                             workers=config.workers, pin_memory=self.device.type == "cuda")
        self.steps_per_epoch = self.loader.steps
        self.optimizer = recipes.optimizer(self.model, config.optimizer, config.lr,
                                           config.weight_decay, config.decay_all)
        self.scheduler = recipes.scheduler(self.optimizer, config.schedule,
                                           config.epochs * self.steps_per_epoch,
                                           round(config.warmup * self.steps_per_epoch))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp == "fp16")
        self.ema = recipes.ema(self.model, config.ema) if config.ema else None
        self.position = {"epoch": 0, "step": 0, "global_step": 0}
        self.history: list[dict] = []  # per-epoch metrics so far, carried by checkpoints
        self.best = {"metric": config.best_metric, "value": None, "epoch": 0}
        if resume_from is not None:
            self._restore(resume_from)
        self.net = self.model
        if world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.forward = torch.compile(self.net) if config.compile else self.net

    # ---- set-up ------------------------------------------------------------------------

    def _open_data(self) -> None:
        """Compile, open the data, and take the class count from the data when the spec
        has a `classes` parameter the command line did not set."""
        config = self.config
        self.graph = _compile(config)
        shape = self.graph.nodes[ir.network(self.graph).inputs[0]]["shape"]
        try:
            self.train_split, self.val_split = open_source(config.data, shape, config.seed)
        except DataError as error:
            raise TrainError(str(error)) from None
        count = len(self.train_split.classes)
        if ("classes" in ir.network(self.graph).params and "classes" not in config.settings
                and _output_shape(self.graph) != (count,)):
            config.settings = {**config.settings, "classes": count}
            self.graph = _compile(config)
            self.notes.append(f"classes = {count}, from the data ({config.data}); "
                              "--set classes=N to choose another")
        _check_classes(self.graph, count, config)
        _check_batch(self.graph, config.batch_size // self.world, self.world)
        self.classes = tuple(self.train_split.classes)
        if config.labels:
            try:
                self.classes = read_labels(Path(config.labels), self.classes, count)
            except DataError as error:
                raise TrainError(str(error)) from None
        self.preprocess = self.train_split.preprocess
        self.augment = self._augment_plan(shape)

    def _augment_plan(self, shape):
        name = self.config.augment
        if name == "auto":
            name = self.train_split.default_augment
        if name != "none" and (self.train_split.preprocess is None or len(shape) != 3):
            raise TrainError(f"--augment {name} works on images (C x H x W); this network "
                             f"takes {show(shape)}: use --augment none")
        if (self.config.mixup or self.config.cutmix) and len(shape) != 3:
            raise TrainError("--mixup and --cutmix work on images (C x H x W); this network "
                             f"takes {show(shape)}")
        self.augment_name = name
        return policy(name, self.train_split.crop_scale)

    def _build_model(self) -> None:
        self.model = lower_fx(self.graph, zero_init_residual=self.config.zero_init_residual).to(
            self.device)
        if self.config.sync_bn and self.world > 1:
            self.model = recipes.sync_batch_norm(self.model, self.device)
        if self.config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.config.init and self.config.resume is None:
            self._initialise(Path(self.config.init))

    def _initialise(self, path: Path) -> None:
        """Fine-tuning: every tensor of `path` (torchvision's weights, a model.pt, best.pt)
        whose name and shape fit; the rest (a head for another class count) keeps its
        fresh initialisation, and the header says which."""
        state, _ = load_weights(path)
        own = self.model.state_dict()
        fits = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
        if not fits:
            raise TrainError(f"--init {path}: none of its tensors fits {ir.network(self.graph).name} "
                             "(names or shapes differ): use weights of the same network")
        self.model.load_state_dict(fits, strict=False)
        fresh = [k for k in own if k not in fits]
        self.notes.append(f"initialised from {path}: {len(fits)} of {len(own)} tensors"
                          + (f"; new: {', '.join(fresh[:6])}{' ...' if len(fresh) > 6 else ''}"
                             if fresh else ""))

    def _claim_out(self) -> None:
        """--out must be new, empty or a run's: a folder of other files is refused before
        anything is written (a run of an archdsl without manifests is taken on when
        resumed)."""
        earlier = (self.config.resume is not None and self.checkpoint_path.is_file()
                   and owned_files(self.out) is None)
        try:
            claim_directory(self.out, "training run", RUN_FILES, adopt=earlier)
        except FileExistsError as error:
            raise TrainError(f"--out {self.out}: {error.strerror}; a run's folder holds "
                             "only what `archdsl train` writes") from None
        except NotADirectoryError:
            raise TrainError(f"--out {self.out}: is a file, not a folder; give a folder "
                             f"for the run, e.g. --out runs/{ir.network(self.graph).name}") from None

    def _resume_path(self) -> Path | None:
        if self.config.resume is None:
            if self.checkpoint_path.exists():
                raise TrainError(f"{self.out} already holds a run ({self.checkpoint_path}); "
                                 "continue it with --resume, or choose another --out")
            return None
        path = Path(self.config.resume) if self.config.resume != "last" else self.checkpoint_path
        if not path.is_file():
            raise TrainError(f"no checkpoint to resume at {path}")
        return path

    def _restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        if "optimizer" not in state:
            raise TrainError(f"{path} holds weights only (best.pt, last.pt); resume from the "
                             f"run's {CHECKPOINT}")
        if state["spec"]["structure"] != structure_hash(self.graph):
            raise TrainError(f"{path} was written for another network ({state['spec']['network']} "
                             f"from {state['spec']['path']}); it does not match "
                             f"{self.config.spec}: resume with the spec and --set options it was "
                             "made with, or start a new run with another --out")
        _check_same_run(state["config"], self.config, path)
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as error:  # tensors missing or of other shapes
            first = str(error).strip().splitlines()[-1].strip()
            raise TrainError(f"{path}: its weights do not fit the network ({first}); resume "
                             "from an intact checkpoint, or start a new run with another "
                             "--out") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        recipes.stretch(self.scheduler, self.config.epochs * self.steps_per_epoch)
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.position = dict(state["position"])
        self.history = list(state["history"])
        self.best = dict(state.get("best") or self.best)
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(_tuple_state(state["rng"]["python"]))
        if torch.cuda.is_available() and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    # ---- loop ----------------------------------------------------------------------------

    def run(self) -> list[dict]:
        try:
            return self._run()
        finally:
            if self.lock is not None:
                self.lock.close()

    def _run(self) -> list[dict]:
        history = []
        self.log = None
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            self.log = MetricsLog(self.out, "tensorboard" in self.config.log)
            if self.history or self.position["global_step"]:
                self.log.resume(self.history, self.position["global_step"],
                                self.resume_from.parent)
            self._print(self._header())
        try:
            for epoch in range(self.position["epoch"], self.config.epochs):
                if self._stopped_early():
                    break
                metrics = self._epoch(epoch)
                history.append(metrics)
            if self.rank == 0:
                write_atomic(self.out / "model.pt", serialise(self._judged().state_dict()))
                plot_metrics(self.history, self.out / "curves.png")
        finally:
            if self.log is not None:
                self.log.close()
        return history

    def _epoch(self, epoch: int) -> dict:
        train_metrics = self._train_epoch(epoch)
        metrics = {"epoch": epoch + 1, **train_metrics, **self._validate(),
                   "lr": self.optimizer.param_groups[0]["lr"],
                   "global_step": self.position["global_step"]}
        self.position = {"epoch": epoch + 1, "step": 0,
                         "global_step": self.position["global_step"]}
        self.history.append(metrics)
        improved = self._track_best(metrics)
        if self.rank == 0:
            weights = self._judged().state_dict()
            self._save_checkpoint()
            self._save_weights("last.pt", weights, metrics)
            if improved:
                self._save_weights("best.pt", weights, metrics)
            self.log.epoch(metrics, self.history)
            self._print(f"epoch {epoch + 1}/{self.config.epochs}: "
                        f"train loss {metrics['train_loss']:.4f} acc {metrics['train_acc']:.3f}"
                        f", val loss {metrics['val_loss']:.4f} acc {metrics['val_acc']:.3f}, "
                        f"{metrics['images_per_s']:.0f} images/s" + (" (best)" if improved else ""))
        return metrics

    def _track_best(self, metrics: dict) -> bool:
        """Whether this epoch is the best so far by --best-metric (higher accuracy, lower
        loss). Every rank tracks it, so all stop early together."""
        key = self.config.best_metric
        value = metrics[key]
        if self.world > 1:  # only rank 0 validates: share its figures
            shared = torch.tensor([value, metrics["val_loss"], metrics["val_acc"]], dtype=torch.float64)
            dist.broadcast(shared, 0)
            value = shared[0].item()
        best = self.best["value"]
        better = best is None or (value > best if key == "val_acc" else value < best)
        if better and math.isfinite(value):
            self.best = {"metric": key, "value": value, "epoch": metrics["epoch"]}
            return True
        return False

    def _stopped_early(self) -> bool:
        patience = self.config.early_stop
        if not patience or not self.history:
            return False
        waited = self.history[-1]["epoch"] - self.best["epoch"]
        if waited >= patience:
            self._print(f"early stop: {self.config.best_metric} has not improved for {waited} "
                        f"epochs (best {self.best['value']:.4f} at epoch {self.best['epoch']}, "
                        f"in best.pt)")
            return True
        return False

    def _judged(self):
        """The weights that are validated and saved: the EMA's when --ema is on."""
        return self.ema.module if self.ema is not None else self.model

    def _train_epoch(self, epoch: int) -> dict:
        self.net.train()
        first = self.position["step"] if epoch == self.position["epoch"] else 0
        progress = Progress(self.rank == 0 and self.config.progress, self.steps_per_epoch, first,
                            f"epoch {epoch + 1}", self.config.log_interval)
        seen = correct = 0
        loss_sum = 0.0
        start = time.perf_counter()
        for step, (x, y) in self.loader.epoch(epoch, first):
            x, y = self._to_device(x), y.to(self.device, non_blocking=True)
            targets = self._mix(x, y, epoch, step)
            if targets is not None:
                x, targets = targets
                y = targets.argmax(1)
            loss, logits = self._step(x, y if targets is None else targets)
            seen += len(y)
            correct += (logits.argmax(1) == y).sum().item()
            loss_sum += loss * len(y)
            self.position = {"epoch": epoch, "step": step + 1,
                             "global_step": self.position["global_step"] + 1}
            if self.rank == 0:
                self.log.step({"epoch": epoch + 1, "step": step + 1,
                               "global_step": self.position["global_step"], "loss": loss,
                               "lr": self.optimizer.param_groups[0]["lr"]})
            rate = seen * self.world / max(time.perf_counter() - start, 1e-9)
            progress.update(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}",
                            img_s=f"{rate:.0f}")
            if (self.rank == 0 and self.config.checkpoint_every
                    and self.position["global_step"] % self.config.checkpoint_every == 0
                    and step + 1 < self.steps_per_epoch):
                self._save_checkpoint()
        progress.close()
        elapsed = max(time.perf_counter() - start, 1e-9)
        return {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
                "images_per_s": seen * self.world / elapsed, "seconds": elapsed}

    def _mix(self, x, y, epoch: int, step: int):
        if not (self.config.mixup or self.config.cutmix):
            return None
        generator = torch.Generator().manual_seed(batch_seed(self.config.seed, epoch, step) + 1)
        mixed, soft = mix(x.cpu(), y.cpu(), len(self.train_split.classes), self.config.mixup,
                          self.config.cutmix, generator)
        return self._to_device(mixed), soft.to(self.device)

    def _step(self, x, targets):
        autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.config.amp)
        with torch.autocast(self.device.type, dtype=autocast or torch.float32,
                            enabled=autocast is not None):
            outputs = self.forward(x)
            logits, loss = recipes.loss(self.graph, outputs, targets, self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.clip_grad:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.item(), logits.detach().float()

    def _validate(self) -> dict:
        if self.rank != 0:
            if self.world > 1:
                dist.barrier()
            return {"val_loss": float("nan"), "val_acc": float("nan"), "val_top5": float("nan")}
        result = evaluate(self._judged(), self.val_split, self.device, self.config.batch_size,
                          self.config.channels_last, self.preprocess)
        self.model.train()
        if self.world > 1:
            dist.barrier()
        return {"val_loss": result["loss"], "val_acc": result["accuracy"], "val_top5": result["top5"]}

    def _to_device(self, x):
        x = x.to(self.device, non_blocking=True)
        return x.to(memory_format=torch.channels_last) if self.config.channels_last and x.dim() == 4 else x

    def _header(self) -> str:
        totals = report_stats(self.graph).totals
        extra = list(self.notes)
        recipe = [f"augment {self.augment_name}"]
        for name, value in (("warmup", self.config.warmup), ("label smoothing", self.config.label_smoothing),
                            ("clip grad", self.config.clip_grad), ("EMA", self.config.ema),
                            ("mixup", self.config.mixup), ("cutmix", self.config.cutmix)):
            if value:
                recipe.append(f"{name} {value:g}")
        extra.append(f"recipe: {self.config.optimizer} lr {self.config.lr:g}, {self.config.schedule} "
                     f"schedule, weight decay {self.config.weight_decay:g}"
                     + ("" if self.config.decay_all else " (not on norms and biases)")
                     + ", " + ", ".join(recipe))
        if self.preprocess is not None:
            extra.append(f"preprocess: {self.preprocess.describe()}")
        extra.append(f"writing to {self.out} (best.pt by {self.config.best_metric})")
        return header(ir.network(self.graph).name, self.device, self.config.amp, totals.params,
                      totals.macs, len(self.train_split), len(self.val_split),
                      self.config.batch_size, self.world, extra)

    def _print(self, text: str) -> None:
        if self.config.progress and self.rank == 0:
            print(text, flush=True)

    def _spec_record(self) -> dict:
        return {"path": self.config.spec, "network": ir.network(self.graph).name,
                "source": Path(self.config.spec).read_text(),
                "structure": structure_hash(self.graph),
                "settings": self.config.settings,
                "inputs": {**{k: list(v) for k, v in self.config.inputs.items()},
                           **{name: list(self.graph.nodes[name]["shape"])
                              for name in ir.network(self.graph).inputs}}}

    def _save_weights(self, name: str, weights: dict, metrics: dict) -> None:
        """best.pt / last.pt: the weights with all that rebuilds and feeds the model."""
        state = {"kind": "weights", "spec": self._spec_record(), "model": weights,
                 "classes": list(self.classes), "preprocess": self._preprocess_record(),
                 "epoch": metrics["epoch"], "metrics": metrics, "ema": self.ema is not None}
        write_atomic(self.out / name, pack(state))

    def _preprocess_record(self):
        return self.preprocess.to_dict() if self.preprocess is not None else None

    def _save_checkpoint(self) -> None:
        state = {
            "kind": "training", "spec": self._spec_record(),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": {"torch": torch.get_rng_state(), "python": _list_state(random.getstate()),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "position": self.position, "classes": list(self.classes),
            "preprocess": self._preprocess_record(), "best": self.best,
            "history": self.history,
            "config": {k: (list(v) if isinstance(v, tuple) else v)
                       for k, v in asdict(self.config).items() if k not in ("progress", "log")},
        }
        write_atomic(self.checkpoint_path, pack(state))


# ---- pieces ---------------------------------------------------------------------------------


def _compile(config: TrainConfig):
    result = compile_file(config.spec, settings=config.settings, inputs=config.inputs,
                          network=config.network)
    if not result.ok:
        raise CompileError(result.diagnostics)
    graph = result.graph
    if len(ir.network(graph).inputs) != 1:
        raise TrainError("training needs a network with exactly one input")
    return graph


_SAME_RUN = ("data", "batch_size", "seed", "optimizer", "schedule", "decay_all", "ema",
             "warmup", "augment", "mixup", "cutmix")
_DEFAULTS = TrainConfig("")


def _check_same_run(saved: dict, config: TrainConfig, path: Path) -> None:
    """A resumed run must see the same data in the same order with the same optimizer;
    --epochs may grow (the schedule stretches), the rest must match."""
    for key in _SAME_RUN:
        before = saved.get(key, getattr(_DEFAULTS, key))  # a checkpoint older than the option
        if before != getattr(config, key):
            flag = "--" + key.replace("_", "-")
            raise TrainError(f"{path} was made with {flag} {before}, not "
                             f"{getattr(config, key)}: resume with the same {flag}, or start a "
                             "new run with another --out")


def _check_batch(graph, per_process: int, world: int) -> None:
    """Layers that cannot train on so small a batch (batch norm on 1x1 maps or flat
    features needs two values per channel) are refused before anything runs."""
    for item in ir_nodes(graph):
        least = OPS[item.op].min_batch(item.args, graph.nodes[item.name]["shape"])
        if per_process < least:
            raise TrainError(f"`{item.name}` ({item.op}) cannot train on batches of "
                             f"{per_process} per process (it needs {least} or more at "
                             f"{show(graph.nodes[item.name]['shape'])}); use --batch-size "
                             f"{least * world} or more")


def _lock(out: Path):
    """Hold OUT/.lock for the run: a second `archdsl train` into the same --out stops at
    once instead of interleaving checkpoints and metrics."""
    out.mkdir(parents=True, exist_ok=True)
    stream = open(out / ".lock", "a+")
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return stream
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        stream.seek(0)
        holder = stream.read().strip() or "another process"
        stream.close()
        raise TrainError(f"another `archdsl train` ({holder}) is writing to {out}; wait for it "
                         "to finish or choose another --out") from None
    stream.seek(0)
    stream.truncate()
    stream.write(f"pid {os.getpid()}")
    stream.flush()
    return stream


def _output_shape(graph) -> tuple[int, ...]:
    main = next(o for o in ir.network(graph).outputs if not o.train_only)
    return graph.nodes[main.node]["shape"]


def _check_classes(graph, classes: int, config: TrainConfig) -> None:
    main = next(o for o in ir.network(graph).outputs if not o.train_only)
    shape = _output_shape(graph)
    if shape != (classes,):
        hint = (f"; set the class count with `--set classes={classes}`"
                if "classes" in ir.network(graph).params else
                f"; make its last layer `linear({classes})`")
        raise TrainError(f"the data has {classes} classes but {ir.network(graph).name}'s output "
                         f"`{main.name}` is {show(shape)}{hint}")


def structure_hash(graph) -> str:
    """What makes two networks the same for a checkpoint: names, ops, arguments, wiring."""
    digest = hashlib.sha256()
    for name, data in graph.nodes(data=True):
        item = data["node"]
        digest.update(f"{name}={item.op}{item.args.items}{item.inputs}{data['shape']}\n".encode())
    return digest.hexdigest()


def _list_state(state):
    return [_list_state(s) if isinstance(s, tuple) else s for s in state]


def _tuple_state(state):
    return tuple(_tuple_state(s) if isinstance(s, list) else s for s in state)


