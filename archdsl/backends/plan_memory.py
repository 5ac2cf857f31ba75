"""Backend: the memory of one training step, planned from the IR alone (no torch).

`archdsl train`'s step, as it runs once the first step has made the optimizer's state:
the forward pass (under autocast with --amp), the cross-entropy loss, zero_grad (the
last step's gradients freed), the backward pass, the optimizer's fused step. The plan
walks it tensor by tensor and finds the highest point:

* Always there: the weights and buffers (float32), the optimizer's state (AdamW: two
  float32 tensors per parameter; SGD with momentum: one) and the batch.
* Forward: each layer's result is new memory, except a view of its operand (`flatten`,
  `transpose`) and a layer that writes into its operand (backends/in_place). A value is
  freed when its last reader has run, unless the backward pass needs it: what autograd
  keeps of each layer is the op table's `keeps` (which of its values) and `kept_inside`
  (what it makes besides: maxpool's indices, dropout's mask). Under autocast a matrix
  product (`autocast = "low"`) runs in the low precision and keeps a low-precision copy
  of a float32 operand and of its weights; the last step's gradients are still alive.
* Backward, layer by layer from the last: each layer's weight gradients (float32) and the
  gradients of its operands are made, then its gradient and what it kept are freed.
* With activation checkpointing of some scopes, a scope keeps only its inputs, and
  recomputes what it would have kept when the backward pass reaches it.

Not counted: the allocator's caching and fragmentation, kernels' scratch memory, and
tensors of a few elements (batch norm's saved statistics, the loss).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import networkx as nx

from .. import ir
from ..ops import OPS, numel
from ..ops.shapes import ELEMENT_BYTES, dtype_of
from .in_place import activations_in_place, sums_in_place

OPTIMIZER_STATES = {"sgd": 1, "adamw": 2}  # float32 tensors per parameter
LOW_BYTES = 2  # bf16 and fp16


@dataclass(frozen=True)
class Setup:
    """The training step planned."""
    batch: int = 1
    optimizer: str = "adamw"
    amp: str = "none"  # none, bf16, fp16
    device: str = "cpu"  # what torch keeps differs a little: dropout's mask, attention
    checkpoint: tuple[str, ...] = ()  # scopes recomputed in the backward pass


@dataclass(frozen=True)
class Layer:
    """What one layer adds to a training step's memory, in bytes."""
    name: str
    params: int  # elements
    weights: int
    gradients: int
    state: int  # the optimizer's
    kept: int  # activations kept for the backward pass, at the end of the forward pass


@dataclass(frozen=True)
class Plan:
    setup: Setup
    layers: tuple[Layer, ...]
    weights: int  # parameters and buffers
    gradients: int
    state: int
    batch_bytes: int  # the inputs
    kept: int  # activations kept for the backward pass, at its start
    peak: int
    peak_at: str  # "end of the forward pass", "backward of `layer1.0.conv2`", ...


@dataclass
class _Timeline:
    """Bytes alive, and the highest point seen with where it was."""
    live: int = 0
    peak: int = 0
    peak_at: str = ""
    sizes: dict = field(default_factory=dict)  # storage -> bytes, while alive

    def allocate(self, key: str, size: int) -> None:
        if key not in self.sizes:
            self.sizes[key] = size
            self.live += size

    def free(self, key: str) -> None:
        self.live -= self.sizes.pop(key, 0)

    def mark(self, where: str) -> None:
        if self.live > self.peak:
            self.peak, self.peak_at = self.live, where


def plan_memory(graph: nx.DiGraph, setup: Setup) -> Plan:
    """The plan of one training step of `graph` at `setup`.

    >>> from archdsl import compile_source
    >>> graph = compile_source("network t { input x: 3 x 8 x 8; conv(4, 3); flatten; "
    ...                        "linear(10) }").graph
    >>> plan = plan_memory(graph, Setup(batch=2))
    >>> plan.weights, plan.gradients, plan.state  # 1562 parameters of 4 bytes
    (6248, 6248, 12496)
    >>> plan.kept  # conv keeps its input (2 x 192 floats), linear its own (2 x 144)
    2688
    """
    walk = _Walk(graph, setup)
    return walk.run()


