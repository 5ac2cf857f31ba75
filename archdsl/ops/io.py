"""Values that come from outside the layers: the network's `input`, and learned
`parameter`s declared with `param name: shape = init`."""
from __future__ import annotations

from .args import Arg, Args
from .op import Op, named
from .shapes import numel, show


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
    Op("input", "io", shape=lambda a, ins: a["shape"],
       args=(Arg("shape", "shape"),), describe=named("input"), caption=named("input")),
    Op("parameter", "io", shape=lambda a, ins: a["shape"],
       args=(Arg("shape", "shape"), Arg("init", "str", "zeros",
                                        choices=("zeros", "ones", "normal", "trunc_normal")),
             Arg("std", "float", 1.0, minimum=0), Arg("mean", "float", 0.0)),
       params=lambda a, ins: numel(a["shape"]), module=_parameter_module, init=_parameter_init,
       describe=lambda a: f"param {show(a['shape'])}", caption=_parameter_caption,
       rule="declared with `param name: shape = init`: a learned value of that shape",
       lowers="a parameter (`nn.Parameter`) of 1×shape at the name's path, expanded to the "
              "batch",
       params_rule="the elements of its declared shape"),
)
