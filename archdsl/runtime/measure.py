"""Runtime: time a network's training step per spec layer with torch's profiler.

The network is built (fresh initialisation) and fed one random batch of its declared
inputs; after warm-up steps, each measured training step (forward and backward of a
mean loss) runs twice, interleaved so that a busy machine slows both alike: as the
module runs, timed whole, and through an fx Interpreter that wraps every fx node in a
profiler range named for its IR node. Before each, a small parallel op wakes the CPU's
threads, which go idle while the profiler starts or stops: the first layer would
otherwise be charged for waking them. A forward op inside a range belongs to
that layer; a backward op (an autograd node the engine evaluates) belongs to the layer
whose forward op made it, found by the pair (forward thread, sequence number) the
profiler records on both. On the CPU the figures are CPU times, on CUDA the device time
of the kernels each op launched.

The device's roofs, its peak MAC/s and memory bandwidth, are measured once: a large
matmul and a large copy.
"""
from __future__ import annotations

import bisect
import statistics
import time
from collections import defaultdict

import networkx as nx
import torch
from torch import fx
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from .. import ir
from ..backends.lower_fx import AuxiliaryNetwork, lower_fx
from ..backends.report_measure import LayerTime, Measurement, Roofs
from ..errors import UsageError
from .build import DTYPES
from .device import pick_device, require_memory
from .inputs import example_inputs

__all__ = ["check_dtype", "measure", "measure_roofs", "pick_device", "use_threads"]
RANGE = "archdsl::"  # the profiler ranges of the layers: archdsl::layer1.0.conv1
BACKWARD = "autograd::engine::evaluate_function: "  # one autograd node's backward
STEP = "archdsl-step"  # one profiled training step


def measure(graph: nx.DiGraph, device: torch.device, dtype: str = "fp32", batch: int = 8,
            steps: int = 5, warmup: int = 2, roofs: Roofs | None = None) -> Measurement:
    """Time `steps` training steps of the network on `device` after `warmup` of them.

    >>> from archdsl import compile_source
    >>> graph = compile_source("network t { input x: 3 x 8 x 8; c: conv(4, 3); relu }").graph
    >>> roofs = Roofs("cpu", 1e9, 1e9, "assumed")
    >>> measured = measure(graph, torch.device("cpu"), batch=2, steps=2, warmup=1, roofs=roofs)
    >>> sorted(measured.layers), measured.layers["c"].forward_ms > 0
    (['0', 'c'], True)
    """
    check_dtype(dtype, device)
    if device.type == "cpu":  # CUDA says so itself: OutOfMemoryError, a usage error
        require_memory(graph, "measuring", dtype=dtype, batch=batch, training=True)
    module = lower_fx(graph).to(device=device, dtype=DTYPES[dtype]).train()
    inputs = example_inputs(graph, batch, device=device, dtype=DTYPES[dtype])
    labelled = _Labelled(module.train_module if isinstance(module, AuxiliaryNetwork)
                         else module)
    try:
        for _ in range(warmup):
            _step(module, inputs)
        if warmup:
            _profiled(labelled, inputs, device)  # the profiler's own first-use cost
        plain, profiled = [], []
        for _ in range(steps):
            plain.append(_plain(module, inputs, device))
            profiled.append(_profiled(labelled, inputs, device))
    except torch.OutOfMemoryError:
        raise UsageError(f"{ir.network(graph).name} does not fit in {device}'s memory at "
                         f"batch {batch}: try a smaller --batch-size") from None
    forwards, backwards, elsewhere = zip(*profiled)
    names = dict.fromkeys(name for step in forwards + backwards for name in step)
    layers = {name: LayerTime(_median(forwards, name), _median(backwards, name))
              for name in names}
    return Measurement(roofs or measure_roofs(device, dtype), dtype, batch, steps, warmup,
                       layers, statistics.median(plain), statistics.median(elsewhere))


def _median(per_step, name: str) -> float:
    return statistics.median(step.get(name, 0.0) for step in per_step)


def use_threads(count: int) -> None:
    """Run torch's CPU work on `count` threads (this process, from now on)."""
    torch.set_num_threads(count)


def check_dtype(dtype: str, device: torch.device) -> None:
    if dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype}: measuring runs fp32, bf16 or fp16")
    if dtype == "fp16" and device.type == "cpu":
        raise UsageError("--dtype fp16 is measured on CUDA only; on the CPU use fp32 or bf16")


class _Labelled(fx.Interpreter):
    """Runs a GraphModule node by node, each inside a profiler range named for the IR
    node it lowers (an op lowered to several fx nodes marks the last of them)."""

    def __init__(self, module: fx.GraphModule):
        super().__init__(module)
        self.layer_of = layer_of_nodes(module.graph)

    def run_node(self, n: fx.Node):
        layer = self.layer_of.get(n)
        if layer is None:
            return super().run_node(n)
        with record_function(RANGE + layer):
            return super().run_node(n)


def layer_of_nodes(graph: fx.Graph) -> dict[fx.Node, str]:
    """Each computing fx node's IR node: its own `archdsl_node`, or, for the helper
    nodes an op emits before its result, the next node that has one."""
    layer_of, pending = {}, []
    for node in graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        pending.append(node)
        if "archdsl_node" in node.meta:
            layer_of.update(dict.fromkeys(pending, node.meta["archdsl_node"]))
            pending = []
    return layer_of


