"""Ops over the channels of a feature map that compute nothing: `chunk` (one part of
them), `channel_shuffle` (interleave groups) and `pad_channels` (add zero channels)."""
from __future__ import annotations

from .args import Arg, Args
from .op import Op, named, spatial, torch_layer
from .shapes import Shape, ShapeError, require


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


def _channel_shuffle_shape(args: Args, ins) -> Shape:
    c, _, _ = spatial("channel_shuffle", ins)
    if c % args["groups"]:
        raise ShapeError("E0304", f"channel_shuffle groups = {args['groups']} does not divide "
                         f"its {c} channels", f"{args['groups']} groups",
                         help=f"choose groups that divide {c}")
    return ins[0]


def _pad_channels_shape(args: Args, ins) -> Shape:
    c, h, w = spatial("pad_channels", ins)
    if args["channels"] < c:
        raise ShapeError("E0307", f"pad_channels({args['channels']}) would remove channels from "
                         f"a {c}-channel input", "fewer channels",
                         help=f"give at least {c} channels")
    return (args["channels"], h, w)


def _pad_channels_module(args: Args, ins):
    from .functions import PadChannels
    extra = args["channels"] - ins[0][0]
    return PadChannels(extra // 2, extra - extra // 2)


OPS = (
    Op("chunk", "reshape", _chunk_shape,
       keeps=(), view=True,
       args=(Arg("chunks", "int", minimum=1), Arg("index", "int", 0, minimum=0)),
       function=_emit_chunk, describe=lambda a: f"chunk {a['index']}/{a['chunks']}",
       caption=lambda a: f"split {a['index'] + 1} of {a['chunks']}",
       rule="C×H×W → (C / `chunks`)×H×W: the channels of part `index` (from 0) of `chunks` "
            "equal parts",
       lowers="`x.chunk(chunks, 1)[index]` (a function, no module)"),
    Op("channel_shuffle", "reshape", _channel_shuffle_shape,
       keeps=(),
       args=(Arg("groups", "int", minimum=1),), module=torch_layer("ChannelShuffle", "groups"),
       imports=("ChannelShuffle",), read=lambda m: ("channel_shuffle", dict(groups=m.groups)),
       describe=lambda a: f"channel_shuffle {a['groups']}", caption=named("channel shuffle"),
       rule="unchanged; needs C×H×W with `groups` dividing C",
       lowers="`nn.ChannelShuffle(groups)`"),
    Op("pad_channels", "reshape", _pad_channels_shape, args=(Arg("channels", "int", minimum=1),),
       keeps=(),
       module=_pad_channels_module, describe=lambda a: f"pad_channels {a['channels']}",
       caption=lambda a: f"pad to {a['channels']} ch.",
       rule="C×H×W → `channels`×H×W, zero channels added half before and half after",
       lowers="`PadChannels(before, after)` (zero padding; no parameters)"),
)
