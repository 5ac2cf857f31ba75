"""The layer vocabulary: ONE table, one entry per op.

Each `Op` holds everything any pass or backend needs to know about a layer: its
arguments and defaults, its shape rule, its parameter and cost counts, the torch module
it lowers to, and how it is labelled in tables and diagrams. Adding a layer is one
`Op(...)` entry in `OPS`.

Shapes exclude the batch: `(C, H, W)` for feature maps, `(F,)` for flat features.
Torch is imported only inside the `module` builders, which the front end never calls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

Shape = tuple[int, ...]
REQUIRED = object()


class ShapeError(Exception):
    """A layer cannot take the shapes it is given. Turned into a diagnostic by infer_shapes."""

    def __init__(self, code: str, message: str, label: str = "", help: str | None = None):
        super().__init__(message)
        self.code, self.message, self.label, self.help = code, message, label, help


@dataclass(frozen=True)
class Derived:
    """A default that copies another argument: pool stride defaults to the kernel."""
    source: str


@dataclass(frozen=True)
class Arg:
    """One argument of an op. kind: int, float, bool, pair (int or (h, w)), pad, str."""
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
    function: Callable | None = None  # or a function of the inputs: torch.cat, operator.add
    init: Callable[[Any], None] | None = None  # initialises the module; required with params
    in_place: bool = False  # an activation that may overwrite its input (module.inplace)
    overwritable: bool = False  # its backward does not need its output: an in-place
    # activation right after it may overwrite that output
    describe: Callable[[Args], str] = field(default=lambda a: "")
    caption: Callable[[Args], str] = field(default=lambda a: "")
    min_batch: Callable[[Args, Shape], int] = field(default=lambda a, out: 1)  # to train
    rule: str = "unchanged"  # the shape rule, in the words of the layer table (docs/language.md)
    lowers: str = ""  # what it lowers to, in the words of the layer table


# ---- helpers for shape rules ---------------------------------------------------------


def numel(shape: Shape) -> int:
    return math.prod(shape)


def show(shape: Shape) -> str:
    """`256x56x56` for feature maps, `4096` for flat features."""
    return "x".join(str(d) for d in shape)


def pair(value) -> tuple[int, int]:
    return value if isinstance(value, tuple) else (value, value)


def _spatial(op: str, ins: tuple[Shape, ...]) -> Shape:
    (shape,) = ins
    if len(shape) != 3:
        raise ShapeError("E0306", f"{op} needs a C x H x W input, but gets {show(shape)} flat features",
                         f"{op} needs a feature map",
                         help="feed it a feature map: place it before the `flatten` or `linear` "
                              "that made the value flat, or declare a C x H x W input")
    return shape


def _flat(op: str, ins: tuple[Shape, ...]) -> Shape:
    (shape,) = ins
    if len(shape) != 1:
        raise ShapeError("E0305", f"{op} needs a flat input, but gets {show(shape)}",
                         f"{op} needs flat features",
                         help=f"add `flatten` (or `global_avgpool` then `flatten`) before this {op}")
    return shape


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


def _padding(args: Args, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    pad = args["pad"]
    if pad == "valid":
        return (0, 0)
    if pad == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    return pair(pad)


# ---- convolution ---------------------------------------------------------------------


def _conv_shape(args: Args, ins) -> Shape:
    c, h, w = _spatial("conv", ins)
    out, groups = args["channels"], args["groups"]
    if c % groups or out % groups:
        which = f"{c} input" if c % groups else f"{out} output"
        both = f"{c}" if c == out else f"both {c} and {out}"
        raise ShapeError("E0304", f"conv groups = {groups} does not divide its {which} channels",
                         f"{groups} groups", help=f"choose groups that divide {both}")
    kernel, stride, dilation = pair(args["kernel"]), pair(args["stride"]), pair(args["dilation"])
    if args["pad"] == "same":
        if stride != (1, 1):
            raise ShapeError("E0307", "`pad = same` needs stride 1", "strided",
                             help="give the padding as a number, e.g. `pad = 1` for a 3x3 kernel")
        return (out, h, w)
    ph, pw = _padding(args, kernel, dilation)
    return (out, _window("conv", "height", h, kernel[0], stride[0], ph, dilation[0]),
            _window("conv", "width", w, kernel[1], stride[1], pw, dilation[1]))


def _conv_params(args: Args, ins) -> int:
    kh, kw = pair(args["kernel"])
    out = args["channels"]
    return out * (ins[0][0] // args["groups"]) * kh * kw + (out if args["bias"] else 0)


def _conv_macs(args: Args, ins, out: Shape) -> int:
    kh, kw = pair(args["kernel"])
    return numel(out) * (ins[0][0] // args["groups"]) * kh * kw


def _conv_module(args: Args, ins):
    from torch import nn
    pad = args["pad"] if isinstance(args["pad"], str) else pair(args["pad"])
    return nn.Conv2d(ins[0][0], args["channels"], pair(args["kernel"]), pair(args["stride"]), pad,
                     pair(args["dilation"]), args["groups"], args["bias"])


def _conv_describe(args: Args) -> str:
    kh, kw = pair(args["kernel"])
    text = f"conv {kh}x{kw}"
    stride = pair(args["stride"])
    if stride != (1, 1):
        text += f"/{stride[0]}" if stride[0] == stride[1] else f"/{stride[0]}x{stride[1]}"
    if args["pad"] not in (0, (0, 0), "valid"):
        pad = args["pad"]
        text += f" p{pad}" if not isinstance(pad, tuple) else f" p{pad[0]}x{pad[1]}"
    if args["groups"] != 1:
        text += f" g{args['groups']}"
    return text


def _conv_caption(args: Args) -> str:
    kh, kw = pair(args["kernel"])
    stride = pair(args["stride"])
    text = f"{kh}x{kw} conv, {args['channels']}"
    if args["groups"] != 1:
        text += f", g{args['groups']}"
    return text + (f", /{stride[0]}" if stride != (1, 1) else "")


# ---- pooling -----------------------------------------------------------------------------


def _pool_shape(name: str):
    def shape(args: Args, ins) -> Shape:
        c, h, w = _spatial(name, ins)
        kernel, stride = pair(args["kernel"]), pair(args["stride"])
        pad, dilation = pair(args["pad"]), pair(args.get("dilation", 1))
        if any(p * 2 > k for p, k in zip(pad, kernel)):
            raise ShapeError("E0307", f"{name} pad {args['pad']} is more than half its kernel "
                             f"{args['kernel']}", "pad too large",
                             help="torch allows at most kernel // 2 padding on pools")
        ceil = args["ceil_mode"]
        return (c, _window(name, "height", h, kernel[0], stride[0], pad[0], dilation[0], ceil),
                _window(name, "width", w, kernel[1], stride[1], pad[1], dilation[1], ceil))
    return shape


def _pool_ops(args: Args, ins, out: Shape) -> int:
    kh, kw = pair(args["kernel"])
    return numel(out) * kh * kw


def _maxpool_module(args: Args, ins):
    from torch import nn
    return nn.MaxPool2d(pair(args["kernel"]), pair(args["stride"]),
                        pair(args["pad"]), pair(args["dilation"]), ceil_mode=args["ceil_mode"])


def _avgpool_module(args: Args, ins):
    from torch import nn
    return nn.AvgPool2d(pair(args["kernel"]), pair(args["stride"]),
                        pair(args["pad"]), ceil_mode=args["ceil_mode"],
                        count_include_pad=args["count_include_pad"])


def _pool_describe(name: str):
    def describe(args: Args) -> str:
        kh, kw = pair(args["kernel"])
        stride = pair(args["stride"])
        text = f"{name} {kh}x{kw}"
        if stride != (1, 1):
            text += f"/{stride[0]}"
        if args["pad"] not in (0, (0, 0)):
            text += f" p{args['pad']}"
        return text
    return describe


def _pool_caption(name: str):
    def caption(args: Args) -> str:
        kh, kw = pair(args["kernel"])
        stride = pair(args["stride"])
        return f"{kh}x{kw} {name}" + (f", /{stride[0]}" if stride != (1, 1) else "")
    return caption


def _global_pool_module(args: Args, ins):
    from torch import nn
    return nn.AdaptiveAvgPool2d((1, 1))


def _adaptive_module(args: Args, ins):
    from torch import nn
    return nn.AdaptiveAvgPool2d((args["height"], args["width"]))


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


def _batchnorm_module(args: Args, ins):
    from torch import nn
    cls = nn.BatchNorm2d if len(ins[0]) == 3 else nn.BatchNorm1d
    return cls(ins[0][0], eps=args["eps"], momentum=args["momentum"])


def _torch_layer(name: str, *arg_names: str, **fixed):
    """A builder for a torch.nn layer whose arguments are the op's own, in order."""
    def build(args: Args, ins):
        from torch import nn
        return getattr(nn, name)(*(args[a] for a in arg_names), **fixed)
    return build


