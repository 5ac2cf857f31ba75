"""What the files of a run hold of it, and putting a run back from its checkpoint.

checkpoint.pt holds everything to go on exactly (training_state): the learner (model,
optimizer, scheduler, grad scaler, EMA), the RNG states, where the run stands, and the
records that rebuild and feed the model. best.pt and last.pt hold the weights with those
records (weights_state). checkpoint.LAYOUTS is the layout both are checked against when
read; restore checks in addition that the checkpoint is of this network and this run.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import asdict
from pathlib import Path

import torch

from .. import ir
from .checkpoint import load_checkpoint
from .config import TrainConfig, TrainError
from .learner import Learner
from .prepare import Prepared
from .run_folder import CHECKPOINT
from .standing import Standing


def training_state(config: TrainConfig, prepared: Prepared, learner: Learner,
                   standing: Standing) -> dict:
    """checkpoint.pt's state: all that resumes the run exactly."""
    return {"kind": "training", "spec": spec_record(config, prepared.graph),
            **learner.state_dict(), "rng": rng_state(),
            "position": standing.position, "classes": list(prepared.classes),
            "preprocess": preprocess_record(prepared), "best": standing.best,
            "history": standing.history, "config": config_record(config)}


def weights_state(config: TrainConfig, prepared: Prepared, weights: dict, metrics: dict,
                  ema: bool) -> dict:
    """best.pt / last.pt: the weights with all that rebuilds and feeds the model."""
    return {"kind": "weights", "spec": spec_record(config, prepared.graph), "model": weights,
            "classes": list(prepared.classes), "preprocess": preprocess_record(prepared),
            "epoch": metrics["epoch"], "metrics": metrics, "ema": ema}


def restore(path: Path, config: TrainConfig, graph, learner: Learner, standing: Standing,
            total_steps: int) -> None:
    """Put the run back as checkpoint `path` left it, refusing one of another network or
    another run (see check_same_run) before anything is changed."""
    state = load_checkpoint(path)
    if "optimizer" not in state:
        raise TrainError(f"{path} holds weights only (best.pt, last.pt); resume from the "
                         f"run's {CHECKPOINT}")
    if state["spec"]["structure"] != structure_hash(graph):
        raise TrainError(f"{path} was written for another network ({state['spec']['network']} "
                         f"from {state['spec']['path']}); it does not match "
                         f"{config.spec}: resume with the spec and --set options it was "
                         "made with, or start a new run with another --out")
    check_same_run(state["config"], config, path)
    _load_model(learner.model, state["model"], path)
    learner.load_recipe_state(state, total_steps)
    standing.restore(state)
    restore_rng(state["rng"])


def _load_model(model: torch.nn.Module, weights: dict, path: Path) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:  # tensors missing or of other shapes
        first = str(error).strip().splitlines()[-1].strip()
        raise TrainError(f"{path}: its weights do not fit the network ({first}); resume "
                         "from an intact checkpoint, or start a new run with another "
                         "--out") from None


# ---- records ------------------------------------------------------------------------------------


def spec_record(config: TrainConfig, graph) -> dict:
    """The spec's source and options: what rebuilds the network with no other file."""
    return {"path": config.spec, "network": ir.network(graph).name,
            "source": Path(config.spec).read_text(),
            "structure": structure_hash(graph),
            "settings": config.settings,
            "inputs": {**{k: list(v) for k, v in config.inputs.items()},
                       **{name: list(graph.nodes[name]["shape"])
                          for name in ir.network(graph).inputs
                          if not graph.nodes[name]["shape"].follows}}}  # not a length that
    # a symbol sets (`L <= 1024`): the settings hold it, and a fixed one would pin it


def structure_hash(graph) -> str:
    """What makes two networks the same for a checkpoint: names, ops, arguments, wiring."""
    digest = hashlib.sha256()
    for name, data in graph.nodes(data=True):
        item = data["node"]
        digest.update(f"{name}={item.op}{item.args.items}{item.inputs}{data['shape']}\n".encode())
    return digest.hexdigest()


def preprocess_record(prepared: Prepared) -> dict | None:
    return prepared.preprocess.to_dict() if prepared.preprocess is not None else None


def config_record(config: TrainConfig) -> dict:
    """The options, as plain values; not those that only change what is shown."""
    return {k: (list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(config).items() if k not in ("progress", "log", "on_epoch")}


SAME_RUN = ("data", "batch_size", "seed", "optimizer", "schedule", "decay_all", "ema",
            "warmup", "augment", "mixup", "cutmix")
_DEFAULTS = TrainConfig("")


def check_same_run(saved: dict, config: TrainConfig, path: Path) -> None:
    """A resumed run must see the same data in the same order with the same optimizer;
    --epochs may grow (the schedule stretches), the rest must match."""
    for key in SAME_RUN:
        before = saved.get(key, getattr(_DEFAULTS, key))  # a checkpoint older than the option
        if before != getattr(config, key):
            flag = "--" + key.replace("_", "-")
            raise TrainError(f"{path} was made with {flag} {before}, not "
                             f"{getattr(config, key)}: resume with the same {flag}, or start a "
                             "new run with another --out")


# ---- random states ----------------------------------------------------------------------------


def rng_state() -> dict:
    """torch's, Python's and CUDA's generators, as a checkpoint stores them (Python's
    state as nested lists, which a weights-only load accepts)."""
    return {"torch": torch.get_rng_state(), "python": _lists(random.getstate()),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_tuples(state["python"]))
    if torch.cuda.is_available() and state.get("cuda"):
        torch.cuda.set_rng_state_all(state["cuda"])


def _lists(state):
    return [_lists(s) if isinstance(s, tuple) else s for s in state]


def _tuples(state):
    return tuple(_tuples(s) if isinstance(s, list) else s for s in state)
