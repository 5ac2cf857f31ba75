"""Pooling and resampling of feature maps: `maxpool`, `avgpool` (sliding windows over a
signal, an image or a volume), `global_avgpool`, `adaptive_avgpool` and `upsample`."""
from __future__ import annotations

from fractions import Fraction

from .args import Arg, Args, Derived
from .op import GLOBAL, Op, channels_first, elementwise, named, spatial, torch_sizes
from .shapes import Shape, ShapeError, axis_name, numel
from .windows import (SPATIAL_AXES, is_one, kernel_volume, output_size, size_text, sizes,
                      sliding, spatial_count, stride_text)


def _pool_shape(name: str):
    def shape(args: Args, ins) -> Shape:
        c, *space = channels_first(name, ins)
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
        out = tuple(output_size(name, axis, size, k, st, p, d, ceil) for axis, size, k, st, p, d
                    in zip(SPATIAL_AXES[n], space, kernel, stride, pad, dilation))
        for axis, size, o, k, st, p, d in zip(SPATIAL_AXES[n], space, out, kernel, stride, pad,
                                              dilation):
            _check_windows_see_input(name, axis, size, o, k, st, p, d)
        return (c, *out)
    return shape


def _check_windows_see_input(name, axis, size, out, kernel, stride, pad, dilation) -> None:
    """E0303 where a window sees only padding (a dilated pool on a small input): torch's
    max pool gives -inf there and its backward corrupts memory. Only the windows that
    start in the padding, the first and last few, can miss the input."""
    edge = pad // stride + 2
    for i in sorted(set(range(min(out, edge))) | set(range(max(0, out - edge), out))):
        start = i * stride - pad
        if not any(0 <= start + j * dilation < size for j in range(kernel)):
            raise ShapeError("E0303", f"{name} window {i} on {axis_name(axis)} sees only "
                             f"padding: kernel {kernel}, dilation {dilation} and pad {pad} "
                             f"over {size} positions", "a window of padding only",
                             help="use less padding or dilation, or a larger input")


def _pool_ops(args: Args, ins, out: Shape) -> int:
    return numel(out) * kernel_volume(args, ins)


def _maxpool_module(args: Args, ins):
    from torch import nn
    n = spatial_count(ins[0])
    cls = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[n - 1]
    return cls(sizes(args, "kernel", n), sizes(args, "stride", n), sizes(args, "pad", n),
               sizes(args, "dilation", n), ceil_mode=args["ceil_mode"])


def _avgpool_module(args: Args, ins):
    from torch import nn
    n = spatial_count(ins[0])
    cls = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[n - 1]
    return cls(sizes(args, "kernel", n), sizes(args, "stride", n), sizes(args, "pad", n),
               ceil_mode=args["ceil_mode"], count_include_pad=args["count_include_pad"])


def _pool_describe(name: str):
    def describe(args: Args) -> str:
        text = f"{name} {size_text(args['kernel'])}"
        if not is_one(args["stride"]):
            text += stride_text(args["stride"])
        if args["pad"] not in (0, (0, 0)):
            text += f" p{args['pad']}"
        return text
    return describe


def _pool_caption(name: str):
    def caption(args: Args) -> str:
        return f"{size_text(args['kernel'])} {name}" + (
            f", {stride_text(args['stride'])}" if not is_one(args["stride"]) else "")
    return caption


def _global_pool_shape(args: Args, ins) -> Shape:
    c, *space = channels_first("global_avgpool", ins)
    return (c,) + (1,) * len(space)


def _global_pool_module(args: Args, ins):
    from torch import nn
    n = spatial_count(ins[0])
    cls = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[n - 1]
    return cls(1 if n == 1 else (1,) * n)


def _adaptive_shape(args: Args, ins) -> Shape:
    c, _, _ = spatial("adaptive_avgpool", ins)
    return (c, args["height"], args["width"])


def _adaptive_module(args: Args, ins):
    from torch import nn
    return nn.AdaptiveAvgPool2d((args["height"], args["width"]))


