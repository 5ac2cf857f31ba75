"""The checkpoint format of `archdsl train`, and reading weights files.

A checkpoint is a torch.save'd dict {"format", "sha256", "payload"}: the payload is itself
the torch.save'd training state (model, optimizer, scheduler, scaler, RNG states, position,
history, spec, config), and "sha256" its digest, so one flipped bit anywhere in it is
found before anything is resumed from it. Everything is loaded with weights_only=True:
a checkpoint cannot run code.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from ..errors import UsageError

FORMAT = "archdsl-checkpoint-2"


class CheckpointError(UsageError):
    """A checkpoint or weights file that cannot be used; says how to go on."""


def pack(state: dict) -> bytes:
    """A checkpoint's bytes for a training state."""
    payload = serialise(state)
    return serialise({"format": FORMAT, "sha256": hashlib.sha256(payload).hexdigest(),
                      "payload": payload})


def load_checkpoint(path: Path) -> dict:
    """The training state in a checkpoint, verified, or CheckpointError."""
    outer = _load(path)
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an archdsl training checkpoint")
    return _unpack(outer, path)


def load_weights(path: Path) -> tuple[dict, dict | None]:
    """(state_dict, training state or None) from a checkpoint or a plain state_dict file
    (model.pt, torchvision weights)."""
    loaded = _load(path)
    if isinstance(loaded, dict) and loaded.get("format") == FORMAT:
        state = _unpack(loaded, path)
        return state["model"], state
    return loaded, None


def serialise(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _load(path: Path):
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights file at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for damaged files
        raise CheckpointError(f"{path} is not readable (truncated or corrupted: "
                              f"{type(error).__name__}); use an intact copy, or start a new "
                              "run with another --out") from None


def _unpack(outer: dict, path: Path) -> dict:
    payload = outer.get("payload")
    if not isinstance(payload, bytes) or hashlib.sha256(payload).hexdigest() != outer.get("sha256"):
        raise CheckpointError(f"{path} is damaged: its contents do not match the checksum "
                              "written with them; use an intact copy, or start a new run with "
                              "another --out")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path} is not readable ({type(error).__name__})") from None
