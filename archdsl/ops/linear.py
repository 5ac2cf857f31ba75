"""Linear layers: `linear` over the last axis (flat features, tokens, a channels-last
map) and `channel_linear` over the channels of a C x H x W map."""
from __future__ import annotations

from .args import Arg, Args
from .op import GLOBAL, Op, reset_init, spatial
from .shapes import Shape, ShapeError, axes_of, numel, show


def _flat(op: str, ins: tuple[Shape, ...]) -> Shape:
    (shape,) = ins
    if axes_of(shape).endswith("C"):
        return shape
    raise ShapeError("E0305", f"{op} needs a flat input, but gets {show(shape)}",
                     f"{op} needs flat features",
                     help=f"add `flatten` (or `global_avgpool` then `flatten`) before this {op}")


def _linear_shape(args: Args, ins) -> Shape:
    shape = _flat("linear", ins)
    return Shape(shape[:-1] + (args["features"],), axes_of(shape))


def _linear_params(args: Args, ins) -> int:
    return ins[0][-1] * args["features"] + (args["features"] if args["bias"] else 0)


def _linear_module(args: Args, ins):
    from torch import nn
    return nn.Linear(ins[0][-1], args["features"], bias=args["bias"])


def _channel_linear_shape(args: Args, ins) -> Shape:
    _, h, w = spatial("channel_linear", ins)
    return (args["features"], h, w)


def _channel_linear_module(args: Args, ins):
    from .functions import ChannelLinear
    return ChannelLinear(ins[0][0], args["features"], bias=args["bias"])


OPS = (
    Op("linear", "linear", _linear_shape, imports=("Linear",),
       keeps=("in0",), autocast="low",
       read=lambda m: ("linear", dict(features=m.out_features, bias=m.bias is not None)),
       window=lambda a, ins: GLOBAL if axes_of(ins[0]) == "C" else None,
       args=(Arg("features", "int", minimum=1), Arg("bias", "bool", True)),
       tensors=lambda a, ins: {"weight": (a["features"], ins[0][-1]),
                               **({"bias": (a["features"],)} if a["bias"] else {})},
       params=_linear_params, macs=lambda a, ins, out: numel(out) * ins[0][-1],
       module=_linear_module, init=reset_init, overwritable=True,
       describe=lambda a: f"linear {a['features']}",
       caption=lambda a: f"fc {a['features']}",
       rule="flat F → `features`; on tokens L×C or a channels-last H×W×C map, the last axis "
            "(the features) becomes `features`",
       lowers="`nn.Linear(F, features, bias)`",
       macs_rule="input features × output features (per token, or per position of a channels-last "
                 "map)",
       params_rule="in features (channels) × out features, + out features with `bias = true`",
       other_rule="0 (all their work is MACs; bias not counted)"),
    Op("channel_linear", "linear", _channel_linear_shape,
       keeps=("in0",), autocast="low",
       args=(Arg("features", "int", minimum=1), Arg("bias", "bool", True)),
       params=lambda a, ins: ins[0][0] * a["features"] + (a["features"] if a["bias"] else 0),
       macs=lambda a, ins, out: numel(out) * ins[0][0], module=_channel_linear_module,
       init=reset_init, overwritable=True,
       describe=lambda a: f"channel_linear {a['features']}",
       caption=lambda a: f"pointwise fc {a['features']}",
       rule="C×H×W → `features`×H×W: a linear layer over the channels at each position",
       lowers="`ChannelLinear(C, features, bias)`: `nn.Linear` between two permutes, as "
              "ConvNeXt's `Permute`, `Linear`, `Permute`",
       macs_rule="output elements × input channels",
       params_rule="in features (channels) × out features, + out features with `bias = true`",
       other_rule="0 (all their work is MACs; bias not counted)"),
)
