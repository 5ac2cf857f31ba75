"""Products of two values: `matmul` (over the last two axes, the others broadcast),
`einsum` (an equation over the axes, batch excluded) and `routed_linear` (each token
through the matrix its index picks: a mixture of experts). Their multiply-adds are MACs,
counted as torch's FlopCounterMode counts the matrix products they become."""
from __future__ import annotations

import re

from .args import Arg, Args
from .op import GLOBAL, Op, named
from .shapes import FLOATS, Shape, ShapeError, axes_of, describe, dtype_of, numel, show


# ---- matmul ------------------------------------------------------------------------------


def _matmul_parts(ins) -> tuple[tuple[int, ...], int, int, int]:
    """(broadcast leading sizes, n, k, m) of `a @ b`: a is ... x n x k, b is ... x k x m."""
    a, b = ins
    for name, s in (("first", a), ("second", b)):
        if len(s) < 2:
            raise ShapeError("E0306", f"matmul's {name} operand is {describe(s)}: it needs two "
                             "axes or more (rows x columns)", "multiplied here",
                             help="reshape a vector to 1 x n, or use `linear`")
    if a[-1] != b[-2]:
        raise ShapeError("E0300", f"matmul of {show(a)} and {show(b)}: the first's last axis "
                         f"({a[-1]}) differs from the second's next-to-last ({b[-2]})",
                         "multiplied here", help="transpose one operand: `transpose(-2, -1)`")
    lead_a, lead_b = a[:-2], b[:-2]
    width = max(len(lead_a), len(lead_b))
    lead_a = (1,) * (width - len(lead_a)) + tuple(lead_a)
    lead_b = (1,) * (width - len(lead_b)) + tuple(lead_b)
    lead = []
    for x, y in zip(lead_a, lead_b):
        if x != y and 1 not in (x, y):
            raise ShapeError("E0300", f"matmul of {show(a)} and {show(b)}: leading sizes {x} and "
                             f"{y} neither agree nor broadcast", "multiplied here",
                             help="the axes before the last two must be equal, or 1")
        lead.append(max(x, y))
    return tuple(lead), a[-2], a[-1], b[-1]


def _matmul_shape(args: Args, ins) -> Shape:
    lead, n, _k, m = _matmul_parts(ins)
    dims = lead + (n, m)
    a = ins[0]
    return Shape(dims, axes_of(a)) if len(dims) == len(a) else Shape(dims)


def _matmul_macs(args: Args, ins, out) -> int:
    lead, n, k, m = _matmul_parts(ins)
    return numel(lead) * n * k * m


def _emit_matmul(graph, inputs, args, ins):
    import torch
    return graph.call_function(torch.matmul, tuple(inputs))


# ---- einsum ------------------------------------------------------------------------------

_EQUATION = re.compile(r"([a-z]*)((?:,[a-z]*)*)->([a-z]*)")
BATCH = "Z"  # the batch's letter in the lowered equation: users write lower case only


def _parse(equation: str, count: int) -> tuple[list[str], str]:
    """The operands' subscripts and the output's, or E0312."""
    text = equation.replace(" ", "")
    match = _EQUATION.fullmatch(text)
    if not match:
        raise ShapeError("E0312", f'einsum equation "{equation}" is not of the form '
                         '"ij,jk->ik"', "bad equation",
                         help="lower-case letters, one per axis (batch excluded), operands "
                              "separated by `,`, and the result after `->`")
    left, out = text.split("->")
    operands = left.split(",")
    if len(operands) != count:
        raise ShapeError("E0312", f'einsum equation "{equation}" names {len(operands)} '
                         f"operands, but {count} are given", "operand count",
                         help="one subscript group per operand")
    if len(set(out)) < len(out):
        raise ShapeError("E0312", f'einsum result "{out}" repeats a letter', "repeated",
                         help="name each axis of the result once")
    missing = set(out) - set("".join(operands))
    if missing:
        raise ShapeError("E0312", f"einsum result names {', '.join(sorted(missing))}, which no "
                         "operand has", "unknown axis", help="the result's letters come from "
                                                             "the operands'")
    return operands, out


def _sizes(equation: str, ins) -> tuple[dict[str, int], list[str], str]:
    operands, out = _parse(equation, len(ins))
    sizes: dict[str, int] = {}
    for letters, shape in zip(operands, ins):
        if len(letters) != len(shape):
            raise ShapeError("E0312", f'einsum subscripts "{letters}" name {len(letters)} axes, '
                             f"but the operand is {describe(shape)}", "axis count",
                             help="one letter per axis, the batch excluded")
        for letter, size in zip(letters, shape):
            if sizes.setdefault(letter, size) != size:
                raise ShapeError("E0300", f"einsum axis `{letter}` is {sizes[letter]} in one place "
                                 f"and {size} in another", "sizes differ",
                                 help="an axis named twice must have one size")
    return sizes, operands, out


def _einsum_shape(args: Args, ins) -> Shape:
    sizes, operands, out = _sizes(args["equation"], ins)
    if not out:
        raise ShapeError("E0312", "einsum to no axis at all", "nothing left",
                         help="keep at least one axis in the result")
    return Shape(tuple(sizes[letter] for letter in out), _features_last(operands, ins, out))


