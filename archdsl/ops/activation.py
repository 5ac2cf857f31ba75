"""Activations: element-wise functions that keep the shape (`relu` ... `hardsigmoid`),
and `softmax` over the channels or features. None has a learned tensor, so each reads
any float precision and keeps it (a float32 router's softmax inside a float64 model)."""
from __future__ import annotations

import dataclasses

from .args import Arg, Args
from .op import GLOBAL, Op, elementwise, named, same, torch_axis, torch_layer
from .shapes import FLOATS, axes_of


def _softmax_axis(args: Args, ins) -> int:
    """The axis softmax normalises: `axis`, or by default the channels (features), or
    where a value has none (L positions) its last axis."""
    if args["axis"] is not None:
        return args["axis"]
    axes = axes_of(ins[0])
    return axes.index("C") if "C" in axes else len(axes) - 1


def _softmax_module(args: Args, ins):
    from torch import nn
    return nn.Softmax(dim=torch_axis(_softmax_axis(args, ins)))


def _softmax_window(args: Args, ins):
    return None if axes_of(ins[0])[_softmax_axis(args, ins)] == "C" else GLOBAL


def _read_softmax(module):
    if module.dim is None or module.dim == 0:  # torch's implicit dim, or the batch
        return None
    return "softmax", dict(axis=module.dim - 1 if module.dim > 0 else module.dim)


_OPS = (
    Op("relu", "act", same("relu"), other_ops=elementwise(), module=torch_layer("ReLU"),
       keeps=("out",),
       in_place=True,
       describe=named("relu"), caption=named("ReLU"),
       lowers="`nn.ReLU()`",
       other_rule="1 per output element"),
    Op("relu6", "act", same("relu6"), other_ops=elementwise(), module=torch_layer("ReLU6"),
       keeps=("in0",),
       in_place=True,
       describe=named("relu6"), caption=named("ReLU6"),
       lowers="`nn.ReLU6()`",
       other_rule="1 per output element"),
    Op("leaky_relu", "act", same("leaky_relu"), args=(Arg("slope", "float", 0.01),),
       keeps=("out",),
       imports=("LeakyReLU",), read=lambda m: ("leaky_relu", dict(slope=m.negative_slope)),
       other_ops=elementwise(), module=torch_layer("LeakyReLU", "slope"),
       in_place=lambda a: a["slope"] >= 0,  # torch's in-place backward needs slope >= 0
       describe=lambda a: f"leaky_relu {a['slope']}", caption=named("leaky ReLU"),
       lowers="`nn.LeakyReLU(slope)`",
       other_rule="1 per output element"),
    Op("sigmoid", "act", same("sigmoid"), other_ops=elementwise(),
       keeps=("out",),
       module=torch_layer("Sigmoid"), describe=named("sigmoid"), caption=named("sigmoid"),
       lowers="`nn.Sigmoid()`",
       other_rule="1 per output element"),
    Op("tanh", "act", same("tanh"), other_ops=elementwise(), module=torch_layer("Tanh"),
       keeps=("out",),
       describe=named("tanh"), caption=named("tanh"),
       lowers="`nn.Tanh()`",
       other_rule="1 per output element"),
    Op("gelu", "act", same("gelu"), other_ops=elementwise(),
       keeps=("in0",),
       args=(Arg("approximate", "str", "none", choices=("none", "tanh")),),
       module=torch_layer("GELU", "approximate"),
       imports=("GELU",), read=lambda m: ("gelu", dict(approximate=m.approximate)),
       describe=lambda a: "gelu" + (" tanh" if a["approximate"] == "tanh" else ""),
       caption=named("GELU"),
       rule="unchanged; x·Φ(x), or with `approximate = \"tanh\"` its tanh approximation "
            "(GPT-2's `gelu_new`, BERT's original)",
       lowers="`nn.GELU(approximate)`",
       other_rule="1 per output element"),
    Op("silu", "act", same("silu"), other_ops=elementwise(), module=torch_layer("SiLU"),
       keeps=("in0",),
       in_place=True,
       describe=named("silu"), caption=named("SiLU"),
       lowers="`nn.SiLU()` (x · sigmoid(x), also called swish)",
       other_rule="1 per output element"),
    Op("softplus", "act", same("softplus"), other_ops=elementwise(3),
       keeps=("in0",), autocast="float",
       module=torch_layer("Softplus"), describe=named("softplus"), caption=named("softplus"),
       rule="unchanged; log(1 + exp(x)) (x itself above 20, as torch computes it)",
       lowers="`nn.Softplus()`",
       other_rule="3 per output element"),
    Op("hardswish", "act", same("hardswish"), other_ops=elementwise(),
       keeps=("in0",),
       module=torch_layer("Hardswish"), in_place=True, describe=named("hardswish"),
       caption=named("hard swish"), lowers="`nn.Hardswish()`",
       other_rule="1 per output element"),
    Op("hardsigmoid", "act", same("hardsigmoid"), other_ops=elementwise(),
       keeps=("in0",),
       module=torch_layer("Hardsigmoid"), in_place=True, describe=named("hardsigmoid"),
       caption=named("hard sigmoid"), lowers="`nn.Hardsigmoid()`",
       other_rule="1 per output element"),
    Op("softmax", "act", same("softmax"), args=(Arg("axis", "axis", None),),
       keeps=("out",), autocast="float",
       other_ops=elementwise(3), module=_softmax_module, window=_softmax_window,
       imports=("Softmax",), read=_read_softmax,
       describe=lambda a: "softmax" if a["axis"] is None else f"softmax {a['axis']}",
       caption=named("softmax"),
       rule="unchanged; normalises over `axis`, by default the channels (or features; the "
            "last axis of a value without them)",
       lowers="`nn.Softmax(dim=axis + 1)`; by default the channels' dimension (else the last)",
       other_rule="3 per output element"),
)

OPS = tuple(dataclasses.replace(op, accepts=FLOATS, gives=None) for op in _OPS)
