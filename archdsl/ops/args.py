"""The arguments of an op: how each is declared (`Arg`), what a node resolves them to
(`Args`), and the one rule that turns axis arguments into axis numbers.

Elaboration checks every argument against its `Arg` (kind, bounds, choices) before a
shape rule runs; shape rules, cost functions and lowerings read only `Args`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .shapes import Shape, axes_of, axis_index

if TYPE_CHECKING:
    from .op import Op

REQUIRED = object()


@dataclass(frozen=True)
class Derived:
    """A default that copies another argument: pool stride defaults to the kernel."""
    source: str


@dataclass(frozen=True)
class Arg:
    """One argument of an op. kind: int, float, bool, pair (int or (h, w)), pad, str;
    `axis` (an axis of the input, -1 the last, or its name: "H", "height") and `axes` (a
    list of them), which
    `normalise_axes` turns into non-negative numbers before any rule or lowering reads
    them; `dims` (a list of sizes)."""
    name: str
    kind: str
    default: Any = REQUIRED
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None  # an exclusive maximum: stochastic depth's p < 1
    above: float | None = None  # an exclusive minimum: batch norm's eps > 0
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Args:
    """Resolved arguments of one node, in the op's declared order."""
    items: tuple[tuple[str, Any], ...]

    def __getitem__(self, name: str):
        for key, value in self.items:
            if key == name:
                return value
        raise KeyError(name)

    def __iter__(self):
        return iter(self.items)

    def get(self, name: str, default=None):
        return dict(self.items).get(name, default)


AXIS_KINDS = ("axis", "axes")


def normalise_axes(op: Op, args: Args, ins: tuple[Shape, ...]) -> Args:
    """The one axis rule: every `axis`/`axes` argument as a non-negative axis of the
    first input (batch excluded, -1 the last), or E0310 when there is no such axis.
    Shape rules and lowerings read only normalised arguments.

    >>> from archdsl.ops import OPS
    >>> normalise_axes(OPS["flatten"], Args((("start", -2), ("end", -1))), (Shape((3, 5, 7)),))
    Args(items=(('start', 1), ('end', 2)))
    """
    kinds = op.axis_kinds
    if not kinds or not ins:
        return args
    rank, letters = len(ins[0]), axes_of(ins[0])
    items = []
    for name, value in args:
        if value is None:  # an optional axis left to the op's default (softmax)
            pass
        elif kinds.get(name) == "axis":
            value = axis_index(op.name, value, rank, name, letters)
        elif kinds.get(name) == "axes":
            value = tuple(axis_index(op.name, v, rank, name, letters) for v in value)
        items.append((name, value))
    return Args(tuple(items))
