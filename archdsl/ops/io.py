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


OPS = (
    Op("input", "io", shape=lambda a, ins: a["shape"], gives=lambda a, ins: dtype_of(a["shape"]),
       args=(Arg("shape", "shape"),), describe=named("input"), caption=named("input")),
    Op("parameter", "io", shape=lambda a, ins: a["shape"],
       args=(Arg("shape", "shape"), Arg("init", "str", "zeros",
                                        choices=("zeros", "ones", "normal", "trunc_normal")),
             Arg("std", "float", 1.0, minimum=0), Arg("mean", "float", 0.0)),
       params=lambda a, ins: numel(a["shape"]), module=_parameter_module, init=_parameter_init,
       describe=lambda a: f"param {show(a['shape'])}", caption=_parameter_caption,
       rule="declared with `param name: shape = init`: a learned value of that shape",
       lowers="a parameter (`nn.Parameter`) at the name's path, of the declared shape (tokens: "
              "1×shape), expanded to the batch",
       params_rule="the elements of its declared shape"),
)
