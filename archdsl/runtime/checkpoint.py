"""The checkpoint format of `archdsl train`, and reading weights files.

A checkpoint is a torch.save'd dict {"format", "sha256", "payload"}: the payload is itself
the torch.save'd training state (model, optimizer, scheduler, scaler, RNG states, position,
history, spec, config), and "sha256" its digest, so one flipped bit anywhere in it is
found before anything is resumed from it. Everything is loaded with weights_only=True:
a checkpoint cannot run code. The state is then checked against the layout its writer
gives it (LAYOUTS), so that its readers may take what they need without asking.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
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
    """The training state in a checkpoint, verified and laid out as LAYOUTS says, or
    CheckpointError.

        state = load_checkpoint(Path("runs/tiny_classifier/checkpoint.pt"))
        state["spec"]["network"], state["position"]["epoch"]
    """
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
    problem = _problem(STATE_DICT, loaded, "")
    if problem is not None:
        raise CheckpointError(f"{path} is neither an archdsl checkpoint nor a state_dict "
                              f"(a dict of tensors by name): {problem}")
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
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path} is not readable ({type(error).__name__})") from None
    problem = layout_problem(state)
    if problem is not None:
        raise CheckpointError(f"{path} is not laid out as `archdsl train` writes it: {problem}; "
                              "use an intact copy, or start a new run with another --out")
    return state


# ---- the layout of a training state ------------------------------------------------------
#
# Its readers take what they need without asking: the rebuild (predict.load_checkpoint,
# load_trained), fine-tuning (--init) and the resume (snapshot.restore). So a state is
# checked here, once, against the layout its writer (snapshot.training_state and
# weights_state) gives it, and a file that was edited or written by something else is
# refused with the first thing that is wrong in it, not a KeyError in one of them.

NUMBER = (int, float)
SETTING = (int, float, str, tuple, list)  # what --set values parse to


@dataclass(frozen=True)
class Record:
    """A dict with at least the keys of `fields`, each holding what its shape says, and
    perhaps those of `optional` (which older writers, or torch's disabled parts, leave
    out), each holding its shape when there."""
    fields: dict
    optional: dict = field(default_factory=dict)

    def problem(self, value, where: str) -> str | None:
        if not isinstance(value, dict):
            return _wrong(value, "a dict", where)
        missing = next((key for key in self.fields if key not in value), None)
        if missing is not None:
            return f"`{_at(where, missing)}` is missing"
        present = {**{k: v for k, v in self.optional.items() if k in value}, **self.fields}
        return _first(_problem(shape, value[key], _at(where, key))
                      for key, shape in present.items())


@dataclass(frozen=True)
class MapOf:
    """A dict of any names, each holding `shape`."""
    shape: object

    def problem(self, value, where: str) -> str | None:
        if not isinstance(value, dict):
            return _wrong(value, "a dict", where)
        odd = next((key for key in value if not isinstance(key, str)), None)
        if odd is not None:
            return f"{_subject(where)} has a key {odd!r} that is not a name"
        return _first(_problem(self.shape, item, _at(where, key)) for key, item in value.items())


@dataclass(frozen=True)
class ListOf:
    """A list of any length, each item holding `shape`."""
    shape: object

    def problem(self, value, where: str) -> str | None:
        if not isinstance(value, (list, tuple)):
            return _wrong(value, "a list", where)
        return _first(_problem(self.shape, item, f"{where}[{index}]")
                      for index, item in enumerate(value))


@dataclass(frozen=True)
class Items:
    """A list of exactly these items, in order."""
    shapes: tuple

    def problem(self, value, where: str) -> str | None:
        if not isinstance(value, (list, tuple)) or len(value) != len(self.shapes):
            return _wrong(value, f"a list of {len(self.shapes)} items", where)
        return _first(_problem(shape, item, f"{where}[{index}]")
                      for index, (shape, item) in enumerate(zip(self.shapes, value)))


@dataclass(frozen=True)
class Maybe:
    """`shape`, or None."""
    shape: object

    def problem(self, value, where: str) -> str | None:
        return None if value is None else _problem(self.shape, value, where)


@dataclass(frozen=True)
class TensorOf:
    """A tensor of this dtype (the RNG states are bytes)."""
    dtype: torch.dtype

    def problem(self, value, where: str) -> str | None:
        if isinstance(value, torch.Tensor) and value.dtype == self.dtype:
            return None
        return _wrong(value, f"a {self.dtype} tensor", where)


STATE_DICT = MapOf(torch.Tensor)
SPEC = Record({"source": str, "path": str, "network": str, "structure": str,
               "settings": MapOf(SETTING), "inputs": MapOf(ListOf(int))})
PREPROCESS = Record({"mean": ListOf(NUMBER), "std": ListOf(NUMBER), "resize": Maybe(NUMBER),
                     "name": str})
EPOCH = Record({"epoch": int, "train_loss": NUMBER, "train_acc": NUMBER, "val_loss": NUMBER,
                "val_acc": NUMBER},  # a row of the history: what the curves and early stop read
               {"global_step": int, "val_top5": NUMBER, "val_ppl": NUMBER, "lr": NUMBER,
                "images_per_s": NUMBER,
                "seconds": NUMBER})
OPTIMIZER = Record({"state": dict, "param_groups": ListOf(Record({"params": list}))})
# LambdaLR's and GradScaler's, as their load_state_dict take them (the scaler's is empty
# when it is disabled, and some torch versions lack some of the scheduler's)
SCHEDULER = Record({"lr_lambdas": ListOf(Maybe(dict)), "last_epoch": int,
                    "base_lrs": ListOf(NUMBER)},
                   {"_step_count": int, "_last_lr": ListOf(NUMBER), "_is_initial": bool,
                    "_get_lr_called_within_step": bool, "verbose": bool})
SCALER = Record({}, {"scale": NUMBER, "growth_factor": NUMBER, "backoff_factor": NUMBER,
                     "growth_interval": int, "_growth_tracker": int})
RNG = Record({"torch": TensorOf(torch.uint8), "python": Items((int, ListOf(int), Maybe(NUMBER))),
              "cuda": ListOf(TensorOf(torch.uint8))})
# checkpoint.pt as the first archdsl with checksums wrote it: no kind, preprocessing, best
# epoch or EMA yet; its readers fall back to their defaults for those
UNKINDED = Record({"spec": SPEC, "model": STATE_DICT, "classes": ListOf(str),
                   "optimizer": OPTIMIZER, "scheduler": SCHEDULER, "scaler": SCALER, "rng": RNG,
                   "position": Record({"epoch": int, "step": int, "global_step": int}),
                   "history": ListOf(EPOCH), "config": dict})
LAYOUTS = {
    "training": Record({"kind": str, **UNKINDED.fields, "preprocess": Maybe(PREPROCESS),
                        "ema": Maybe(STATE_DICT),
                        "best": Record({"metric": str, "value": Maybe(NUMBER), "epoch": int})}),
    "weights": Record({"kind": str, "spec": SPEC, "model": STATE_DICT, "classes": ListOf(str),
                       "preprocess": Maybe(PREPROCESS), "epoch": int, "metrics": EPOCH,
                       "ema": bool}),
}


def layout_problem(state) -> str | None:
    """What in a training state differs from the layout of its kind, or None.

    >>> layout_problem({"kind": "weights", "spec": {}})
    '`model` is missing'
    >>> layout_problem({"kind": "optimizer"})
    "`kind` is 'optimizer', not one of 'training', 'weights'"
    """
    if not isinstance(state, dict):
        return _wrong(state, "a dict", "")
    if "kind" not in state:
        newer = sorted(set(LAYOUTS["training"].fields) - set(UNKINDED.fields) & set(state))
        return (f"`kind` is missing, but it has `{newer[0]}`, which came with it" if newer
                else UNKINDED.problem(state, ""))
    kind = state["kind"]
    if not isinstance(kind, str) or kind not in LAYOUTS:
        return f"`kind` is {kind!r}, not one of {', '.join(map(repr, LAYOUTS))}"
    return LAYOUTS[kind].problem(state, "") or _ema_problem(state)


def _ema_problem(state: dict) -> str | None:
    """A run with --ema resumes its averaged weights: they must be there."""
    if state["kind"] == "training" and state["config"].get("ema") and state["ema"] is None:
        return f"`ema` is None, but `config.ema` is {state['config']['ema']!r}"
    return None


def _problem(shape, value, where: str) -> str | None:
    """What is wrong with `value` (found at `where`) for `shape`: a type, a tuple of types,
    or one of the layout classes above."""
    if isinstance(shape, (type, tuple)):
        return None if isinstance(value, shape) else _wrong(value, _names(shape), where)
    return shape.problem(value, where)


def _first(problems) -> str | None:
    return next((problem for problem in problems if problem is not None), None)


def _wrong(value, expected: str, where: str) -> str:
    return f"{_subject(where)} should be {expected}, not {_a(type(value).__name__)}"


def _subject(where: str) -> str:
    return f"`{where}`" if where else "it"


def _names(types) -> str:
    if types == NUMBER:
        return "a number"
    return " or ".join(_a(t.__name__) for t in (types if isinstance(types, tuple) else (types,)))


def _a(name: str) -> str:
    if name == "NoneType":
        return "None"
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _at(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)
