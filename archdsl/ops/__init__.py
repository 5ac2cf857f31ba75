"""The layer vocabulary: ONE table, one entry per op.

Each `Op` holds everything any pass or backend needs to know about a layer: its
arguments and defaults, its shape rule, its parameter and cost counts, the torch module
it lowers to, and how it is labelled in tables and diagrams. Adding a layer is one
`Op(...)` entry in `OPS`.

Shapes exclude the batch: `(C, H, W)` for feature maps, `(F,)` for flat features.
Torch is imported only inside the `module` builders, which the front end never calls.
"""
from __future__ import annotations

from fractions import Fraction
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import InternalError
from .shapes import (Shape, ShapeError, axes_of, axis_index, default_axes,
                     describe, numel, require, show)

REQUIRED = object()
GLOBAL = "global"  # an op whose every output reads the whole input (Op.window)


@dataclass(frozen=True)
class Derived:
    """A default that copies another argument: pool stride defaults to the kernel."""
    source: str


@dataclass(frozen=True)
class Arg:
    """One argument of an op. kind: int, float, bool, pair (int or (h, w)), pad, str;
    `axis` (an axis of the input, -1 the last) and `axes` (a list of them), which
    `normalise_axes` turns into non-negative numbers before any rule or lowering reads
    them; `dims` (a list of sizes)."""
    name: str
    kind: str
    default: Any = REQUIRED
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None  # an exclusive maximum: stochastic depth's p < 1
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


def normalise_axes(op: "Op", args: Args, ins: tuple[Shape, ...]) -> Args:
    """The one axis rule: every `axis`/`axes` argument as a non-negative axis of the
    first input (batch excluded, -1 the last), or E0310 when there is no such axis.
    Shape rules and lowerings read only normalised arguments.

    >>> normalise_axes(OPS["flatten"], Args((("start", -2), ("end", -1))), (Shape((3, 5, 7)),))
    Args(items=(('start', 1), ('end', 2)))
    """
    kinds = {arg.name: arg.kind for arg in op.args if arg.kind in AXIS_KINDS}
    if not kinds or not ins:
        return args
    rank = len(ins[0])
    items = []
    for name, value in args:
        if kinds.get(name) == "axis":
            value = axis_index(op.name, value, rank, name)
        elif kinds.get(name) == "axes":
            value = tuple(axis_index(op.name, v, rank, name) for v in value)
        items.append((name, value))
    return Args(tuple(items))


def _zero(*_):
    return 0


@dataclass(frozen=True)
class Op:
    name: str
    family: str  # conv, norm, act, pool, linear, merge, reshape, reg, io: colours and grouping
    shape: Callable[[Args, tuple[Shape, ...]], Shape]
    args: tuple[Arg, ...] = ()
    merge: bool = False  # takes values by name or branches (concat, add, mul, crop)
    operands: int | None = None  # how many a merge takes; None: two or more
    params: Callable[[Args, tuple[Shape, ...]], int] = _zero
    buffers: Callable[[Args, tuple[Shape, ...]], int] = _zero  # non-trainable state
    macs: Callable[[Args, tuple[Shape, ...], Shape], int] = _zero  # conv/linear multiply-adds
    other_ops: Callable[[Args, tuple[Shape, ...], Shape], int] = _zero  # element-wise work
    module: Callable[[Args, tuple[Shape, ...]], Any] | None = None  # torch.nn layer, or a
    # bare nn.Parameter that multiplies its input (layer scale: the key is the layer's name)
    function: Callable | None = None  # or a function of the inputs: torch.cat, operator.add;
    # function(fx_graph, input_nodes, args, input_shapes) adds its fx nodes, returns the last
    init: Callable[[Any], None] | None = None  # initialises the module; required with params
    workspace: Callable[[Args, tuple[Shape, ...]], int] = _zero  # elements held inside,
    # per image, beyond the output: an attention matrix
    window: Callable[[Args, tuple[Shape, ...]], Any] = field(default=lambda a, ins: None)
    # how far an output position sees, for the receptive field (passes/receptive_field):
    # None, each output position reads its own position only; GLOBAL, the whole input;
    # or per spatial axis of the input, (kernel, stride, dilation, pad) of a sliding window
    in_place: bool = False  # an activation that may overwrite its input (module.inplace)
    overwritable: bool = False  # its backward does not need its output: an in-place
    # activation right after it may overwrite that output
    describe: Callable[[Args], str] = field(default=lambda a: "")
    caption: Callable[[Args], str] = field(default=lambda a: "")
    min_batch: Callable[[Args, Shape], int] = field(default=lambda a, out: 1)  # to train
    rule: str = "unchanged"  # the shape rule, in the words of the layer table (docs/language.md)
    lowers: str = ""  # what it lowers to, in the words of the layer table


# ---- helpers for shape rules ---------------------------------------------------------


def pair(value) -> tuple[int, int]:
    return value if isinstance(value, tuple) else (value, value)


def _spatial(op: str, ins: tuple[Shape, ...]) -> Shape:
    """The one input, a C x H x W map."""
    return require(op, ins[0], ("CHW",))


def _channels_first(op: str, ins: tuple[Shape, ...]) -> Shape:
    """The one input, channels first with 1, 2 or 3 spatial axes (signal, image, volume)."""
    return require(op, ins[0], ("CHW", "CL", "CTHW"))


def _flat(op: str, ins: tuple[Shape, ...]) -> Shape:
    (shape,) = ins
    if axes_of(shape).endswith("C"):
        return shape
    raise ShapeError("E0305", f"{op} needs a flat input, but gets {show(shape)}",
                     f"{op} needs flat features",
                     help=f"add `flatten` (or `global_avgpool` then `flatten`) before this {op}")


def _channels(shape: Shape) -> int:
    return shape[axes_of(shape).index("C")]


def sizes(args: "Args", name: str, count: int) -> tuple[int, ...]:
    """An argument given as one integer or one per spatial axis, as `count` integers."""
    value = args[name]
    if not isinstance(value, tuple):
        return (value,) * count
    if len(value) != count:
        raise ShapeError("E0310", f"`{name}` gives {len(value)} sizes for {count} spatial "
                         f"ax{'is' if count == 1 else 'es'}", f"{len(value)} sizes",
                         help=f"give one integer, or {count}: one per spatial axis")
    return value


def _window(op: str, axis: str, size: int, kernel: int, stride: int, pad: int, dilation: int,
            ceil_mode: bool = False) -> int:
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1  # torch: the last window must start inside the input or its left padding
    if span < 0 or out <= 0:
        raise ShapeError("E0303", f"{op} output {axis} would be {min(out, 0)}: input {axis} {size} "
                         f"is smaller than the {kernel}-wide window (pad {pad}, dilation {dilation})",
                         f"{axis} {size} is too small here",
                         help="use a smaller kernel or stride, add padding, or give a larger input")
    return out


