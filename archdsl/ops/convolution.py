"""Convolutions: `conv` (over a signal, an image or a volume) and `conv_transpose`."""
from __future__ import annotations

from fractions import Fraction

from .args import Arg, Args
from .op import Op, channels_first, spatial, torch_sizes
from .shapes import Shape, ShapeError, numel, show
from .windows import (SPATIAL_AXES, is_one, kernel_volume, output_size, padding, size_text,
                      sizes, sliding, spatial_count, stride_text)


def pair(value) -> tuple[int, int]:
    return value if isinstance(value, tuple) else (value, value)


def _kaiming_init(module, args: Args) -> None:
    """torchvision's: Kaiming normal weights, zero bias."""
    from torch import nn
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.zeros_(module.bias)


# ---- conv ------------------------------------------------------------------------------


def _conv_shape(args: Args, ins) -> Shape:
    c, *space = channels_first("conv", ins)
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
    pads = padding(args, kernel, dilation)
    return (out, *(output_size("conv", axis, size, k, st, p, d) for axis, size, k, st, p, d in zip(
        SPATIAL_AXES[n], space, kernel, stride, pads, dilation)))


def _conv_params(args: Args, ins) -> int:
    out = args["channels"]
    return (out * (ins[0][0] // args["groups"]) * kernel_volume(args, ins)
            + (out if args["bias"] else 0))


def _conv_macs(args: Args, ins, out: Shape) -> int:
    return numel(out) * (ins[0][0] // args["groups"]) * kernel_volume(args, ins)


def _conv_module(args: Args, ins):
    from torch import nn
    n = spatial_count(ins[0])
    pad = args["pad"] if isinstance(args["pad"], str) else sizes(args, "pad", n)
    cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[n - 1]
    return cls(ins[0][0], args["channels"], sizes(args, "kernel", n), sizes(args, "stride", n),
               pad, sizes(args, "dilation", n), args["groups"], args["bias"])


def _conv_describe(args: Args) -> str:
    text = f"conv {size_text(args['kernel'])}"
    if not is_one(args["stride"]):
        text += stride_text(args["stride"])
    pad = args["pad"]
    if pad not in (0, "valid") and not (isinstance(pad, tuple) and set(pad) == {0}):
        text += f" p{pad}" if not isinstance(pad, tuple) else f" p{'x'.join(map(str, pad))}"
    if args["groups"] != 1:
        text += f" g{args['groups']}"
    return text


def _conv_caption(args: Args) -> str:
    text = f"{size_text(args['kernel'])} conv, {args['channels']}"
    if args["groups"] != 1:
        text += f", g{args['groups']}"
    return text + (f", {stride_text(args['stride'])}" if not is_one(args["stride"]) else "")


# ---- conv_transpose --------------------------------------------------------------------


def _conv_transpose_shape(args: Args, ins) -> Shape:
    c, h, w = spatial("conv_transpose", ins)
    out, groups = args["channels"], args["groups"]
    if c % groups or out % groups:
        raise ShapeError("E0304", f"conv_transpose groups = {groups} does not divide its "
                         f"{c if c % groups else out} {'input' if c % groups else 'output'} "
                         "channels", f"{groups} groups", help="choose groups that divide both")
    return (out, *(_transposed_size(axis, size, *per_axis) for axis, size, per_axis in zip(
        ("height", "width"), (h, w), zip(pair(args["kernel"]), pair(args["stride"]),
                                         pair(args["pad"]), pair(args["output_pad"]),
                                         pair(args["dilation"])))))


def _transposed_size(axis: str, size: int, k: int, st: int, p: int, op: int, d: int) -> int:
    if op >= max(st, d):
        raise ShapeError("E0307", f"conv_transpose output_pad {op} must be smaller than its "
                         f"stride {st} or dilation {d}", "output_pad too large",
                         help="output_pad only picks among the sizes a stride allows: "
                              "use 0 .. stride - 1")
    new = (size - 1) * st - 2 * p + d * (k - 1) + op + 1
    if new <= 0:
        raise ShapeError("E0303", f"conv_transpose output {axis} would be {new}",
                         f"{axis} {size} is too small here", help="use less padding")
    return new


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


# ---- the entries -----------------------------------------------------------------------


def _read_conv(m):
    if m.padding_mode != "zeros":
        return None
    return "conv", dict(channels=m.out_channels, kernel=torch_sizes(m.kernel_size),
                        stride=torch_sizes(m.stride), pad=torch_sizes(m.padding),
                        dilation=torch_sizes(m.dilation), groups=m.groups,
                        bias=m.bias is not None)


def _read_conv_transpose(m):
    if m.padding_mode != "zeros" or not isinstance(m.output_padding, (tuple, list)):
        return None
    return "conv_transpose", dict(
        channels=m.out_channels, kernel=torch_sizes(m.kernel_size), stride=torch_sizes(m.stride),
        pad=torch_sizes(m.padding), output_pad=torch_sizes(m.output_padding),
        dilation=torch_sizes(m.dilation), groups=m.groups, bias=m.bias is not None)


OPS = (
    Op("conv", "conv", _conv_shape, imports=("Conv1d", "Conv2d", "Conv3d"), read=_read_conv,
       keeps=("in0",), autocast="low",
       window=sliding(),
       args=(Arg("channels", "int", minimum=1), Arg("kernel", "sizes", minimum=1),
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
              "`nn.Conv1d` on a signal, `nn.Conv3d` on a volume",
       macs_rule="output elements × (input channels / groups) × kernel height × kernel width (× "
                 "kernel time on a volume; kernel length alone on a signal)",
       params_rule="out channels × (in channels / groups) × kernel height × kernel width, + out "
                   "channels with `bias = true`",
       other_rule="0 (all their work is MACs; bias not counted)"),
    Op("conv_transpose", "conv", _conv_transpose_shape, imports=("ConvTranspose2d",),
       read=_read_conv_transpose, keeps=("in0",), autocast="low",
       window=_transposed_window,
       args=(Arg("channels", "int", minimum=1), Arg("kernel", "pair", minimum=1),
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
              "dilation)`",
       macs_rule="input elements × (output channels / groups) × kernel height × kernel width "
                 "(torch's count for transposed convolutions)",
       params_rule="in channels × (out channels / groups) × kernel height × kernel width, + out "
                   "channels with `bias = true`",
       other_rule="0 (all their work is MACs; bias not counted)"),
)
