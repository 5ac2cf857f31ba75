"""Normalisation: `batchnorm`, `lrn`, `layernorm`, `groupnorm`, and `scale` (a learned
factor per channel, ConvNeXt's and CaiT's layer scale)."""
from __future__ import annotations

from .args import Arg, Args
from .op import Op, elementwise, named, reset_init, same, spatial, torch_layer
from .shapes import FLOATS, Shape, ShapeError, axes_of, numel, require

FLOAT32_MAX = 3.4028234663852886e38  # a learned factor is a float32: no larger


def _channels(shape: Shape) -> int:
    return shape[axes_of(shape).index("C")]


def _batchnorm_shape(args: Args, ins) -> Shape:
    return require("batchnorm", ins[0], ("CHW", "C", "CL", "CTHW"))


def _batchnorm_module(args: Args, ins):
    from torch import nn
    cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}
    return cls[len(ins[0])](ins[0][0], eps=args["eps"], momentum=args["momentum"])


def _lrn_shape(args: Args, ins) -> Shape:
    return spatial("lrn", ins)


def _layernorm_shape(args: Args, ins) -> Shape:
    if len(ins[0]) > 1 and axes_of(ins[0]).endswith("C"):  # features last, any positions
        return ins[0]
    return require("layernorm", ins[0], ("C", "LC", "HWC", "CHW"),
                   fix="layer norm normalises the features: put them last")


def _layernorm_module(args: Args, ins):
    from torch import nn
    from .functions import LayerNorm2d
    cls = LayerNorm2d if axes_of(ins[0]) == "CHW" else nn.LayerNorm
    return cls(_channels(ins[0]), eps=args["eps"])


def _groupnorm_shape(args: Args, ins) -> Shape:
    c, _, _ = spatial("groupnorm", ins)
    if c % args["groups"]:
        raise ShapeError("E0304", f"groupnorm groups = {args['groups']} does not divide its {c} "
                         "channels", f"{args['groups']} groups",
                         help=f"choose groups that divide {c}, e.g. "
                              f"{max(g for g in range(1, min(c, args['groups']) + 1) if c % g == 0)}")
    return ins[0]


def _groupnorm_module(args: Args, ins):
    from torch import nn
    return nn.GroupNorm(args["groups"], ins[0][0], eps=args["eps"])


def _scale_module(args: Args, ins):
    import torch
    from torch import nn
    axes = axes_of(ins[0])
    c = axes.index("C")  # one factor per channel, broadcast over the axes after it
    return nn.Parameter(torch.empty((_channels(ins[0]),) + (1,) * (len(axes) - c - 1)))


def _scale_init(parameter, args: Args) -> None:
    import torch
    with torch.no_grad():
        parameter.fill_(args["init"])



def _read_batchnorm(m):
    if not (m.affine and m.track_running_stats) or m.momentum is None:
        return None
    return "batchnorm", dict(eps=m.eps, momentum=m.momentum)


def _emit_rms_norm(graph, inputs, args, ins):
    from .functions import rms_norm
    return graph.call_function(rms_norm, (inputs[0], args["eps"]))


def _read_layernorm(module):
    """torch's LayerNorm over the last axis, with weight and bias (what `layernorm` builds
    for tokens: the importer checks the shape it reads)."""
    if len(module.normalized_shape) != 1 or not module.elementwise_affine or module.bias is None:
        return None
    return "layernorm", dict(eps=module.eps)