def _lrn_shape(args: Args, ins) -> Shape:
    return _spatial("lrn", ins)


# ---- linear, reshape, merges -------------------------------------------------------------


def _linear_shape(args: Args, ins) -> Shape:
    _flat("linear", ins)
    return (args["features"],)


def _linear_params(args: Args, ins) -> int:
    return ins[0][0] * args["features"] + (args["features"] if args["bias"] else 0)


def _linear_module(args: Args, ins):
    from torch import nn
    return nn.Linear(ins[0][0], args["features"], bias=args["bias"])


def _flatten_shape(args: Args, ins) -> Shape:
    (s,) = ins
    return (numel(s),)


def _upsample_shape(args: Args, ins) -> Shape:
    c, h, w = _spatial("upsample", ins)
    return (c, h * args["scale"], w * args["scale"])


def _upsample_module(args: Args, ins):
    from torch import nn
    return nn.Upsample(scale_factor=args["scale"], mode=args["mode"])


def _concat_shape(args: Args, ins) -> Shape:
    rest = {s[1:] for s in ins}
    if len({len(s) for s in ins}) > 1 or len(rest) > 1:
        sizes = " vs ".join(show(s[1:]) if len(s) > 1 else "flat" for s in ins)
        raise ShapeError("E0302", f"concat operands differ in size: {sizes}", "concatenated here",
                         help="give every branch the same stride and padding so sizes agree")
    return (sum(s[0] for s in ins),) + ins[0][1:]


