"""`archdsl train`: train a spec's network.

Training is exact to resume: a batch is a function of (seed, epoch, step) alone (the
order of the data and every augmentation choice, see runtime.loader), every checkpoint
holds the model, optimizer, scheduler, grad scaler, EMA, RNG states and the position
inside the epoch, and is written to a temporary file and renamed. Under torchrun (or
`--nproc N`) the same loop runs data-parallel with DistributedDataParallel: each of the W
processes takes 1/W of every global batch, and rank 0 alone logs and writes files.

This module is the loop; the pieces live next door, in the order a run uses them:
config (the options), prepare (compile, data, model), run_folder (--out: claim, lock,
files), learner (model, optimizer, schedule, scaler, EMA), standing (position, history,
best epoch), snapshot (what checkpoints hold; resuming), loader and transforms (batches,
augmentation, mixup), recipes (optimizer, schedule, loss, EMA, SyncBatchNorm), predict
(the validation pass), runlog (header, progress, metric files, curves) and checkpoint
(the file format).
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ..backends.report_stats import report_stats
from . import recipes
from .config import AUGMENTS, TrainConfig, TrainError
from .device import pick_device
from .learner import Learner
from .loader import Loader, batch_seed
from .predict import evaluate
from .prepare import build_model, prepare
from .run_folder import CHECKPOINT, RUN_FILES, RunFolder, lock
from .runlog import MetricsLog, Progress, early_stop_line, epoch_line, header, recipe_line
from .snapshot import restore, structure_hash, training_state, weights_state
from .standing import Standing
from .transforms import mix

__all__ = ["AUGMENTS", "CHECKPOINT", "RUN_FILES", "TrainConfig", "TrainError", "structure_hash",
           "train"]

_lock = lock  # also importable by this name


def train(config: TrainConfig) -> list[dict]:
    """Train; returns the per-epoch metrics (also appended to OUT/metrics.jsonl)."""
    rank, world = _init_distributed(config)
    try:
        history = _Run(config, rank, world).run()
        if world > 1:  # no process tears the group down while another still uses it
            dist.barrier()
        return history
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
    """One run of the loop: epochs of training steps, each epoch closed by validation,
    the best-epoch bookkeeping and rank 0's files."""

    def __init__(self, config: TrainConfig, rank: int, world: int):
        self.config, self.rank, self.world = config, rank, world
        self.device = pick_device(config.device)
        if config.batch_size % world:
            raise TrainError(f"--batch-size {config.batch_size} must divide evenly over "
                             f"{world} processes")
        # spec and data first: a bad one stops the run before --out is touched
        self.prepared = prepare(config, world)
        self.folder = RunFolder(Path(config.out or Path("runs") / self.prepared.network))
        config.out = str(self.folder.out)
        if rank == 0:
            self.folder.claim(config.resume, self.prepared.network)
        self.resume_from = self.folder.resume_path(config.resume)
        # seeded before the model draws its initial weights
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        model, init_notes = build_model(config, self.prepared, self.device, world)
        self.notes = [*self.prepared.notes, *init_notes]
        self.loader = Loader(self.prepared.train_split, self.prepared.augment,
                             self.prepared.preprocess, seed=config.seed,
                             batch_size=config.batch_size, rank=rank, world=world,
                             workers=config.workers, pin_memory=self.device.type == "cuda")
        self.learner = Learner.create(model, config, self.loader.steps, self.device)
        self.standing = Standing(config.best_metric)
        if self.resume_from is not None:
            restore(self.resume_from, config, self.prepared.graph, self.learner, self.standing,
                    config.epochs * self.loader.steps)
        self.net = _data_parallel(model, self.device, world)
        self.watch = _watch(config, self.prepared.graph, self.learner)
        self.forward = torch.compile(self.net) if config.compile else self.net

    def run(self) -> list[dict]:
        try:
            return self._run()
        finally:
            self.folder.release()

    def _run(self) -> list[dict]:
        history = []
        self.log = self._open_log() if self.rank == 0 else None
        try:
            for epoch in range(self.standing.position["epoch"], self.config.epochs):
                if self._stopped_early():
                    break
                history.append(self._epoch(epoch))
            if self.rank == 0:
                self.folder.write_final(self.learner.judged().state_dict(), self.standing.history)
        finally:
            if self.log is not None:
                self.log.close()
        return history

    def _open_log(self) -> MetricsLog:
        """Rank 0's metric files, continued when resuming; then the header."""
        self.folder.out.mkdir(parents=True, exist_ok=True)
        log = MetricsLog(self.folder.out, "tensorboard" in self.config.log)
        if self.standing.history or self.standing.position["global_step"]:
            log.resume(self.standing.history, self.standing.position["global_step"],
                       self.resume_from.parent)
        self._print(self._header())
        return log

    # ---- an epoch: train, validate, judge, save ---------------------------------------------

    def _epoch(self, epoch: int) -> dict:
        train_metrics = self._train_epoch(epoch)
        metrics = {"epoch": epoch + 1, **train_metrics, **self._validate(),
                   "lr": self.learner.optimizer.param_groups[0]["lr"],
                   "global_step": self.standing.position["global_step"]}
        self.standing.finished(metrics)
        improved = self.standing.improves(self._shared_best_metric(metrics), metrics["epoch"])
        if self.rank == 0:
            self._save_epoch(metrics, improved)
            self.log.epoch(metrics, self.standing.history)
            self._print(epoch_line(metrics, self.config.epochs, improved))
            if self.config.on_epoch is not None:
                self.config.on_epoch(metrics)
        return metrics

    def _train_epoch(self, epoch: int) -> dict:
        self.net.train()
        first = self.standing.first_step(epoch)
        progress = Progress(self.rank == 0 and self.config.progress, self.loader.steps, first,
                            f"epoch {epoch + 1}", self.config.log_interval)
        tally = _Tally(self.world, "tok_s" if self.prepared.train_split.tokens else "img_s")
        for step, (x, y) in self.loader.epoch(epoch, first):
            loss, hits, count = self._train_batch(x, y, epoch, step)
            tally.add(loss, hits, count)
            self.standing.stepped(epoch, step)
            if self.rank == 0:
                self.log.step({"epoch": epoch + 1, "step": step + 1,
                               "global_step": self.standing.position["global_step"],
                               "loss": loss, "lr": self.learner.optimizer.param_groups[0]["lr"]})
            progress.update(**tally.shown())
            if self.rank == 0 and self._checkpoint_due(step):
                self._save_checkpoint()
        progress.close()
        return tally.metrics()

    def _train_batch(self, x, y, epoch: int, step: int) -> tuple[float, int, int]:
        """(loss, correct predictions, examples) of one step on this process's batch."""
        x, y = self._to_device(x), y.to(self.device, non_blocking=True)
        targets = self._mix(x, y, epoch, step)
        if targets is not None:
            x, targets = targets
            y = targets.argmax(1)
        if self.watch is not None:  # --debug: the batch, to locate a non-finite value in it
            self.watch.batch(x, y if targets is None else targets, epoch, step)
        loss, logits = self._step(x, y if targets is None else targets)
        return loss, (logits.argmax(-1) == y).sum().item(), y.numel()  # per token for text

    def _mix(self, x, y, epoch: int, step: int):
        if not (self.config.mixup or self.config.cutmix):
            return None
        generator = torch.Generator().manual_seed(batch_seed(self.config.seed, epoch, step) + 1)
        mixed, soft = mix(x.cpu(), y.cpu(), len(self.prepared.train_split.classes),
                          self.config.mixup, self.config.cutmix, generator)
        return self._to_device(mixed), soft.to(self.device)

    def _step(self, x, targets):
        autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.config.amp)
        with torch.autocast(self.device.type, dtype=autocast or torch.float32,
                            enabled=autocast is not None):
            outputs = self.forward(x)
            logits, loss = recipes.loss(self.prepared.graph, outputs, targets,
                                        self.config.label_smoothing)
        if self.watch is not None:
            self.watch.check_loss(loss)
        self.learner.update(loss, self.config.clip_grad)
        return loss.item(), logits.detach().float()

    def _validate(self) -> dict:
        """Rank 0 measures the judged weights on the validation split (predict.evaluate);
        the others wait for it."""
        if self.rank != 0:
            if self.world > 1:
                dist.barrier()
            return {"val_loss": float("nan"), "val_acc": float("nan"), "val_top5": float("nan")}
        result = evaluate(self.learner.judged(), self.prepared.val_split, self.device,
                          self.config.batch_size, self.config.channels_last,
                          self.prepared.preprocess)
        self.learner.model.train()
        if self.world > 1:
            dist.barrier()
        return {"val_loss": result["loss"], "val_acc": result["accuracy"], "val_top5": result["top5"],
                **({"val_ppl": result["perplexity"]} if "perplexity" in result else {})}

    def _shared_best_metric(self, metrics: dict) -> float:
        """The epoch's --best-metric, as rank 0 measured it: every rank tracks the best
        epoch, so all stop early together."""
        value = metrics[self.config.best_metric]
        if self.world > 1:  # only rank 0 validates: share its figures
            shared = torch.tensor([value, metrics["val_loss"], metrics["val_acc"]], dtype=torch.float64)
            dist.broadcast(shared, 0)
            value = shared[0].item()
        return value

    def _stopped_early(self) -> bool:
        patience = self.config.early_stop
        waited = self.standing.waited()
        if patience and waited >= patience:
            self._print(early_stop_line(self.config.best_metric, waited, self.standing.best))
            return True
        return False

    # ---- rank 0's files and lines ------------------------------------------------------------

    def _checkpoint_due(self, step: int) -> bool:
        """Every --checkpoint-every steps, but not on an epoch's last (the epoch's end saves)."""
        every = self.config.checkpoint_every
        return bool(every) and self.standing.position["global_step"] % every == 0 \
            and step + 1 < self.loader.steps

    def _save_checkpoint(self) -> None:
        self.folder.write_checkpoint(training_state(self.config, self.prepared, self.learner,
                                                    self.standing))

    def _save_epoch(self, metrics: dict, improved: bool) -> None:
        weights = self.learner.judged().state_dict()
        self._save_checkpoint()
        state = weights_state(self.config, self.prepared, weights, metrics,
                              self.learner.ema is not None)
        self.folder.write_weights("last.pt", state)
        if improved:
            self.folder.write_weights("best.pt", state)

    def _to_device(self, x):
        x = x.to(self.device, non_blocking=True)
        return x.to(memory_format=torch.channels_last) if self.config.channels_last and x.dim() == 4 else x

    def _header(self) -> str:
        totals = report_stats(self.prepared.graph).totals
        extra = [*self.notes, recipe_line(self.config, self.prepared.augment_name)]
        if self.prepared.preprocess is not None:
            extra.append(f"preprocess: {self.prepared.preprocess.describe()}")
        extra.append(f"writing to {self.folder.out} (best.pt by {self.config.best_metric})")
        return header(self.prepared.network, self.device, self.config.amp, totals.params,
                      totals.macs, len(self.prepared.train_split), len(self.prepared.val_split),
                      self.config.batch_size, self.world, extra)

    def _print(self, text: str) -> None:
        if self.config.progress and self.rank == 0:
            print(text, flush=True)


