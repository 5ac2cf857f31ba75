"""Where torch work runs: the one reading of `--device auto|cpu|cuda`."""
from __future__ import annotations

import os

import torch

from .. import ir
from ..errors import UsageError


def pick_device(choice: str) -> torch.device:
    """`auto` is CUDA where there is a device, else the CPU; under torchrun each process
    takes the GPU of its LOCAL_RANK.

    >>> pick_device("cpu")
    device(type='cpu')
    """
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here; use --device cpu")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(choice)


def physical_memory() -> int | None:
    """Bytes of memory this machine has (None where the system does not say), against
    which build and stats --measure refuse what cannot fit."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def require_memory(graph, doing: str, *, dtype: str = "fp32", batch: int = 0,
                   copies: int = 1, training: bool = False,
                   batch_flag: str = "--batch-size") -> None:
    """Refuse, with the figures, work on `graph` that cannot fit in this machine's memory
    (more than 80% of it), before a weight is made: `copies` of the parameters (an export
    holds the module and its saved bytes) and the activations of `batch` examples, or with
    `training` the planned training step (weights, gradients, optimizer state and saved
    activations). A network of billions of parameters is refused in a line rather than
    killed by the system part-way through; `batch_flag` is the command's option that
    sets the batch, named in the fix."""
    ram = physical_memory()
    if ram is None:
        return
    from ..backends.report_stats import report_stats
    totals = report_stats(graph, dtype=dtype).totals
    gib = 1024 ** 3
    if training:
        need = totals.train_bytes_fixed + batch * totals.train_bytes_per_image
        parts = f"a training step at batch {batch}"
        heavy = batch * totals.train_bytes_per_image > totals.train_bytes_fixed
    else:
        need = copies * totals.param_bytes + batch * totals.activation_bytes
        parts = f"parameters {totals.param_bytes / gib:.1f} GiB" + (
            f" x {copies}" if copies > 1 else "") + (
            f", activations for a batch of {batch} {batch * totals.activation_bytes / gib:.1f} "
            "GiB" if batch else "")
        heavy = batch * totals.activation_bytes > copies * totals.param_bytes
    if need <= 0.8 * ram:
        return
    fix = f"try a smaller {batch_flag}" if heavy else \
        "choose a smaller configuration of the spec with --set NAME=VALUE"
    raise UsageError(f"{doing} {ir.network(graph).name} needs about {need / gib:.1f} GiB "
                     f"({parts}), more than this machine's {ram / gib:.1f} GiB of memory: {fix}")
