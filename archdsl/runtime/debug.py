"""`archdsl debug` and `archdsl train --debug`: run batches through a network with hooks
and say, per layer of the spec, what its values and gradients look like, which ReLU
units never fire, and where a NaN or an infinity first appears.

The module runs under an fx Interpreter (`_Observer`), one fx node at a time, so every
layer's output is seen, including those lowered to plain functions (`log`, `div`), and
each fx node is traced back to its layer by `meta["archdsl_node"]` (lower_fx). The
forward pass is watched in order: the first layer whose output holds a non-finite value
is the culprit, and its computation is run again under a dispatch mode that names the
torch operations inside it that made it (`aten.log` of a negative input,
`aten.native_layer_norm` of a constant one). The backward pass is watched per edge: each
layer reads its inputs through views of its own, whose gradients say which layer's
backward turned finite gradients into non-finite ones, and hooks on the autograd nodes
inside it name the backward operation (`SqrtBackward0` at zero).

Nothing here updates the weights: `debug` measures the network as it is (fresh, or with
--weights); `train --debug` (`Watch`) checks every step and, at the first non-finite
loss or gradient, runs the same batch again under the observer to locate it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import operator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import fx
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .. import ir
from ..backends.lower_fx import lower_fx
from ..backends.report_debug import render_fault
from . import recipes
from .checkpoint import load_weights
from .config import TrainConfig, TrainError
from .device import pick_device, require_memory
from .loader import Loader
from .prepare import prepare

DEAD_OPS = ("relu", "relu6", "hardswish")  # outputs exactly zero over a half-line
PRECISIONS = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class DebugError(TrainError):
    """Inputs `archdsl debug` cannot use (weights that do not fit the spec, a bad count)."""


class NonFiniteError(TrainError):
    """`train --debug` met a non-finite loss or gradient: the message holds the located
    report; `fault` is the located Fault, or None when a rerun found none."""

    def __init__(self, message: str, fault: Fault | None):
        super().__init__(message)
        self.fault = fault


# ---- what is measured ---------------------------------------------------------------------


@dataclass
class Moments:
    """Running figures of a stream of tensors: mean, std and largest |value| over the
    finite values, the share of zeros, and the count of NaN and infinite values."""
    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    largest: float = 0.0
    zeros: int = 0
    nans: int = 0
    infs: int = 0

    def add(self, tensor: torch.Tensor) -> bool:
        """Count `tensor` in; returns whether all of it was finite."""
        values = tensor.detach()
        finite = _finite(values)
        kept = values if finite else torch.where(torch.isfinite(values), values, 0)
        figures = torch.stack([
            kept.sum(dtype=torch.float64),
            torch.linalg.vector_norm(kept, dtype=torch.float64).square(),
            kept.abs().amax().double() if kept.numel() else kept.new_zeros((), dtype=torch.float64),
            (values == 0).sum().double(),
            values.isnan().sum().double() if not finite else kept.new_zeros((), dtype=torch.float64),
        ]).tolist()
        self.total += figures[0]
        self.squares += figures[1]
        self.largest = max(self.largest, figures[2])
        self.zeros += int(figures[3])
        self.nans += int(figures[4])
        bad = 0 if finite else int((~torch.isfinite(values)).sum())
        self.infs += bad - int(figures[4])
        self.count += values.numel() - bad
        return finite

    @property
    def seen(self) -> int:
        return self.count + self.nans + self.infs

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    @property
    def std(self) -> float:
        if not self.count:
            return float("nan")
        return max(0.0, self.squares / self.count - self.mean ** 2) ** 0.5

    @property
    def zero_fraction(self) -> float:
        return self.zeros / self.seen if self.seen else float("nan")

    def record(self) -> dict:
        return {"mean": self.mean, "std": self.std, "max_abs": self.largest,
                "zero_fraction": self.zero_fraction, "nan": self.nans, "inf": self.infs,
                "values": self.seen}


@dataclass
class Layer:
    """One layer of the spec (an IR node) and its figures over the run."""
    name: str
    op: str
    activation: Moments = field(default_factory=Moments)
    gradient: Moments = field(default_factory=Moments)
    alive: torch.Tensor | None = None  # per unit, for DEAD_OPS: fired at least once

    @property
    def dead(self) -> tuple[int, ...]:
        """The units (channels or features) whose output was zero everywhere, every batch."""
        if self.alive is None:
            return ()
        return tuple(int(i) for i in (~self.alive).nonzero().flatten().tolist())


@dataclass(frozen=True)
class Fault:
    """Where a non-finite value first appeared. `layer` is the IR node; `stage` is
    "forward" (its output), "backward" (the gradients it passes back) or "input" (the
    data); `inner` the torch operations inside the layer that made it."""
    layer: str
    op: str
    stage: str
    kind: str  # "NaN", "inf" or "NaN and inf"
    count: int
    total: int
    batch: int  # from 1
    inner: tuple[str, ...] = ()
    dtype: str = "float32"
    inputs: tuple[tuple[str, str], ...] = ()  # (producing layer, what it gave)
    parameters: tuple[str, ...] = ()  # notes on the layer's own parameters
    hints: tuple[str, ...] = ()  # what the caller knows: training step, learning rate

    def record(self) -> dict:
        return {"layer": self.layer, "op": self.op, "stage": self.stage, "kind": self.kind,
                "count": self.count, "values": self.total, "batch": self.batch,
                "inner": list(self.inner), "dtype": self.dtype,
                "inputs": [{"layer": n, "gives": g} for n, g in self.inputs],
                "parameters": list(self.parameters), "notes": list(self.hints)}


@dataclass
class DebugReport:
    """What `archdsl debug` found: per-layer figures in the spec's order, and the first
    non-finite value, if any (the run stops at the batch that made it)."""
    network: str
    data: str
    batches: int  # run
    batch_size: int
    mode: str  # "train" or "eval"
    precision: str
    device: str
    layers: list[Layer]
    losses: list[float]
    fault: Fault | None = None


def _kind(tensor: torch.Tensor) -> str:
    nan, inf = bool(tensor.isnan().any()), bool(tensor.isinf().any())
    return "NaN and inf" if nan and inf else "NaN" if nan else "inf"


def _finite(tensor) -> bool:
    """No NaN nor infinity in `tensor` (any that is not a float tensor is finite). A finite
    sum says so at the cost of one pass; a sum of finite values may overflow, so a
    non-finite one is checked value by value."""
    if not (isinstance(tensor, torch.Tensor) and tensor.is_floating_point()):
        return True
    values = tensor.detach()
    return math.isfinite(float(values.sum())) or bool(torch.isfinite(values).all())


def _floats(value) -> list[torch.Tensor]:
    return [t for t in tree_leaves(value) if isinstance(t, torch.Tensor) and t.is_floating_point()]


def _describe(tensor: torch.Tensor) -> str:
    """What a layer gave, for a label: its range, and its zeros or non-finite values."""
    values = tensor.detach().float()
    finite = values[torch.isfinite(values)]
    text = f"gives values in [{finite.min():.3g}, {finite.max():.3g}]" if finite.numel() \
        else "gives no finite value"
    zeros = int((values == 0).sum())
    if zeros:
        text += f", {zeros} of {values.numel()} zero"
    if finite.numel() < values.numel():
        text += f", {values.numel() - finite.numel()} {_kind(values)}"
    return text


# ---- the inner operations -----------------------------------------------------------------


class _FirstNonFinite(TorchDispatchMode):
    """Records each torch operation that gives a non-finite value from finite inputs."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if all(_finite(t) for t in _floats((args, kwargs))) and \
                not all(_finite(t) for t in _floats(result)):
            name = f"aten.{func.overloadpacket.__name__}"
            if name not in self.found:
                self.found.append(name)
        return result


