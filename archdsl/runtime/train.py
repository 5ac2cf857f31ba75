"""`archdsl train`, `eval` and `run`: train a spec's network, measure it, use it.

Training is exact to resume: the order of the data is a function of (seed, epoch) alone,
every checkpoint holds the model, optimizer, scheduler, grad scaler, RNG states and the
position inside the epoch, and is written to a temporary file and renamed. Under
torchrun (or `--nproc N`) the same loop runs data-parallel with DistributedDataParallel:
each of the W processes takes 1/W of every global batch, and rank 0 alone logs and
writes files.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .. import lower
from ..compile import CompileError, compile_file
from ..errors import UsageError
from .checkpoint import load_checkpoint, load_weights, pack, serialise
from .data import DataError, load_images, open_source
from ..files import write_atomic
from ..ir import nodes as ir_nodes
from ..ops import OPS, show

CHECKPOINT = "checkpoint.pt"


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
    device: str = "auto"
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    workers: int = 0
    seed: int = 0
    out: str = "runs/train"
    resume: str | None = None
    checkpoint_every: int = 100
    settings: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    network: str | None = None
    progress: bool = True


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
    backend = "nccl" if _device(config.device).type == "cuda" else "gloo"
    dist.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), world


def _device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device is available; use --device cpu")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(choice)


class _Run:
    def __init__(self, config: TrainConfig, rank: int, world: int):
        self.config, self.rank, self.world = config, rank, world
        self.out = Path(config.out)
        self.device = _device(config.device)
        if config.batch_size % world:
            raise TrainError(f"--batch-size {config.batch_size} must divide evenly over "
                             f"{world} processes")
        self.graph = _compile(config)
        if not config.out:
            config.out = str(Path("runs") / self.graph.graph["name"])
            self.out = Path(config.out)
        shape = self.graph.nodes[self.graph.graph["inputs"][0]]["shape"]
        try:
            self.train_split, self.val_split = open_source(config.data, shape, config.seed)
        except DataError as error:
            raise TrainError(str(error)) from None
        _check_classes(self.graph, len(self.train_split.classes), config)
        _check_batch(self.graph, config.batch_size // world, world)
        self.checkpoint_path = self.out / CHECKPOINT
        self.lock = _lock(self.out) if rank == 0 else None
        resume_from = self._resume_path()
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self.model = lower(self.graph).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.steps_per_epoch = max(1, len(self.train_split) // config.batch_size)
        self.optimizer = _optimizer(self.model, config)
        self.scheduler = _scheduler(self.optimizer, config, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp == "fp16")
        self.position = {"epoch": 0, "step": 0, "global_step": 0}
        self.history: list[dict] = []  # per-epoch metrics so far, carried by checkpoints
        if resume_from is not None:
            self._restore(resume_from)
        self.net = self.model
        if world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.forward = torch.compile(self.net) if config.compile else self.net

    # ---- set-up ------------------------------------------------------------------------

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
        if state["spec"]["structure"] != structure_hash(self.graph):
            raise TrainError(f"{path} was written for another network ({state['spec']['network']} "
                             f"from {state['spec']['path']}); it does not match "
                             f"{self.config.spec}: resume with the spec and --set options it was "
                             "made with, or start a new run with another --out")
        _check_same_run(state["config"], self.config, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for schedule in self.scheduler.lr_lambdas:  # --epochs may have grown: a longer schedule
            if hasattr(schedule, "total"):
                schedule.total = max(1, self.config.epochs * self.steps_per_epoch)
        self.scaler.load_state_dict(state["scaler"])
        self.position = dict(state["position"])
        self.history = list(state["history"])
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
        metrics_path = self.out / "metrics.jsonl"
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.history and not metrics_path.exists():  # resumed into a new --out
                _append(metrics_path, self.history)
        for epoch in range(self.position["epoch"], self.config.epochs):
            train_metrics = self._train_epoch(epoch)
            metrics = {"epoch": epoch + 1, **train_metrics, **self._validate(),
                       "lr": self.optimizer.param_groups[0]["lr"]}
            self.position = {"epoch": epoch + 1, "step": 0,
                             "global_step": self.position["global_step"]}
            self.history.append(metrics)
            if self.rank == 0:
                self._save_checkpoint()
                _append(metrics_path, [metrics])
                self._print(f"epoch {epoch + 1}/{self.config.epochs}: "
                            f"train loss {metrics['train_loss']:.4f} acc {metrics['train_acc']:.3f}"
                            f", val loss {metrics['val_loss']:.4f} acc {metrics['val_acc']:.3f}, "
                            f"{metrics['images_per_s']:.0f} images/s")
            history.append(metrics)
        if self.rank == 0:
            write_atomic(self.out / "model.pt", serialise(self.model.state_dict()))
            plot_metrics(self.history, self.out / "curves.png")
        return history

    def _batches(self, epoch: int, first_step: int):
        order = torch.randperm(len(self.train_split),
                               generator=torch.Generator().manual_seed(self.config.seed * 7919 + epoch))
        size = self.config.batch_size
        share = size // self.world
        for step in range(first_step, self.steps_per_epoch):
            chunk = order[step * size:(step + 1) * size][self.rank * share:(self.rank + 1) * share]
            yield step, chunk.tolist()

    def _loader(self, epoch: int, first_step: int):
        batches = self._batches(epoch, first_step)
        if self.config.workers == 0:
            return ((step, self.train_split.batch(indices)) for step, indices in batches)
        steps, index_lists = zip(*batches) if first_step < self.steps_per_epoch else ((), ())
        # The workers' seeds come from (seed, epoch), not from the global RNG, which would
        # be drawn at a different point in a run resumed mid-epoch.
        loader = torch.utils.data.DataLoader(
            _BatchDataset(self.train_split), batch_size=None, sampler=list(index_lists),
            num_workers=self.config.workers,
            generator=torch.Generator().manual_seed(self.config.seed * 7919 + epoch))
        return zip(steps, loader)

    def _train_epoch(self, epoch: int) -> dict:
        self.net.train()
        first = self.position["step"] if epoch == self.position["epoch"] else 0
        bar = self._bar(epoch, first)
        seen = correct = 0
        loss_sum = 0.0
        start = time.perf_counter()
        for step, (x, y) in self._loader(epoch, first):
            x, y = self._to_device(x), y.to(self.device)
            loss, logits = self._step(x, y)
            seen += len(y)
            correct += (logits.argmax(1) == y).sum().item()
            loss_sum += loss * len(y)
            self.position = {"epoch": epoch, "step": step + 1,
                             "global_step": self.position["global_step"] + 1}
            if bar is not None:
                rate = seen * self.world / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}",
                                img_s=f"{rate:.0f}")
                bar.update(1)
            if (self.rank == 0 and self.config.checkpoint_every
                    and self.position["global_step"] % self.config.checkpoint_every == 0
                    and step + 1 < self.steps_per_epoch):
                self._save_checkpoint()
        if bar is not None:
            bar.close()
        elapsed = max(time.perf_counter() - start, 1e-9)
        return {"train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
                "images_per_s": seen * self.world / elapsed, "seconds": elapsed}

    def _step(self, x, y):
        autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.config.amp)
        with torch.autocast(self.device.type, dtype=autocast or torch.float32,
                            enabled=autocast is not None):
            outputs = self.forward(x)
            logits, loss = _loss(self.graph, outputs, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.item(), logits.detach().float()

    def _validate(self) -> dict:
        if self.rank != 0:
            if self.world > 1:
                dist.barrier()
            return {"val_loss": float("nan"), "val_acc": float("nan")}
        result = evaluate(self.model, self.val_split, self.device, self.config.batch_size,
                          self.config.channels_last)
        if self.world > 1:
            dist.barrier()
        return {"val_loss": result["loss"], "val_acc": result["accuracy"]}

    def _to_device(self, x):
        x = x.to(self.device)
        return x.to(memory_format=torch.channels_last) if self.config.channels_last else x

    def _bar(self, epoch: int, first: int):
        if self.rank != 0 or not self.config.progress:
            return None
        from tqdm import tqdm
        return tqdm(total=self.steps_per_epoch, initial=first, desc=f"epoch {epoch + 1}",
                    unit="step", file=sys.stderr, dynamic_ncols=True, leave=False)

    def _print(self, text: str) -> None:
        if self.config.progress:
            print(text, flush=True)

    def _save_checkpoint(self) -> None:
        state = {
            "spec": {"path": self.config.spec, "network": self.graph.graph["name"],
                     "source": Path(self.config.spec).read_text(),
                     "structure": structure_hash(self.graph),
                     "settings": self.config.settings,
                     "inputs": {k: list(v) for k, v in self.config.inputs.items()}},
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": _list_state(random.getstate()),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "position": self.position, "classes": list(self.train_split.classes),
            "history": self.history,
            "config": {k: v for k, v in asdict(self.config).items() if k != "progress"},
        }
        write_atomic(self.checkpoint_path, pack(state))


class _BatchDataset(torch.utils.data.Dataset):
    """Lets a DataLoader's workers build whole batches from lists of indices."""

    def __init__(self, split):
        self.split = split

    def __getitem__(self, indices):
        return self.split.batch(indices)


