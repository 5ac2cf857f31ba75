"""Sliding windows, shared by convolution and pooling: sizes given once or per spatial
axis, padding, the output-size formula (and its E0303), the receptive window, and the
`3x3/2` text of labels."""
from __future__ import annotations

from .args import Args
from .shapes import Shape, ShapeError, numel

SPATIAL_AXES = {1: ("length",), 2: ("height", "width"), 3: ("time", "height", "width")}


def spatial_count(shape: Shape) -> int:
    """How many spatial axes a channels-first input has: 1, 2 or 3."""
    return len(shape) - 1


def sizes(args: Args, name: str, count: int) -> tuple[int, ...]:
    """An argument given as one integer or one per spatial axis, as `count` integers."""
    value = args[name]
    if not isinstance(value, tuple):
        return (value,) * count
    if len(value) != count:
        raise ShapeError("E0310", f"`{name}` gives {len(value)} sizes for {count} spatial "
                         f"ax{'is' if count == 1 else 'es'}", f"{len(value)} sizes",
                         help=f"give one integer, or {count}: one per spatial axis")
    return value


def output_size(op: str, axis: str, size: int, kernel: int, stride: int, pad: int,
                dilation: int, ceil_mode: bool = False) -> int:
    """The output size of a window sliding over one axis, as torch computes it, or E0303
    when the window does not fit."""
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


def padding(args: Args, kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    """The `pad` argument per spatial axis: a number, or `valid` (none) or `same`."""
    pad = args["pad"]
    if pad == "valid":
        return (0,) * len(kernel)
    if pad == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    return sizes(args, "pad", len(kernel))


def kernel_volume(args: Args, ins) -> int:
    """How many input positions one window covers on each channel."""
    return numel(sizes(args, "kernel", spatial_count(ins[0])))


def sliding(dilated: bool = True):
    """Op.window of conv and pools: kernel, stride, dilation and padding on each spatial
    axis."""
    def window(args: Args, ins):
        n = spatial_count(ins[0])
        kernel = sizes(args, "kernel", n)
        dilation = sizes(args, "dilation", n) if dilated else (1,) * n
        return tuple(zip(kernel, sizes(args, "stride", n), dilation,
                         padding(args, kernel, dilation)))
    return window


# ---- labels --------------------------------------------------------------------------


def size_text(value) -> str:
    """`3x3` from 3 or (3, 3); `3x7x7` from (3, 7, 7)."""
    if not isinstance(value, tuple):
        return f"{value}x{value}"
    return "x".join(map(str, value))


def stride_text(stride) -> str:
    """`/2` from 2 or (2, 2); `/2x1` from (2, 1)."""
    if not isinstance(stride, tuple):
        return f"/{stride}"
    return f"/{stride[0]}" if len(set(stride)) == 1 else "/" + "x".join(map(str, stride))


def is_one(value) -> bool:
    """A size of 1 on every axis: a stride a label leaves out."""
    return value == 1 or (isinstance(value, tuple) and set(value) == {1})
