"""Ops over axes, which move values without arithmetic (`flatten`, `transpose`,
`permute`, `reshape`, `take`, `slice`, and `identity`, which leaves them be). Axis
arguments arrive normalised (`normalise_axes`): numbered from 0 without the batch, never
negative."""
from __future__ import annotations

from .args import Arg, Args
from .op import Op, named, same, torch_axis, torch_layer
from .shapes import DTYPES, Shape, ShapeError, axes_of, default_axes, numel, show


def _emit_method(name: str, arguments):
    """`x.name(*arguments(args))`: a tensor method, the axes numbered as torch numbers them."""
    def emit(graph, inputs, args, ins):
        return graph.call_method(name, (inputs[0], *arguments(args)))
    return emit


# ---- flatten, reshape: merging and splitting axes ----------------------------------------


def _merged_axis(letters: str) -> str:
    return "C" if "C" in letters else "L"


def _flatten_shape(args: Args, ins) -> Shape:
    (s,) = ins
    axes = axes_of(s)
    start, end = args["start"], args["end"]
    if end < start:
        raise ShapeError("E0310", f"flatten ends at axis {end}, before its start {start}",
                         "empty range", help="give `start` <= `end`")
    dims = s[:start] + (numel(s[start:end + 1]),) + s[end + 1:]
    return Shape(dims, axes[:start] + _merged_axis(axes[start:end + 1]) + axes[end + 1:])


def _emit_flatten(graph, inputs, args, ins):
    import torch
    start = torch_axis(args["start"])
    if args["end"] == len(ins[0]) - 1:  # to the last axis: torch's own default
        return graph.call_function(torch.flatten, (inputs[0], start))
    return graph.call_function(torch.flatten, (inputs[0], start, torch_axis(args["end"])))


def _reshape_shape(args: Args, ins) -> Shape:
    (s,) = ins
    dims = list(args["dims"])
    if dims.count(-1) > 1 or any(d == 0 or d < -1 for d in dims):
        raise ShapeError("E0310", "reshape takes positive sizes and at most one -1",
                         "bad sizes", help="write the sizes, with -1 for the one to infer")
    known = numel(d for d in dims if d != -1)
    if -1 in dims:
        if numel(s) % known:
            raise ShapeError("E0310", f"reshape cannot fit {numel(s)} elements into "
                             f"{' x '.join(map(str, dims))}", "does not divide",
                             help=f"the sizes other than -1 must divide {numel(s)}")
        dims[dims.index(-1)] = numel(s) // known
    if numel(dims) != numel(s):
        raise ShapeError("E0310", f"reshape to {show(dims)} ({numel(dims)} elements) from "
                         f"{show(s)} ({numel(s)} elements)", "element counts differ",
                         help="the sizes must multiply to the input's element count")
    return Shape(tuple(dims), _reshaped_axes(axes_of(s), len(dims)))


def _reshaped_axes(axes: str, rank: int) -> str | None:
    """The names of a reshape's axes: features stay last where they were last on an axis
    of positions (tokens to an H x W x C map, or to L x heads x d); else the default names
    of the rank (flat features to a C x H x W map)."""
    if len(axes) >= 2 and axes.endswith("C") and rank >= 3:
        return "L" * (rank - 3) + "HWC"
    return None


def _emit_reshape(graph, inputs, args, ins):
    batch = graph.call_method("size", (inputs[0], 0))
    return graph.call_method("reshape", (inputs[0], batch, *args["dims"]))


# ---- transpose, permute: reordering axes -------------------------------------------------


def _transpose_shape(args: Args, ins) -> Shape:
    (s,) = ins
    a, b = args["a"], args["b"]
    order = list(range(len(s)))
    order[a], order[b] = b, a
    return _permuted(s, order)


def _permuted(s: Shape, order) -> Shape:
    axes = axes_of(s)
    return Shape(tuple(s[i] for i in order), "".join(axes[i] for i in order))


def _permute_shape(args: Args, ins) -> Shape:
    (s,) = ins
    order = list(args["order"])
    if sorted(order) != list(range(len(s))):
        raise ShapeError("E0310", f"permute({', '.join(map(str, args['order']))}) does not "
                         f"name each of the {len(s)} axes once", "not a permutation",
                         help=f"list every axis 0 to {len(s) - 1} once, in the new order")
    return _permuted(s, order)


