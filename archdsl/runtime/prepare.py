"""Before a run trains: compile the spec, open the data, check that the two fit (class
count, batch size, augmentation for the input's shape), and build the model, from fresh
weights or, for fine-tuning (--init), from a weights file.

Everything here runs before the run's folder is touched, so a bad spec, data source or
option stops the run with nothing written.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .. import ir
from ..backends.lower_fx import lower_fx
from .device import require_memory
from ..compile import CompileError, compile_file
from ..ir import nodes as ir_nodes
from ..ops import OPS, show
from . import recipes
from .checkpoint import load_weights
from .config import TrainConfig, TrainError
from .data import BYTES, DataError, Split, open_source, read_labels
from .transforms import Augment, Preprocess, policy


@dataclass(frozen=True)
class Prepared:
    """A compiled network and the data it trains on, checked to fit each other."""
    graph: object  # the IR graph of the network
    train_split: Split
    val_split: Split
    classes: tuple[str, ...]
    preprocess: Preprocess | None
    augment: Augment
    augment_name: str
    notes: tuple[str, ...]  # choices made for the user, for the run's header

    @property
    def network(self) -> str:
        return ir.network(self.graph).name


def prepare(config: TrainConfig, world: int) -> Prepared:
    """Compile, open the data, and take the class count from the data when the spec has a
    `classes` parameter the command line did not set. May set `config.settings["classes"]`,
    so that checkpoints record the count the network was built with."""
    graph = compile_network(config)
    shape = graph.nodes[ir.network(graph).inputs[0]]["shape"]
    try:
        train_split, val_split = open_source(config.data, shape, config.seed)
    except DataError as error:
        raise TrainError(str(error)) from None
    if train_split.tokens:
        graph, notes = _fit_vocabulary(config, graph)
        check_batch(graph, config.batch_size // world, world)
        return Prepared(graph, train_split, val_split, (), None,
                        policy("none", train_split.crop_scale), "none", notes)
    count = len(train_split.classes)
    notes = ()
    if ("classes" in ir.network(graph).params and "classes" not in config.settings
            and output_shape(graph) != (count,)):
        config.settings = {**config.settings, "classes": count}
        graph = compile_network(config)
        notes = (f"classes = {count}, from the data ({config.data}); "
                 "--set classes=N to choose another",)
    check_classes(graph, count)
    check_batch(graph, config.batch_size // world, world)
    classes = _class_names(config, train_split, count)
    name = _augment_name(config, train_split, shape)
    return Prepared(graph, train_split, val_split, classes, train_split.preprocess,
                    policy(name, train_split.crop_scale), name, notes)


def _fit_vocabulary(config: TrainConfig, graph) -> tuple[object, tuple[str, ...]]:
    """A language model on byte-level text: its `vocab_size`, unless set, becomes the 256
    byte values; its output must give L x V logits, V at least 256 (a larger vocabulary
    just never sees its other ids)."""
    notes = ()
    params = ir.network(graph).params
    if "vocab_size" in params and "vocab_size" not in config.settings and \
            params["vocab_size"] != BYTES:
        config.settings = {**config.settings, "vocab_size": BYTES}
        graph = compile_network(config)
        notes = (f"vocab_size = {BYTES}, the byte values of {config.data}; --set "
                 "vocab_size=N to choose another",)
    main = next(o for o in ir.network(graph).outputs if not o.train_only)
    shape = output_shape(graph)
    length = graph.nodes[ir.network(graph).inputs[0]]["shape"][0]
    if len(shape) != 2 or shape[0] != length or shape[1] < BYTES:
        raise TrainError(f"{config.data} is byte-level text: {ir.network(graph).name}'s output "
                         f"`{main.name}` must give {length} x V next-token logits with V at "
                         f"least {BYTES}, not {show(shape)}")
    return graph, notes


def build_model(config: TrainConfig, prepared: Prepared, device: torch.device,
                world: int) -> tuple[torch.nn.Module, list[str]]:
    """The model on `device` (and notes for the header): fresh weights, drawn from torch's
    generator as seeded now, or those of --init when a new run fine-tunes."""
    require_memory(prepared.graph, "training", batch=config.batch_size,
                   training=device.type == "cpu")  # on CUDA, only the weights are made here
    model = lower_fx(prepared.graph, zero_init_residual=config.zero_init_residual).to(device)
    if config.sync_bn and world > 1:
        model = recipes.sync_batch_norm(model, device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if config.init and config.resume is None:
        return model, [initialise(model, Path(config.init), prepared.network)]
    return model, []


def initialise(model: torch.nn.Module, path: Path, network: str) -> str:
    """Fine-tuning: every tensor of `path` (torchvision's weights, a model.pt, best.pt)
    whose name and shape fit; the rest (a head for another class count) keeps its fresh
    initialisation. Returns the header's note on which."""
    state, _ = load_weights(path)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not fits:
        raise TrainError(f"--init {path}: none of its tensors fits {network} "
                         "(names or shapes differ): use weights of the same network")
    model.load_state_dict(fits, strict=False)
    fresh = [k for k in own if k not in fits]
    return (f"initialised from {path}: {len(fits)} of {len(own)} tensors"
            + (f"; new: {', '.join(fresh[:6])}{' ...' if len(fresh) > 6 else ''}"
               if fresh else ""))


def compile_network(config: TrainConfig):
    result = compile_file(config.spec, settings=config.settings, inputs=config.inputs,
                          network=config.network)
    if not result.ok:
        raise CompileError(result.diagnostics)
    graph = result.graph
    if len(ir.network(graph).inputs) != 1:
        raise TrainError("training needs a network with exactly one input")
    return graph


def _augment_name(config: TrainConfig, train_split: Split, shape) -> str:
    name = config.augment
    if name == "auto":
        name = train_split.default_augment
    if name != "none" and (train_split.preprocess is None or len(shape) != 3):
        raise TrainError(f"--augment {name} works on images (C x H x W); this network "
                         f"takes {show(shape)}: use --augment none")
    if (config.mixup or config.cutmix) and len(shape) != 3:
        raise TrainError("--mixup and --cutmix work on images (C x H x W); this network "
                         f"takes {show(shape)}")
    return name


def _class_names(config: TrainConfig, train_split: Split, count: int) -> tuple[str, ...]:
    if not config.labels:
        return tuple(train_split.classes)
    try:
        return read_labels(Path(config.labels), tuple(train_split.classes), count)
    except DataError as error:
        raise TrainError(str(error)) from None


def check_batch(graph, per_process: int, world: int) -> None:
    """Layers that cannot train on so small a batch (batch norm on 1x1 maps or flat
    features needs two values per channel) are refused before anything runs."""
    for item in ir_nodes(graph):
        least = OPS[item.op].min_batch(item.args, graph.nodes[item.name]["shape"])
        if per_process < least:
            raise TrainError(f"`{item.name}` ({item.op}) cannot train on batches of "
                             f"{per_process} per process (it needs {least} or more at "
                             f"{show(graph.nodes[item.name]['shape'])}); use --batch-size "
                             f"{least * world} or more")


def output_shape(graph) -> tuple[int, ...]:
    main = next(o for o in ir.network(graph).outputs if not o.train_only)
    return graph.nodes[main.node]["shape"]


def check_classes(graph, classes: int) -> None:
    main = next(o for o in ir.network(graph).outputs if not o.train_only)
    shape = output_shape(graph)
    if shape != (classes,):
        hint = (f"; set the class count with `--set classes={classes}`"
                if "classes" in ir.network(graph).params else
                f"; make its last layer `linear({classes})`")
        raise TrainError(f"the data has {classes} classes but {ir.network(graph).name}'s output "
                         f"`{main.name}` is {show(shape)}{hint}")
