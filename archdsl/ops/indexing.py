"""Integers and masks: `embedding` (token ids to learned vectors), comparisons that make
masks (`eq`, `ne`, `lt`, `le`, `gt`, `ge`), `where` (a mask choosing between values),
`gather` (entries picked by index), `topk` and `argmax` (the largest entries, or where
they are), and `positions` (0 .. n - 1 along an axis, for position encodings). Element
types are part of a shape (shapes.DTYPES); infer_shapes checks that each op reads the
types it takes."""
from __future__ import annotations

from .args import Arg, Args
from .elementwise import aligned, binary_emitter, broadcast
from .op import GLOBAL, Op, named, torch_axis
from .shapes import DTYPES, FLOATS, Shape, ShapeError, axes_of, describe, dtype_of, numel, show


# ---- embedding -------------------------------------------------------------------------


def _embedding_shape(args: Args, ins) -> Shape:
    (s,) = ins
    if args["padding_idx"] is not None and not 0 <= args["padding_idx"] < args["num"]:
        raise ShapeError("E0310", f"embedding padding_idx {args['padding_idx']} is not one of its "
                         f"{args['num']} rows", "no such row",
                         help=f"rows are numbered 0 to {args['num'] - 1}")
    positions = axes_of(s).replace("C", "L")  # the ids' axes are positions; features last
    return Shape(tuple(s) + (args["dim"],), positions + "C")


def _embedding_module(args: Args, ins):
    from torch import nn
    return nn.Embedding(args["num"], args["dim"], padding_idx=args["padding_idx"])


def _init_embedding(module, args: Args) -> None:
    """torch's N(0, 1), or N(0, std²) as transformers draws a language model's tables
    (`initializer_range`, 0.02: a head tied to the table starts with small logits); the
    padding row 0 either way."""
    if args["std"] is None:
        module.reset_parameters()
        return
    import torch
    with torch.no_grad():
        module.weight.normal_(0.0, args["std"])
        if module.padding_idx is not None:
            module.weight[module.padding_idx].zero_()


def _read_embedding(module):
    if module.max_norm is not None or module.scale_grad_by_freq or module.sparse:
        return None
    return "embedding", dict(num=module.num_embeddings, dim=module.embedding_dim,
                             padding_idx=module.padding_idx)


# ---- comparisons and where ---------------------------------------------------------------

COMPARISONS = {"eq": "==", "ne": "≠", "lt": "<", "le": "≤", "gt": ">", "ge": "≥"}


def _compare_shape(name: str):
    def shape(args: Args, ins) -> Shape:
        return broadcast(name, ins)
    return shape


def _comparison(name: str) -> Op:
    from .elementwise import CONSTANT
    return Op(name, "math", _compare_shape(name), args=CONSTANT, merge=True, operands=2,
              constants=True, accepts=FLOATS + ("int",), gives="bool", keeps=(),
              function=binary_emitter(name, name), other_ops=lambda a, ins, out: numel(out),
              describe=named(name), caption=named(COMPARISONS[name]),
              rule=f"a mask: `a {COMPARISONS[name]} b` element by element, broadcast over named "
                   f"axes; one operand may be a number: `{name}(ids, 0)`",
              lowers=f"`operator.{name}(a, b)` (a function, no module)",
              other_rule="1 per output element")


def _where_shape(args: Args, ins) -> Shape:
    mask = ins[0]
    if dtype_of(mask) != "bool":
        raise ShapeError("E0306", f"where chooses by a mask, not by {describe(mask)}",
                         "not a mask", help="make a mask with a comparison: `gt(x, 0)`")
    if len(ins) == 3 and dtype_of(ins[1]) != dtype_of(ins[2]):
        raise ShapeError("E0300", f"where chooses between {describe(ins[1])} and "
                         f"{describe(ins[2])}: one element type", "chosen here",
                         help="choose between values of one element type")
    if len(ins) == 2 and dtype_of(ins[1]) == "int" and args["constant"] is not None \
            and not float(args["constant"]).is_integer():
        raise ShapeError("E0306", f"where chooses between integers and {args['constant']:g}, "
                         "which is not one", "a fraction for integers",
                         help="choose a whole number, or between floats")
    if len(ins) == 3 and dtype_of(ins[1]) == "bool":
        raise ShapeError("E0306", "where chooses between values, not masks", "masks",
                         help="combine masks with `mul` of floats, or compare again")
    return broadcast("where", ins)