# ---- take, slice: picking from one axis ---------------------------------------------


def _take_shape(args: Args, ins) -> Shape:
    return _removed_axis("take", args, ins)


def _removed_axis(op: str, args: Args, ins) -> Shape:
    """The shape once entry `index` of `axis` is taken."""
    (s,) = ins
    axis = args["axis"]
    if len(s) == 1:
        raise ShapeError("E0310", f"{op} would remove the only axis", "nothing left",
                         help=f"{op} over a value with two or more axes")
    if not -s[axis] <= args["index"] < s[axis]:
        raise ShapeError("E0310", f"take({args['index']}) is outside the {s[axis]} entries of "
                         f"axis {axis}", "no such entry",
                         help=f"entries are numbered 0 to {s[axis] - 1} (or -1 for the last)")
    axes = axes_of(s)
    return Shape(s[:axis] + s[axis + 1:], _without_axis(axes, axis))


def _without_axis(axes: str, axis: int) -> str:
    """The letters left when `axis` goes away. Without the channels, what is left reads as
    a tensor of its rank does in torch (the default letters): the L samples left of one
    channel of a signal are flat features, an H x W map's rows are tokens."""
    rest = axes[:axis] + axes[axis + 1:]
    return rest if "C" in rest else default_axes(len(rest))


def _slice_shape(args: Args, ins) -> Shape:
    (s,) = ins
    axis = args["axis"]
    kept = len(range(*slice(args["start"], args["end"], args["step"]).indices(s[axis])))
    if kept == 0:
        raise ShapeError("E0310", f"slice({args['start']}, {args['end']}) keeps nothing of the "
                         f"{s[axis]} entries of axis {axis}", "empty",
                         help=f"entries are numbered 0 to {s[axis] - 1}; `end` is not kept")
    return Shape(s[:axis] + (kept,) + s[axis + 1:], axes_of(s))


def _emit_slice(graph, inputs, args, ins):
    import operator
    index = (slice(None),) * torch_axis(args["axis"]) + (
        slice(args["start"], args["end"], args["step"]),)
    return graph.call_function(operator.getitem, (inputs[0], index))


def _pad_shape(args: Args, ins) -> Shape:
    (s,) = ins
    axis = args["axis"]
    return Shape(s[:axis] + (s[axis] + args["before"] + args["after"],) + s[axis + 1:],
                 axes_of(s))


def _emit_pad(graph, inputs, args, ins):
    from .functions import pad_axis
    return graph.call_function(pad_axis, (inputs[0], torch_axis(args["axis"]), args["before"],
                                          args["after"]))


def _sequence_pad(args: Args, ins) -> bool:
    """Zeros ahead of a sequence only (a causal convolution's padding): a module that
    can carry the last entries over while a language model generates."""
    return args["before"] > 0 and args["after"] == 0 and args["axis"] in ins[0].follows


def _pad_module(args: Args, ins):
    from .functions import SequencePad
    return SequencePad(torch_axis(args["axis"]), args["before"])


def _emit_roll(graph, inputs, args, ins):
    import torch
    return graph.call_function(torch.roll, (inputs[0], args["shift"], torch_axis(args["axis"])))


def _read_flatten(m):
    if m.start_dim < 1:  # the batch too: no archdsl layer does that
        return None
    return "flatten", dict(start=m.start_dim - 1, end=m.end_dim if m.end_dim < 0
                           else m.end_dim - 1)


