"""Merges: ops that take two or more values, by name or as branches (`concat`, `add`,
`mul`), and `crop`, which cuts one value to the size of another."""
from __future__ import annotations

from .args import Arg, Args
from .op import Op, named, spatial, torch_axis
from .shapes import Shape, ShapeError, axes_of, describe, numel, show


def _concat_shape(args: Args, ins) -> Shape:
    first = ins[0]
    if len({axes_of(s) for s in ins}) > 1:
        raise ShapeError("E0302", "concat operands differ in layout: "
                         + " vs ".join(describe(s) for s in ins), "concatenated here",
                         help="bring them to one layout (`transpose`, `permute`) first")
    axis = args["axis"]
    rest = {s[:axis] + s[axis + 1:] for s in ins}
    if len({len(s) for s in ins}) > 1 or len(rest) > 1:
        if axis == 0 and axes_of(first)[0] == "C":
            sizes_ = " vs ".join(show(s[1:]) if len(s) > 1 else "flat" for s in ins)
            raise ShapeError("E0302", f"concat operands differ in size: {sizes_}",
                             "concatenated here",
                             help="give every branch the same stride and padding so sizes agree")
        raise ShapeError("E0302", "concat operands differ off the joined axis: "
                         + " vs ".join(show(s) for s in ins), "concatenated here",
                         help=f"concat joins along axis {axis}; every other axis must agree")
    return Shape(first[:axis] + (sum(s[axis] for s in ins),) + first[axis + 1:], axes_of(first))


def _emit_cat(graph, inputs, args, ins):
    import torch
    return graph.call_function(torch.cat, (tuple(inputs), torch_axis(args["axis"])))


def _identical(op: str):
    def shape(args: Args, ins) -> Shape:
        if len(set(ins)) > 1:
            raise ShapeError("E0300", f"{op} operands differ: "
                             + " vs ".join(describe(s) for s in ins),
                             f"operands of `{op}` meet here", help=_mismatch_help(op, ins))
        return ins[0]
    return shape


def _mismatch_help(op: str, ins) -> str:
    if len({tuple(s) for s in ins}) == 1:
        return "same sizes, different layouts: bring them to one with `transpose` or `permute`"
    if len({axes_of(s) for s in ins}) == 1 and axes_of(ins[0]) == "LC":
        lengths = " and ".join(str(s[0]) for s in ins)
        return (f"the sequences have {lengths} tokens; a position embedding needs one row per "
                "token, a class token included")
    return f"`{op}` needs equal shapes; it never broadcasts"


def _broadcast(op: str):
    """Equal shapes, or a C x H x W value times C x 1 x 1 (a channel gate, as squeeze and
    excitation) or 1 x H x W (a spatial gate)."""
    def shape(args: Args, ins) -> Shape:
        full = max(ins, key=numel)
        for s in ins:
            fits = s == full or (len(s) == len(full) == 3 and (
                s == (full[0], 1, 1) or s == (1, full[1], full[2])))
            if not fits:
                raise ShapeError(
                    "E0300", f"{op} operands do not fit: " + " vs ".join(show(s) for s in ins),
                    f"operands of `{op}` meet here",
                    help=f"`{op}` takes equal shapes, or a C x H x W value with C x 1 x 1 "
                         "(per channel) or 1 x H x W (per position)")
        return full
    return shape


def _merge_ops(args: Args, ins, out: Shape) -> int:
    return numel(out) * (len(ins) - 1)


def _emit_chain(name: str):
    """`a + b + c` as fx's chain of binary operators (readable code, scriptable)."""
    def emit(graph, inputs, args, ins):
        import operator
        from functools import reduce
        function = getattr(operator, name)
        return reduce(lambda a, b: graph.call_function(function, (a, b)), inputs)
    return emit


def _crop_shape(args: Args, ins) -> Shape:
    (c, h, w), like = spatial("crop", ins[:1]), ins[1]
    if len(like) != 3:
        raise ShapeError("E0306", f"crop takes its size from a C x H x W value, not "
                         f"{show(like)} flat features", "flat", help="crop to a feature map")
    if like[1] > h or like[2] > w:
        raise ShapeError("E0309", f"crop to {like[1]}x{like[2]} is larger than its "
                         f"{h}x{w} input", "cropped here",
                         help="crop the larger value to the smaller: `crop(big, small)`")
    return (c, like[1], like[2])


def _emit_crop(graph, inputs, args, ins):
    from .functions import centre_crop
    return graph.call_function(centre_crop, tuple(inputs))


OPS = (
    Op("concat", "merge", _concat_shape, merge=True, function=_emit_cat,
       args=(Arg("axis", "axis", 0),),
       describe=named("concat"), caption=named("concat"),
       rule="operands agree in everything but `axis` (0: channels or features), which adds up; "
            "`concat(a, b, axis = 0)` on tokens joins sequences",
       lowers="`torch.cat((a, b, ...), axis + 1)`"),
    Op("add", "merge", _identical("add"), merge=True, function=_emit_chain("add"),
       other_ops=_merge_ops, overwritable=True,
       describe=named("add"), caption=named("+"),
       rule="operands identical; result the same shape (no broadcasting)",
       lowers="`a + b + ...` (`operator.add`)",
       other_rule="(n − 1) per output element, for n operands (a residual add: 1 per element; a "
                  "gate: 1)"),
    Op("mul", "merge", _broadcast("mul"), merge=True, function=_emit_chain("mul"),
       other_ops=_merge_ops, describe=named("mul"), caption=named("×"),
       rule="operands equal, or C×H×W with C×1×1 (a channel gate) or 1×H×W; result C×H×W",
       lowers="`a * b * ...` (`operator.mul`)",
       other_rule="(n − 1) per output element, for n operands (a residual add: 1 per element; a "
                  "gate: 1)"),
    Op("crop", "reshape", _crop_shape, merge=True, operands=2, function=_emit_crop,
       describe=named("crop"), caption=named("crop"),
       rule="`crop(a, b)`: C×H×W `a` cut at its centre to `b`'s height and width",
       lowers="`a[..., top:top + h, left:left + w]` (a function, no module)"),
)