def _padding(args: Args, kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    pad = args["pad"]
    if pad == "valid":
        return (0,) * len(kernel)
    if pad == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    return sizes(args, "pad", len(kernel))


_SPATIAL_AXES = {1: ("length",), 2: ("height", "width"), 3: ("time", "height", "width")}


def _spatial_count(shape: Shape) -> int:
    return len(shape) - 1


# ---- convolution ---------------------------------------------------------------------


def _conv_shape(args: Args, ins) -> Shape:
    c, *space = _channels_first("conv", ins)
    n = len(space)
    out, groups = args["channels"], args["groups"]
    if c % groups or out % groups:
        which = f"{c} input" if c % groups else f"{out} output"
        both = f"{c}" if c == out else f"both {c} and {out}"
        raise ShapeError("E0304", f"conv groups = {groups} does not divide its {which} channels",
                         f"{groups} groups", help=f"choose groups that divide {both}")
    kernel, stride = sizes(args, "kernel", n), sizes(args, "stride", n)
    dilation = sizes(args, "dilation", n)
    if args["pad"] == "same":
        if set(stride) != {1}:
            raise ShapeError("E0307", "`pad = same` needs stride 1", "strided",
                             help="give the padding as a number, e.g. `pad = 1` for a 3x3 kernel")
        return (out, *space)
    pads = _padding(args, kernel, dilation)
    return (out, *(_window("conv", axis, size, k, st, p, d) for axis, size, k, st, p, d in zip(
        _SPATIAL_AXES[n], space, kernel, stride, pads, dilation)))


def _kernel_volume(args: Args, ins) -> int:
    return numel(sizes(args, "kernel", _spatial_count(ins[0])))


def _conv_params(args: Args, ins) -> int:
    out = args["channels"]
    return (out * (ins[0][0] // args["groups"]) * _kernel_volume(args, ins)
            + (out if args["bias"] else 0))


def _conv_macs(args: Args, ins, out: Shape) -> int:
    return numel(out) * (ins[0][0] // args["groups"]) * _kernel_volume(args, ins)


def _conv_module(args: Args, ins):
    from torch import nn
    n = _spatial_count(ins[0])
    pad = args["pad"] if isinstance(args["pad"], str) else sizes(args, "pad", n)
    cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[n - 1]
    return cls(ins[0][0], args["channels"], sizes(args, "kernel", n), sizes(args, "stride", n),
               pad, sizes(args, "dilation", n), args["groups"], args["bias"])


def _size_text(value) -> str:
    """`3x3` from 3 or (3, 3); `3x7x7` from (3, 7, 7)."""
    if not isinstance(value, tuple):
        return f"{value}x{value}"
    return "x".join(map(str, value))


def _stride_text(stride) -> str:
    if not isinstance(stride, tuple):
        return f"/{stride}"
    return f"/{stride[0]}" if len(set(stride)) == 1 else "/" + "x".join(map(str, stride))


def _is_one(value) -> bool:
    return value == 1 or (isinstance(value, tuple) and set(value) == {1})


def _conv_describe(args: Args) -> str:
    text = f"conv {_size_text(args['kernel'])}"
    if not _is_one(args["stride"]):
        text += _stride_text(args["stride"])
    pad = args["pad"]
    if pad not in (0, "valid") and not (isinstance(pad, tuple) and set(pad) == {0}):
        text += f" p{pad}" if not isinstance(pad, tuple) else f" p{'x'.join(map(str, pad))}"
    if args["groups"] != 1:
        text += f" g{args['groups']}"
    return text


def _conv_caption(args: Args) -> str:
    text = f"{_size_text(args['kernel'])} conv, {args['channels']}"
    if args["groups"] != 1:
        text += f", g{args['groups']}"
    return text + (f", {_stride_text(args['stride'])}" if not _is_one(args["stride"]) else "")


# ---- pooling -----------------------------------------------------------------------------


def _pool_shape(name: str):
    def shape(args: Args, ins) -> Shape:
        c, *space = _channels_first(name, ins)
        n = len(space)
        kernel, stride, pad = sizes(args, "kernel", n), sizes(args, "stride", n), sizes(args, "pad", n)
        dilation = sizes(args, "dilation", n) if "dilation" in dict(args.items) else (1,) * n
        if any(p * 2 > k for p, k in zip(pad, kernel)):
            raise ShapeError("E0307", f"{name} pad {args['pad']} is more than half its kernel "
                             f"{args['kernel']}", "pad too large",
                             help="torch allows at most kernel // 2 padding on pools")
        if name == "avgpool" and n == 3 and any(k > size for k, size in zip(kernel, space)):
            raise ShapeError("E0303", f"avgpool kernel {args['kernel']} is larger than the "
                             f"{' x '.join(map(str, space))} volume", "kernel too large",
                             help="torch's 3-D average pool needs the kernel to fit the "
                                  "volume before padding: use a smaller kernel")
        ceil = args["ceil_mode"]
        return (c, *(_window(name, axis, size, k, st, p, d, ceil) for axis, size, k, st, p, d in
                     zip(_SPATIAL_AXES[n], space, kernel, stride, pad, dilation)))
    return shape


def _sliding(dilated: bool = True):
    """Op.window of conv and pools: kernel, stride, dilation and padding on each spatial
    axis."""
    def window(args: Args, ins):
        n = _spatial_count(ins[0])
        kernel = sizes(args, "kernel", n)
        dilation = sizes(args, "dilation", n) if dilated else (1,) * n
        return tuple(zip(kernel, sizes(args, "stride", n), dilation,
                         _padding(args, kernel, dilation)))
    return window


def _pool_ops(args: Args, ins, out: Shape) -> int:
    return numel(out) * _kernel_volume(args, ins)


def _maxpool_module(args: Args, ins):
    from torch import nn
    n = _spatial_count(ins[0])
    cls = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[n - 1]
    return cls(sizes(args, "kernel", n), sizes(args, "stride", n), sizes(args, "pad", n),
               sizes(args, "dilation", n), ceil_mode=args["ceil_mode"])


def _avgpool_module(args: Args, ins):
    from torch import nn
    n = _spatial_count(ins[0])
    cls = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[n - 1]
    return cls(sizes(args, "kernel", n), sizes(args, "stride", n), sizes(args, "pad", n),
               ceil_mode=args["ceil_mode"], count_include_pad=args["count_include_pad"])


def _pool_describe(name: str):
    def describe(args: Args) -> str:
        text = f"{name} {_size_text(args['kernel'])}"
        if not _is_one(args["stride"]):
            text += _stride_text(args["stride"])
        if args["pad"] not in (0, (0, 0)):
            text += f" p{args['pad']}"
        return text
    return describe


def _pool_caption(name: str):
    def caption(args: Args) -> str:
        return f"{_size_text(args['kernel'])} {name}" + (
            f", {_stride_text(args['stride'])}" if not _is_one(args["stride"]) else "")
    return caption


def _global_pool_shape(args: Args, ins) -> Shape:
    c, *space = _channels_first("global_avgpool", ins)
    return (c,) + (1,) * len(space)


def _global_pool_module(args: Args, ins):
    from torch import nn
    n = _spatial_count(ins[0])
    cls = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[n - 1]
    return cls(1 if n == 1 else (1,) * n)


def _adaptive_module(args: Args, ins):
    from torch import nn
    return nn.AdaptiveAvgPool2d((args["height"], args["width"]))


def _adaptive_window(args: Args, ins):
    """torch's adaptive pooling reads about in / out positions, every in / out positions."""
    return tuple((-(-size // out), Fraction(size, out), 1, 0)
                 for size, out in zip(ins[0][1:], (args["height"], args["width"])))


def _adaptive_shape(args: Args, ins) -> Shape:
    c, _, _ = _spatial("adaptive_avgpool", ins)
    return (c, args["height"], args["width"])


# ---- normalisation, activations, element-wise -------------------------------------------


def _same(op: str):
    def shape(args: Args, ins) -> Shape:
        (s,) = ins
        return s
    return shape


def _elementwise(per_element: int = 1):
    def count(args: Args, ins, out: Shape) -> int:
        return per_element * numel(out)
    return count


def _batchnorm_shape(args: Args, ins) -> Shape:
    return require("batchnorm", ins[0], ("CHW", "C", "CL", "CTHW"))


def _batchnorm_module(args: Args, ins):
    from torch import nn
    cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}
    return cls[len(ins[0])](ins[0][0], eps=args["eps"], momentum=args["momentum"])


def _torch_layer(name: str, *arg_names: str, **fixed):
    """A builder for a torch.nn layer whose arguments are the op's own, in order."""
    def build(args: Args, ins):
        from torch import nn
        return getattr(nn, name)(*(args[a] for a in arg_names), **fixed)
    return build


def _softmax_module(args: Args, ins):
    from torch import nn
    return nn.Softmax(dim=_torch_axis(axes_of(ins[0]).index("C")))


def _lrn_shape(args: Args, ins) -> Shape:
    return _spatial("lrn", ins)


# ---- linear, reshape, merges -------------------------------------------------------------


def _linear_shape(args: Args, ins) -> Shape:
    shape = _flat("linear", ins)
    return Shape(shape[:-1] + (args["features"],), axes_of(shape))


def _linear_params(args: Args, ins) -> int:
    return ins[0][-1] * args["features"] + (args["features"] if args["bias"] else 0)


def _linear_module(args: Args, ins):
    from torch import nn
    return nn.Linear(ins[0][-1], args["features"], bias=args["bias"])


def _merged_axis(letters: str) -> str:
    return "C" if "C" in letters else "L"


def _flatten_shape(args: Args, ins) -> Shape:
    (s,) = ins
    axes = axes_of(s)
    start, end = args["start"], args["end"]
    if end < start:
        raise ShapeError("E0310", f"flatten ends at axis {end}, before its start {start}",
                         "empty range", help="give `start` <= `end`")
    dims = s[:start] + (numel(s[start:end + 1]),) + s[end + 1:]
    return Shape(dims, axes[:start] + _merged_axis(axes[start:end + 1]) + axes[end + 1:])


def _emit_flatten(graph, inputs, args, ins):
    import torch
    start = _torch_axis(args["start"])
    if args["end"] == len(ins[0]) - 1:  # to the last axis: torch's own default
        return graph.call_function(torch.flatten, (inputs[0], start))
    return graph.call_function(torch.flatten, (inputs[0], start, _torch_axis(args["end"])))


def _upsample_shape(args: Args, ins) -> Shape:
    c, h, w = _spatial("upsample", ins)
    return (c, h * args["scale"], w * args["scale"])


def _upsample_module(args: Args, ins):
    from torch import nn
    return nn.Upsample(scale_factor=args["scale"], mode=args["mode"])


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


def _merge_ops(args: Args, ins, out: Shape) -> int:
    return numel(out) * (len(ins) - 1)


def _named(text: str):
    return lambda args: text


# ---- initialisation (torchvision's: Kaiming normal convs, norms at weight 1 and bias 0) ---


def _kaiming_init(module, args: Args) -> None:
    from torch import nn
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def _reset_init(module, args: Args) -> None:
    """torch's own initialisation: weight 1 and bias 0 for norms (and fresh running
    statistics), uniform for linear layers."""
    module.reset_parameters()


# ---- lowering to functions (torch imported at lowering only) -------------------------------


def _emit_cat(graph, inputs, args, ins):
    import torch
    return graph.call_function(torch.cat, (tuple(inputs), _torch_axis(args["axis"])))


def _torch_axis(axis: int) -> int:
    """An axis number of the spec (batch excluded, normalised: never negative) as torch
    numbers it."""
    if axis < 0:
        raise InternalError(f"axis {axis} reached the lowering without normalise_axes")
    return axis + 1


def _emit_chain(name: str):
    """`a + b + c` as fx's chain of binary operators (readable code, scriptable)."""
    def emit(graph, inputs, args, ins):
        import operator
        from functools import reduce
        function = getattr(operator, name)
        return reduce(lambda a, b: graph.call_function(function, (a, b)), inputs)
    return emit


def _emit_crop(graph, inputs, args, ins):
    from .functions import centre_crop
    return graph.call_function(centre_crop, tuple(inputs))


# ---- layers of modern CNNs --------------------------------------------------------------


def _groupnorm_module(args: Args, ins):
    from torch import nn
    return nn.GroupNorm(args["groups"], ins[0][0], eps=args["eps"])


def _layernorm_module(args: Args, ins):
    from torch import nn
    from .functions import LayerNorm2d
    cls = LayerNorm2d if axes_of(ins[0]) == "CHW" else nn.LayerNorm
    return cls(_channels(ins[0]), eps=args["eps"])


def _layernorm_shape(args: Args, ins) -> Shape:
    return require("layernorm", ins[0], ("C", "LC", "HWC", "CHW"),
                   fix="layer norm normalises the features: put them last")


def _groupnorm_shape(args: Args, ins) -> Shape:
    c, _, _ = _spatial("groupnorm", ins)
    if c % args["groups"]:
        raise ShapeError("E0304", f"groupnorm groups = {args['groups']} does not divide its {c} "
                         "channels", f"{args['groups']} groups",
                         help=f"choose groups that divide {c}, e.g. "
                              f"{max(g for g in range(1, min(c, args['groups']) + 1) if c % g == 0)}")
    return ins[0]


def _conv_transpose_shape(args: Args, ins) -> Shape:
    c, h, w = _spatial("conv_transpose", ins)
    out, groups = args["channels"], args["groups"]
    if c % groups or out % groups:
        raise ShapeError("E0304", f"conv_transpose groups = {groups} does not divide its "
                         f"{c if c % groups else out} {'input' if c % groups else 'output'} "
                         "channels", f"{groups} groups", help="choose groups that divide both")
    sizes = []
    for axis, size, k, st, p, op, d in zip(
            ("height", "width"), (h, w), pair(args["kernel"]), pair(args["stride"]),
            pair(args["pad"]), pair(args["output_pad"]), pair(args["dilation"])):
        if op >= max(st, d):
            raise ShapeError("E0307", f"conv_transpose output_pad {op} must be smaller than its "
                             f"stride {st} or dilation {d}", "output_pad too large",
                             help="output_pad only picks among the sizes a stride allows: "
                                  "use 0 .. stride - 1")
        new = (size - 1) * st - 2 * p + d * (k - 1) + op + 1
        if new <= 0:
            raise ShapeError("E0303", f"conv_transpose output {axis} would be {new}",
                             f"{axis} {size} is too small here", help="use less padding")
        sizes.append(new)
    return (out, *sizes)


def _transposed_window(args: Args, ins):
    """An output position of a transposed conv reads the inputs within (kernel - 1) *
    dilation / stride of it, on a grid `stride` times finer."""
    return tuple((Fraction((k - 1) * d, st) + 1, Fraction(1, st), 1, Fraction((k - 1) * d - p, st))
                 for k, st, d, p in zip(pair(args["kernel"]), pair(args["stride"]),
                                        pair(args["dilation"]), pair(args["pad"])))


def _conv_transpose_params(args: Args, ins) -> int:
    kh, kw = pair(args["kernel"])
    out = args["channels"]
    return ins[0][0] * (out // args["groups"]) * kh * kw + (out if args["bias"] else 0)


def _conv_transpose_macs(args: Args, ins, out: Shape) -> int:
    kh, kw = pair(args["kernel"])  # each input position meets a kernel of every output group
    return numel(ins[0]) * (args["channels"] // args["groups"]) * kh * kw


def _conv_transpose_module(args: Args, ins):
    from torch import nn
    return nn.ConvTranspose2d(ins[0][0], args["channels"], pair(args["kernel"]),
                              pair(args["stride"]), pair(args["pad"]), pair(args["output_pad"]),
                              args["groups"], args["bias"], pair(args["dilation"]))


def _channel_linear_shape(args: Args, ins) -> Shape:
    _, h, w = _spatial("channel_linear", ins)
    return (args["features"], h, w)


def _channel_linear_module(args: Args, ins):
    from .functions import ChannelLinear
    return ChannelLinear(ins[0][0], args["features"], bias=args["bias"])


def _chunk_shape(args: Args, ins) -> Shape:
    shape = require("chunk", ins[0], ("CHW", "C", "CL", "CTHW"),
                    fix="chunk splits the channels: put them first")
    chunks, index = args["chunks"], args["index"]
    if shape[0] % chunks:
        raise ShapeError("E0304", f"chunk({chunks}) does not divide the {shape[0]} channels",
                         f"{chunks} chunks", help=f"choose a number of chunks that divides "
                                                  f"{shape[0]}")
    if index >= chunks:
        raise ShapeError("E0307", f"chunk index {index} is past the last of {chunks} chunks",
                         "no such chunk", help=f"chunks are numbered 0 to {chunks - 1}")
    return (shape[0] // chunks,) + shape[1:]


def _emit_chunk(graph, inputs, args, ins):
    import operator
    pieces = graph.call_method("chunk", (inputs[0], args["chunks"], 1))
    return graph.call_function(operator.getitem, (pieces, args["index"]))


def _crop_shape(args: Args, ins) -> Shape:
    (c, h, w), like = _spatial("crop", ins[:1]), ins[1]
    if len(like) != 3:
        raise ShapeError("E0306", f"crop takes its size from a C x H x W value, not "
                         f"{show(like)} flat features", "flat", help="crop to a feature map")
    if like[1] > h or like[2] > w:
        raise ShapeError("E0309", f"crop to {like[1]}x{like[2]} is larger than its "
                         f"{h}x{w} input", "cropped here",
                         help="crop the larger value to the smaller: `crop(big, small)`")
    return (c, like[1], like[2])


def _channel_shuffle_shape(args: Args, ins) -> Shape:
    c, _, _ = _spatial("channel_shuffle", ins)
    if c % args["groups"]:
        raise ShapeError("E0304", f"channel_shuffle groups = {args['groups']} does not divide "
                         f"its {c} channels", f"{args['groups']} groups",
                         help=f"choose groups that divide {c}")
    return ins[0]


def _scale_module(args: Args, ins):
    import torch
    from torch import nn
    axes = axes_of(ins[0])
    c = axes.index("C")  # one factor per channel, broadcast over the axes after it
    return nn.Parameter(torch.empty((_channels(ins[0]),) + (1,) * (len(axes) - c - 1)))


def _scale_init(parameter, args: Args) -> None:
    import torch
    with torch.no_grad():
        parameter.fill_(args["init"])


def _stochastic_depth_module(args: Args, ins):
    from .functions import StochasticDepth
    return StochasticDepth(args["p"], args["mode"])


def _pad_channels_shape(args: Args, ins) -> Shape:
    c, h, w = _spatial("pad_channels", ins)
    if args["channels"] < c:
        raise ShapeError("E0307", f"pad_channels({args['channels']}) would remove channels from "
                         f"a {c}-channel input", "fewer channels",
                         help=f"give at least {c} channels")
    return (args["channels"], h, w)


def _pad_channels_module(args: Args, ins):
    from .functions import PadChannels
    extra = args["channels"] - ins[0][0]
    return PadChannels(extra // 2, extra - extra // 2)


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


# ---- axes: sequences, signals, volumes ------------------------------------------------


def _transpose_shape(args: Args, ins) -> Shape:
    (s,) = ins
    a, b = args["a"], args["b"]
    order = list(range(len(s)))
    order[a], order[b] = b, a
    return _permuted(s, order)


def _permuted(s: Shape, order) -> Shape:
    axes = axes_of(s)
    return Shape(tuple(s[i] for i in order), "".join(axes[i] for i in order))


def _permute_shape(args: Args, ins) -> Shape:
    (s,) = ins
    order = list(args["order"])
    if sorted(order) != list(range(len(s))):
        raise ShapeError("E0310", f"permute({', '.join(map(str, args['order']))}) does not "
                         f"name each of the {len(s)} axes once", "not a permutation",
                         help=f"list every axis 0 to {len(s) - 1} once, in the new order")
    return _permuted(s, order)


def _emit_method(name: str, arguments):
    """`x.name(*arguments(args))`: a tensor method, the axes numbered as torch numbers them."""
    def emit(graph, inputs, args, ins):
        return graph.call_method(name, (inputs[0], *arguments(args)))
    return emit


def _take_shape(args: Args, ins) -> Shape:
    (s,) = ins
    axis = args["axis"]
    if len(s) == 1:
        raise ShapeError("E0310", "take would remove the only axis", "nothing left",
                         help="take from a value with two or more axes")
    if not -s[axis] <= args["index"] < s[axis]:
        raise ShapeError("E0310", f"take({args['index']}) is outside the {s[axis]} entries of "
                         f"axis {axis}", "no such entry",
                         help=f"entries are numbered 0 to {s[axis] - 1} (or -1 for the last)")
    axes = axes_of(s)
    return Shape(s[:axis] + s[axis + 1:], _without_axis(axes, axis))


def _without_axis(axes: str, axis: int) -> str:
    """The letters left when `axis` goes away. Without the channels, what is left reads as
    a tensor of its rank does in torch (the default letters): the L samples left of one
    channel of a signal are flat features, an H x W map's rows are tokens."""
    rest = axes[:axis] + axes[axis + 1:]
    return rest if "C" in rest else default_axes(len(rest))


def _slice_shape(args: Args, ins) -> Shape:
    (s,) = ins
    axis = args["axis"]
    kept = len(range(*slice(args["start"], args["end"], args["step"]).indices(s[axis])))
    if kept == 0:
        raise ShapeError("E0310", f"slice({args['start']}, {args['end']}) keeps nothing of the "
                         f"{s[axis]} entries of axis {axis}", "empty",
                         help=f"entries are numbered 0 to {s[axis] - 1}; `end` is not kept")
    return Shape(s[:axis] + (kept,) + s[axis + 1:], axes_of(s))


def _emit_slice(graph, inputs, args, ins):
    import operator
    index = (slice(None),) * _torch_axis(args["axis"]) + (
        slice(args["start"], args["end"], args["step"]),)
    return graph.call_function(operator.getitem, (inputs[0], index))


def _mean_shape(args: Args, ins) -> Shape:
    return _take_shape(Args((("index", 0), ("axis", args["axis"]))), ins)


def _reshape_shape(args: Args, ins) -> Shape:
    (s,) = ins
    dims = list(args["dims"])
    if dims.count(-1) > 1 or any(d == 0 or d < -1 for d in dims):
        raise ShapeError("E0310", "reshape takes positive sizes and at most one -1",
                         "bad sizes", help="write the sizes, with -1 for the one to infer")
    known = numel(d for d in dims if d != -1)
    if -1 in dims:
        if numel(s) % known:
            raise ShapeError("E0310", f"reshape cannot fit {numel(s)} elements into "
                             f"{' x '.join(map(str, dims))}", "does not divide",
                             help=f"the sizes other than -1 must divide {numel(s)}")
        dims[dims.index(-1)] = numel(s) // known
    if numel(dims) != numel(s):
        raise ShapeError("E0310", f"reshape to {show(dims)} ({numel(dims)} elements) from "
                         f"{show(s)} ({numel(s)} elements)", "element counts differ",
                         help="the sizes must multiply to the input's element count")
    return Shape(tuple(dims))


def _emit_reshape(graph, inputs, args, ins):
    batch = graph.call_method("size", (inputs[0], 0))
    return graph.call_method("reshape", (inputs[0], batch, *args["dims"]))


def _attention_shape(args: Args, ins) -> Shape:
    s = require("attention", ins[0], ("LC",), fix="make tokens of a C x H x W map with "
                "`flatten(1, 2)` then `transpose(0, 1)`")
    _heads_divide("attention", args["heads"], s[1])
    return s


def _heads_divide(op: str, heads: int, width: int) -> None:
    if width % heads:
        fits = [h for h in range(1, min(width, heads * 2) + 1) if width % h == 0]
        raise ShapeError("E0311", f"{op} heads = {heads} does not divide its {width} features",
                         f"{heads} heads", help=f"choose heads that divide {width}, e.g. "
                                                f"{min(fits, key=lambda h: abs(h - heads))}")


def _attention_params(args: Args, ins) -> int:
    width = ins[0][-1]
    return 4 * width * width + (4 * width if args["bias"] else 0)


def _attention_macs(args: Args, ins, out: Shape) -> int:
    length, width = ins[0]  # projections in and out, then QK^T and AV
    return 4 * length * width * width + 2 * length * length * width


def _attention_module(args: Args, ins):
    from .functions import SelfAttention
    return SelfAttention(ins[0][-1], args["heads"], dropout=args["dropout"], bias=args["bias"])


def _attention_init(module, args: Args) -> None:
    module.out_proj.reset_parameters()  # then torch's own: Xavier in, zero biases
    module._reset_parameters()


def _window_attention_shape(args: Args, ins) -> Shape:
    s = require("window_attention", ins[0], ("HWC",), fix="make a C x H x W map channels-last "
                "with `permute(1, 2, 0)`")
    if args["shift"] >= args["window"]:
        raise ShapeError("E0307", f"window_attention shift {args['shift']} is not smaller than "
                         f"its window {args['window']}", "shift too large",
                         help=f"shift by less than a window; Swin shifts by half: "
                              f"`shift = {args['window'] // 2}`")
    _heads_divide("window_attention", args["heads"], s[2])
    return s


def _padded_windows(args: Args, shape: Shape) -> tuple[int, int]:
    """Height and width after padding to whole windows, as torchvision pads."""
    window = args["window"]
    return tuple(-(-size // window) * window for size in shape[:2])


def _window_attention_params(args: Args, ins) -> int:
    width, window = ins[0][2], args["window"]
    return 4 * width * width + 4 * width + (2 * window - 1) ** 2 * args["heads"]


def _window_attention_macs(args: Args, ins, out: Shape) -> int:
    height, width = _padded_windows(args, ins[0])
    channels, area = ins[0][2], args["window"] ** 2
    return height * width * (4 * channels * channels + 2 * area * channels)


def _window_attention_module(args: Args, ins):
    from .functions import ShiftedWindowAttention
    window, shift = args["window"], args["shift"]
    return ShiftedWindowAttention(ins[0][2], [window, window], [shift, shift], args["heads"],
                                  attention_dropout=args["attention_dropout"],
                                  dropout=args["dropout"])


def _window_attention_init(module, args: Args) -> None:
    from torch import nn
    for linear in (module.qkv, module.proj):
        nn.init.trunc_normal_(linear.weight, std=0.02)
        nn.init.zeros_(linear.bias)
    nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)
    module.define_relative_position_index()


def _patch_merging_shape(args: Args, ins) -> Shape:
    h, w, c = require("patch_merging", ins[0], ("HWC",), fix="make a C x H x W map "
                      "channels-last with `permute(1, 2, 0)`")
    return Shape((-(-h // 2), -(-w // 2), 2 * c), "HWC")


def _patch_merging_module(args: Args, ins):
    from .functions import PatchMerging
    return PatchMerging(ins[0][2], eps=args["eps"])


def _patch_merging_init(module, args: Args) -> None:
    from torch import nn
    nn.init.trunc_normal_(module.reduction.weight, std=0.02)
    module.norm.reset_parameters()


def _parameter_module(args: Args, ins):
    import torch
    from torch import nn
    return nn.Parameter(torch.empty((1, *args["shape"])))


def _parameter_init(parameter, args: Args) -> None:
    import torch
    from torch import nn
    with torch.no_grad():
        if args["init"] in ("zeros", "ones"):
            parameter.fill_(args["init"] == "ones")
        elif args["init"] == "normal":
            nn.init.normal_(parameter, args["mean"], args["std"])
        else:
            nn.init.trunc_normal_(parameter, args["mean"], args["std"])


def _parameter_caption(args: Args) -> str:
    return f"learned {show(args['shape'])}"


# ---- the table ---------------------------------------------------------------------------

_PAIR_1 = dict(kind="pair", minimum=1)
_SIZES_1 = dict(kind="sizes", minimum=1)
_POOL_ARGS = (Arg("kernel", **_SIZES_1), Arg("stride", "sizes", Derived("kernel"), minimum=1),
              Arg("pad", "sizes", 0, minimum=0))  # then torch's order for each pool

OPS: dict[str, Op] = {op.name: op for op in (
    Op("input", "io", shape=lambda a, ins: a["shape"],
       args=(Arg("shape", "shape"),), describe=_named("input"), caption=_named("input")),
    Op("conv", "conv", _conv_shape,
       window=_sliding(),
       args=(Arg("channels", "int", minimum=1), Arg("kernel", **_SIZES_1),
             Arg("stride", "sizes", 1, minimum=1), Arg("pad", "pad", 0, minimum=0),
             Arg("dilation", "sizes", 1, minimum=1), Arg("groups", "int", 1, minimum=1),
             Arg("bias", "bool", True)),
       params=_conv_params, macs=_conv_macs, module=_conv_module, init=_kaiming_init,
       overwritable=True, describe=_conv_describe, caption=_conv_caption,
       rule="C×H×W → `channels`×H'×W', H' = ⌊(H + 2·pad − dilation·(kernel − 1) − 1) / stride⌋ + 1"
            " (per axis); also C×L (a signal) and C×T×H×W (a volume), with sizes given once or "
            "per axis; `pad = same` keeps the size and needs stride 1; `groups` must divide C "
            "and `channels`",
       lowers="`nn.Conv2d(C, channels, kernel, stride, pad, dilation, groups, bias)`; "
              "`nn.Conv1d` on a signal, `nn.Conv3d` on a volume"),
    Op("batchnorm", "norm", _batchnorm_shape,
       args=(Arg("eps", "float", 1e-5, minimum=0), Arg("momentum", "float", 0.1, minimum=0)),
       params=lambda a, ins: 2 * ins[0][0], buffers=lambda a, ins: 2 * ins[0][0] + 1,
       other_ops=_elementwise(2), module=_batchnorm_module, init=_reset_init,
       overwritable=True, describe=_named("batchnorm"), caption=_named("batch norm"),
       min_batch=lambda a, out: 2 if numel(out[1:]) == 1 else 1,  # statistics need 2 values
       rule="unchanged; C×H×W, flat, C×L or C×T×H×W (channels first)",
       lowers="`nn.BatchNorm2d(C, eps, momentum)`; `nn.BatchNorm1d` on flat input or a signal, "
              "`nn.BatchNorm3d` on a volume"),
    Op("lrn", "norm", _lrn_shape,
       args=(Arg("size", "int", 5, minimum=1), Arg("alpha", "float", 1e-4),
             Arg("beta", "float", 0.75), Arg("k", "float", 2.0)),
       other_ops=lambda a, ins, out: numel(out) * (a["size"] + 3),
       module=_torch_layer("LocalResponseNorm", "size", "alpha", "beta", "k"),
       describe=lambda a: f"lrn {a['size']}", caption=_named("local response norm"),
       rule="unchanged; needs C×H×W",
       lowers="`nn.LocalResponseNorm(size, alpha, beta, k)`"),
    Op("relu", "act", _same("relu"), other_ops=_elementwise(), module=_torch_layer("ReLU"),
       in_place=True,
       describe=_named("relu"), caption=_named("ReLU"),
       lowers="`nn.ReLU()`"),
    Op("relu6", "act", _same("relu6"), other_ops=_elementwise(), module=_torch_layer("ReLU6"),
       in_place=True,
       describe=_named("relu6"), caption=_named("ReLU6"),
       lowers="`nn.ReLU6()`"),
    Op("leaky_relu", "act", _same("leaky_relu"), args=(Arg("slope", "float", 0.01),),
       other_ops=_elementwise(), module=_torch_layer("LeakyReLU", "slope"), in_place=True,
       describe=lambda a: f"leaky_relu {a['slope']}", caption=_named("leaky ReLU"),
       lowers="`nn.LeakyReLU(slope)`"),
    Op("sigmoid", "act", _same("sigmoid"), other_ops=_elementwise(),
       module=_torch_layer("Sigmoid"), describe=_named("sigmoid"), caption=_named("sigmoid"),
       lowers="`nn.Sigmoid()`"),
    Op("tanh", "act", _same("tanh"), other_ops=_elementwise(), module=_torch_layer("Tanh"),
       describe=_named("tanh"), caption=_named("tanh"),
       lowers="`nn.Tanh()`"),
    Op("gelu", "act", _same("gelu"), other_ops=_elementwise(), module=_torch_layer("GELU"),
       describe=_named("gelu"), caption=_named("GELU"),
       lowers="`nn.GELU()`"),
    Op("silu", "act", _same("silu"), other_ops=_elementwise(), module=_torch_layer("SiLU"),
       in_place=True,
       describe=_named("silu"), caption=_named("SiLU"),
       lowers="`nn.SiLU()` (x · sigmoid(x), also called swish)"),
    Op("hardswish", "act", _same("hardswish"), other_ops=_elementwise(),
       module=_torch_layer("Hardswish"), in_place=True, describe=_named("hardswish"),
       caption=_named("hard swish"), lowers="`nn.Hardswish()`"),
    Op("hardsigmoid", "act", _same("hardsigmoid"), other_ops=_elementwise(),
       module=_torch_layer("Hardsigmoid"), in_place=True, describe=_named("hardsigmoid"),
       caption=_named("hard sigmoid"), lowers="`nn.Hardsigmoid()`"),
    Op("softmax", "act", _same("softmax"), other_ops=_elementwise(3),
       module=_softmax_module, describe=_named("softmax"),
       caption=_named("softmax"),
       rule="unchanged; normalises over the channels (or features)",
       lowers="`nn.Softmax(dim=1)`; the features' dimension where they are last (tokens)"),
    Op("dropout", "reg", _same("dropout"), args=(Arg("p", "float", 0.5, minimum=0, maximum=1),),
       module=_torch_layer("Dropout", "p"), describe=lambda a: f"dropout {a['p']}",
       caption=lambda a: f"dropout {a['p']}",
       lowers="`nn.Dropout(p)`"),
    Op("identity", "reshape", _same("identity"), module=_torch_layer("Identity"),
       describe=_named("identity"), caption=_named("identity"),
       lowers="`nn.Identity()`"),
    Op("maxpool", "pool", _pool_shape("maxpool"),
       window=_sliding(),
       args=_POOL_ARGS + (Arg("dilation", "sizes", 1, minimum=1), Arg("ceil_mode", "bool", False)),
       other_ops=_pool_ops, module=_maxpool_module,
       describe=_pool_describe("maxpool"), caption=_pool_caption("max pool"),
       rule="C×H×W → C×H'×W', the conv formula; `pad` at most `kernel // 2`; `ceil_mode` rounds "
            "up, but the last window must start inside the input or its left padding (as torch); "
            "C×L and C×T×H×W as conv",
       lowers="`nn.MaxPool2d(kernel, stride, pad, dilation, ceil_mode=...)` (`1d`, `3d` on a "
              "signal, a volume)"),
    Op("avgpool", "pool", _pool_shape("avgpool"),
       window=_sliding(dilated=False),
       args=_POOL_ARGS + (Arg("ceil_mode", "bool", False), Arg("count_include_pad", "bool", True)),
       other_ops=_pool_ops, module=_avgpool_module,
       describe=_pool_describe("avgpool"), caption=_pool_caption("avg pool"),
       rule="as `maxpool` (no dilation)",
       lowers="`nn.AvgPool2d(kernel, stride, pad, ceil_mode=..., count_include_pad=...)` (`1d`, "
              "`3d` on a signal, a volume)"),
    Op("global_avgpool", "pool", _global_pool_shape,
       window=lambda a, ins: GLOBAL,
       other_ops=lambda a, ins, out: numel(ins[0]), module=_global_pool_module,
       describe=_named("global_avgpool"), caption=_named("global avg pool"),
       rule="C×H×W → C×1×1; C×L → C×1, C×T×H×W → C×1×1×1",
       lowers="`nn.AdaptiveAvgPool2d((1, 1))` (`1d`, `3d` on a signal, a volume)"),
    Op("adaptive_avgpool", "pool", _adaptive_shape,
       window=_adaptive_window,
       args=(Arg("height", "int", minimum=1), Arg("width", "int", Derived("height"), minimum=1)),
       other_ops=lambda a, ins, out: numel(ins[0]), module=_adaptive_module,
       describe=lambda a: f"adaptive_avgpool {a['height']}x{a['width']}",
       caption=lambda a: f"adaptive avg pool {a['height']}x{a['width']}",
       rule="C×H×W → C×`height`×`width`",
       lowers="`nn.AdaptiveAvgPool2d((height, width))`"),
    Op("upsample", "pool", _upsample_shape,
       window=lambda a, ins: ((1, Fraction(1, a["scale"]), 1, 0),) * 2,
       args=(Arg("scale", "int", 2, minimum=1), Arg("mode", "str", "nearest",
                                                    choices=("nearest", "bilinear"))),
       other_ops=_elementwise(), module=_upsample_module,
       describe=lambda a: f"upsample x{a['scale']}", caption=lambda a: f"upsample x{a['scale']}",
       rule="C×H×W → C×(H·`scale`)×(W·`scale`)",
       lowers="`nn.Upsample(scale_factor=scale, mode=mode)`"),
    Op("flatten", "reshape", _flatten_shape, function=_emit_flatten,
       args=(Arg("start", "axis", 0), Arg("end", "axis", -1)),
       describe=lambda a: "flatten" if a["start"] == 0
       else f"flatten {a['start']}..{a['end']}", caption=_named("flatten"),
       rule="axes `start` to `end` (from 0, batch excluded; -1 the last) become one; by "
            "default all: C·H·W flat features. `flatten(1, 2)` makes C×H×W a C×(H·W) signal",
       lowers="`torch.flatten(x, start + 1)`, or `torch.flatten(x, start + 1, end + 1)` when "
              "`end` is not the last axis (a function)"),
    Op("linear", "linear", _linear_shape,
       window=lambda a, ins: GLOBAL if axes_of(ins[0]) == "C" else None,
       args=(Arg("features", "int", minimum=1), Arg("bias", "bool", True)),
       params=_linear_params, macs=lambda a, ins, out: numel(out) * ins[0][-1],
       module=_linear_module, init=_reset_init, overwritable=True, describe=lambda a: f"linear {a['features']}",
       caption=lambda a: f"fc {a['features']}",
       rule="flat F → `features`; on tokens L×C or a channels-last H×W×C map, the last axis "
            "(the features) becomes `features`",
       lowers="`nn.Linear(F, features, bias)`"),
    Op("concat", "merge", _concat_shape, merge=True, function=_emit_cat,
       args=(Arg("axis", "axis", 0),),
       describe=_named("concat"), caption=_named("concat"),
       rule="operands agree in everything but `axis` (0: channels or features), which adds up; "
            "`concat(a, b, axis = 0)` on tokens joins sequences",
       lowers="`torch.cat((a, b, ...), axis + 1)`"),
    Op("add", "merge", _identical("add"), merge=True, function=_emit_chain("add"),
       other_ops=_merge_ops, overwritable=True,
       describe=_named("add"), caption=_named("+"),
       rule="operands identical; result the same shape (no broadcasting)",
       lowers="`a + b + ...` (`operator.add`)"),
    Op("mul", "merge", _broadcast("mul"), merge=True, function=_emit_chain("mul"),
       other_ops=_merge_ops, describe=_named("mul"), caption=_named("×"),
       rule="operands equal, or C×H×W with C×1×1 (a channel gate) or 1×H×W; result C×H×W",
       lowers="`a * b * ...` (`operator.mul`)"),
    Op("crop", "reshape", _crop_shape, merge=True, operands=2, function=_emit_crop,
       describe=_named("crop"), caption=_named("crop"),
       rule="`crop(a, b)`: C×H×W `a` cut at its centre to `b`'s height and width",
       lowers="`a[..., top:top + h, left:left + w]` (a function, no module)"),
    Op("layernorm", "norm", _layernorm_shape, args=(Arg("eps", "float", 1e-5, minimum=0),),
       params=lambda a, ins: 2 * _channels(ins[0]), other_ops=_elementwise(5),
       module=_layernorm_module, init=_reset_init, overwritable=True,
       describe=_named("layernorm"), caption=_named("layer norm"),
       rule="unchanged; normalises each position over its channels (C×H×W) or its features "
            "(flat, tokens L×C, channels-last H×W×C)",
       lowers="`LayerNorm2d(C, eps)` (over channels, as torchvision's ConvNeXt); "
              "`nn.LayerNorm(C, eps)` where the features are last"),
    Op("groupnorm", "norm", _groupnorm_shape,
       args=(Arg("groups", "int", minimum=1), Arg("eps", "float", 1e-5, minimum=0)),
       params=lambda a, ins: 2 * ins[0][0], other_ops=_elementwise(5),
       module=_groupnorm_module,
       init=_reset_init, overwritable=True,
       describe=lambda a: f"groupnorm {a['groups']}", caption=_named("group norm"),
       rule="unchanged; needs C×H×W with `groups` dividing C",
       lowers="`nn.GroupNorm(groups, C, eps)`"),
    Op("conv_transpose", "conv", _conv_transpose_shape,
       window=_transposed_window,
       args=(Arg("channels", "int", minimum=1), Arg("kernel", **_PAIR_1),
             Arg("stride", "pair", 1, minimum=1), Arg("pad", "pair", 0, minimum=0),
             Arg("output_pad", "pair", 0, minimum=0), Arg("groups", "int", 1, minimum=1),
             Arg("bias", "bool", True), Arg("dilation", "pair", 1, minimum=1)),
       params=_conv_transpose_params, macs=_conv_transpose_macs, module=_conv_transpose_module,
       init=_kaiming_init, overwritable=True,
       describe=lambda a: f"conv_transpose {show(pair(a['kernel']))}/{pair(a['stride'])[0]}",
       caption=lambda a: f"{show(pair(a['kernel']))} up-conv, {a['channels']}",
       rule="C×H×W → `channels`×H'×W', H' = (H − 1)·stride − 2·pad + dilation·(kernel − 1) + "
            "output_pad + 1; `output_pad` below stride or dilation",
       lowers="`nn.ConvTranspose2d(C, channels, kernel, stride, pad, output_pad, groups, bias, "
              "dilation)`"),
    Op("chunk", "reshape", _chunk_shape,
       args=(Arg("chunks", "int", minimum=1), Arg("index", "int", 0, minimum=0)),
       function=_emit_chunk, describe=lambda a: f"chunk {a['index']}/{a['chunks']}",
       caption=lambda a: f"split {a['index'] + 1} of {a['chunks']}",
       rule="C×H×W → (C / `chunks`)×H×W: the channels of part `index` (from 0) of `chunks` "
            "equal parts",
       lowers="`x.chunk(chunks, 1)[index]` (a function, no module)"),
    Op("channel_linear", "linear", _channel_linear_shape,
       args=(Arg("features", "int", minimum=1), Arg("bias", "bool", True)),
       params=lambda a, ins: ins[0][0] * a["features"] + (a["features"] if a["bias"] else 0),
       macs=lambda a, ins, out: numel(out) * ins[0][0], module=_channel_linear_module,
       init=_reset_init, overwritable=True,
       describe=lambda a: f"channel_linear {a['features']}",
       caption=lambda a: f"pointwise fc {a['features']}",
       rule="C×H×W → `features`×H×W: a linear layer over the channels at each position",
       lowers="`ChannelLinear(C, features, bias)`: `nn.Linear` between two permutes, as "
              "ConvNeXt's `Permute`, `Linear`, `Permute`"),
    Op("channel_shuffle", "reshape", _channel_shuffle_shape,
       args=(Arg("groups", "int", minimum=1),), module=_torch_layer("ChannelShuffle", "groups"),
       describe=lambda a: f"channel_shuffle {a['groups']}", caption=_named("channel shuffle"),
       rule="unchanged; needs C×H×W with `groups` dividing C",
       lowers="`nn.ChannelShuffle(groups)`"),
    Op("scale", "norm", _same("scale"), args=(Arg("init", "float", 1e-6),),
       params=lambda a, ins: _channels(ins[0]), other_ops=_elementwise(), module=_scale_module,
       init=_scale_init, describe=_named("scale"), caption=_named("layer scale"),
       rule="unchanged; multiplies each channel (or feature) by a learned factor, "
            "starting at `init`",
       lowers="a parameter of C×1×1 (or F) values named after the layer, times the input"),
    Op("stochastic_depth", "reg", _same("stochastic_depth"),
       args=(Arg("p", "float", minimum=0, below=1),
             Arg("mode", "str", "row", choices=("row", "batch"))),
       module=_stochastic_depth_module,
       describe=lambda a: f"stochastic_depth {a['p']}", caption=_named("stochastic depth"),
       rule="unchanged; in training, zero the input per sample (`row`) or for the whole batch "
            "with probability `p` and scale by 1 / (1 − p); identity in eval",
       lowers="`StochasticDepth(p, mode)` (torchvision's semantics)"),
    Op("pad_channels", "reshape", _pad_channels_shape, args=(Arg("channels", "int", minimum=1),),
       module=_pad_channels_module, describe=lambda a: f"pad_channels {a['channels']}",
       caption=lambda a: f"pad to {a['channels']} ch.",
       rule="C×H×W → `channels`×H×W, zero channels added half before and half after",
       lowers="`PadChannels(before, after)` (zero padding; no parameters)"),
    Op("parameter", "io", shape=lambda a, ins: a["shape"],
       args=(Arg("shape", "shape"), Arg("init", "str", "zeros",
                                        choices=("zeros", "ones", "normal", "trunc_normal")),
             Arg("std", "float", 1.0, minimum=0), Arg("mean", "float", 0.0)),
       params=lambda a, ins: numel(a["shape"]), module=_parameter_module, init=_parameter_init,
       describe=lambda a: f"param {show(a['shape'])}", caption=_parameter_caption,
       rule="declared with `param name: shape = init`: a learned value of that shape",
       lowers="a parameter (`nn.Parameter`) of 1×shape at the name's path, expanded to the "
              "batch"),
    Op("transpose", "reshape", _transpose_shape, args=(Arg("a", "axis", 0), Arg("b", "axis", 1)),
       function=_emit_method("transpose", lambda a: (_torch_axis(a["a"]), _torch_axis(a["b"]))),
       describe=lambda a: f"transpose {a['a']},{a['b']}", caption=_named("transpose"),
       rule="axes `a` and `b` swap (from 0, batch excluded): a C×L signal becomes L×C tokens",
       lowers="`x.transpose(a + 1, b + 1)` (a function, no module)"),
    Op("permute", "reshape", _permute_shape, args=(Arg("order", "axes"),),
       function=_emit_method("permute", lambda a: (0, *(_torch_axis(i) for i in a["order"]))),
       describe=lambda a: "permute " + ",".join(map(str, a["order"])), caption=_named("permute"),
       rule="the axes in the order given, each once: `permute(1, 2, 0)` makes C×H×W a "
            "channels-last H×W×C map",
       lowers="`x.permute(0, order + 1...)` (a function, no module)"),
    Op("reshape", "reshape", _reshape_shape, args=(Arg("dims", "dims"),),
       function=_emit_reshape,
       describe=lambda a: "reshape " + "x".join(map(str, a["dims"])), caption=_named("reshape"),
       rule="the sizes given (one may be -1, inferred), same element count; axes take the "
            "default names of their count",
       lowers="`x.reshape(x.size(0), dims...)` (a function, no module)"),
    Op("take", "reshape", _take_shape, args=(Arg("index", "int"), Arg("axis", "axis", 0)),
       function=_emit_method("select", lambda a: (_torch_axis(a["axis"]), a["index"])),
       describe=lambda a: f"take {a['index']}", caption=lambda a: f"token {a['index']}",
       rule="entry `index` of `axis`, which goes away: `take(0)` on L×C tokens is the first "
            "token's C features (a class token)",
       lowers="`x.select(axis + 1, index)` (a function, no module)"),
    Op("slice", "reshape", _slice_shape,
       args=(Arg("start", "int"), Arg("end", "int"), Arg("axis", "axis", 0),
             Arg("step", "int", 1, minimum=1)),
       function=_emit_slice,
       describe=lambda a: f"slice {a['start']}:{a['end']}", caption=_named("slice"),
       rule="entries `start` to `end` (not kept; negative counts from the end, as Python) of "
            "`axis`, every `step`-th: `slice(1, 197)` drops a class token",
       lowers="`x[:, start:end:step]` on the axis (a function, no module)"),
    Op("mean", "pool", _mean_shape, args=(Arg("axis", "axis", 0),),
       window=lambda a, ins: GLOBAL,
       other_ops=lambda a, ins, out: numel(ins[0]),
       function=_emit_method("mean", lambda a: (_torch_axis(a["axis"]),)),
       describe=lambda a: f"mean {a['axis']}", caption=_named("mean"),
       rule="the mean over `axis`, which goes away: `mean(0)` on L×C tokens averages them",
       lowers="`x.mean(axis + 1)` (a function, no module)"),
    Op("attention", "attention", _attention_shape,
       window=lambda a, ins: GLOBAL,
       args=(Arg("heads", "int", minimum=1), Arg("dropout", "float", 0.0, minimum=0, maximum=1),
             Arg("bias", "bool", True)),
       params=_attention_params, macs=_attention_macs,
       other_ops=lambda a, ins, out: 5 * a["heads"] * ins[0][0] ** 2,
       workspace=lambda a, ins: a["heads"] * ins[0][0] ** 2,
       module=_attention_module, init=_attention_init, overwritable=True,
       describe=lambda a: f"attention {a['heads']}h", caption=_named("Multi-Head Attention"),
       rule="L×C tokens unchanged: multi-head self-attention; `heads` must divide C",
       lowers="`SelfAttention(C, heads, dropout, bias)`: `nn.MultiheadAttention` (batch first) "
              "on (x, x, x) without weights, so torch's fused attention"),
    Op("window_attention", "attention", _window_attention_shape,
       window=lambda a, ins: ((a["window"], 1, 1, 0),) * 2,
       args=(Arg("heads", "int", minimum=1), Arg("window", "int", 7, minimum=1),
             Arg("shift", "int", 0, minimum=0), Arg("dropout", "float", 0.0, minimum=0, maximum=1),
             Arg("attention_dropout", "float", 0.0, minimum=0, maximum=1)),
       params=_window_attention_params, buffers=lambda a, ins: a["window"] ** 4,
       macs=_window_attention_macs,
       other_ops=lambda a, ins, out: 5 * a["heads"] * numel(_padded_windows(a, ins[0]))
       * a["window"] ** 2,
       workspace=lambda a, ins: a["heads"] * numel(_padded_windows(a, ins[0])) * a["window"] ** 2,
       module=_window_attention_module, init=_window_attention_init, overwritable=True,
       describe=lambda a: f"window_attention {a['heads']}h w{a['window']}"
                          + (f" s{a['shift']}" if a["shift"] else ""),
       caption=lambda a: "Shifted Window Attention" if a["shift"] else "Window Attention",
       rule="H×W×C unchanged: self-attention within `window`×`window` windows, shifted by "
            "`shift` (none where the window covers the map), with a learned relative position "
            "bias; H and W are padded at the end to whole windows; `heads` must divide C",
       lowers="`ShiftedWindowAttention(C, window, shift, heads, ...)` (torchvision's Swin "
              "names: `qkv`, `proj`, `relative_position_bias_table`)"),
    Op("patch_merging", "reshape", _patch_merging_shape,
       window=lambda a, ins: ((2, 2, 1, 0),) * 2,
       args=(Arg("eps", "float", 1e-5, minimum=0),),
       params=lambda a, ins: 8 * ins[0][2] ** 2 + 8 * ins[0][2],
       macs=lambda a, ins, out: numel(out) * 4 * ins[0][2],
       other_ops=lambda a, ins, out: 5 * 2 * numel(out),
       module=_patch_merging_module, init=_patch_merging_init,
       describe=_named("patch_merging"), caption=_named("Patch Merging"),
       rule="H×W×C → ⌈H/2⌉×⌈W/2⌉×2C: each 2×2 patch's features joined (4C), layer-normed and "
            "projected to 2C (odd sizes padded)",
       lowers="`PatchMerging(C, eps)` (torchvision's Swin: `reduction`, `norm`)"),
)}

# the ops that merge branches (`concat { ... }`); crop takes two named values only
MERGE_OPS = tuple(name for name, op in OPS.items() if op.merge and op.operands is None)


# ---- the layer table of docs/language.md, generated from OPS ------------------------------


def _default_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _argument_text(arg: Arg) -> str:
    text = f"`{arg.name}` {arg.kind}"
    if arg.default is REQUIRED:
        text += " (required)"
    elif isinstance(arg.default, Derived):
        text += f" = same as `{arg.default.source}`"
    else:
        text += f" = `{_default_text(arg.default)}`"
    bounds = [f"≥ {arg.minimum}" for _ in [0] if arg.minimum is not None]
    bounds += [f"≤ {arg.maximum}" for _ in [0] if arg.maximum is not None]
    bounds += [f"< {arg.below}" for _ in [0] if arg.below is not None]
    if bounds:
        text += f" ({', '.join(bounds)})"
    if arg.choices:
        text += " (" + " or ".join(f"`{_default_text(c)}`" for c in arg.choices) + ")"
    return text


def layer_table() -> str:
    """The markdown table of every layer (all ops but `input`): arguments in positional
    order with kind, default and bounds, the shape rule, and what the layer lowers to."""
    rows = ["| op | arguments, in positional order | shape rule | lowers to |",
            "|---|---|---|---|"]
    for op in OPS.values():
        if op.name == "input":
            continue
        arguments = "<br>".join(map(_argument_text, op.args))
        if op.merge:
            merged = ("two values by name: `crop(a, b)`" if op.operands == 2
                      else "values to merge, or branches")
            arguments = "<br>".join(filter(None, (merged, arguments)))
        arguments = arguments or "—"
        rows.append(f"| `{op.name}` | {arguments} | {op.rule} | {op.lowers} |")
    return "\n".join(rows) + "\n"