def _loss(result) -> torch.Tensor:
    """The mean of each floating output that depends on a parameter, summed."""
    outputs = result.values() if isinstance(result, dict) else [result]
    kept = [o.float().mean() for o in outputs if o.is_floating_point() and o.requires_grad]
    if not kept:
        raise UsageError("no output of the network depends on a learned parameter: there "
                         "is no backward pass to measure")
    return sum(kept)


def _step(run, inputs) -> None:
    _loss(run(*inputs)).backward()


def _clear_grads(module: torch.nn.Module) -> None:
    for parameter in module.parameters():
        parameter.grad = None


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _plain(module: torch.nn.Module, inputs, device: torch.device) -> float:
    """The milliseconds of one step as the module runs, forward and backward."""
    _clear_grads(module)
    _wake(device)
    return 1000 * _seconds(lambda: _step(module, inputs), device)


def _wake(device: torch.device) -> None:
    """A parallel op, so that the step starts with the CPU's threads awake."""
    torch.ones(1 << 20, device=device).sum()


def _profiled(labelled: _Labelled, inputs, device: torch.device):
    """One profiled step: ({layer: forward ms}, {layer: backward ms}, ms in no layer)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if device.type == "cuda" else [])
    _clear_grads(labelled.module)
    with profile(activities=activities) as prof:
        _wake(device)  # outside the step's range: not counted
        with record_function(STEP):
            _step(labelled.run, inputs)
            _synchronize(device)
    _clear_grads(labelled.module)
    return attribute(prof.events(), device.type == "cuda")[0]


def attribute(events, on_device: bool = False) -> list[tuple[dict, dict, float]]:
    """For each step range of a profile: ({layer: forward ms}, {layer: backward ms}, ms
    in no layer). A layer's range holds its forward ops; a backward op is its forward
    op's layer's, by (forward thread, sequence number); what is in neither (the loss,
    gradient accumulation) is in no layer."""
    events = [e for e in events if e.device_type == DeviceType.CPU and not e.is_async]
    made_by = {(e.thread, e.sequence_nr): layer for e in events if e.sequence_nr >= 0
               and not e.name.startswith(BACKWARD) and (layer := _range_of(e)) is not None}
    steps = sorted((e for e in events if e.name == STEP), key=lambda e: e.time_range.start)
    starts = [e.time_range.start for e in steps]
    within: list[list] = [[] for _ in steps]
    for event in events:  # outermost but for the step (the backward may run on another thread)
        if event.name != STEP and (event.cpu_parent is None or event.cpu_parent.name == STEP):
            index = bisect.bisect_right(starts, event.time_range.start) - 1
            if index >= 0 and event.time_range.start <= steps[index].time_range.end:
                within[index].append(event)
    return [_shares(step, made_by, on_device) for step in within]


def _shares(events, made_by: dict, on_device: bool) -> tuple[dict, dict, float]:
    """The forward, backward and unowned milliseconds of one step's outermost events."""
    def took(event) -> float:
        return (event.device_time_total if on_device else event.cpu_time_total) / 1000

    forward, backward, elsewhere = defaultdict(float), defaultdict(float), 0.0
    for event in events:
        key = (event.fwd_thread, event.sequence_nr)
        if event.name.startswith(RANGE):
            forward[event.name[len(RANGE):]] += took(event)
        elif event.name.startswith(BACKWARD) and key in made_by:
            backward[made_by[key]] += took(event)
        else:
            elsewhere += took(event)
    return dict(forward), dict(backward), elsewhere


def _range_of(event) -> str | None:
    """The layer whose profiler range holds `event`, if any."""
    while event is not None:
        if event.name.startswith(RANGE):
            return event.name[len(RANGE):]
        event = event.cpu_parent
    return None


def measure_roofs(device: torch.device, dtype: str = "fp32") -> Roofs:
    """The device's peak MAC/s (the best of a few large matmuls) and bandwidth (the
    best of a few large copies, bytes read plus written)."""
    size, copied = (8192, 2 ** 30) if device.type == "cuda" else (2048, 2 ** 27)
    kind = DTYPES[dtype]
    a = torch.full((size, size), 0.5, dtype=kind, device=device)  # values do not matter
    b = torch.full((size, size), 0.5, dtype=kind, device=device)
    matmul = min(_seconds(lambda: a @ b, device) for _ in range(3))
    source = torch.empty(copied // a.element_size(), dtype=kind, device=device).fill_(1)
    target = torch.empty_like(source)
    copy = min(_seconds(lambda: target.copy_(source), device) for _ in range(5))
    name = (f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
            else f"cpu ({_threads(torch.get_num_threads())})")
    return Roofs(name, size ** 3 / matmul, 2 * copied / copy,
                 f"a {size}x{size} {dtype} matmul, a {copied // 2 ** 20} MiB copy")


def _seconds(work, device: torch.device) -> float:
    _synchronize(device)
    start = time.perf_counter()
    work()
    _synchronize(device)
    return time.perf_counter() - start


def _threads(count: int) -> str:
    return f"{count} thread{'' if count == 1 else 's'}"
