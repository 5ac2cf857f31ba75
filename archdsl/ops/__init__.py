"""The layer vocabulary: ONE table, `OPS`, one `Op` entry per layer.

Each `Op` holds everything any pass or backend needs to know about a layer: its
arguments and defaults, its shape rule, its parameter and cost counts, the torch module
it lowers to, and how it is labelled in tables and diagrams. The entries live by family,
one module each, with the rules and builders only they use:

    io              the network's input, learned parameters
    convolution     convolutions, transposed convolutions
    normalisation   batch, layer, group and local response norms; layer scale
    activation      element-wise activations, softmax
    regularisation  dropout, stochastic depth
    pooling         sliding-window, global and adaptive pools; upsampling
    linear          linear layers over the features or the channels
    merge           joining values: concatenation, crops
    elementwise     arithmetic: functions of one value (exp, sqrt, ...), and sums,
                    differences, products, quotients, powers, maxima and minima of
                    values and numbers, broadcast over named axes
    reduction       sums, means, extrema, variances and norms over axes; cumsum
    products        matrix products and einsum
    indexing        embeddings of token ids, comparisons into masks, where, gather,
                    topk, argmax
    channels        chunks, shuffles and zero padding of the channels
    axes            flattening, reordering, reshaping, picking from and averaging axes
    attention       self-attention; Swin's window attention and patch merging
    recurrence      Mamba's selective scan

What they share is in `op` (the `Op` record and helpers of several families), `args`
(argument kinds), `windows` (sliding-window arithmetic) and `shapes`. Adding a layer is
one `Op(...)` entry in its family's `OPS` tuple.

Shapes exclude the batch: `(C, H, W)` for feature maps, `(F,)` for flat features.
Torch is imported only inside the `module` builders, which the front end never calls.
"""
from __future__ import annotations

from ..errors import InternalError
from . import (activation, attention, axes, channels, convolution, elementwise, indexing, io,
               linear, merge, normalisation, pooling, products, recurrence, reduction,
               regularisation)
from .args import AXIS_KINDS, REQUIRED, Arg, Args, Derived, normalise_axes
from .op import GLOBAL, Op
from .shapes import (Shape, ShapeError, axes_of, axis_index, default_axes, describe, numel,
                     require, show)

__all__ = ["AXIS_KINDS", "GLOBAL", "MERGE_OPS", "OPS", "REQUIRED", "Arg", "Args", "Derived",
           "Op", "Shape", "ShapeError", "axes_of", "axis_index", "default_axes", "describe",
           "cost_table", "layer_table", "normalise_axes", "numel", "require", "show"]

FAMILIES = (io, convolution, normalisation, activation, regularisation, pooling, linear,
            merge, elementwise, channels, axes, reduction, products, indexing, attention,
            recurrence)

# The order of OPS, and so of the layer table in docs/language.md and of every list made
# from it: the order the layers joined the vocabulary. A layer not named here comes after
# these, in the order of FAMILIES and of its family's tuple.
_ORDER = ("input", "conv", "batchnorm", "lrn", "relu", "relu6", "leaky_relu", "sigmoid",
          "tanh", "gelu", "silu", "hardswish", "hardsigmoid", "softmax", "dropout", "identity",
          "maxpool", "avgpool", "global_avgpool", "adaptive_avgpool", "upsample", "flatten",
          "linear", "concat", "add", "mul", "crop", "layernorm", "groupnorm", "conv_transpose",
          "chunk", "channel_linear", "channel_shuffle", "scale", "stochastic_depth",
          "pad_channels", "parameter", "transpose", "permute", "reshape", "take", "slice",
          "mean", "attention", "window_attention", "patch_merging")


def _registry(families, order: tuple[str, ...]) -> dict[str, Op]:
    """Every family's ops by name: those in `order` first, in that order, then the rest."""
    ops: dict[str, Op] = {}
    for family in families:
        for op in family.OPS:
            if op.name in ops:
                raise InternalError(f"op `{op.name}` is defined twice (again in {family.__name__})")
            ops[op.name] = op
    unknown = [name for name in order if name not in ops]
    if unknown:
        raise InternalError(f"the op order names ops no family defines: {', '.join(unknown)}")
    return {name: ops[name] for name in order} | {
        name: op for name, op in ops.items() if name not in order}


OPS: dict[str, Op] = _registry(FAMILIES, _ORDER)

# the ops that merge branches (`concat { ... }`); crop takes two named values only
MERGE_OPS = tuple(name for name, op in OPS.items() if op.merge and op.operands is None)


def cost_table(kind: str) -> str:
    """The table of docs/stats.md for `kind` ("macs", "other", "params" or "kept")."""
    from .docs import cost_table as table
    return table(OPS.values(), kind)


def layer_table() -> str:
    """The markdown table of every layer (all ops but `input`): arguments in positional
    order with kind, default and bounds, the shape rule, and what the layer lowers to."""
    from .docs import markdown_table  # only docs and tests write the table
    return markdown_table(OPS.values())