def _adaptive_window(args: Args, ins):
    """torch's adaptive pooling reads about in / out positions, every in / out positions."""
    return tuple((-(-size // out), Fraction(size, out), 1, 0)
                 for size, out in zip(ins[0][1:], (args["height"], args["width"])))


def _upsample_shape(args: Args, ins) -> Shape:
    c, h, w = spatial("upsample", ins)
    return (c, h * args["scale"], w * args["scale"])


def _upsample_module(args: Args, ins):
    from torch import nn
    return nn.Upsample(scale_factor=args["scale"], mode=args["mode"])


_RESIZE_ARGS = (Arg("mode", "str", "bilinear", choices=("nearest", "bilinear", "bicubic")),
                Arg("align_corners", "bool", False))


def _resize_shape(args: Args, ins) -> Shape:
    c, _, _ = spatial("resize", ins)
    return (c, args["height"], args["width"])


def _resize_like_shape(args: Args, ins) -> Shape:
    c, _, _ = spatial("resize_like", ins[:1])
    _, h, w = spatial("resize_like", ins[1:])
    return (c, h, w)


def _resized_window(size):
    """Each output reads about one input position, the jump the ratio of the sizes."""
    def window(args: Args, ins):
        (_, h, w), (height, width) = ins[0], size(args, ins)
        return ((1, Fraction(h, height), 1, 0), (1, Fraction(w, width), 1, 0))
    return window


def _emit_resize(graph, inputs, args, ins):
    from .functions import resize
    return graph.call_function(resize, (inputs[0], (args["height"], args["width"]),
                                        args["mode"], args["align_corners"]))


def _emit_resize_like(graph, inputs, args, ins):
    from .functions import resize_like
    return graph.call_function(resize_like, (inputs[0], inputs[1], args["mode"],
                                             args["align_corners"]))


_POOL_ARGS = (Arg("kernel", "sizes", minimum=1),
              Arg("stride", "sizes", Derived("kernel"), minimum=1),
              Arg("pad", "sizes", 0, minimum=0))  # then torch's order for each pool


def _read_pool(name: str):
    def read(m):
        if getattr(m, "return_indices", False) or getattr(m, "divisor_override", None):
            return None
        args = dict(kernel=torch_sizes(m.kernel_size), stride=torch_sizes(m.stride),
                    pad=torch_sizes(m.padding), ceil_mode=m.ceil_mode)
        if name == "maxpool":
            args["dilation"] = torch_sizes(m.dilation)
        else:
            args["count_include_pad"] = m.count_include_pad
        return name, args
    return read


def _read_adaptive(m):
    size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) * 2
    if set(size) == {1}:
        return "global_avgpool", {}
    return "adaptive_avgpool", dict(height=size[0], width=size[1])



def _read_upsample(m):
    """nn.Upsample by one whole scale on both axes, nearest or bilinear (corners not
    aligned), as `upsample` lowers; any other (a size, other modes) is not read."""
    scale = m.scale_factor if isinstance(m.scale_factor, tuple) else (m.scale_factor,) * 2
    if m.size is not None or len(set(scale)) != 1 or scale[0] != int(scale[0]) or \
            m.mode not in ("nearest", "bilinear") or m.align_corners:
        return None
    return "upsample", dict(scale=int(scale[0]), mode=m.mode)


def _kept_indices(args: Args, ins, out, device: str) -> tuple[tuple[int, str], ...]:
    """Max pooling keeps where each maximum came from: one int64 index per output."""
    return ((numel(out), "int"),)


OPS = (
    Op("maxpool", "pool", _pool_shape("maxpool"), read=_read_pool("maxpool"),
       keeps=("in0",), kept_inside=_kept_indices,
       kept_text="one int64 index per output (where each maximum came from)",
       imports=("MaxPool1d", "MaxPool2d", "MaxPool3d"),
       window=sliding(),
       args=_POOL_ARGS + (Arg("dilation", "sizes", 1, minimum=1), Arg("ceil_mode", "bool", False)),
       other_ops=_pool_ops, module=_maxpool_module,
       describe=_pool_describe("maxpool"), caption=_pool_caption("max pool"),
       rule="C×H×W → C×H'×W', the conv formula; `pad` at most `kernel // 2`; `ceil_mode` rounds "
            "up, but the last window must start inside the input or its left padding (as torch); "
            "C×L and C×T×H×W as conv",
       lowers="`nn.MaxPool2d(kernel, stride, pad, dilation, ceil_mode=...)` (`1d`, `3d` on a "
              "signal, a volume)",
       other_rule="kernel height × kernel width per output element"),
    Op("avgpool", "pool", _pool_shape("avgpool"), read=_read_pool("avgpool"),
       keeps=("in0",),
       imports=("AvgPool1d", "AvgPool2d", "AvgPool3d"),
       window=sliding(dilated=False),
       args=_POOL_ARGS + (Arg("ceil_mode", "bool", False), Arg("count_include_pad", "bool", True)),
       other_ops=_pool_ops, module=_avgpool_module,
       describe=_pool_describe("avgpool"), caption=_pool_caption("avg pool"),
       rule="as `maxpool` (no dilation)",
       lowers="`nn.AvgPool2d(kernel, stride, pad, ceil_mode=..., count_include_pad=...)` (`1d`, "
              "`3d` on a signal, a volume)",
       other_rule="kernel height × kernel width per output element"),
    Op("global_avgpool", "pool", _global_pool_shape,
       keeps=(),
       window=lambda a, ins: GLOBAL,
       other_ops=lambda a, ins, out: numel(ins[0]), module=_global_pool_module,
       describe=named("global_avgpool"), caption=named("global avg pool"),
       rule="C×H×W → C×1×1; C×L → C×1, C×T×H×W → C×1×1×1",
       lowers="`nn.AdaptiveAvgPool2d((1, 1))` (`1d`, `3d` on a signal, a volume)",
       other_rule="1 per input element"),
    Op("adaptive_avgpool", "pool", _adaptive_shape, imports=("AdaptiveAvgPool2d",),
       keeps=("in0",),
       read=_read_adaptive,
       window=_adaptive_window,
       args=(Arg("height", "int", minimum=1), Arg("width", "int", Derived("height"), minimum=1)),
       other_ops=lambda a, ins, out: numel(ins[0]), module=_adaptive_module,
       describe=lambda a: f"adaptive_avgpool {a['height']}x{a['width']}",
       caption=lambda a: f"adaptive avg pool {a['height']}x{a['width']}",
       rule="C×H×W → C×`height`×`width`",
       lowers="`nn.AdaptiveAvgPool2d((height, width))`",
       other_rule="1 per input element"),
    Op("upsample", "pool", _upsample_shape,
       keeps=(),
       window=lambda a, ins: ((1, Fraction(1, a["scale"]), 1, 0),) * 2,
       args=(Arg("scale", "int", 2, minimum=1), Arg("mode", "str", "nearest",
                                                    choices=("nearest", "bilinear"))),
       other_ops=elementwise(), module=_upsample_module, imports=("Upsample",),
       read=_read_upsample,
       describe=lambda a: f"upsample x{a['scale']}", caption=lambda a: f"upsample x{a['scale']}",
       rule="C×H×W → C×(H·`scale`)×(W·`scale`)",
       lowers="`nn.Upsample(scale_factor=scale, mode=mode)`",
       other_rule="1 per output element"),
    Op("resize", "pool", _resize_shape, function=_emit_resize,
       keeps=(),
       window=_resized_window(lambda a, ins: (a["height"], a["width"])),
       args=(Arg("height", "int", minimum=1), Arg("width", "int", Derived("height"), minimum=1),
             *_RESIZE_ARGS),
       other_ops=elementwise(), describe=lambda a: f"resize {a['height']}x{a['width']}",
       caption=lambda a: f"resize to {a['height']}×{a['width']}",
       rule="C×H×W → C×`height`×`width`, interpolated",
       lowers="`F.interpolate(x, size=(height, width), mode, align_corners)` (a function)",
       other_rule="1 per output element"),
    Op("resize_like", "pool", _resize_like_shape, merge=True, operands=2,
       keeps=(),
       function=_emit_resize_like, window=_resized_window(lambda a, ins: ins[1][1:]),
       args=_RESIZE_ARGS, other_ops=elementwise(), describe=named("resize like"),
       caption=named("resize"),
       rule="`resize_like(a, b)`: a's C×H×W interpolated to b's height and width (exact at "
            "any input size: FCN, DeepLab)",
       lowers="`F.interpolate(a, size=b.shape[-2:], mode, align_corners)` (a function)",
       other_rule="1 per output element"),
)
