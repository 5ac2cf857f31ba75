"""The measured peak memory of training steps, to hold the memory plan
(backends/plan_memory) to account: `archdsl train`'s own step (forward under autocast,
cross-entropy, zero_grad(set_to_none), backward, the fused optimizer's step) on random
data, two steps from fresh weights, so that the second runs with the first's gradients
and optimizer state alive, as every later step does.

On the CPU the peak is read from torch's profiler (`profile_memory`: every allocation
and free in order), on CUDA from `torch.cuda.max_memory_allocated`. Both count tensors,
not the allocator's cached or fragmented blocks, as the plan does.
"""
from __future__ import annotations

import gc

import networkx as nx
import torch

from .. import ir
from ..backends.lower_fx import lower_fx
from .device import require_memory
from . import recipes
from .inputs import example_inputs

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def measure_peak(graph: nx.DiGraph, batch: int, *, optimizer: str = "adamw",
                 amp: str = "none", device: str = "cpu", steps: int = 2) -> int:
    """Bytes of tensors alive at the highest point of `steps` training steps."""
    torch.manual_seed(0)
    if torch.device(device).type == "cpu":
        require_memory(graph, "measuring", batch=batch, training=True)
    model = lower_fx(graph).to(device).train()
    inputs = example_inputs(graph, batch, device=device)
    targets = _targets(graph, batch, device)
    parts = (graph, model, recipes.optimizer(model, optimizer, 1e-4, 0.0), inputs, targets, amp)
    before = _bytes(model.parameters()) + _bytes(model.buffers()) + _bytes(inputs) + \
        _bytes([targets])
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        for _ in range(steps):
            _step(*parts)
        torch.cuda.synchronize()
        return before + torch.cuda.max_memory_allocated() - start
    from torch.profiler import ProfilerActivity, profile
    gc.collect()  # an earlier model's garbage is not freed inside the window
    gc.disable()
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
            for _ in range(steps):
                _step(*parts)
    finally:
        gc.enable()
    return before + _highest(profiler)


def _step(graph, model, optimizer, inputs, targets, amp: str) -> None:
    device = inputs[0].device.type
    with torch.autocast(device, dtype=AUTOCAST.get(amp, torch.float32), enabled=amp in AUTOCAST):
        _, loss = recipes.loss(graph, model(*inputs), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _targets(graph: nx.DiGraph, batch: int, device: str) -> torch.Tensor:
    """Class indices for the first output: one per example, or one per position of a
    language model's N x L x V logits."""
    out = ir.shape(graph, ir.network(graph).outputs[0].node)
    size = (batch, *out[:-1])
    return torch.randint(0, out[-1], size, generator=torch.Generator().manual_seed(1)).to(device)


def _bytes(tensors) -> int:
    return sum(t.untyped_storage().nbytes() for t in tensors)


def _highest(profiler) -> int:
    """The highest total of the profiler's allocations less its frees, in time order."""
    events = [e for e in profiler.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak
