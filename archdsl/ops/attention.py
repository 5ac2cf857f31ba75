"""Transformer layers: `attention` (multi-head self-attention over L x C tokens), Swin's
`window_attention` and `patch_merging` over a channels-last H x W x C map, and `sdpa`,
the scaled dot-product attention of queries, keys and values that attention layers are
written from."""
from __future__ import annotations

from .args import Arg, Args
from .op import GLOBAL, Op, named
from .shapes import DTYPES, Shape, ShapeError, describe, dtype_of, numel, require, show


def _heads_divide(op: str, heads: int, width: int) -> None:
    if width % heads:
        fits = [h for h in range(1, min(width, heads * 2) + 1) if width % h == 0]
        raise ShapeError("E0311", f"{op} heads = {heads} does not divide its {width} features",
                         f"{heads} heads", help=f"choose heads that divide {width}, e.g. "
                                                f"{min(fits, key=lambda h: abs(h - heads))}")


# ---- attention -------------------------------------------------------------------------


def _attention_shape(args: Args, ins) -> Shape:
    s = require("attention", ins[0], ("LC",), fix="make tokens of a C x H x W map with "
                "`flatten(1, 2)` then `transpose(0, 1)`")
    _heads_divide("attention", args["heads"], s[1])
    return s


def _attention_params(args: Args, ins) -> int:
    width = ins[0][-1]
    return 4 * width * width + (4 * width if args["bias"] else 0)


def _attention_macs(args: Args, ins, out: Shape) -> int:
    length, width = ins[0]  # projections in and out, then QK^T and AV
    return 4 * length * width * width + 2 * length * length * width


def _attention_module(args: Args, ins):
    from .functions import SelfAttention
    return SelfAttention(ins[0][-1], args["heads"], dropout=args["dropout"], bias=args["bias"])


def _attention_init(module, args: Args) -> None:
    module.out_proj.reset_parameters()  # then torch's own: Xavier in, zero biases
    module._reset_parameters()


# ---- window_attention ------------------------------------------------------------------


def _window_attention_shape(args: Args, ins) -> Shape:
    s = require("window_attention", ins[0], ("HWC",), fix="make a C x H x W map channels-last "
                "with `permute(1, 2, 0)`")
    if args["shift"] >= args["window"]:
        raise ShapeError("E0307", f"window_attention shift {args['shift']} is not smaller than "
                         f"its window {args['window']}", "shift too large",
                         help=f"shift by less than a window; Swin shifts by half: "
                              f"`shift = {args['window'] // 2}`")
    _heads_divide("window_attention", args["heads"], s[2])
    return s


def _padded_windows(args: Args, shape: Shape) -> tuple[int, int]:
    """Height and width after padding to whole windows, as torchvision pads."""
    window = args["window"]
    return tuple(-(-size // window) * window for size in shape[:2])


def _window_attention_params(args: Args, ins) -> int:
    width, window = ins[0][2], args["window"]
    return 4 * width * width + 4 * width + (2 * window - 1) ** 2 * args["heads"]


def _window_attention_macs(args: Args, ins, out: Shape) -> int:
    height, width = _padded_windows(args, ins[0])
    channels, area = ins[0][2], args["window"] ** 2
    return height * width * (4 * channels * channels + 2 * area * channels)


def _window_attention_module(args: Args, ins):
    from .functions import ShiftedWindowAttention
    window, shift = args["window"], args["shift"]
    return ShiftedWindowAttention(ins[0][2], [window, window], [shift, shift], args["heads"],
                                  attention_dropout=args["attention_dropout"],
                                  dropout=args["dropout"])


def _window_attention_init(module, args: Args) -> None:
    from torch import nn
    for linear in (module.qkv, module.proj):
        nn.init.trunc_normal_(linear.weight, std=0.02)
        nn.init.zeros_(linear.bias)
    nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)
    module.define_relative_position_index()


# ---- patch_merging ---------------------------------------------------------------------


def _patch_merging_shape(args: Args, ins) -> Shape:
    h, w, c = require("patch_merging", ins[0], ("HWC",), fix="make a C x H x W map "
                      "channels-last with `permute(1, 2, 0)`")
    return Shape((-(-h // 2), -(-w // 2), 2 * c), "HWC")


def _patch_merging_module(args: Args, ins):
    from .functions import PatchMerging
    return PatchMerging(ins[0][2], eps=args["eps"])


def _patch_merging_init(module, args: Args) -> None:
    from torch import nn
    nn.init.trunc_normal_(module.reduction.weight, std=0.02)
    module.norm.reset_parameters()


# ---- sdpa ------------------------------------------------------------------------------


def _sdpa_parts(ins) -> tuple[tuple[int, ...], int, int, int, int]:
    """(leading sizes, L, S, E, Ev) of queries ... x L x E, keys ... x S x E and values
    ... x S x Ev."""
    q, k, v = ins[:3]
    for name, s in (("queries", q), ("keys", k), ("values", v)):
        if len(s) < 2:
            raise ShapeError("E0306", f"sdpa's {name} are {show(s)}: they need two axes or "
                             "more (positions x features)", "attends here",
                             help="give tokens (L x C) or heads x L x d")
    if len({len(q), len(k), len(v)}) > 1 or k[:-2] != v[:-2] or (
            q[:-2] != k[:-2] and not _grouped(q, k)):
        raise ShapeError("E0300", f"sdpa's queries, keys and values differ before their last "
                         f"two axes: {show(q)}, {show(k)}, {show(v)}", "attends here",
                         help="split all three into the same heads; keys and values may have "
                              "fewer heads that divide the queries' (grouped-query attention)")
    if q[-1] != k[-1]:
        raise ShapeError("E0300", f"sdpa's queries have {q[-1]} features and its keys "
                         f"{k[-1]}", "attends here", help="project both to one width")
    if k[-2] != v[-2]:
        raise ShapeError("E0300", f"sdpa has {k[-2]} keys but {v[-2]} values", "attends here",
                         help="one value per key")
    if len(ins) == 4:
        _mask(ins[3], tuple(q[:-2]) + (q[-2], k[-2]))
        if dtype_of(ins[3]) not in ("bool", "float"):
            raise ShapeError("E0306", f"sdpa's mask is {describe(ins[3])}: a mask is booleans "
                             "(attend where true) or floats added to the scores",
                             "attends here", help="make one with a comparison: `ne(ids, 0)`")
    return tuple(q[:-2]), q[-2], k[-2], q[-1], v[-1]


def _grouped(q: Shape, k: Shape) -> bool:
    """Grouped-query attention: keys (and values) with fewer heads, axis -3, that divide
    the queries' heads, each shared by a group of them; the other leading axes equal."""
    return len(q) >= 3 and q[:-3] == k[:-3] and q[-3] % k[-3] == 0


def _mask(mask: Shape, scores: tuple[int, ...]) -> None:
    """A mask broadcasts to the attention scores (… x L x S), from the right: true where
    a query may attend (a boolean mask), or added to the scores (floats)."""
    if len(mask) > len(scores) or any(m not in (1, s) for m, s in zip(reversed(mask),
                                                                      reversed(scores))):
        raise ShapeError("E0300", f"sdpa's mask {show(mask)} does not broadcast to its "
                         f"{show(scores)} scores (… x queries x keys)", "attends here",
                         help="give a mask of queries x keys, or 1 x keys for padding")


def _sdpa_shape(args: Args, ins) -> Shape:
    for name, s in zip(("queries", "keys", "values"), ins[:3]):
        if dtype_of(s) != "float":
            raise ShapeError("E0306", f"sdpa's {name} are {describe(s)}, not floats",
                             "attends here", help="embed token ids first: `embedding(vocab, width)`")
    if len(ins) == 4 and args["causal"]:
        raise ShapeError("E0307", "sdpa takes a mask or `causal = true`, not both",
                         "attends here", help="fold the causal mask into yours with `mul`/`where`, "
                                              "as torch requires")
    lead, length, _s, _e, width = _sdpa_parts(ins)
    return Shape(lead + (length, width), getattr(ins[0], "axes", None))


def _sdpa_macs(args: Args, ins, out: Shape) -> int:
    lead, length, keys, e, ev = _sdpa_parts(ins)
    return numel(lead) * length * keys * (e + ev)


def _sdpa_matrix(args: Args, ins) -> int:
    lead, length, keys, _e, _ev = _sdpa_parts(ins)
    return numel(lead) * length * keys


def _sdpa_module(args: Args, ins):
    from .functions import ScaledDotProductAttention
    return ScaledDotProductAttention(args["causal"], args["scale"], args["dropout"],
                                     args["softmax_dtype"])



def _kept_sdpa(args: Args, ins, out, device: str) -> tuple[tuple[int, str], ...]:
    """What torch's attention keeps besides q, k and v: with dropout on the CPU, the
    math kernel's weights before and after dropout and the mask (three L x S matrices
    per head, in float32 whatever the autocast: the kernel computes in it); else the
    fused kernel's output and log-sum-exp (one float32 per query)."""
    lead, length, keys, _e, _ev = _sdpa_parts(ins)
    if args["dropout"] and device != "cuda":
        return ((3 * numel(lead) * length * keys, "float32"),)
    return ((numel(out), "float"), (numel(lead) * length, "float32"))


def _kept_attention(args: Args, ins, out, device: str) -> tuple[tuple[int, str], ...]:
    """nn.MultiheadAttention's fused kernel keeps the packed q, k, v projection, the heads'
    output before the out-projection, and one log-sum-exp per query and head."""
    tokens = out[0]
    return ((4 * numel(out), "float"), (args["heads"] * tokens, "float32"))


def _kept_window_attention(args: Args, ins, out, device: str) -> tuple[tuple[int, str], ...]:
    """Swin's attention, written out: the packed q, k, v, the heads' output, and the
    attention weights before and after the softmax."""
    return ((4 * numel(out), "float"),
            (2 * args["heads"] * numel(_padded_windows(args, ins[0])) * args["window"] ** 2,
             "float"))


OPS = (
    Op("attention", "attention", _attention_shape,
       keeps=("in0",), autocast="low", kept_inside=_kept_attention,
       kept_text="the packed q, k, v, the heads' output, one log-sum-exp per query and head",
       window=lambda a, ins: GLOBAL,
       args=(Arg("heads", "int", minimum=1), Arg("dropout", "float", 0.0, minimum=0, maximum=1),
             Arg("bias", "bool", True)),
       params=_attention_params, macs=_attention_macs,
       other_ops=lambda a, ins, out: 5 * a["heads"] * ins[0][0] ** 2,
       workspace=lambda a, ins: a["heads"] * ins[0][0] ** 2,
       module=_attention_module, init=_attention_init, overwritable=True,
       describe=lambda a: f"attention {a['heads']}h", caption=named("Multi-Head Attention"),
       rule="L×C tokens unchanged: multi-head self-attention; `heads` must divide C",
       lowers="`SelfAttention(C, heads, dropout, bias)`: `nn.MultiheadAttention` (batch first) "
              "on (x, x, x) without weights, so torch's fused attention",
       macs_rule="4·L·C² (the in-projection of queries, keys and values, and the out-projection) + "
                 "2·L²·C (QKᵀ and the weighted sum of values), for L tokens of C features",
       params_rule="4·C² + 4·C (the in-projection 3C×C and out-projection C×C, with biases; 4·C² "
                   "with `bias = false`)",
       other_rule="5 per attention-matrix element, heads × L² (scale, softmax)"),
    Op("window_attention", "attention", _window_attention_shape,
       keeps=("in0",), autocast="low", kept_inside=_kept_window_attention,
       kept_text="the packed q, k, v, the heads' output, the attention weights before and after the softmax",
       window=lambda a, ins: ((a["window"], 1, 1, 0),) * 2,
       args=(Arg("heads", "int", minimum=1), Arg("window", "int", 7, minimum=1),
             Arg("shift", "int", 0, minimum=0), Arg("dropout", "float", 0.0, minimum=0, maximum=1),
             Arg("attention_dropout", "float", 0.0, minimum=0, maximum=1)),
       params=_window_attention_params, buffers=lambda a, ins: a["window"] ** 4,
       macs=_window_attention_macs,
       other_ops=lambda a, ins, out: 5 * a["heads"] * numel(_padded_windows(a, ins[0]))
       * a["window"] ** 2,
       workspace=lambda a, ins: a["heads"] * numel(_padded_windows(a, ins[0])) * a["window"] ** 2,
       module=_window_attention_module, init=_window_attention_init, overwritable=True,
       describe=lambda a: f"window_attention {a['heads']}h w{a['window']}"
                          + (f" s{a['shift']}" if a["shift"] else ""),
       caption=lambda a: "Shifted Window Attention" if a["shift"] else "Window Attention",
       rule="H×W×C unchanged: self-attention within `window`×`window` windows, shifted by "
            "`shift` (none where the window covers the map), with a learned relative position "
            "bias; H and W are padded at the end to whole windows; `heads` must divide C",
       lowers="`ShiftedWindowAttention(C, window, shift, heads, ...)` (torchvision's Swin "
              "names: `qkv`, `proj`, `relative_position_bias_table`)",
       macs_rule="H'·W'·(4·C² + 2·w²·C), for an H×W×C map padded to H'×W' (whole windows of w×w)",
       params_rule="4·C² + 4·C (`qkv` and `proj`) + (2w − 1)² × heads (the relative position bias "
                   "table)",
       other_rule="5 per attention-matrix element, heads × H'·W'·w² (scale, bias, softmax)"),
    Op("patch_merging", "reshape", _patch_merging_shape,
       keeps=(),
       window=lambda a, ins: ((2, 2, 1, 0),) * 2,
       args=(Arg("eps", "float", 1e-5, minimum=0),),
       params=lambda a, ins: 8 * ins[0][2] ** 2 + 8 * ins[0][2],
       macs=lambda a, ins, out: numel(out) * 4 * ins[0][2],
       other_ops=lambda a, ins, out: 5 * 2 * numel(out),
       module=_patch_merging_module, init=_patch_merging_init,
       describe=named("patch_merging"), caption=named("Patch Merging"),
       rule="H×W×C → ⌈H/2⌉×⌈W/2⌉×2C: each 2×2 patch's features joined (4C), layer-normed and "
            "projected to 2C (odd sizes padded)",
       lowers="`PatchMerging(C, eps)` (torchvision's Swin: `reduction`, `norm`)",
       macs_rule="output elements × 4 × input channels (the projection from 4C to 2C features)",
       params_rule="8·C² (the projection from 4C to 2C, no bias) + 8·C (its layer norm)",
       other_rule="5 per normalised element (its layer norm over 4C features)"),
    Op("sdpa", "attention", _sdpa_shape, merge=True, operands=(3, 4), module=_sdpa_module,
       keeps=("inputs",), autocast="low", kept_inside=_kept_sdpa,
       kept_text="with dropout on the CPU, three float32 L × S matrices per head (the math "
                 "kernel's); else its output and one float32 log-sum-exp per query (the fused "
                 "kernel's)",
       accepts=DTYPES,
       window=lambda a, ins: GLOBAL,
       args=(Arg("causal", "bool", False), Arg("scale", "float", None, above=0),
             Arg("dropout", "float", 0.0, minimum=0, below=1),
             Arg("softmax_dtype", "str", None, choices=("float32",))),
       macs=_sdpa_macs, other_ops=lambda a, ins, out: 5 * _sdpa_matrix(a, ins),
       workspace=_sdpa_matrix,
       describe=lambda a: "sdpa" + (" causal" if a["causal"] else ""),
       caption=lambda a: ("Masked " if a["causal"] else "") + "Scaled Dot-Product Attention",
       rule="`sdpa(q, k, v)` or `sdpa(q, k, v, mask)`: queries …×L×E, keys …×S×E, values "
            "…×S×Ev, the leading axes (heads) equal; result …×L×Ev: softmax(q·kᵀ·scale + "
            "mask)·v, `scale` 1/√E by default; a boolean mask (broadcast to L×S) keeps where "
            "true, a float one is added; `causal` masks each query from the keys after it; "
            "keys and values may have fewer heads (axis −3) dividing the queries' (grouped-"
            "query attention); `softmax_dtype = \"float32\"` computes the softmax in float32 "
            "whatever the precision, as transformers' eager attention does",
       lowers="`ScaledDotProductAttention(causal, scale, dropout, softmax_dtype)`: "
              "`F.scaled_dot_product_attention` (torch's fused kernels, `enable_gqa` for "
              "grouped heads; dropout in training only), no parameters; with `softmax_dtype` "
              "on float64 values, the products and a float32 softmax written out",
       macs_rule="…·L·S·(E + Ev): q·kᵀ and the weighted sum of values",
       other_rule="5 per attention-matrix element (scale, mask, softmax)"),
)
