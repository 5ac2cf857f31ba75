"""Merges that join values: `concat` (by name or as branches), and `crop`, which cuts one
value to the size of another. Element-wise merges (`add`, `mul`, ...) are in
`elementwise`."""
from __future__ import annotations

from .args import Arg, Args
from .op import Op, named, spatial, torch_axis
from .shapes import DTYPES, Shape, ShapeError, axes_of, describe, show


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
    Op("concat", "merge", _concat_shape, accepts=DTYPES, gives=None, merge=True, function=_emit_cat,
       keeps=(),
       args=(Arg("axis", "axis", 0),),
       describe=named("concat"), caption=named("concat"),
       rule="operands agree in everything but `axis` (0: channels or features), which adds up; "
            "`concat(a, b, axis = 0)` on tokens joins sequences",
       lowers="`torch.cat((a, b, ...), axis + 1)`"),
    Op("crop", "reshape", _crop_shape, merge=True, operands=2, function=_emit_crop,
       keeps=(), view=True,
       describe=named("crop"), caption=named("crop"),
       rule="`crop(a, b)`: C×H×W `a` cut at its centre to `b`'s height and width",
       lowers="`a[..., top:top + h, left:left + w]` (a function, no module)"),
)
