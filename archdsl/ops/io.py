"""Values that come from outside the layers: the network's `input`, and learned
`parameter`s declared with `param name: shape = init`."""
from __future__ import annotations

from .args import Arg, Args
from .op import Op, named
from .shapes import axes_of, dtype_of, numel, show


def stored_shape(shape) -> tuple[int, ...]:
    """The shape a parameter is stored with: tokens (a class token, a position embedding)
    with a leading batch axis of 1, as torchvision and timm store them; any other as
    declared (a GRN's C weight, Swin-V2's heads x 1 x 1 logit scale)."""
    return (1, *shape) if axes_of(shape) == "LC" else tuple(shape)


def _parameter_module(args: Args, ins):
    import torch
    from torch import nn
    return nn.Parameter(torch.empty(stored_shape(args["shape"])))


def _parameter_init(parameter, args: Args) -> None:
    import torch
    from torch import nn
    with torch.no_grad():
        if args["init"] in ("zeros", "ones"):
            parameter.fill_(args["init"] == "ones")
        elif args["std"] == 0:  # a normal of no spread is its mean (truncated to [-2, 2])
            mean = args["mean"] if args["init"] == "normal" else min(max(args["mean"], -2), 2)
            parameter.fill_(mean)
        elif args["init"] == "normal":
            nn.init.normal_(parameter, args["mean"], args["std"])
        else:
            nn.init.trunc_normal_(parameter, args["mean"], args["std"])


def _parameter_caption(args: Args) -> str:
    return f"learned {show(args['shape'])}"


# what a `buffer` may be filled with: (its element type, its element count given its
# arguments h and w)
BUFFER_INITS = {
    "relative_position_index": ("int", lambda h, w: (h * w) ** 2),
    "relative_coords_table": ("float", lambda h, w: (2 * h - 1) * (2 * w - 1) * 2),
}


def _buffer_module(args: Args, ins):
    import torch
    dtype = torch.int64 if dtype_of(args["shape"]) == "int" else torch.float32
    return torch.empty(tuple(args["shape"]), dtype=dtype)


def _buffer_init(buffer, args: Args) -> None:
    from . import functions
    values = getattr(functions, args["init"])(args["height"], args["width"])
    buffer.copy_(values.reshape(buffer.shape))


OPS = (
    Op("input", "io", shape=lambda a, ins: a["shape"], gives=lambda a, ins: dtype_of(a["shape"]),
       args=(Arg("shape", "shape"),), describe=named("input"), caption=named("input"), keeps=()),
    Op("parameter", "io", shape=lambda a, ins: a["shape"],
       args=(Arg("shape", "shape"), Arg("init", "str", "zeros",
                                        choices=("zeros", "ones", "normal", "trunc_normal")),
             Arg("std", "float", 1.0, minimum=0), Arg("mean", "float", 0.0)),
       params=lambda a, ins: numel(a["shape"]), module=_parameter_module, init=_parameter_init,
       keeps=(),
       tensors=lambda a, ins: {"": stored_shape(a["shape"])},
       describe=lambda a: f"param {show(a['shape'])}", caption=_parameter_caption,
       rule="declared with `param name: shape = init`: a learned value of that shape",
       lowers="a parameter (`nn.Parameter`) at the name's path, of the declared shape (tokens: "
              "1×shape), expanded to the batch",
       params_rule="the elements of its declared shape"),
    Op("buffer", "io", shape=lambda a, ins: a["shape"], accepts=(),
       keeps=(),
       gives=lambda a, ins: dtype_of(a["shape"]),
       args=(Arg("shape", "shape"), Arg("init", "str", choices=tuple(BUFFER_INITS)),
             Arg("height", "int", minimum=2), Arg("width", "int", minimum=2)),
       buffers=lambda a, ins: numel(a["shape"]), module=_buffer_module, init=_buffer_init,
       describe=lambda a: f"buffer {show(a['shape'])}", caption=lambda a: f"constant "
       f"{show(a['shape'])}",
       rule="declared with `buffer name: shape = init(h, w)`: a constant the state_dict "
            "holds (a relative position index, Swin-V2's coordinate table), not learned",
       lowers="a buffer (`register_buffer`) at the name's path, of the declared shape, "
              "expanded to the batch"),
)