OPS = (
    Op("identity", "reshape", same("identity"), accepts=DTYPES, gives=None,
       keeps=(), view=True,
       module=torch_layer("Identity"),
       describe=named("identity"), caption=named("identity"),
       lowers="`nn.Identity()`"),
    Op("flatten", "reshape", _flatten_shape, accepts=DTYPES, gives=None, function=_emit_flatten,
       keeps=(), view=True,
       imports=("Flatten",),
       read=_read_flatten,
       args=(Arg("start", "axis", 0), Arg("end", "axis", -1)),
       describe=lambda a: "flatten" if a["start"] == 0
       else f"flatten {a['start']}..{a['end']}", caption=named("flatten"),
       rule="axes `start` to `end` (from 0, batch excluded; -1 the last) become one; by "
            "default all: C·H·W flat features. `flatten(1, 2)` makes C×H×W a C×(H·W) signal",
       lowers="`torch.flatten(x, start + 1)`, or `torch.flatten(x, start + 1, end + 1)` when "
              "`end` is not the last axis (a function)"),
    Op("transpose", "reshape", _transpose_shape, accepts=DTYPES, gives=None,
       keeps=(), view=True,
       args=(Arg("a", "axis", 0), Arg("b", "axis", 1)),
       function=_emit_method("transpose", lambda a: (torch_axis(a["a"]), torch_axis(a["b"]))),
       describe=lambda a: f"transpose {a['a']},{a['b']}", caption=named("transpose"),
       rule="axes `a` and `b` swap (from 0, batch excluded): a C×L signal becomes L×C tokens",
       lowers="`x.transpose(a + 1, b + 1)` (a function, no module)"),
    Op("permute", "reshape", _permute_shape, accepts=DTYPES, gives=None, args=(Arg("order", "axes"),),
       keeps=(), view=True,
       function=_emit_method("permute", lambda a: (0, *(torch_axis(i) for i in a["order"]))),
       describe=lambda a: "permute " + ",".join(map(str, a["order"])), caption=named("permute"),
       rule="the axes in the order given, each once: `permute(1, 2, 0)` makes C×H×W a "
            "channels-last H×W×C map",
       lowers="`x.permute(0, order + 1...)` (a function, no module)"),
    Op("reshape", "reshape", _reshape_shape, accepts=DTYPES, gives=None, args=(Arg("dims", "dims"),),
       keeps=(), view=True,
       function=_emit_reshape,
       describe=lambda a: "reshape " + "x".join(map(str, a["dims"])), caption=named("reshape"),
       rule="the sizes given (one may be -1, inferred), same element count; features that "
            "were last on tokens or a channels-last map stay last (L×C to H×W×C, or to "
            "L×heads×d), else the axes take the default names of their count",
       lowers="`x.reshape(x.size(0), dims...)` (a function, no module)"),
    Op("take", "reshape", _take_shape, accepts=DTYPES, gives=None,
       keeps=(), view=True,
       args=(Arg("index", "int"), Arg("axis", "axis", 0)),
       function=_emit_method("select", lambda a: (torch_axis(a["axis"]), a["index"])),
       describe=lambda a: f"take {a['index']}", caption=lambda a: f"token {a['index']}",
       rule="entry `index` of `axis`, which goes away: `take(0)` on L×C tokens is the first "
            "token's C features (a class token)",
       lowers="`x.select(axis + 1, index)` (a function, no module)"),
    Op("slice", "reshape", _slice_shape, accepts=DTYPES, gives=None,
       keeps=(), view=True,
       args=(Arg("start", "int"), Arg("end", "int"), Arg("axis", "axis", 0),
             Arg("step", "int", 1, minimum=1)),
       function=_emit_slice,
       describe=lambda a: f"slice {a['start']}:{a['end']}", caption=named("slice"),
       rule="entries `start` to `end` (not kept; negative counts from the end, as Python) of "
            "`axis`, every `step`-th: `slice(1, 197)` drops a class token",
       lowers="`x[:, start:end:step]` on the axis (a function, no module)"),
    Op("pad", "reshape", _pad_shape, accepts=DTYPES, gives=None,
       keeps=(),
       args=(Arg("before", "int", minimum=0), Arg("after", "int", minimum=0),
             Arg("axis", "axis", 0)),
       function=_emit_pad, module=_pad_module, module_when=_sequence_pad,
       describe=lambda a: f"pad {a['before']},{a['after']}",
       caption=named("pad"),
       rule="`before` zeros ahead of and `after` zeros behind the entries of `axis`, which "
            "grows by both: a map padded to whole windows",
       lowers="`F.pad` on that axis (a function, no module); zeros ahead of a sequence "
              "only, `SequencePad(axis + 1, before)`, which while generating puts the last "
              "entries it saw there instead"),
    Op("roll", "reshape", lambda a, ins: ins[0], accepts=DTYPES, gives=None,
       keeps=(),
       args=(Arg("shift", "int"), Arg("axis", "axis", 0)),
       function=_emit_roll, describe=lambda a: f"roll {a['shift']}", caption=named("roll"),
       rule="unchanged; the entries of `axis` moved by `shift` places, those pushed off the "
            "end coming back at the start (Swin's shifted windows)",
       lowers="`torch.roll(x, shift, axis + 1)` (a function, no module)"),
)