def _backward_nodes(output: torch.Tensor, stops: set) -> list:
    """The autograd nodes that compute one layer's backward: from its output's grad_fn
    back to its inputs' views (`stops`) or its parameters."""
    start = output.grad_fn
    if start is None:
        return []
    found, todo, seen = [], [start], {start}
    while todo and len(found) < 256:
        node = todo.pop()
        if node in stops or type(node).__name__ == "AccumulateGrad":
            continue
        found.append(node)
        for child, _ in node.next_functions:
            if child is not None and child not in seen:
                seen.add(child)
                todo.append(child)
    return found


# ---- the observer -------------------------------------------------------------------------


class _Probe:
    """The figures of every layer over the run, and the faults of the batch in hand."""

    def __init__(self, graph, model: torch.nn.Module):
        self.graph, self.model = graph, model
        self.layers = {item.name: Layer(item.name, item.op) for item in ir.nodes(graph)}
        self.fault: Fault | None = None

    def begin(self, batch: int) -> None:
        self.batch, self.outputs, self.producer = batch, {}, {}
        self.bad_out: set[str] = set()  # layers whose output's gradient is non-finite
        self.bad_edge: set[tuple[str, str]] = set()  # (producer, reader): a bad gradient
        self.views: set = set()  # the grad_fns of the reading views: a layer's border
        self.backward_ops: dict[str, list[str]] = {}

    def read(self, value, reader: str):
        """`value` as layer `reader` reads it: a view of another layer's output, whose
        gradient is this edge's own."""
        producer = self.producer.get(id(value)) if isinstance(value, torch.Tensor) else None
        if producer is None or producer == reader or not value.requires_grad:
            return value
        view = value.view_as(value)
        view.register_hook(self._edge_hook(producer, reader))
        self.views.add(view.grad_fn)
        return view

    def _edge_hook(self, producer: str, reader: str):
        def hook(grad):
            if not _finite(grad):
                self.bad_edge.add((producer, reader))
        return hook

    def output(self, name: str, value, group: list[fx.Node], rerun) -> None:
        """Layer `name` gave `value` (its fx nodes are `group`; `rerun` computes them again)."""
        self.outputs[name] = value
        if not isinstance(value, torch.Tensor):
            return
        self.producer[id(value)] = name
        if not value.is_floating_point():
            return
        layer = self.layers[name]
        finite = layer.activation.add(value)
        if layer.op in DEAD_OPS:
            self._fired(layer, value)
        if value.requires_grad:
            value.register_hook(self._gradient_hook(layer))
        if self.fault is None and not finite:
            self.fault = self._forward_fault(name, value, group, rerun)

    def _gradient_hook(self, layer: Layer):
        def hook(grad):
            if not layer.gradient.add(grad):
                self.bad_out.add(layer.name)
        return hook

    def _fired(self, layer: Layer, value: torch.Tensor) -> None:
        axes = getattr(ir.shape(self.graph, layer.name), "axes", "")
        axis = 1 + axes.index("C") if "C" in axes and value.dim() > 1 else value.dim() - 1
        fired = (value.detach() != 0).transpose(0, axis).reshape(value.shape[axis], -1).any(1)
        layer.alive = fired if layer.alive is None else layer.alive | fired

    def _forward_fault(self, name: str, value, group, rerun) -> Fault:
        item = ir.node(self.graph, name)
        inner = _FirstNonFinite()
        with torch.no_grad(), inner:
            for node in group:
                if node.op != "placeholder":  # the data: nothing inside to name
                    rerun(node)
        stage = "input" if item.op == "input" else "forward"
        inputs = tuple((source, _describe(self.outputs[source])) for source in item.inputs
                       if isinstance(self.outputs.get(source), torch.Tensor)
                       and self.outputs[source].is_floating_point())
        return Fault(name, item.op, stage, _kind(value), int((~torch.isfinite(value)).sum()),
                     value.numel(), self.batch, tuple(inner.found), str(value.dtype)[6:],
                     inputs, self._parameter_notes(name))

    def parameters(self, name: str) -> list[tuple[str, torch.Tensor]]:
        """The learned tensors of layer `name`: its module's, or its own (param, scale)."""
        with contextlib.suppress(AttributeError):
            return list(self.model.get_submodule(name).named_parameters())
        with contextlib.suppress(AttributeError):
            return [(ir.labels(self.graph, name)[-1], self.model.get_parameter(name))]
        return []

    def _parameter_notes(self, name: str) -> tuple[str, ...]:
        notes = []
        for key, parameter in self.parameters(name):
            values = parameter.detach()
            bad = int((~torch.isfinite(values)).sum())
            if bad:
                notes.append(f"its parameter `{key}` holds {bad} {_kind(values)} of "
                             f"{values.numel()} values")
            elif values.numel() and float(values.abs().max()) > 1e4:
                notes.append(f"its parameter `{key}` reaches |w| = {float(values.abs().max()):.3g}")
        return tuple(notes)

    def watch_backward(self) -> None:
        """Before backward: hooks on the autograd nodes inside each layer, so the backward
        operation that first gives a non-finite gradient is named."""
        for name, value in self.outputs.items():
            if isinstance(value, torch.Tensor) and value.requires_grad:
                for node in _backward_nodes(value, self.views):
                    node.register_hook(self._node_hook(name, node.name()))

    def _node_hook(self, layer: str, op: str):
        def hook(grad_inputs, grad_outputs):
            if not all(_finite(g) for g in grad_inputs if g is not None) and \
                    all(_finite(g) for g in grad_outputs if g is not None):
                found = self.backward_ops.setdefault(layer, [])
                if op not in found:
                    found.append(op)
        return hook

    def backward_fault(self) -> Fault | None:
        """The latest layer (in the forward order) whose output's gradient was finite but
        which passed a non-finite one back, to an input or to its own parameters."""
        for item in reversed(list(ir.nodes(self.graph))):
            if item.name in self.bad_out:
                continue
            bad_inputs = [p for p, reader in self.bad_edge if reader == item.name]
            bad_parameters = [key for key, p in self.parameters(item.name)
                              if p.grad is not None and not _finite(p.grad)]
            if bad_inputs or bad_parameters:
                return self._backward_fault(item, bad_inputs, bad_parameters)
        return None

    def _backward_fault(self, item, bad_inputs, bad_parameters) -> Fault:
        value = self.outputs[item.name]
        inputs = tuple((source, "receives a non-finite gradient from it")
                       for source in item.inputs if source in bad_inputs)
        notes = tuple(f"the gradient of its parameter `{key}` is non-finite"
                      for key in bad_parameters)
        return Fault(item.name, item.op, "backward", "NaN or inf", 0, value.numel(),
                     self.batch, tuple(self.backward_ops.get(item.name, ())),
                     str(value.dtype)[6:], inputs, notes + self._parameter_notes(item.name))