OPS = (
    Op("batchnorm", "norm", _batchnorm_shape, read=_read_batchnorm,
       keeps=("in0",),
       imports=("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"),
       args=(Arg("eps", "float", 1e-5, above=0), Arg("momentum", "float", 0.1, minimum=0)),
       params=lambda a, ins: 2 * ins[0][0], buffers=lambda a, ins: 2 * ins[0][0] + 1,
       other_ops=elementwise(2), module=_batchnorm_module, init=reset_init,
       overwritable=True, describe=named("batchnorm"), caption=named("batch norm"),
       min_batch=lambda a, out: 2 if numel(out[1:]) == 1 else 1,  # statistics need 2 values
       rule="unchanged; C×H×W, flat, C×L or C×T×H×W (channels first)",
       lowers="`nn.BatchNorm2d(C, eps, momentum)`; `nn.BatchNorm1d` on flat input or a signal, "
              "`nn.BatchNorm3d` on a volume",
       params_rule="2 × channels (weight and bias)",
       other_rule="2 per output element (scale and shift)"),
    Op("lrn", "norm", _lrn_shape,
       args=(Arg("size", "int", 5, minimum=1), Arg("alpha", "float", 1e-4),
             Arg("beta", "float", 0.75), Arg("k", "float", 2.0)),
       other_ops=lambda a, ins, out: numel(out) * (a["size"] + 3),
       module=torch_layer("LocalResponseNorm", "size", "alpha", "beta", "k"),
       imports=("LocalResponseNorm",),
       read=lambda m: ("lrn", dict(size=m.size, alpha=m.alpha, beta=m.beta, k=m.k)),
       describe=lambda a: f"lrn {a['size']}", caption=named("local response norm"),
       rule="unchanged; needs C×H×W",
       lowers="`nn.LocalResponseNorm(size, alpha, beta, k)`",
       other_rule="(`size` + 3) per output element"),
    Op("layernorm", "norm", _layernorm_shape, args=(Arg("eps", "float", 1e-5, minimum=0),),
       keeps=("in0",), autocast="float",
       params=lambda a, ins: 2 * _channels(ins[0]), other_ops=elementwise(5),
       module=_layernorm_module, init=reset_init, overwritable=True,
       imports=("LayerNorm",), read=_read_layernorm,
       describe=named("layernorm"), caption=named("layer norm"),
       rule="unchanged; normalises each position over its channels (C×H×W) or its features "
            "(flat, tokens L×C, channels-last H×W×C)",
       lowers="`LayerNorm2d(C, eps)` (over channels, as torchvision's ConvNeXt); "
              "`nn.LayerNorm(C, eps)` where the features are last",
       params_rule="2 × channels (weight and bias)",
       other_rule="5 per output element (mean, variance, normalise, scale, shift)"),
    Op("groupnorm", "norm", _groupnorm_shape,
       keeps=("in0",), autocast="float",
       args=(Arg("groups", "int", minimum=1), Arg("eps", "float", 1e-5, minimum=0)),
       params=lambda a, ins: 2 * ins[0][0], other_ops=elementwise(5),
       module=_groupnorm_module, imports=("GroupNorm",),
       read=lambda m: ("groupnorm", dict(groups=m.num_groups, eps=m.eps)) if m.affine else None,
       init=reset_init, overwritable=True,
       describe=lambda a: f"groupnorm {a['groups']}", caption=named("group norm"),
       rule="unchanged; needs C×H×W with `groups` dividing C",
       lowers="`nn.GroupNorm(groups, C, eps)`",
       params_rule="2 × channels (weight and bias)",
       other_rule="5 per output element (mean, variance, normalise, scale, shift)"),
    Op("scale", "norm", same("scale"),
       args=(Arg("init", "float", 1e-6, minimum=-FLOAT32_MAX, maximum=FLOAT32_MAX),),
       keeps=("in0",),
       params=lambda a, ins: _channels(ins[0]), other_ops=elementwise(), module=_scale_module,
       init=_scale_init, describe=named("scale"), caption=named("layer scale"),
       rule="unchanged; multiplies each channel (or feature) by a learned factor, "
            "starting at `init`",
       lowers="a parameter of C×1×1 (or F) values named after the layer, times the input",
       params_rule="channels (one factor each)",
       other_rule="1 per output element"),
    Op("rms_norm", "norm", same("rms_norm"), args=(Arg("eps", "float", 1e-6, above=0),),
       keeps=("in0",),
       accepts=FLOATS, gives=None,  # no weight: any precision, kept
       function=_emit_rms_norm, other_ops=elementwise(4),
       describe=lambda a: "rms_norm", caption=named("RMSNorm"),
       rule="unchanged: each position's last axis divided by its root mean square, "
            "x / √(mean(x²) + eps), no learned scale (`std.layers`' `rmsnorm` adds one)",
       lowers="`torch.rms_norm(x, (C,), None, eps)`: torch's fused kernel, equal on the CPU "
              "to `x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)`, which ONNX export "
              "writes (a function, no module)",
       other_rule="4 per output element"),
)