class _Walk:
    """One training step walked tensor by tensor."""

    def __init__(self, graph: nx.DiGraph, setup: Setup):
        self.graph, self.setup = graph, setup
        self.items = [i for i in ir.nodes(graph) if i.op != "input"]
        self.amp = setup.amp in ("bf16", "fp16")
        self.owner = self._owners()
        self.width = {}
        for item in ir.nodes(graph):
            self.width[item.name] = self._width(item)
        self.needs = self._needs_grad()
        self.kept = {item.name: self._kept(item) for item in self.items}

    # ---- what each value is --------------------------------------------------------

    def _owners(self) -> dict[str, str]:
        """The value whose memory each value is: its own, or its operand's for a view or
        a layer that writes into its operand."""
        writes = activations_in_place(self.graph) | sums_in_place(self.graph)
        owner = {}
        for item in ir.nodes(self.graph):
            shared = OPS[item.op].view or item.name in writes
            owner[item.name] = owner[item.inputs[0]] if shared and item.inputs else item.name
        return owner

    def _width(self, item: ir.Node) -> int:
        """Bytes per element of a value: its element type's, the model's float32, or
        under autocast the low precision for a matrix product and what its operands
        have for the rest."""
        kind = dtype_of(ir.shape(self.graph, item.name))
        if kind != "float":
            return ELEMENT_BYTES.get(kind, 4)
        if not self.amp or item.op in ("input", "parameter", "buffer"):
            return 4
        rule = OPS[item.op].autocast
        if rule == "low":
            return LOW_BYTES
        if rule == "float" and self.setup.device == "cuda":
            return 4
        floats = [self.width[i] for i in item.inputs
                  if dtype_of(ir.shape(self.graph, i)) == "float"]
        return max(floats, default=4)

    def bytes(self, name: str) -> int:
        return self.setup.batch * numel(ir.shape(self.graph, name)) * self.width[name]

    def _params(self, item: ir.Node) -> int:
        return self.graph.nodes[item.name]["cost"].params

    def _needs_grad(self) -> dict[str, bool]:
        needs = {}
        for item in ir.nodes(self.graph):
            floating = dtype_of(ir.shape(self.graph, item.name)) not in ("int", "bool")
            needs[item.name] = floating and (
                self._params(item) > 0 or item.op == "parameter"
                or any(needs[i] for i in item.inputs))
        return needs

    def _kept(self, item: ir.Node) -> dict[str, int]:
        """{storage: bytes} of what the layer keeps for its backward pass: values it reads
        or makes (a view keeps its base's memory), low-precision copies under autocast,
        and what it makes inside."""
        if not self.needs[item.name]:
            return {}
        op, kept = OPS[item.op], {}
        chosen = []
        for token in op.keeps:
            if token == "inputs":
                chosen += list(item.inputs)
            elif token == "out":
                chosen.append(item.name)
            elif int(token[2:]) < len(item.inputs):
                chosen.append(item.inputs[int(token[2:])])
        for name in chosen:
            if ir.node(self.graph, self.owner[name]).op in ("parameter", "buffer"):
                if self.amp and op.autocast == "low":  # a 16-bit copy of the weight
                    copies = self.setup.batch if op.expands_operands else 1
                    kept[f"{item.name}<{name}"] = \
                        copies * numel(ir.shape(self.graph, name)) * LOW_BYTES
                continue  # a weight (or a view of one): counted as weights
            if name in item.inputs and self.owner[item.name] == self.owner[name]:
                kept[f"{item.name}#copy"] = self.bytes(self.owner[name])  # the value it
                # overwrites, copied first by autograd (relu6, silu, hardswish in place)
            elif self.amp and op.autocast == "low" and self.width[name] == 4 and \
                    dtype_of(ir.shape(self.graph, name)) == "float":
                kept[f"{item.name}<{name}"] = self.bytes(name) // 2  # its cast copy
            else:
                kept[self.owner[name]] = self.bytes(self.owner[name])
        if self.amp and op.autocast == "low" and self._params(item):
            kept[f"{item.name}<weights"] = self._params(item) * LOW_BYTES
        ins = tuple(ir.shape(self.graph, i) for i in item.inputs)
        out = ir.shape(self.graph, item.name)
        for number, (elements, kind) in enumerate(op.kept_inside(item.args, ins, out,
                                                                 self.setup.device)):
            width = self.width[item.name] if kind == "float" else ELEMENT_BYTES[kind]
            kept[f"{item.name}#{number}"] = self.setup.batch * elements * width
        return kept

    # ---- the step ----------------------------------------------------------------------

    def run(self) -> Plan:
        params = sum(self._params(i) for i in self.items)
        buffers = sum(self.graph.nodes[i.name]["cost"].buffers for i in self.items)
        states = OPTIMIZER_STATES[self.setup.optimizer]
        inputs = sum(self.bytes(n) for n in ir.network(self.graph).inputs)
        line = _Timeline(live=(params + buffers) * 4 + params * 4 * states + inputs)
        line.allocate("gradients of the last step", params * 4)
        line.mark("start of the step")
        keepers = self._forward(line)
        kept = {k: line.sizes[k] for k in keepers if k in line.sizes}
        self._loss(line)
        line.free("gradients of the last step")
        self._backward(line, keepers)
        line.mark("optimizer step")
        layers = tuple(self._layer(item, states, kept) for item in self.items)
        return Plan(self.setup, layers, (params + buffers) * 4, params * 4, params * 4 * states,
                    inputs, sum(kept.values()), line.peak, line.peak_at)

    def _checkpointed(self, item: ir.Node) -> bool:
        return bool(self.setup.checkpoint) and any(
            s in self.setup.checkpoint for s in ir.scopes_of(self.graph, item.name))

    def _forward(self, line: _Timeline) -> dict[str, int]:
        """Walk the forward pass; {storage: number of layers that keep it} after it."""
        readers: dict[str, int] = {}
        for item in self.items:
            for name in item.inputs:
                readers[self.owner[name]] = readers.get(self.owner[name], 0) + 1
        for out in ir.network(self.graph).outputs:
            readers[self.owner[out.node]] = readers.get(self.owner[out.node], 0) + 1
        keepers: dict[str, int] = {}
        for item in self.items:
            if self.owner[item.name] == item.name and item.op not in ("parameter", "buffer"):
                line.allocate(item.name, self.bytes(item.name))
            kept = {} if self._checkpointed(item) else self.kept[item.name]
            for key, size in kept.items():
                line.allocate(key, size)
                keepers[key] = keepers.get(key, 0) + 1
            line.mark(f"forward of `{item.name}`")
            for name in (*item.inputs, item.name):
                key = self.owner[name]
                if name != item.name:
                    readers[key] -= 1
                if not readers.get(key) and key not in keepers:
                    line.free(key)
        self._keep_checkpoint_inputs(line, keepers)
        return keepers

    def _keep_checkpoint_inputs(self, line: _Timeline, keepers: dict[str, int]) -> None:
        """A checkpointed scope keeps the values it reads from outside it, to recompute."""
        for item in self.items:
            if self._checkpointed(item):
                for name in item.inputs:
                    if not self._checkpointed(ir.node(self.graph, name)) and \
                            self.owner[name] in line.sizes:
                        keepers[self.owner[name]] = keepers.get(self.owner[name], 0) + 1

    def _loss(self, line: _Timeline) -> None:
        """The cross-entropy of each output: its float32 log-softmax, kept; under
        autocast, of a float32 copy of 16-bit logits, freed with the loss."""
        copies = []
        for out in ir.network(self.graph).outputs:
            size = self.setup.batch * numel(ir.shape(self.graph, out.node)) * 4
            if self.width[out.node] < 4:
                line.allocate(f"float32 copy of {out.name}", size)
                copies.append(f"float32 copy of {out.name}")
            line.allocate(f"loss of {out.name}", size)
        line.mark("loss, the end of the forward pass")
        for copy in copies:
            line.free(copy)

    def _backward(self, line: _Timeline, keepers: dict[str, int]) -> None:
        for out in ir.network(self.graph).outputs:
            line.allocate(f"grad {out.node}", self.bytes(out.node))
        recomputed: set[str] = set()
        for item in reversed(self.items):
            key = f"grad {item.name}"
            if key not in line.sizes or not self.needs[item.name]:
                continue
            if self._checkpointed(item) and item.name not in recomputed:
                recomputed |= self._recompute(line, item, keepers)
            line.allocate(f"grad of {item.name}'s weights", self._params(item) * 4)
            for name in item.inputs:
                if self.needs[name] and ir.node(self.graph, name).op != "input":
                    line.allocate(f"grad {name}", self.bytes(name))
            line.mark(f"backward of `{item.name}`")
            line.free(key)
            for kept in self.kept[item.name]:
                keepers[kept] = keepers.get(kept, 1) - 1
                if keepers[kept] <= 0:
                    line.free(kept)

    def _recompute(self, line: _Timeline, item: ir.Node, keepers: dict[str, int]) -> set[str]:
        """Entering a checkpointed scope from its end: its forward pass again, keeping
        what its layers keep. The layers recomputed."""
        scopes = [s for s in ir.scopes_of(self.graph, item.name) if s in self.setup.checkpoint]
        members = set(ir.members(self.graph, scopes[0]))
        for other in self.items:
            if other.name in members:
                for key, size in self.kept[other.name].items():
                    line.allocate(key, size)
                    keepers[key] = keepers.get(key, 0) + 1
        return members

    def _layer(self, item: ir.Node, states: int, kept: dict[str, int]) -> Layer:
        """A layer's row: its weights, and the kept memory it made (its result, its cast
        copies, what it made inside), whichever layers keep it."""
        params = self._params(item)
        own = sum(size for key, size in kept.items()
                  if key == item.name or key.startswith((f"{item.name}<", f"{item.name}#")))
        buffers = self.graph.nodes[item.name]["cost"].buffers
        return Layer(item.name, params, (params + buffers) * 4, params * 4, params * 4 * states,
                     own)


def largest_batch(graph: nx.DiGraph, setup: Setup, memory: int) -> int:
    """The largest batch whose planned peak fits in `memory` bytes (0: not even one)."""
    low, high = 0, 1
    while plan_memory(graph, replace(setup, batch=high)).peak <= memory:
        low, high = high, high * 2
        if high > 1 << 24:
            return low
    while high - low > 1:
        middle = (low + high) // 2
        if plan_memory(graph, replace(setup, batch=middle)).peak <= memory:
            low = middle
        else:
            high = middle
    return low