def _features_last(operands: list[str], ins, out: str) -> str | None:
    """Features stay last: where the result ends with the letter of an operand's last
    axis and that axis is its features (C), the result's features are last too (tokens,
    or an H x W x C-named map, as `reshape` names them); else the default names."""
    for letters, shape in zip(operands, ins):
        if letters and letters[-1] == out[-1] and axes_of(shape).endswith("C") and len(out) > 1:
            return "LC" if len(out) == 2 else "L" * (len(out) - 3) + "HWC"
    return None


def _einsum_macs(args: Args, ins, out) -> int:
    """As torch runs it: a letter of one operand only, not in the result, is summed away
    first; without a letter both share and the result lacks, the product is element-wise
    (0 MACs); else one matrix product over the result's letters and the shared ones."""
    sizes, operands, result = _sizes(args["equation"], ins)
    a, b = map(set, operands)
    if not (a & b) - set(result):
        return 0
    letters = set(result) | (a & b)
    return numel(sizes[letter] for letter in letters)


def _emit_einsum(graph, inputs, args, ins):
    import torch
    operands, out = _parse(args["equation"], len(inputs))
    equation = ",".join(BATCH + o for o in operands) + "->" + BATCH + out
    return graph.call_function(torch.einsum, (equation, *inputs))


# ---- routed_linear -----------------------------------------------------------------------


def _routed_shape(args: Args, ins) -> Shape:
    x, weight, index = ins
    if dtype_of(x) not in FLOATS or dtype_of(weight) not in FLOATS:
        raise ShapeError("E0306", f"routed_linear multiplies floats, not "
                         f"{describe(x if dtype_of(x) not in FLOATS else weight)}",
                         "not floats", help="routed_linear(x, weight, index): the tokens, the "
                                            "experts' matrices, then the int64 choices")
    if dtype_of(x) != dtype_of(weight):
        raise ShapeError("E0300", f"routed_linear of {describe(x)} by matrices of "
                         f"{describe(weight)}: one precision", "multiplied here",
                         help="bring the tokens back with `cast_like(x, weight)`")
    if dtype_of(index) != "int":
        raise ShapeError("E0306", f"routed_linear picks each token's matrix by an integer "
                         f"index, not {describe(index)}", "not indices",
                         help="the index comes from `topk(..., indices = true)` or `argmax`")
    if len(weight) != 3:
        raise ShapeError("E0300", f"routed_linear's weight is {show(weight)}: it needs "
                         "experts x out x in", "the matrices",
                         help="declare it `param w: experts x out x in = normal(0, 0.02)`")
    if weight[2] != x[-1]:
        raise ShapeError("E0300", f"routed_linear of {show(x)} by matrices {show(weight)}: the "
                         f"matrices read {weight[2]} features, the tokens have {x[-1]}",
                         "multiplied here", help=f"matrices of {weight[0]} x {weight[1]} x "
                                                 f"{x[-1]}")
    lead = tuple(x[:-1])
    if tuple(index[:len(lead)]) != lead:
        raise ShapeError("E0300", f"routed_linear of {show(x)} by the index {show(index)}: the "
                         f"index's leading axes must be the tokens' ({show(lead)})",
                         "indexed here", help="one index per token, or k per token (top-k)")
    return Shape(tuple(index) + (weight[1],), "L" * len(index) + "C")


def _routed_macs(args: Args, ins, out) -> int:
    x, weight, index = ins
    return numel(index) * weight[1] * weight[2]


def _emit_routed(graph, inputs, args, ins):
    from .functions import routed_linear
    return graph.call_function(routed_linear, tuple(inputs))


OPS = (
    Op("matmul", "math", _matmul_shape, merge=True, operands=2, function=_emit_matmul,
       autocast="low",
       accepts=FLOATS, gives=None,
       macs=_matmul_macs, window=lambda a, ins: GLOBAL,
       describe=named("matmul"), caption=named("matmul"),
       rule="`matmul(a, b)`: a is …×n×k, b is …×k×m, the axes before the last two "
            "broadcast; result …×n×m",
       lowers="`torch.matmul(a, b)`",
       macs_rule="…·n·k·m: one per term of each product"),
    Op("einsum", "math", _einsum_shape, merge=True, operands=2, function=_emit_einsum,
       autocast="low", expands_operands=True,
       accepts=FLOATS, gives=None,
       args=(Arg("equation", "str"),), macs=_einsum_macs, window=lambda a, ins: GLOBAL,
       describe=lambda a: f"einsum {a['equation']}", caption=named("einsum"),
       rule='`einsum("lc,dc->ld", a, b)`: one lower-case letter per axis (batch excluded), '
            "an axis named twice has one size; result the axes after `->`",
       lowers="`torch.einsum` with the batch's axis added to each operand",
       macs_rule="the product of the sizes of the result's axes and of the axes both "
                 "operands share; 0 where no shared axis is summed (an element-wise product)"),
    Op("routed_linear", "linear", _routed_shape, merge=True, operands=3,
       autocast="low",
       function=_emit_routed, accepts=FLOATS + ("int",), gives=lambda a, ins: dtype_of(ins[0]),
       macs=_routed_macs, describe=named("routed linear"), caption=named("routed linear"),
       rule="`routed_linear(x, weight, index)`: each token of x (…×in) through the matrix "
            "`weight[index]` of a `param` of experts×out×in, `index` (int64) one choice per "
            "token, or k (top-k routing: the token is repeated); result index's axes × out",
       lowers="a loop over the experts, each multiplying the tokens routed to it "
              "(`F.linear` and `index_add`; a function, no module)",
       macs_rule="in · out per choice: the tokens an expert does not get cost nothing"),
)
