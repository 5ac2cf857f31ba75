"""What an op is (`Op`: everything any pass or backend needs to know about one layer),
and the small builders its entries share across families: standard input checks,
`same`/`elementwise`/`named` for the common shape, cost and label rules, and
`torch_layer` for a torch.nn layer built from the op's own arguments.

Torch is imported only inside builders and lowerings, which the front end never calls.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InternalError
from .args import AXIS_KINDS, Arg, Args
from .shapes import Shape, numel, require

GLOBAL = "global"  # an op whose every output reads the whole input (Op.window)


def _zero(*_):
    return 0


@dataclass(frozen=True)
class Op:
    name: str
    family: str  # conv, norm, act, pool, linear, attention, merge, reshape, reg, io: colours
    # and grouping
    shape: Callable[[Args, tuple[Shape, ...]], Shape]
    args: tuple[Arg, ...] = ()
    merge: bool = False  # takes values by name or branches (concat, add, mul, crop)
    operands: int | tuple[int, ...] | None = None  # how many values a merge takes (one
    # count, or the counts it allows); None: two or more
    accepts: tuple[str, ...] = ("float",)  # the element types it reads (shapes.DTYPES)
    gives: str | None | Callable[[Args, tuple[Shape, ...]], str] = "float"  # the element
    # type it makes; None: its first operand's (a reshape of token ids is token ids)
    constants: bool = False  # a merge one of whose operands may be a number (`sub(1, x)`),
    # held in its `constant` and `constant_first` arguments; and which, given one operand,
    # takes the current value as the first (`add(1e-6)`)
    params: Callable[[Args, tuple[Shape, ...]], int] = _zero
    buffers: Callable[[Args, tuple[Shape, ...]], int] = _zero  # non-trainable state
    macs: Callable[[Args, tuple[Shape, ...], Shape], int] = _zero  # conv/linear multiply-adds
    other_ops: Callable[[Args, tuple[Shape, ...], Shape], int] = _zero  # element-wise work
    module: Callable[[Args, tuple[Shape, ...]], Any] | None = None  # torch.nn layer, or a
    # bare nn.Parameter that multiplies its input (layer scale: the key is the layer's name)
    function: Callable | None = None  # or a function of the inputs: torch.cat, operator.add;
    # function(fx_graph, input_nodes, args, input_shapes) adds its fx nodes, returns the last
    module_when: Callable[[Args, tuple[Shape, ...]], bool] | None = None  # with both: where
    # the module is used (a state to keep while generating), the function elsewhere
    init: Callable[[Any], None] | None = None  # initialises the module; required with params
    tensors: Callable[[Args, tuple[Shape, ...]], dict[str, tuple[int, ...]]] | None = None
    # its learned tensors, by the key they add to the layer's name ("" for a `param`
    # itself) and their shape: the tensors `tie` may join
    workspace: Callable[[Args, tuple[Shape, ...]], int] = _zero  # elements held inside,
    # per image, beyond the output: an attention matrix
    window: Callable[[Args, tuple[Shape, ...]], Any] = field(default=lambda a, ins: None)
    # how far an output position sees, for the receptive field (passes/receptive_field):
    # None, each output position reads its own position only; GLOBAL, the whole input;
    # or per spatial axis of the input, (kernel, stride, dilation, pad) of a sliding window
    in_place: bool | Callable[[Args], bool] = False  # an activation that may overwrite its
    # input (module.inplace); a function of the arguments where only some values allow it
    overwritable: bool = False  # its backward does not need its output: an in-place
    # activation right after it may overwrite that output
    # what a training step keeps of it for the backward pass (backends/plan_memory):
    keeps: tuple[str, ...] = ("inputs",)  # of its values, autograd's saved tensors: "in0",
    # "in1", ... (one operand), "inputs" (every operand), "out" (its result); () none
    kept_inside: Callable[[Args, tuple[Shape, ...], Shape, str], tuple[tuple[int, str], ...]] = \
        field(default=lambda a, ins, out, device: ())  # tensors it makes and keeps besides,
    # per example on `device`: (elements, element type: "float" as the layer computes,
    # "float32", "int", "bool"): maxpool's indices, dropout's mask, attention's matrices
    kept_text: str = ""  # what kept_inside keeps, in the words of docs/stats.md's table
    view: bool = False  # its result is its first operand's memory seen another way
    expands_operands: bool = False  # under autocast, its kernel keeps a copy of a weight
    # operand per example (einsum broadcasts it over the batch for a batched product)
    autocast: str = ""  # under mixed precision: "low", it runs in the low precision
    # (matrix products); "float", in float32 on CUDA (torch's autocast lists); "", in
    # its operands' precision
    describe: Callable[[Args], str] = field(default=lambda a: "")
    caption: Callable[[Args], str] = field(default=lambda a: "")
    min_batch: Callable[[Args, Shape], int] = field(default=lambda a, out: 1)  # to train
    imports: tuple[str, ...] = ()  # torch.nn classes `archdsl import` reads as this op
    read: Callable[[Any], tuple[str, dict] | None] | None = None  # such a module -> (op,
    # arguments), or None where the module has settings the op cannot say; ops without
    # arguments need neither: import finds them by the module they build
    rule: str = "unchanged"  # the shape rule, in the words of the layer table (docs/language.md)
    # what it counts, in the words of docs/stats.md's tables (cost_table): MACs and
    # parameters where it has any, other ops where they are not 0
    macs_rule: str = ""
    params_rule: str = ""
    other_rule: str = "0"
    lowers: str = ""  # what it lowers to, in the words of the layer table

    def lowers_to_module(self, args: Args, ins: tuple[Shape, ...]) -> bool:
        """True where the layer lowers to `module` (else to `function`)."""
        return self.module is not None and (self.module_when is None or
                                            self.module_when(args, ins))

    @property
    def kept_rule(self) -> str:
        """What it keeps for the backward pass, in the words of docs/stats.md's table."""
        words = {"inputs": "its inputs", "out": "its result", "in0": "its input",
                 "in1": "its second operand (indices)"}
        parts = [words.get(token, f"operand {token[2:]}") for token in self.keeps]
        return "; ".join(parts + [self.kept_text] * bool(self.kept_text)) or "nothing"

    @property
    def operand_counts(self) -> tuple[int, ...] | None:
        """The numbers of values a merge takes; None for two or more."""
        return (self.operands,) if isinstance(self.operands, int) else self.operands

    def defaults(self) -> Args:
        """The op's arguments, each at its default: a residual's `add`."""
        return Args(tuple((arg.name, arg.default) for arg in self.args))

    @functools.cached_property
    def axis_kinds(self) -> dict[str, str]:
        """{argument name: "axis" or "axes"} of the arguments normalise_axes turns into
        axis numbers."""
        return {arg.name: arg.kind for arg in self.args if arg.kind in AXIS_KINDS}