def _emit_where(graph, inputs, args, ins):
    import torch
    out = broadcast("where", ins)
    values = [aligned(graph, v, s, out) for v, s in zip(inputs, ins)]
    if args["constant"] is not None:  # a whole number beside integers stays an integer
        number = args["constant"]
        values.append(int(number) if dtype_of(ins[1]) == "int" else number)
    return graph.call_function(torch.where, tuple(values))


# ---- gather, topk, argmax ----------------------------------------------------------------


def _gather_shape(args: Args, ins) -> Shape:
    x, index = ins
    if dtype_of(index) != "int":
        raise ShapeError("E0306", f"gather picks by integer indices, not {describe(index)}",
                         "not indices", help="indices come from `topk(..., indices = true)`, "
                                             "`argmax` or an input of token ids")
    axis = args["axis"]
    if len(index) != len(x) or any(i > n for d, (i, n) in enumerate(zip(index, x)) if d != axis):
        raise ShapeError("E0300", f"gather from {show(x)} by indices {show(index)}: the indices "
                         f"need the same axes, none larger than the value's but axis {axis}",
                         "gathered here", help="indices of the value's rank")
    return Shape(tuple(index), axes_of(x))


def _emit_gather(graph, inputs, args, ins):
    import torch
    return graph.call_function(torch.gather, (inputs[0], torch_axis(args["axis"]), inputs[1]))


def _scatter_add_shape(args: Args, ins) -> Shape:
    x, index, source = ins
    if dtype_of(index) != "int":
        raise ShapeError("E0306", f"scatter_add places by integer indices, not "
                         f"{describe(index)}", "not indices",
                         help="indices come from `topk(..., indices = true)`, `argmax` or ids")
    if dtype_of(x) != dtype_of(source):
        raise ShapeError("E0300", f"scatter_add of {describe(source)} into {describe(x)}: one "
                         "element type", "added here", help="cast one: `cast_like(source, x)`")
    axis = args["axis"]
    if not len(x) == len(index) == len(source) or any(
            i > s or (d != axis and i > n) for d, (i, s, n) in enumerate(zip(index, source, x))):
        raise ShapeError("E0300", f"scatter_add into {show(x)} of {show(source)} by indices "
                         f"{show(index)}: all three need the same axes, the indices none larger "
                         f"than the source's, nor than the target's but along axis {axis}",
                         "added here", help="indices of the source's shape")
    return x


def _emit_scatter_add(graph, inputs, args, ins):
    import torch
    x, index, source = inputs
    return graph.call_function(torch.scatter_add, (x, torch_axis(args["axis"]), index, source))


def _one_hot_shape(args: Args, ins) -> Shape:
    (s,) = ins
    return Shape(tuple(s) + (args["num"],), axes_of(s).replace("C", "L") + "C")


def _emit_one_hot(graph, inputs, args, ins):
    import torch
    return graph.call_function(torch.nn.functional.one_hot, (inputs[0], args["num"]))


def _index_select_shape(args: Args, ins) -> Shape:
    table, index = ins
    if dtype_of(index) != "int":
        raise ShapeError("E0306", f"index_select picks by integer indices, not "
                         f"{describe(index)}", "not indices",
                         help="indices come from a `buffer` (a relative position index), "
                              "`topk(..., indices = true)`, `argmax` or token ids")
    axis = args["axis"]
    return Shape(tuple(table[:axis]) + tuple(index) + tuple(table[axis + 1:]))


def _emit_index_select(graph, inputs, args, ins):
    from .functions import index_select
    return graph.call_function(index_select, (inputs[0], inputs[1], torch_axis(args["axis"])))


def _topk_shape(args: Args, ins) -> Shape:
    (s,) = ins
    axis = args["axis"]
    if args["k"] > s[axis]:
        raise ShapeError("E0310", f"topk({args['k']}) of the {s[axis]} entries of axis {axis}",
                         "more than there are", help=f"k at most {s[axis]}")
    return Shape(s[:axis] + (args["k"],) + s[axis + 1:], axes_of(s))