def _identical(op: str):
    def shape(args: Args, ins) -> Shape:
        if len(set(ins)) > 1:
            raise ShapeError("E0300", f"{op} operands differ: " + " vs ".join(show(s) for s in ins),
                             f"operands of `{op}` meet here",
                             help=f"`{op}` needs equal shapes; it never broadcasts")
        return ins[0]
    return shape


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


def _emit_cat(graph, inputs, args):
    import torch
    return graph.call_function(torch.cat, (tuple(inputs), 1))


def _emit_flatten(graph, inputs, args):
    import torch
    return graph.call_function(torch.flatten, (inputs[0], 1))


def _emit_chain(name: str):
    """`a + b + c` as fx's chain of binary operators (readable code, scriptable)."""
    def emit(graph, inputs, args):
        import operator
        from functools import reduce
        function = getattr(operator, name)
        return reduce(lambda a, b: graph.call_function(function, (a, b)), inputs)
    return emit


def _emit_crop(graph, inputs, args):
    from .functions import centre_crop
    return graph.call_function(centre_crop, tuple(inputs))


# ---- layers of modern CNNs --------------------------------------------------------------


def _groupnorm_module(args: Args, ins):
    from torch import nn
    return nn.GroupNorm(args["groups"], ins[0][0], eps=args["eps"])