class _Observer(fx.Interpreter):
    """Runs a lowered module one fx node at a time, out of place (an in-place ReLU or
    `+=` would overwrite the value just measured), telling the probe each layer's output.
    The fx nodes a layer's function made before its last one (a parameter's `get_attr`)
    are its `group`, run again to name the operations inside it."""

    def __init__(self, module: fx.GraphModule, probe: _Probe):
        super().__init__(module, garbage_collect_values=False)  # a layer may be run again
        self.probe, self.group = probe, []
        self.inputs = iter(ir.network(probe.graph).inputs)  # the placeholders, in order

    def run_node(self, node: fx.Node):
        name = next(self.inputs) if node.op == "placeholder" else node.meta.get("archdsl_node")
        self.group.append(node)
        if name is None:
            return self._compute(node, None)
        result = self._compute(node, name)
        group, self.group = self.group, []
        self.probe.output(name, result, group, lambda n: self._compute(n, name))
        return result

    def _compute(self, node: fx.Node, layer: str | None):
        args, kwargs = self.fetch_args_kwargs_from_env(node)
        if layer is not None:
            args = fx.node.map_aggregate(args, lambda a: self.probe.read(a, layer))
        target = operator.add if node.target is operator.iadd else node.target
        with self._set_current_node(node):
            return getattr(self, node.op)(target, args, kwargs)