def _emit_topk(graph, inputs, args, ins):
    import operator

    import torch
    both = graph.call_function(torch.topk, (inputs[0], args["k"], torch_axis(args["axis"]),
                                            args["largest"]))
    return graph.call_function(operator.getitem, (both, 1 if args["indices"] else 0))


def _argmax_shape(args: Args, ins) -> Shape:
    (s,) = ins
    axis = args["axis"]
    if args["keep"]:
        return Shape(s[:axis] + (1,) + s[axis + 1:], axes_of(s))
    if len(s) == 1:
        raise ShapeError("E0310", "argmax over the only axis leaves no axis", "nothing left",
                         help="keep the axis at size 1: `keep = true`")
    rest = axes_of(s)[:axis] + axes_of(s)[axis + 1:]
    return Shape(s[:axis] + s[axis + 1:], rest if "C" in rest else None)


def _emit_argmax(graph, inputs, args, ins):
    import torch
    return graph.call_function(torch.argmax, (inputs[0], torch_axis(args["axis"]),
                                              args["keep"]))


def _positions_shape(args: Args, ins) -> Shape:
    (s,) = ins
    return Shape((args["count"] or s[args["axis"]],))  # flat features, as every float vector


def _positions_module(args: Args, ins):
    from .functions import Positions
    if args["count"]:
        return Positions(torch_axis(args["axis"]), False, args["count"])
    return Positions(torch_axis(args["axis"]), args["axis"] in ins[0].follows)


def _window(args: Args, ins):
    return None if axes_of(ins[0])[args["axis"]] == "C" else GLOBAL