def torch_sizes(value):
    """A torch size argument as an op takes it: one integer where all agree, else a
    tuple (`archdsl import`)."""
    if isinstance(value, (tuple, list)) and len(set(value)) == 1:
        return value[0]
    return tuple(value) if isinstance(value, list) else value


# ---- inputs an op accepts ------------------------------------------------------------


def spatial(op: str, ins: tuple[Shape, ...]) -> Shape:
    """The one input, a C x H x W map."""
    return require(op, ins[0], ("CHW",))


def channels_first(op: str, ins: tuple[Shape, ...]) -> Shape:
    """The one input, channels first with 1, 2 or 3 spatial axes (signal, image, volume)."""
    return require(op, ins[0], ("CHW", "CL", "CTHW"))


# ---- rules many ops share ------------------------------------------------------------


def same(op: str):
    """The shape rule of an op that keeps its input's shape."""
    def shape(args: Args, ins) -> Shape:
        (s,) = ins
        return s
    return shape


def elementwise(per_element: int = 1):
    """An `other_ops` count of `per_element` operations per output element."""
    def count(args: Args, ins, out: Shape) -> int:
        return per_element * numel(out)
    return count


def named(text: str):
    """A `describe` or `caption` that is the same text whatever the arguments."""
    return lambda args: text


# ---- lowering (torch imported at lowering only) ----------------------------------------


def torch_layer(name: str, *arg_names: str, **fixed):
    """A builder for a torch.nn layer whose arguments are the op's own, in order."""
    def build(args: Args, ins):
        from torch import nn
        return getattr(nn, name)(*(args[a] for a in arg_names), **fixed)
    return build


def torch_axis(axis: int) -> int:
    """An axis number of the spec (batch excluded, normalised: never negative) as torch
    numbers it."""
    if axis < 0:
        raise InternalError(f"axis {axis} reached the lowering without normalise_axes")
    return axis + 1


def reset_init(module, args: Args) -> None:
    """torch's own initialisation: weight 1 and bias 0 for norms (and fresh running
    statistics), uniform for linear layers."""
    module.reset_parameters()