@contextlib.contextmanager
def _out_of_place(model: torch.nn.Module):
    """The model's in-place activations made out of place for the while."""
    changed = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for module in changed:
        module.inplace = False
    try:
        yield
    finally:
        for module in changed:
            module.inplace = True


def _graph_module(model: torch.nn.Module) -> fx.GraphModule:
    """The fx module that runs: an AuxiliaryNetwork's training or evaluation graph."""
    model = getattr(model, "module", model)  # under DistributedDataParallel
    if isinstance(model, fx.GraphModule):
        return model
    return model.train_module if model.training else model.eval_module


def _step(probe: _Probe, model, graph, x, y, precision) -> float:
    """One batch forward and backward under the probe; returns the loss. Stops after
    the forward pass when it made a non-finite value."""
    for parameter in model.parameters():
        parameter.grad = None
    module = _graph_module(model)
    with torch.autocast(x.device.type, dtype=precision or torch.float32,
                        enabled=precision is not None):
        outputs = _Observer(module, probe).run(x)
        _, loss = recipes.loss(graph, outputs, y)
    if probe.fault is not None:
        return float(loss.detach())
    probe.watch_backward()
    loss.backward()
    probe.fault = probe.backward_fault()
    if probe.fault is None and not _finite(loss):
        probe.fault = Fault("", "loss", "loss", _kind(loss.detach()), 1, 1, probe.batch)
    return float(loss.detach())