# ---- pieces ---------------------------------------------------------------------------------


def _compile(config: TrainConfig):
    result = compile_file(config.spec, settings=config.settings, inputs=config.inputs,
                          network=config.network)
    if not result.ok:
        raise CompileError(result.diagnostics)
    graph = result.graph
    if len(graph.graph["inputs"]) != 1:
        raise TrainError("training needs a network with exactly one input")
    return graph


_SAME_RUN = ("data", "batch_size", "seed", "optimizer", "schedule")


def _check_same_run(saved: dict, config: TrainConfig, path: Path) -> None:
    """A resumed run must see the same data in the same order with the same optimizer;
    --epochs may grow (the schedule stretches), the rest must match."""
    for key in _SAME_RUN:
        if saved.get(key) != getattr(config, key):
            flag = "--" + key.replace("_", "-")
            raise TrainError(f"{path} was made with {flag} {saved.get(key)}, not "
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


def _append(path: Path, rows: list[dict]) -> None:
    """Append metrics as JSON lines; a failure (a full disk) names the file."""
    try:
        with open(path, "a") as stream:
            stream.writelines(json.dumps(row) + "\n" for row in rows)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None


def _check_classes(graph, classes: int, config: TrainConfig) -> None:
    main = next(o for o in graph.graph["outputs"] if not o.train_only)
    shape = graph.nodes[main.node]["shape"]
    if shape != (classes,):
        hint = (f"; set the class count with `--set classes={classes}`"
                if "classes" in graph.graph["params"] else
                f"; make its last layer `linear({classes})`")
        raise TrainError(f"the data has {classes} classes but {graph.graph['name']}'s output "
                         f"`{main.name}` is {show(shape)}{hint}")


def _loss(graph, outputs, y):
    if not isinstance(outputs, dict):
        return outputs, F.cross_entropy(outputs.float(), y)
    total, main_logits = 0, None
    for out in graph.graph["outputs"]:
        loss = F.cross_entropy(outputs[out.name].float(), y)
        total = total + (out.weight * loss if out.train_only else loss)
        if not out.train_only and main_logits is None:
            main_logits = outputs[out.name]
    return main_logits, total


def _optimizer(model, config: TrainConfig):
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9,
                           weight_decay=config.weight_decay, nesterov=True)