class _Tally:
    """An epoch's running sums over this process's batches, and its rate over all."""

    def __init__(self, world: int, rate: str = "img_s"):
        self.world, self.seen, self.correct, self.loss_sum = world, 0, 0, 0.0
        self.rate = rate  # what is counted: images (img_s) or tokens (tok_s)
        self.start = time.perf_counter()

    def add(self, loss: float, correct: int, count: int) -> None:
        self.seen += count
        self.correct += correct
        self.loss_sum += loss * count

    def shown(self) -> dict:
        """The progress line's figures so far."""
        rate = self.seen * self.world / max(time.perf_counter() - self.start, 1e-9)
        return {"loss": f"{self.loss_sum / self.seen:.4f}", "acc": f"{self.correct / self.seen:.3f}",
                self.rate: f"{rate:.0f}"}

    def metrics(self) -> dict:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        return {"train_loss": self.loss_sum / max(self.seen, 1),
                "train_acc": self.correct / max(self.seen, 1),
                "images_per_s": self.seen * self.world / elapsed, "seconds": elapsed}


def _watch(config: TrainConfig, graph, learner: Learner):
    """--debug: runtime.debug's check of every step (its gradients before the optimizer
    uses them), or None."""
    if not config.debug:
        return None
    from .debug import Watch  # noqa: PLC0415 (the hooks load only when asked for)
    return Watch(graph, learner.model, learner.optimizer, config.amp)


def _data_parallel(model: torch.nn.Module, device: torch.device, world: int) -> torch.nn.Module:
    """The model as the loop calls it: under DistributedDataParallel on several processes."""
    if world == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
