"""Where torch work runs: the one reading of `--device auto|cpu|cuda`."""
from __future__ import annotations

import os

import torch

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
