"""Element-wise arithmetic: functions of one value (`neg`, `exp`, `sqrt`, ...), and of two
or more values and at most one number (`add`, `sub`, `mul`, `div`, `pow`, `maximum`,
`minimum`), broadcast over named axes.

Broadcasting (`broadcast`): operands of the same rank are aligned axis by axis, as NumPy
aligns them; an operand with fewer axes is placed by its axis names where the other has
them, in order (a `C` vector meets the `C` axis of a C x H x W map, whatever its
position), else from the right, as NumPy places it. Each axis then has one size, or
sizes 1 and n (n wins). `residual` never broadcasts: its add is checked for
equal shapes before this rule runs (passes/infer_shapes).
"""
from __future__ import annotations

from .args import Arg, Args
from .op import Op, elementwise, named, same
from .shapes import (DTYPES, FLOATS, PRECISIONS, Shape, ShapeError, axes_of, axis_name,
                     dtype_of, numel, show)

# ---- functions of one value ------------------------------------------------------------

# what autograd keeps of each for the backward pass (default: the operand)
KEEPS = {"neg": (), "exp": ("out",), "sqrt": ("out",), "rsqrt": ("out",),
         "reciprocal": ("out",)}

# name: (torch function, caption, what it computes)
UNARY = {
    "neg": ("neg", "−x", "−x"),
    "exp": ("exp", "exp", "eˣ"),
    "log": ("log", "log", "the natural logarithm"),
    "sqrt": ("sqrt", "√x", "the square root"),
    "rsqrt": ("rsqrt", "1/√x", "1 / the square root"),
    "reciprocal": ("reciprocal", "1/x", "1 / x"),
    "square": ("square", "x²", "x · x"),
    "abs": ("abs", "|x|", "the absolute value"),
    "sin": ("sin", "sin", "the sine"),
    "cos": ("cos", "cos", "the cosine"),
    "erf": ("erf", "erf", "the error function"),
}


def _emit_torch(name: str):
    def emit(graph, inputs, args, ins):
        import torch
        return graph.call_function(getattr(torch, name), (inputs[0],))
    return emit


def _unary(name: str) -> Op:
    function, caption, what = UNARY[name]
    return Op(name, "math", same(name), function=_emit_torch(function), accepts=FLOATS,
              keeps=KEEPS.get(name, ("in0",)), autocast="float" if name in (
                  "exp", "log", "rsqrt", "reciprocal") else "",
              gives=None, other_ops=elementwise(), describe=named(name), caption=named(caption),
              rule=f"unchanged; {what} of each element",
              lowers=f"`torch.{function}(x)` (a function, no module)",
              other_rule="1 per output element")


# ---- broadcasting ------------------------------------------------------------------------


def placement(shape: Shape, out: Shape) -> tuple[int, ...]:
    """Where each axis of `shape` sits among the axes of `out`: the same positions for an
    operand of `out`'s rank; for fewer axes, by axis name where `out` has the operand's
    names in order (a `C` vector on the channels), else from the right, as NumPy."""
    mine, theirs = axes_of(shape), axes_of(out)
    if len(shape) == len(out):
        return tuple(range(len(shape)))
    positions, start = [], 0
    for letter in mine:
        found = theirs.find(letter, start)
        if found < 0:
            return tuple(range(len(out) - len(shape), len(out)))
        positions.append(found)
        start = found + 1
    return tuple(positions)


def broadcast(op: str, ins: tuple[Shape, ...]) -> Shape:
    """The shape of an element-wise result of `ins`.

    >>> broadcast("mul", (Shape((64, 56, 56)), Shape((64, 1, 1))))
    (64, 56, 56)
    >>> broadcast("add", (Shape((7, 7, 96), "HWC"), Shape((96,))))
    Shape((7, 7, 96), 'HWC')
    """
    widest = max(ins, key=len)
    sizes = [[] for _ in widest]
    for shape in ins:
        for axis, position in zip(shape, placement(shape, widest)):
            sizes[position].append(axis)
    dims = []
    for letter, found in zip(axes_of(widest), sizes):
        if len(set(found) - {1}) > 1:
            raise ShapeError("E0300", f"{op} operands disagree on {axis_name(letter)} ({letter}): "
                             + " vs ".join(str(n) for n in found)
                             + " (" + " vs ".join(show(s) for s in ins) + ")",
                             f"operands of `{op}` meet here", help=_mismatch_help(op, ins))
        dims.append(max(found) if found else 1)
    return Shape(tuple(dims), axes_of(widest))


def _mismatch_help(op: str, ins) -> str:
    if len({axes_of(s) for s in ins}) == 1 and axes_of(ins[0]) == "LC":
        lengths = " and ".join(str(s[0]) for s in ins)
        return (f"the sequences have {lengths} tokens; a position embedding needs one row per "
                "token, a class token included")
    return (f"`{op}` takes sizes that are equal, or 1 on one side (broadcast); a value with "
            "fewer axes is placed by its axis names, else from the right")