def _scheduler(optimizer, config: TrainConfig, steps_per_epoch: int):
    total = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "cosine":
        factor = _cosine(total)
    elif config.schedule == "step":
        factor = _step_decay(total)
    else:
        factor = _constant
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class _cosine:  # picklable schedules, so a scheduler state round-trips
    def __init__(self, total: int):
        self.total = total

    def __call__(self, step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(step, self.total) / self.total))


class _step_decay:
    def __init__(self, total: int):
        self.total = total

    def __call__(self, step: int) -> float:
        return 0.1 ** ((step >= self.total // 2) + (step >= 3 * self.total // 4))


def _constant(step: int) -> float:
    return 1.0


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


# ---- evaluation and inference -----------------------------------------------------------------


def evaluate(model, split, device, batch_size: int, channels_last: bool = False) -> dict:
    model.eval()
    seen = correct = 0
    loss_sum = 0.0
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            x, y = split.batch(list(range(start, min(len(split), start + batch_size))))
            x, y = x.to(device), y.to(device)
            if channels_last:
                x = x.to(memory_format=torch.channels_last)
            logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
    model.train()
    return {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1), "images": seen}


def load_trained(spec: str, weights: str, settings: dict, inputs: dict, network=None):
    """(model in eval mode, class names, graph) from a spec and a checkpoint or model.pt."""
    state, trained = load_weights(Path(weights))
    classes = None
    if trained is not None:
        settings = {**trained["spec"]["settings"], **settings}
        saved_inputs = {k: tuple(v) for k, v in trained["spec"]["inputs"].items()}
        inputs = {**saved_inputs, **inputs}
        classes = trained["classes"]
    config = TrainConfig(spec, settings=settings, inputs=inputs, network=network)
    graph = _compile(config)
    model = lower(graph)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as error:
        detail = " ".join(line.strip() for line in str(error).splitlines()[1:3])
        raise TrainError(f"{weights} does not fit {graph.graph['name']} as configured ({detail}); "
                         "pass the --set and --input options it was trained with (a "
                         "checkpoint.pt remembers them, a model.pt does not)") from None
    return model.eval(), classes, graph


def predict(model, graph, paths: list[str], top_k: int):
    shape = graph.nodes[graph.graph["inputs"][0]]["shape"]
    try:
        x = load_images(paths, shape)
    except DataError as error:
        raise TrainError(str(error)) from None
    with torch.no_grad():
        probabilities = model(x).float().softmax(1)
    top = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    return [list(zip(v.tolist(), i.tolist())) for v, i in zip(top.values, top.indices)]


# ---- plots ---------------------------------------------------------------------------------------


def plot_metrics(rows: list[dict], png_path: Path) -> None:
    """Loss and accuracy curves from per-epoch metrics (as in metrics.jsonl), as a PNG."""
    if not rows:
        return
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
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=120)
    pyplot.close(figure)
    write_atomic(png_path, image.getvalue())