def observe(graph, model: torch.nn.Module, batches, precision=None) -> tuple[_Probe, list]:
    """Run (inputs, targets) `batches` through `model` (lowered from `graph`) with hooks,
    forward and backward, until the first batch with a non-finite value; returns the
    probe (per-layer figures, the fault) and the losses."""
    probe, losses = None, []
    with _out_of_place(model):
        for number, (x, y) in enumerate(batches, 1):
            probe = probe or _Probe(graph, model)
            probe.begin(number)
            losses.append(_step(probe, model, graph, x, y, precision))
            if probe.fault is not None:
                break
    for parameter in model.parameters():
        parameter.grad = None
    return probe, losses


# ---- archdsl debug ---------------------------------------------------------------------------


@dataclass
class DebugConfig:
    spec: str
    data: str = "shapes"
    weights: str | None = None
    batches: int = 4
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"
    amp: str = "off"
    eval: bool = False  # the model in eval mode (running BN statistics, no dropout)
    settings: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    network: str | None = None


def debug(config: DebugConfig) -> tuple[object, DebugReport]:
    """(graph, report): FILE's network, fresh or with --weights, run over `batches`
    batches of the data's training split, forward and backward, weights unchanged."""
    for name, value in (("--batches", config.batches), ("--batch-size", config.batch_size)):
        if value < 1:
            raise DebugError(f"{name} must be at least 1")
    state, settings, inputs = _weights(config)
    run = TrainConfig(config.spec, data=config.data, batch_size=config.batch_size,
                      seed=config.seed, device=config.device, amp=config.amp, augment="none",
                      settings=settings, inputs=inputs, network=config.network, progress=False)
    prepared = prepare(run, 1)
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    require_memory(prepared.graph, "debugging", batch=config.batch_size)
    model = lower_fx(prepared.graph)
    if state is not None:
        _load(model, state, config.weights, prepared.network)
    model = model.to(device).train(not config.eval)
    loader = Loader(prepared.train_split, prepared.augment, prepared.preprocess,
                    seed=config.seed, batch_size=config.batch_size, rank=0, world=1,
                    workers=0, pin_memory=False)
    batches = ((x.to(device), y.to(device)) for _, (x, y) in loader.epoch(0, 0))
    batches = (batch for batch, _ in zip(batches, range(config.batches)))
    probe, losses = observe(prepared.graph, model, batches, PRECISIONS[config.amp])
    if probe is None:
        raise DebugError(f"{config.data} gives no batch to run")
    report = DebugReport(prepared.network, config.data, len(losses),
                         min(config.batch_size, len(prepared.train_split)),
                         "eval" if config.eval else "train",
                         {"off": "float32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}
                         [config.amp], str(device), list(probe.layers.values()), losses,
                         probe.fault)
    return prepared.graph, report


def _weights(config: DebugConfig) -> tuple[dict | None, dict, dict]:
    """(state_dict or None, settings, inputs): a checkpoint's own settings and input sizes
    hold unless the command line sets them."""
    if not config.weights:
        return None, config.settings, config.inputs
    state, trained = load_weights(Path(config.weights))
    if trained is None:
        return state, config.settings, config.inputs
    saved = {k: tuple(v) for k, v in trained["spec"]["inputs"].items()}
    return (state, {**trained["spec"]["settings"], **config.settings},
            {**saved, **config.inputs})


def _load(model: torch.nn.Module, state: dict, path: str, network: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} is {tuple(state[k].shape)}, not {tuple(own[k].shape)}" for k in own
             if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = ([f"missing {', '.join(missing[:4])}"] if missing else []) + \
        ([f"unexpected {', '.join(unexpected[:4])}"] if unexpected else []) + wrong[:3]
    if problems:
        raise DebugError(f"{path} does not fit {network} as configured ({'; '.join(problems)});"
                         " pass the --set and --input options it was trained with")
    model.load_state_dict(state)


# ---- train --debug ---------------------------------------------------------------------------


class Watch:
    """`train --debug`: checks each step's loss, and its gradients before the optimizer
    uses them; at the first non-finite one, runs the same batch again (same random
    state) under the observer and raises NonFiniteError with the located report. Under
    fp16 the gradient scaler skips steps whose gradients overflow, as it should: then only
    the loss is checked."""

    def __init__(self, graph, model: torch.nn.Module, optimizer, amp: str):
        self.graph, self.model, self.optimizer = graph, model, optimizer
        self.precision = PRECISIONS[amp]
        self.batch_data = None
        optimizer.register_step_pre_hook(self._before_update)

    def batch(self, x, targets, epoch: int, step: int) -> None:
        self.batch_data, self.at = (x, targets), (epoch, step)
        self.rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if x.is_cuda else None

    def check_loss(self, loss: torch.Tensor) -> None:
        if not _finite(loss.detach()):
            self.stop(f"the loss is {float(loss.detach()):g}")

    def _before_update(self, optimizer, args, kwargs) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
            self.stop("a gradient is not finite")

    def stop(self, what: str) -> None:
        epoch, step = self.at
        torch.set_rng_state(self.rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        was_training = self.model.training
        probe, _ = observe(self.graph, self.model.train(), [self.batch_data], self.precision)
        self.model.train(was_training)
        lr = self.optimizer.param_groups[0]["lr"]
        where = f"training stopped at epoch {epoch + 1}, step {step + 1} (--debug): {what}"
        fault = probe.fault
        if fault is None:
            raise NonFiniteError(f"{where}; the same batch run again gave only finite values "
                                 "(a nondeterministic operation?)", None)
        fault = dataclasses.replace(fault, batch=0, hints=(
            f"at epoch {epoch + 1}, step {step + 1}, learning rate {lr:.3g}",))
        raise NonFiniteError(f"{where}\n{render_fault(self.graph, fault)}", fault)