def aligned(graph, value, shape: Shape, out: Shape):
    """The fx value of an operand, with a new axis of size 1 wherever `out` has one the
    operand lacks, so that torch's broadcasting (from the right) places it by name."""
    if len(shape) == len(out):
        return value
    kept = set(placement(shape, out))
    for position in range(len(out)):
        if position not in kept:
            value = graph.call_method("unsqueeze", (value, position + 1))
    return value


# ---- functions of two or more values -----------------------------------------------------


def _shape(op: str):
    def shape(args: Args, ins) -> Shape:
        return broadcast(op, ins)
    return shape


def binary_emitter(op: str, name: str):
    """`a + b + ...` as fx's chain of binary functions (`name` in archdsl.ops.functions),
    each operand placed by broadcast, the number at its side."""
    def emit(graph, inputs, args, ins):
        from . import functions
        out = broadcast(op, ins)
        values = [aligned(graph, v, s, out) for v, s in zip(inputs, ins)]
        if args["constant"] is not None:
            number = args["constant"]
            values = [number] + values if args["constant_first"] else values + [number]
        function = getattr(functions, name)
        result = values[0]
        for value in values[1:]:
            result = graph.call_function(function, (result, value))
        return result
    return emit


def _count(args: Args, ins, out) -> int:
    return numel(out) * (len(ins) - (args["constant"] is None))


def _describe(op: str):
    def text(args: Args) -> str:
        number = args["constant"]
        return op if number is None else f"{op} {number:g}"
    return text


CONSTANT = (Arg("constant", "float", None), Arg("constant_first", "bool", False))

# name: (its function in archdsl.ops.functions, caption, what it lowers to, operands:
# None for two or more)
BINARY = {
    "add": ("add", "+", "`a + b + ...` (`operator.add`)", None),
    "sub": ("sub", "−", "`a - b` (`operator.sub`)", 2),
    "mul": ("mul", "×", "`a * b * ...` (`operator.mul`)", None),
    "div": ("truediv", "÷", "`a / b` (`operator.truediv`)", 2),
    "pow": ("pow", "^", "`a ** b` (`operator.pow`)", 2),
    "maximum": ("maximum", "max", "`torch.maximum(a, b)`; with a number, `torch.clamp_min`",
                None),
    "minimum": ("minimum", "min", "`torch.minimum(a, b)`; with a number, `torch.clamp_max`",
                None),
}

_RULE = ("broadcast over named axes (sizes equal, or 1 on one side); a number may stand for "
         "one operand, and one given operand is taken with the current value: `{}`")
_EXAMPLES = {"add": "add(1e-6)", "sub": "sub(x, mean)", "mul": "mul(0.5)", "div": "div(norm)",
             "pow": "pow(2)", "maximum": "maximum(0)", "minimum": "minimum(x, 6)"}


def _binary(name: str) -> Op:
    _function, caption, lowers, operands = BINARY[name]
    return Op(name, "merge", _shape(name), args=CONSTANT, merge=True, operands=operands,
              constants=True, accepts=FLOATS, gives=None, other_ops=_count,
              keeps=() if name in ("add", "sub") else ("inputs",),
              autocast="float" if name == "pow" else "",
              function=binary_emitter(name, _function),
              overwritable=name in ("add", "sub"), describe=_describe(name),
              caption=named(caption), rule=_RULE.format(_EXAMPLES[name]), lowers=lowers,
              other_rule="(n − 1) per output element, for n operands (a residual add: 1 per "
                         "element; a gate: 1)")


# ---- precision ----------------------------------------------------------------------------


def _emit_cast(graph, inputs, args, ins):
    import torch
    return graph.call_method("to", (inputs[0], getattr(torch, args["dtype"])))


def _emit_cast_like(graph, inputs, args, ins):
    from .functions import cast_like
    return graph.call_function(cast_like, tuple(inputs))


CAST = (
    Op("cast", "math", same("cast"), args=(Arg("dtype", "str", choices=PRECISIONS),), keeps=(),
       accepts=FLOATS + ("int",), gives=lambda a, ins: a["dtype"],
       function=_emit_cast, describe=lambda a: f"cast {a['dtype']}", caption=named("cast"),
       rule="unchanged; the values in that float precision, whatever the module's: a step a "
            "reference computes in float32 (transformers' rotary angles) stays float32. Only "
            "the tensor algebra reads them, until `cast_like` brings them back",
       lowers="`x.to(torch.dtype)` (a function, no module)"),
    Op("cast_like", "math", lambda a, ins: ins[0], merge=True, operands=2, accepts=DTYPES,
       keeps=(),
       gives=lambda a, ins: dtype_of(ins[1]),
       function=_emit_cast_like, describe=named("cast_like"), caption=named("cast"),
       rule="`cast_like(a, b)`: `a`'s values in `b`'s element type and precision (a mask "
            "as 0 and 1)",
       lowers="`a.to(b.dtype)` (a function, no module)"),
)

OPS = tuple(_binary(name) for name in BINARY) + tuple(_unary(name) for name in UNARY) + CAST