OPS = (
    Op("embedding", "linear", _embedding_shape, accepts=("int",),
       keeps=("in0",),
       args=(Arg("num", "int", minimum=1), Arg("dim", "int", minimum=1),
             Arg("padding_idx", "int", None, minimum=0), Arg("std", "float", None, minimum=0)),
       params=lambda a, ins: a["num"] * a["dim"], module=_embedding_module,
       tensors=lambda a, ins: {"weight": (a["num"], a["dim"])},
       init=_init_embedding,
       imports=("Embedding",), read=_read_embedding,
       describe=lambda a: f"embedding {a['num']}x{a['dim']}", caption=named("Embedding"),
       rule="token ids (L, int64) → L×dim tokens: row `id` of a learned num×dim table "
            "(`padding_idx`'s row stays 0 and learns nothing)",
       lowers="`nn.Embedding(num, dim, padding_idx)`; initialised N(0, 1), or N(0, std²) "
              "with `std`",
       params_rule="num × dim (the table)"),
    *(_comparison(name) for name in COMPARISONS),
    Op("where", "math", _where_shape, merge=True, operands=3, constants=True,
       keeps=(),
       args=(Arg("constant", "float", None), Arg("constant_first", "bool", False)),
       accepts=DTYPES, gives=lambda a, ins: dtype_of(ins[1]), function=_emit_where,
       other_ops=lambda a, ins, out: numel(out), describe=named("where"), caption=named("where"),
       rule="`where(mask, a, b)`: `a` where the mask holds, else `b` (a number may stand for "
            "`b`: `where(mask, x, -1e4)`), broadcast over named axes",
       lowers="`torch.where(mask, a, b)` (a function, no module)",
       other_rule="1 per output element"),
    Op("gather", "reshape", _gather_shape, merge=True, operands=2, accepts=DTYPES,
       keeps=("in1",),
       gives=lambda a, ins: dtype_of(ins[0]), args=(Arg("axis", "axis", 0),),
       function=_emit_gather, window=lambda a, ins: GLOBAL,
       describe=lambda a: f"gather {a['axis']}", caption=named("gather"),
       rule="`gather(x, index, axis)`: entry `index` along `axis` for each position of the "
            "int64 `index`, which has x's axes (none larger but `axis`); result index's sizes",
       lowers="`torch.gather(x, axis + 1, index)` (a function, no module)"),
    Op("scatter_add", "math", _scatter_add_shape, merge=True, operands=3,
       keeps=("in1",),
       accepts=DTYPES, gives=lambda a, ins: dtype_of(ins[0]), args=(Arg("axis", "axis", 0),),
       function=_emit_scatter_add, window=lambda a, ins: GLOBAL,
       other_ops=lambda a, ins, out: numel(ins[1]),
       describe=lambda a: f"scatter_add {a['axis']}", caption=named("scatter add"),
       rule="`scatter_add(x, index, source, axis)`: x, with each entry of `source` added at "
            "the position `index` (int64) names along `axis`; the three of one rank, "
            "index no larger than source, nor than x but along `axis`; result x's shape",
       lowers="`torch.scatter_add(x, axis + 1, index, source)` (a function, no module)",
       other_rule="1 per index"),
    Op("one_hot", "math", _one_hot_shape, accepts=("int",), gives="int",
       keeps=(),
       args=(Arg("num", "int", minimum=1),), function=_emit_one_hot,
       describe=lambda a: f"one_hot {a['num']}", caption=named("one-hot"),
       rule="integer ids (each below `num`) → their one-hot vectors, a new last axis of "
            "`num` (int64: 1 at the id, else 0); `cast_like` makes them floats",
       lowers="`F.one_hot(x, num)` (a function, no module)"),
    Op("index_select", "reshape", _index_select_shape, merge=True, operands=2, accepts=DTYPES,
       keeps=("in1",),
       gives=lambda a, ins: dtype_of(ins[0]), args=(Arg("axis", "axis", 0),),
       function=_emit_index_select, window=lambda a, ins: GLOBAL,
       describe=lambda a: f"index_select {a['axis']}", caption=named("index select"),
       rule="`index_select(table, index, axis)`: the entries of `table` along `axis` that the "
            "int64 `index` names; result: table's axes before `axis`, index's axes, table's "
            "after (a relative position bias: 169×heads by 49×49 gives 49×49×heads)",
       lowers="`table[index]` along the axis, sample by sample (`torch.gather`; a function, "
              "no module)"),
    Op("topk", "math", _topk_shape, accepts=FLOATS + ("int",),
       keeps=(),
       gives=lambda a, ins: "int" if a["indices"] else dtype_of(ins[0]),
       args=(Arg("k", "int", minimum=1), Arg("axis", "axis", -1), Arg("largest", "bool", True),
             Arg("indices", "bool", False)),
       function=_emit_topk, window=_window, other_ops=lambda a, ins, out: numel(ins[0]),
       describe=lambda a: f"topk {a['k']}" + (" indices" if a["indices"] else ""),
       caption=named("top-k"),
       rule="the `k` largest (smallest with `largest = false`) entries along `axis`, in "
            "order; with `indices = true` where they are (int64): a router's choice of experts",
       lowers="`torch.topk(x, k, axis + 1, largest)[0]` (`[1]` for indices)",
       other_rule="1 per input element"),
    Op("positions", "math", _positions_shape, accepts=DTYPES,
       keeps=(),
       gives=lambda a, ins: dtype_of(ins[0]) if dtype_of(ins[0]) in FLOATS else "float32",
       args=(Arg("axis", "axis", 0), Arg("count", "int", None, minimum=1)),
       module=_positions_module,
       describe=lambda a: f"positions {a['count']}" if a["count"] else f"positions {a['axis']}",
       caption=named("positions"),
       rule="0, 1, …, n − 1 in the value's float type (float32 for integers) for the "
            "n entries of `axis` (or n = `count`, whatever the value's sizes), as n flat "
            "features: the positions from which encodings are "
            "computed (RoPE's angles with `einsum`, a timestep embedding's frequencies)",
       lowers="`Positions(axis + 1, sequence, count)`: `torch.arange(n)` in the value's float "
              "type, on its device; along a sequence (an axis that follows a length symbol) "
              "from the KV cache's length while generating"),
    Op("argmax", "math", _argmax_shape, accepts=FLOATS + ("int",), gives="int",
       keeps=(),
       args=(Arg("axis", "axis", -1), Arg("keep", "bool", False)),
       function=_emit_argmax, window=_window, other_ops=lambda a, ins, out: numel(ins[0]),
       describe=lambda a: f"argmax {a['axis']}", caption=named("argmax"),
       rule="where the largest entry along `axis` is (int64); the axis goes away, or stays "
            "at 1 with `keep = true`: greedy decoding's next token",
       lowers="`torch.argmax(x, axis + 1, keep)` (a function, no module)",
       other_rule="1 per input element"),
)