def _layernorm_module(args: Args, ins):
    from torch import nn
    from .functions import LayerNorm2d
    cls = LayerNorm2d if len(ins[0]) == 3 else nn.LayerNorm
    return cls(ins[0][0], eps=args["eps"])


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
    (shape,) = ins
    chunks, index = args["chunks"], args["index"]
    if shape[0] % chunks:
        raise ShapeError("E0304", f"chunk({chunks}) does not divide the {shape[0]} channels",
                         f"{chunks} chunks", help=f"choose a number of chunks that divides "
                                                  f"{shape[0]}")
    if index >= chunks:
        raise ShapeError("E0307", f"chunk index {index} is past the last of {chunks} chunks",
                         "no such chunk", help=f"chunks are numbered 0 to {chunks - 1}")
    return (shape[0] // chunks,) + shape[1:]


def _emit_chunk(graph, inputs, args):
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
    shape = (ins[0][0], 1, 1) if len(ins[0]) == 3 else (ins[0][0],)
    return nn.Parameter(torch.empty(shape))


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


# ---- the table ---------------------------------------------------------------------------

_PAIR_1 = dict(kind="pair", minimum=1)
_POOL_ARGS = (Arg("kernel", **_PAIR_1), Arg("stride", "pair", Derived("kernel"), minimum=1),
              Arg("pad", "pair", 0, minimum=0))  # then torch's order for each pool

OPS: dict[str, Op] = {op.name: op for op in (
    Op("input", "io", shape=lambda a, ins: a["shape"],
       args=(Arg("shape", "shape"),), describe=_named("input"), caption=_named("input")),
    Op("conv", "conv", _conv_shape,
       args=(Arg("channels", "int", minimum=1), Arg("kernel", **_PAIR_1),
             Arg("stride", "pair", 1, minimum=1), Arg("pad", "pad", 0, minimum=0),
             Arg("dilation", "pair", 1, minimum=1), Arg("groups", "int", 1, minimum=1),
             Arg("bias", "bool", True)),
       params=_conv_params, macs=_conv_macs, module=_conv_module, init=_kaiming_init,
       overwritable=True, describe=_conv_describe, caption=_conv_caption,
       rule="C×H×W → `channels`×H'×W', H' = ⌊(H + 2·pad − dilation·(kernel − 1) − 1) / stride⌋ + 1"
            " (per axis); `pad = same` keeps H×W and needs stride 1; `groups` must divide C and "
            "`channels`",
       lowers="`nn.Conv2d(C, channels, kernel, stride, pad, dilation, groups, bias)`"),
    Op("batchnorm", "norm", _same("batchnorm"),
       args=(Arg("eps", "float", 1e-5, minimum=0), Arg("momentum", "float", 0.1, minimum=0)),
       params=lambda a, ins: 2 * ins[0][0], buffers=lambda a, ins: 2 * ins[0][0] + 1,
       other_ops=_elementwise(2), module=_batchnorm_module, init=_reset_init,
       overwritable=True, describe=_named("batchnorm"), caption=_named("batch norm"),
       min_batch=lambda a, out: 2 if numel(out[1:]) == 1 else 1,  # statistics need 2 values
       rule="unchanged; C×H×W or flat",
       lowers="`nn.BatchNorm2d(C, eps, momentum)`; `nn.BatchNorm1d` on flat input"),
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
       module=_torch_layer("Softmax", dim=1), describe=_named("softmax"),
       caption=_named("softmax"),
       rule="unchanged; normalises over dimension 1 (channels, or features)",
       lowers="`nn.Softmax(dim=1)`"),
    Op("dropout", "reg", _same("dropout"), args=(Arg("p", "float", 0.5, minimum=0, maximum=1),),
       module=_torch_layer("Dropout", "p"), describe=lambda a: f"dropout {a['p']}",
       caption=lambda a: f"dropout {a['p']}",
       lowers="`nn.Dropout(p)`"),
    Op("identity", "reshape", _same("identity"), module=_torch_layer("Identity"),
       describe=_named("identity"), caption=_named("identity"),
       lowers="`nn.Identity()`"),
    Op("maxpool", "pool", _pool_shape("maxpool"),
       args=_POOL_ARGS + (Arg("dilation", "pair", 1, minimum=1), Arg("ceil_mode", "bool", False)),
       other_ops=_pool_ops, module=_maxpool_module,
       describe=_pool_describe("maxpool"), caption=_pool_caption("max pool"),
       rule="C×H×W → C×H'×W', the conv formula; `pad` at most `kernel // 2`; `ceil_mode` rounds "
            "up, but the last window must start inside the input or its left padding (as torch)",
       lowers="`nn.MaxPool2d(kernel, stride, pad, dilation, ceil_mode=...)`"),
    Op("avgpool", "pool", _pool_shape("avgpool"),
       args=_POOL_ARGS + (Arg("ceil_mode", "bool", False), Arg("count_include_pad", "bool", True)),
       other_ops=_pool_ops, module=_avgpool_module,
       describe=_pool_describe("avgpool"), caption=_pool_caption("avg pool"),
       rule="as `maxpool` (no dilation)",
       lowers="`nn.AvgPool2d(kernel, stride, pad, ceil_mode=..., count_include_pad=...)`"),
    Op("global_avgpool", "pool", lambda a, ins: _spatial("global_avgpool", ins)[:1] + (1, 1),
       other_ops=lambda a, ins, out: numel(ins[0]), module=_global_pool_module,
       describe=_named("global_avgpool"), caption=_named("global avg pool"),
       rule="C×H×W → C×1×1",
       lowers="`nn.AdaptiveAvgPool2d((1, 1))`"),
    Op("adaptive_avgpool", "pool", _adaptive_shape,
       args=(Arg("height", "int", minimum=1), Arg("width", "int", Derived("height"), minimum=1)),
       other_ops=lambda a, ins, out: numel(ins[0]), module=_adaptive_module,
       describe=lambda a: f"adaptive_avgpool {a['height']}x{a['width']}",
       caption=lambda a: f"adaptive avg pool {a['height']}x{a['width']}",
       rule="C×H×W → C×`height`×`width`",
       lowers="`nn.AdaptiveAvgPool2d((height, width))`"),
    Op("upsample", "pool", _upsample_shape,
       args=(Arg("scale", "int", 2, minimum=1), Arg("mode", "str", "nearest",
                                                    choices=("nearest", "bilinear"))),
       other_ops=_elementwise(), module=_upsample_module,
       describe=lambda a: f"upsample x{a['scale']}", caption=lambda a: f"upsample x{a['scale']}",
       rule="C×H×W → C×(H·`scale`)×(W·`scale`)",
       lowers="`nn.Upsample(scale_factor=scale, mode=mode)`"),
    Op("flatten", "reshape", _flatten_shape, function=_emit_flatten,
       describe=_named("flatten"), caption=_named("flatten"),
       rule="any → one flat dimension of C·H·W features (flat input unchanged)",
       lowers="`torch.flatten(x, 1)` (a function, no module)"),
    Op("linear", "linear", _linear_shape,
       args=(Arg("features", "int", minimum=1), Arg("bias", "bool", True)),
       params=_linear_params, macs=lambda a, ins, out: ins[0][0] * a["features"],
       module=_linear_module, init=_reset_init, overwritable=True, describe=lambda a: f"linear {a['features']}",
       caption=lambda a: f"fc {a['features']}",
       rule="flat F → `features`; needs a flat input",
       lowers="`nn.Linear(F, features, bias)`"),
    Op("concat", "merge", _concat_shape, merge=True, function=_emit_cat,
       describe=_named("concat"), caption=_named("concat"),
       rule="operands agree in everything but dimension 0; channels (or features) add up",
       lowers="`torch.cat((a, b, ...), 1)`"),
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
    Op("layernorm", "norm", _same("layernorm"), args=(Arg("eps", "float", 1e-5, minimum=0),),
       params=lambda a, ins: 2 * ins[0][0], other_ops=_elementwise(5),
       module=_layernorm_module, init=_reset_init, overwritable=True,
       describe=_named("layernorm"), caption=_named("layer norm"),
       rule="unchanged; normalises each position over its channels (C×H×W) or the features",
       lowers="`LayerNorm2d(C, eps)` (over channels, as torchvision's ConvNeXt); "
              "`nn.LayerNorm(F, eps)` on flat input"),
    Op("groupnorm", "norm", _groupnorm_shape,
       args=(Arg("groups", "int", minimum=1), Arg("eps", "float", 1e-5, minimum=0)),
       params=lambda a, ins: 2 * ins[0][0], other_ops=_elementwise(5),
       module=_groupnorm_module,
       init=_reset_init, overwritable=True,
       describe=lambda a: f"groupnorm {a['groups']}", caption=_named("group norm"),
       rule="unchanged; needs C×H×W with `groups` dividing C",
       lowers="`nn.GroupNorm(groups, C, eps)`"),
    Op("conv_transpose", "conv", _conv_transpose_shape,
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
       params=lambda a, ins: ins[0][0], other_ops=_elementwise(), module=_scale_module,
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
        arguments = ("two values by name: `crop(a, b)`" if op.operands == 2
                     else "values to merge, or branches" if op.merge
                     else "<br>".join(map(_argument_text, op.args)) or "—")
        rows.append(f"| `{op.name}` | {arguments} | {op.rule} | {op.lowers} |")
    return "\n".join(rows) + "\n"
