"""Check accepts ⇒ the spec builds: lowered to torch.fx it runs, and every value has the
shape check inferred for it, output and intermediate alike.

The specs are random chains over the whole op table (`OPS`), on every input layout
(`LAYOUTS`), with merges of earlier values, declared parameters and second inputs, and
outputs on the way. Each op has one entry in `LAYERS` or `MERGES` that says how its arguments
are drawn: from the op's declared `Arg`s (kind, bounds, choices), steered by the shape of
the value it reads so that most chains are accepted. Axis arguments are drawn negative as
often as positive. A chain grows one statement at a time, and check itself (compiling the
prefix) says what shape the next statement reads: this test trusts no shape rule of its
own, it only asks torch whether check was right.

specgen's generators (residuals, blocks, auxiliary heads, named merges) go through the
same property, for the structure that chains lack.
"""
from __future__ import annotations

import math
from functools import partial
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from archdsl import compile_source, ir
from archdsl.ops import OPS, REQUIRED, Arg, Derived
from archdsl.ops.shapes import LAYOUT_DTYPES, LAYOUTS, PRECISIONS, Shape

from specgen import channels_first_specs, sequence_specs, specs

torch = pytest.importorskip("torch")
from torch import fx  # noqa: E402

from archdsl.backends.lower_fx import AuxiliaryNetwork, lower_fx  # noqa: E402
from archdsl.runtime.inputs import example_inputs  # noqa: E402

# check's element types, as torch's tensors show them
DTYPES = {"float": torch.Tensor.is_floating_point, "int": lambda t: t.dtype == torch.int64,
          "bool": lambda t: t.dtype == torch.bool,
          **{p: partial(lambda name, t: t.dtype == getattr(torch, name), p) for p in PRECISIONS}}

# a std or var over fewer entries than its correction is NaN, as torch says: shapes still hold
pytestmark = pytest.mark.filterwarnings("ignore:std\\(\\)|var\\(\\):UserWarning")

MAX_CHANNELS = 8  # tiny sizes: a few hundred examples run in seconds
MAX_SPATIAL = 9
MAX_STATEMENTS = 6
TRIES = 8  # statements tried at each step before the chain ends with a rejected one
NICE_FLOATS = (0.0, 1e-5, 0.01, 0.1, 0.25, 0.5, 0.9, 1.0, 2.0, -0.5)
LAYOUT_OF = {axes: name for name, axes in LAYOUTS.items()}  # a value's axes -> `as` name


# ---- where a statement starts: the values of the chain so far, with check's shapes ----


@dataclass
class Chain:
    """The statements so far, the shape check gave every named value, the current one."""
    lines: list[str]
    shapes: dict[str, Shape] = field(default_factory=dict)
    current: str = "x"
    declared: int = 0  # params and inputs beside x, numbered for their names
    outputs: list[str] = field(default_factory=list)

    @property
    def shape(self) -> Shape:
        return self.shapes[self.current]

    def text(self, more: tuple[str, ...] = ()) -> str:
        """The network, `more` statements added; once it has `output` statements, the last
        value is one too (else it would be dead: E0220)."""
        ending = ["output last"] if self.outputs else []
        body = "\n    ".join(self.lines + list(more) + ending)
        return f"network chain {{\n    {body}\n}}\n"


CRASHED = "check crashed"  # the chain ends with the statement, and the property reports it


def checked_shapes(text: str, label: str) -> dict[str, Shape] | str | None:
    """check's shape of every value a later statement may name (the input, labels), with
    `label` the value of the last statement; None when check rejects the text, CRASHED
    when it raises."""
    try:
        result = compile_source(text, "chain.arch")
    except Exception:
        return CRASHED
    if not result.ok:
        return None
    graph = result.graph
    shapes = {name: ir.shape(graph, name) for name in graph.nodes if NAMEABLE.fullmatch(name)}
    # the last statement made the last node: by its label, since a labelled merge of
    # branches is the value `s3` but the node `s3.concat`
    shapes[label] = ir.shape(graph, list(graph.nodes)[-1])
    return shapes


NAMEABLE = re.compile(r"x|s\d+")  # the first input and the labelled statements: the values
# a merge may take again (a param or second input is declared afresh for one merge)


# ---- drawing one argument from its declaration ------------------------------------------


def spatial_sizes(shape: Shape) -> list[int]:
    """The sizes of the axes a conv or pool slides over (all but the channels)."""
    return [n for axis, n in zip(shape.axes, shape) if axis != "C"] or [1]


def divisors(n: int) -> list[int]:
    return [d for d in range(1, min(n, MAX_CHANNELS) + 1) if n % d == 0]


def in_bounds(arg: Arg, value: float) -> bool:
    return ((arg.minimum is None or value >= arg.minimum)
            and (arg.maximum is None or value <= arg.maximum)
            and (arg.below is None or value < arg.below)
            and (arg.above is None or value > arg.above))


def int_range(arg: Arg, low: int, high: int) -> st.SearchStrategy:
    """Integers of [low, high] narrowed to the argument's declared bounds."""
    if arg.minimum is not None:
        low = max(low, math.ceil(arg.minimum))
    if arg.maximum is not None:
        high = min(high, math.floor(arg.maximum))
    if arg.below is not None:
        high = min(high, math.ceil(arg.below) - 1)
    return st.integers(low, max(low, high))


def per_axis(arg: Arg, shape: Shape, low: int, high: int) -> st.SearchStrategy:
    """One integer for every spatial axis, or one per axis (a tuple of 2 or 3)."""
    count = len(spatial_sizes(shape))
    one = int_range(arg, low, high)
    if count == 1 or arg.kind == "int":
        return one
    return one | st.tuples(*[one] * (2 if arg.kind == "pair" else count))


def an_axis(shape: Shape) -> st.SearchStrategy:
    """An axis of the value, negative (from the end) as often as not."""
    return st.integers(-len(shape), len(shape) - 1)


def reduced(shape: Shape) -> st.SearchStrategy:
    """One or more distinct axes, each written positive or negative."""
    rank = len(shape)
    return st.permutations(range(rank)).flatmap(lambda order: st.integers(1, rank).flatmap(
        lambda n: st.tuples(*[st.sampled_from([i, i - rank]) for i in order[:n]])))


def an_order(shape: Shape) -> st.SearchStrategy:
    """Every axis once, each written positive or negative."""
    rank = len(shape)
    return st.permutations(range(rank)).flatmap(lambda order: st.tuples(
        *[st.sampled_from([i, i - rank]) for i in order]))


@st.composite
def sizes_of(draw, count: int) -> tuple[int, ...]:
    """New sizes with the element count of `count`; sometimes one of them -1."""
    dims, left = [], count
    for _ in range(draw(st.integers(0, 3))):
        size = draw(st.sampled_from(divisors(left) if left <= MAX_CHANNELS
                                    else [d for d in range(1, 10) if left % d == 0]))
        dims.append(size)
        left //= size
    dims.append(left)
    dims = draw(st.permutations(dims))
    if draw(st.booleans()):
        dims[draw(st.integers(0, len(dims) - 1))] = -1
    return tuple(dims)


def generic(arg: Arg, shape: Shape) -> st.SearchStrategy:
    """A value of the argument's declared kind, within its declared bounds and choices."""
    if arg.choices:
        return st.sampled_from(arg.choices)
    kind = arg.kind
    if kind == "bool":
        return st.booleans()
    if kind == "float":
        return st.sampled_from([v for v in NICE_FLOATS if in_bounds(arg, v)])
    if kind == "int":
        return int_range(arg, -3, MAX_CHANNELS)
    if kind == "axis":
        return an_axis(shape)
    if kind == "axes":
        return an_order(shape)
    if kind == "dims":
        return sizes_of(math.prod(shape))
    if kind in ("pair", "sizes"):
        return per_axis(arg, shape, 1, 3)
    if kind == "pad":
        return per_axis(arg, shape, 0, 2) | st.sampled_from(["same", "valid"])
    raise AssertionError(f"no generic draw for argument kind {kind!r} ({arg.name}): add it here")


# ---- how each op's arguments are drawn -----------------------------------------------------
# A hint says only what the declaration cannot: sizes that fit the value read, divisors,
# the axis an index is taken on. Every other argument comes from `generic`. Hints are drawn
# in the order of ORDER, then the declared order, so that an index can follow its axis.

Hint = Callable[[Arg, Shape, dict], st.SearchStrategy]  # (argument, shape read, the
# arguments drawn so far, defaults included) -> values


def kernel_fits(arg, shape, args):
    return per_axis(arg, shape, 1, min(3, max(spatial_sizes(shape)) + 1))


def pool_pad(arg, shape, args):
    kernel = args["kernel"]
    if isinstance(kernel, tuple):
        return st.tuples(*[st.integers(0, k // 2) for k in kernel])
    return st.integers(0, kernel // 2)


def conv_pad(arg, shape, args):
    fixed = per_axis(arg, shape, 0, 2) | st.just("valid")
    stride = args["stride"]
    return fixed | st.just("same") if stride in (1, (1, 1), (1, 1, 1)) else fixed


def width(arg, shape, args):
    return int_range(arg, 1, MAX_CHANNELS)


def groups_of_both(arg, shape, args):
    return st.sampled_from([g for g in divisors(shape[0]) if args["channels"] % g == 0])


def groups_of_channels(arg, shape, args):
    return st.sampled_from(divisors(shape[0]))


def heads(arg, shape, args):
    return st.sampled_from(divisors(shape[-1]))


def entry_of_axis(arg, shape, args):
    """An entry of the axis the op reads: from -n to n - 1."""
    size = shape[args["axis"]] if -len(shape) <= args["axis"] < len(shape) else 1
    return st.integers(-size, size - 1)


def size_of(shape, args) -> int:
    """The size of the axis the op reads (1 where the drawn axis is not one of them)."""
    return shape[args["axis"]] if -len(shape) <= args["axis"] < len(shape) else 1


def slice_end(arg, shape, args):
    size = shape[args["axis"]] if -len(shape) <= args["axis"] < len(shape) else 1
    return st.integers(-size - 1, size + 1)


def axis(arg, shape, args):
    return an_axis(shape)


def small(low, high):
    return lambda arg, shape, args: int_range(arg, low, high)


def below(name):
    """0 to one less than another argument (the least of its sizes, if one per axis)."""
    return lambda arg, shape, args: st.integers(0, max(least(args[name]) - 1, 0))


def least(value) -> int:
    return min(value) if isinstance(value, tuple) else value


def sizes(low, high):
    return lambda arg, shape, args: per_axis(arg, shape, low, high)


CONV = {"channels": width, "kernel": kernel_fits, "stride": sizes(1, 2), "pad": conv_pad,
        "dilation": sizes(1, 2), "groups": groups_of_both}
POOL = {"kernel": kernel_fits, "stride": sizes(1, 2), "pad": pool_pad}
# Axis arguments have hints too, though `generic` draws the `axis` kind alike: so they are
# drawn as axes (negative half the time) whatever kind the table declares them.

# every op that can stand in a chain, with the hints for its arguments
LAYERS: dict[str, dict[str, Hint]] = {
    "conv": CONV,
    "batchnorm": {},
    "lrn": {"size": small(1, 5)},
    "relu": {}, "relu6": {}, "leaky_relu": {}, "sigmoid": {}, "tanh": {}, "gelu": {},
    "silu": {}, "hardswish": {}, "hardsigmoid": {}, "softmax": {"axis": axis}, "dropout": {},
    "identity": {},
    "maxpool": POOL | {"dilation": sizes(1, 2)},
    "avgpool": POOL,
    "global_avgpool": {},
    "adaptive_avgpool": {"height": small(1, 4), "width": small(1, 4)},
    "upsample": {"scale": small(1, 2)},
    "resize": {"height": small(1, MAX_SPATIAL), "width": small(1, MAX_SPATIAL)},
    "flatten": {"start": axis, "end": axis},
    "linear": {"features": width},
    "layernorm": {},
    "groupnorm": {"groups": groups_of_channels},
    "conv_transpose": {"channels": width, "kernel": sizes(1, 3), "stride": sizes(1, 2),
                       "pad": sizes(0, 1), "output_pad": below("stride"),
                       "groups": groups_of_both, "dilation": sizes(1, 2)},
    "chunk": {"chunks": groups_of_channels, "index": below("chunks")},
    "channel_linear": {"features": width},
    "channel_shuffle": {"groups": groups_of_channels},
    "scale": {},
    "stochastic_depth": {},
    "pad_channels": {"channels": lambda a, s, _: st.integers(s[0], s[0] + 3)},
    "transpose": {"a": axis, "b": axis},
    "permute": {"order": lambda a, s, _: an_order(s)},
    "reshape": {"dims": lambda a, s, _: sizes_of(math.prod(s))},
    "take": {"axis": axis, "index": entry_of_axis},
    "slice": {"axis": axis, "start": slice_end, "end": slice_end, "step": small(1, 3)},
    **{name: {"axis": lambda a, s, _: reduced(s)} for name in ("sum", "mean", "amax", "amin",
                                                                "norm")},
    **{name: {"axis": lambda a, s, _: reduced(s), "correction": small(0, 1)}
       for name in ("var", "std")},
    "cumsum": {"axis": axis}, "log_softmax": {"axis": axis},
    # ids from argmax or topk reach their axis's size: check refuses a smaller table (E0313)
    "embedding": {"num": small(1, 24), "dim": width, "padding_idx": below("num")},
    "topk": {"axis": axis, "k": lambda a, s, args: st.integers(1, max(1, size_of(s, args)))},
    "argmax": {"axis": axis}, "positions": {"axis": axis}, "rms_norm": {},
    "pad": {"axis": axis, "before": small(0, 2), "after": small(0, 2)},
    "roll": {"axis": axis, "shift": small(-3, 3)},
    "cast": {},
    "one_hot": {"num": small(1, 24)},
    "softplus": {},
    **{name: {} for name in ("neg", "exp", "log", "sqrt", "rsqrt", "reciprocal", "square",
                             "abs", "sin", "cos", "erf")},
    "attention": {"heads": heads},
    "window_attention": {"heads": heads, "window": small(1, 4), "shift": below("window")},
    "patch_merging": {},
}
ORDER = ("axis", "kernel", "stride", "window", "chunks", "num")  # drawn first: others read them

# the ops that are no statement of a chain: they make values from nothing
SOURCES = {
    "input": "every chain starts at one (`input_statement` draws its layout and sizes); "
             "merges may declare more as operands (`declared_value`)",
    "parameter": "a `param` declaration, not a layer: merges declare them as operands "
                 "(`declared_value`), with inits drawn from the op's declared choices",
    "buffer": "a `buffer` declaration, not a layer: `index_select_statement` declares a "
              "relative position index to look a table up by",
}


@st.composite
def arguments(draw, op_name: str, shape: Shape) -> dict:
    """Values for the op's arguments: required ones always, optional ones half the time
    (else their default, which the hints see)."""
    op, hints = OPS[op_name], LAYERS[op_name]
    declared = {arg.name: arg for arg in op.args}
    order = [n for n in ORDER if n in declared] + [n for n in declared if n not in ORDER]
    given = {name for name in declared
             if declared[name].default is REQUIRED or draw(st.booleans())}
    values = {}
    for name in order:  # defaults first, so that a hint may read them
        default = declared[name].default
        if name not in given and not isinstance(default, Derived):
            values[name] = default
    for name in order:
        arg = declared[name]
        if name in given:
            hint = hints.get(name)
            values[name] = draw(hint(arg, shape, values) if hint else generic(arg, shape))
        elif isinstance(arg.default, Derived):
            values[name] = values[arg.default.source]
    return {name: values[name] for name in declared if name in given}


def value_text(value) -> str:
    """A value as .arch writes it: `true`, `(3, 3)`, `"bilinear"`; `same` and `valid`
    may stand bare, but a string in quotes is what every kind takes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(value_text, value)) + ")"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def call_text(op_name: str, values: dict) -> str:
    """`conv(8, 3, stride = 2)`: required arguments by position, the others by name; a
    list of axes (permute, reshape) as its trailing positional arguments."""
    declared = OPS[op_name].args
    parts = []
    for arg in declared:
        if arg.name not in values:
            continue
        value = values[arg.name]
        if arg.kind in ("axes", "dims") and arg.default is REQUIRED:
            parts += [value_text(v) for v in value]
        elif arg.default is REQUIRED:
            parts.append(value_text(value))
        else:
            parts.append(f"{arg.name} = {value_text(value)}")
    return f"{op_name}({', '.join(parts)})" if parts else op_name


# ---- merges: the other operands are earlier values, the value itself, or a `param` ------


@st.composite
def declared_value(draw, chain: Chain, kind: str, shape: tuple, axes: str):
    """A new `param` (its init drawn from the `parameter` op's declaration) or a second
    `input` of this shape: (statements, name), or None where the layout has no name."""
    layout = LAYOUT_OF.get(axes)
    if layout is None:
        return None
    chain.declared += 1
    dims = f"{' x '.join(map(str, shape))} as {layout}"
    if kind == "input" or layout in LAYOUT_DTYPES:  # a parameter holds floats only
        return [f"input i{chain.declared}: {dims}"], f"i{chain.declared}"
    declared = {arg.name: arg for arg in OPS["parameter"].args}
    init = draw(st.sampled_from(declared["init"].choices))
    if init in ("normal", "trunc_normal"):
        std, mean = (draw(generic(declared[n], Shape((1,)))) for n in ("std", "mean"))
        init = f"{init}(std = {std}, mean = {mean})"
    return [f"param p{chain.declared}: {dims} = {init}"], f"p{chain.declared}"


@st.composite
def operand(draw, chain: Chain, fits: Callable[[Shape], bool], made: st.SearchStrategy):
    """Another operand for a merge with the current value: an earlier value that fits, a
    new parameter or input of a shape drawn from `made`, or the current value itself."""
    earlier = [name for name, shape in chain.shapes.items()
               if name != chain.current and fits(shape)]
    kind = draw(st.sampled_from(["itself", "param", "param", "input"]
                                + (["earlier"] * 2 if earlier else [])))
    if kind == "earlier":
        return [], draw(st.sampled_from(earlier))
    if kind in ("param", "input"):
        dims, axes = draw(made)
        declared = draw(declared_value(chain, kind, dims, axes))
        if declared is not None:
            return declared
    return [], chain.current


def broadcast_shapes(shape: Shape) -> st.SearchStrategy:
    """Shapes that broadcast with `shape`: each size kept or 1, or the channels alone
    (a `C` vector, placed on the channels by name)."""
    same_rank = st.tuples(*[st.sampled_from([n, 1]) for n in shape]).map(
        lambda dims: (dims, shape.axes))
    if "C" in shape.axes and len(shape) > 1:
        return same_rank | st.just(((shape.size("C"),), "C"))
    return same_rank


def broadcasts(shape: Shape):
    def fits(s):
        if len(s) == len(shape):
            return s.axes == shape.axes and all(a in (b, 1) for a, b in zip(s, shape))
        return s.axes == "C" and "C" in shape.axes and s[0] in (shape.size("C"), 1)
    return fits


def binary_statement(op: str):
    """`op(a, b)`, `op(b)` (with the current value), or a number for one operand; `add`
    and `mul` sometimes of three values."""
    @st.composite
    def draw_statement(draw, chain: Chain, label: str):
        lines, names = [], [chain.current]
        count = draw(st.integers(1, 2)) if OPS[op].operands is None else 1
        for _ in range(count):
            more, name = draw(operand(chain, broadcasts(chain.shape), broadcast_shapes(chain.shape)))
            lines, names = lines + more, names + [name]
        form = draw(st.sampled_from(["values", "values", "alone", "number"]))
        if form == "number":
            number = draw(st.sampled_from(["2", "0.5", "-1", "1e-6"]))
            names = draw(st.permutations([chain.current, number]))
            lines = []  # the drawn operand is not used: nor declared
        elif form == "alone" and len(names) == 2 and not any(
                line.startswith("input") for line in lines):  # an input becomes current
            names = names[1:]
        else:
            names = draw(st.permutations(names))
        return lines + [f"{label}: {op}({', '.join(names)})"]
    return draw_statement


@st.composite
def where_statement(draw, chain: Chain, label: str):
    """`where(mask, current, other)`: a mask from comparing the current value, or a number
    for the other."""
    shape = chain.shape
    compare = draw(st.sampled_from(["gt", "lt", "eq", "ge"]))
    lines = [f"{label}m: {compare}({chain.current}, 0)"]
    more, other = draw(operand(chain, broadcasts(shape), broadcast_shapes(shape)))
    if draw(st.booleans()):  # ids stay ids an embedding can look up (0)
        numbers = ["0"] if shape.dtype == "int" else ["0", "-1e4", "1"]
        more, other = [], draw(st.sampled_from(numbers))
    return lines + more + [f"{label}: where({label}m, {chain.current}, {other})"]


@st.composite
def index_select_statement(draw, chain: Chain, label: str):
    """`index_select(current, index, axis)`: a relative position index (a buffer) or topk's
    indices picking entries of an axis."""
    shape = chain.shape
    at = draw(an_axis(shape))
    size = shape[at % len(shape)]
    window = draw(st.integers(2, 3))
    if (2 * window - 1) ** 2 <= size and draw(st.booleans()):
        return [f"buffer {label}i: {window * window} x {window * window} = "
                f"relative_position_index({window}, {window})",
                f"{label}: index_select({chain.current}, {label}i, axis = {at})"]
    k = draw(st.integers(1, size))
    return [f"{label}i: topk({k}, axis = {at}, indices = true)",
            f"{label}: index_select({chain.current}, {label}i, axis = {at})"]


@st.composite
def cast_like_statement(draw, chain: Chain, label: str):
    """`cast_like(current, other)`: into an earlier value's element type (a mask into
    floats, ids into floats), or the current value's own."""
    others = [name for name, shape in chain.shapes.items()  # not into ids: floats cast to
              if name != chain.current and shape.dtype != "int"]  # integers index nothing
    others = others or [chain.current]
    return [f"{label}: cast_like({chain.current}, {draw(st.sampled_from(others))})"]


@st.composite
def scatter_add_statement(draw, chain: Chain, label: str):
    """`scatter_add(current, index, source, axis)`: the source the current value cut along
    the axis, the indices topk's along it."""
    shape = chain.shape
    if shape.dtype == "int":  # sums of indices have a range check cannot know, and tables
        # after them would fail at run time: only floats are summed here (check refuses
        # an axis 99)
        return [f"{label}: scatter_add({chain.current}, {chain.current}, {chain.current}, "
                "axis = 99)"]
    at = draw(an_axis(shape))
    k = draw(st.integers(1, shape[at % len(shape)]))
    return [f"{label}i: topk({k}, axis = {at}, indices = true)",
            f"from {chain.current}",
            f"{label}s: slice(0, {k}, axis = {at})",
            f"{label}: scatter_add({chain.current}, {label}i, {label}s, axis = {at})"]


@st.composite
def gather_statement(draw, chain: Chain, label: str):
    """`gather(current, index, axis)`: indices from topk along the axis, or from argmax."""
    shape = chain.shape
    at = draw(an_axis(shape))
    k = draw(st.integers(1, shape[at % len(shape)]))
    return [f"{label}i: topk({k}, axis = {at}, indices = true)",
            f"{label}: gather({chain.current}, {label}i, axis = {at})"]


@st.composite
def routed_linear_statement(draw, chain: Chain, label: str):
    """`routed_linear(current, w, index)`: k choices per token from topk over the current
    value's last axis, among as many experts (the largest index there can be + 1)."""
    shape = chain.shape
    features = shape[-1]
    k = draw(st.integers(1, features))
    out = draw(st.integers(1, MAX_CHANNELS))
    chain.declared += 1
    weight = f"p{chain.declared}"
    return [f"param {weight}: {features} x {out} x {features} = normal(std = 0.5)",
            f"{label}i: topk({k}, axis = -1, indices = true)",
            f"{label}: routed_linear({chain.current}, {weight}, {label}i)"]


@st.composite
def selective_scan_statement(draw, chain: Chain, label: str):
    """`selective_scan(current, current, A, B, C)`: the current value as the stream and
    its step sizes, A, B and C learned tensors of a drawn state size."""
    shape = chain.shape
    if len(shape) != 2:  # the scan refuses it: let check say so
        return [f"{label}: selective_scan({', '.join([chain.current] * 5)})"]
    length, channels = shape
    states = draw(st.integers(1, 4))
    first = chain.declared + 1
    chain.declared += 3
    a, b, c = (f"p{first + i}" for i in range(3))
    return [f"param {a}: {channels} x {states} as signal = normal(std = 0.5)",
            f"param {b}: {length} x {states} as signal = normal(std = 0.5)",
            f"param {c}: {length} x {states} as signal = normal(std = 0.5)",
            f"{label}: selective_scan({chain.current}, {chain.current}, {a}, {b}, {c})"]


@st.composite
def matmul_statement(draw, chain: Chain, label: str):
    shape = chain.shape
    if len(shape) < 2:  # matmul refuses it: let check say so
        return [f"{label}: matmul({chain.current}, {chain.current})"]
    m = draw(st.integers(1, MAX_CHANNELS))
    dims = tuple(shape[:-2]) + (shape[-1], m)
    lines, name = draw(operand(chain, lambda s: len(s) == len(shape) and s[-2] == shape[-1],
                               st.just((dims, shape.axes))))
    return lines + [f"{label}: matmul({chain.current}, {name})"]


@st.composite
def sdpa_statement(draw, chain: Chain, label: str):
    """`sdpa(current, k, v)`: keys with the queries' leading axes and features, values with
    as many positions as the keys; causal or not."""
    shape = chain.shape
    causal = draw(st.sampled_from(["", ", causal = true"]))
    if len(shape) < 2:  # sdpa refuses it: let check say so
        return [f"{label}: sdpa({chain.current}, {chain.current}, {chain.current})"]
    lead, keys = tuple(shape[:-2]), draw(st.integers(1, MAX_SPATIAL))
    lines, k = draw(operand(chain, lambda s: len(s) == len(shape) and s[:-2] == lead
                            and s[-1] == shape[-1], st.just((lead + (keys, shape[-1]), shape.axes))))
    length = chain.shapes[k][-2] if k in chain.shapes else keys
    more, v = draw(operand(chain, lambda s: len(s) == len(shape) and s[:-2] == lead
                           and s[-2] == length,
                           st.integers(1, MAX_CHANNELS).map(lambda e: (lead + (length, e),
                                                                       shape.axes))))
    return lines + more + [f"{label}: sdpa({chain.current}, {k}, {v}{causal})"]


@st.composite
def einsum_statement(draw, chain: Chain, label: str):
    """An equation over the current value's axes and another operand's: a subset of them
    in any order, perhaps with an axis of its own; the result any of their axes."""
    shape = chain.shape
    letters = "abcd"[:len(shape)]
    sizes = dict(zip(letters, shape))
    theirs = draw(st.permutations(letters).flatmap(
        lambda order: st.integers(1, len(order)).map(lambda n: "".join(order[:n]))))
    if len(theirs) < 4 and draw(st.booleans()):
        theirs += "x"
        sizes["x"] = draw(st.integers(1, 3))
    dims = tuple(sizes[letter] for letter in theirs)
    other = Shape(dims)
    declared = draw(declared_value(chain, "param", dims, other.axes))
    lines, name = declared if declared is not None else ([], chain.current)
    if declared is None:
        theirs = letters
    everything = sorted(set(letters) | set(theirs))
    out = draw(st.permutations(everything).flatmap(
        lambda order: st.integers(1, len(order)).map(lambda n: "".join(order[:n]))))
    return lines + [f'{label}: einsum("{letters},{theirs}->{out}", {chain.current}, {name})']


@st.composite
def concat_statement(draw, chain: Chain, label: str):
    shape = chain.shape
    if draw(st.integers(0, 4)) == 0:  # the branch form: axis 0, a layer in one branch
        layer = draw(st.sampled_from(["relu", "identity", "tanh"]))
        return [f"{label}: concat {{ {{}}; {{ {layer} }} }}"]
    at = draw(an_axis(shape))
    index = at % len(shape)

    def fits(s):
        return (s.axes == shape.axes and len(s) == len(shape)
                and all(a == b for i, (a, b) in enumerate(zip(s, shape)) if i != index))
    made = st.integers(1, 3).map(lambda n: (tuple(shape[:index]) + (n,) + tuple(shape[index + 1:]),
                                            shape.axes))
    lines, name = draw(operand(chain, fits, made))
    names = draw(st.permutations([chain.current, name]))
    return lines + [f"{label}: concat({', '.join(names)}, axis = {at})"]


@st.composite
def crop_statement(draw, chain: Chain, label: str):
    shape = chain.shape
    if shape.axes != "CHW":  # crop refuses it: let check say so
        return [f"{label}: crop({chain.current}, {chain.current})"]
    _, h, w = shape

    def fits(s):
        return s.axes == "CHW" and s[1] <= h and s[2] <= w
    made = st.tuples(st.integers(1, MAX_CHANNELS), st.integers(1, h), st.integers(1, w)).map(
        lambda dims: (dims, "CHW"))
    lines, name = draw(operand(chain, fits, made))
    return lines + [f"{label}: crop({chain.current}, {name})"]


@st.composite
def resize_like_statement(draw, chain: Chain, label: str):
    """`resize_like(current, other)`: the other any feature map, larger or smaller."""
    made = st.tuples(st.integers(1, MAX_CHANNELS), st.integers(1, MAX_SPATIAL),
                     st.integers(1, MAX_SPATIAL)).map(lambda dims: (dims, "CHW"))
    lines, name = draw(operand(chain, lambda s: s.axes == "CHW", made))
    mode = draw(st.sampled_from(['"nearest"', '"bilinear"', '"bicubic"']))
    corners = draw(st.sampled_from(["true", "false"]))
    return lines + [f"{label}: resize_like({chain.current}, {name}, mode = {mode}, "
                    f"align_corners = {corners})"]


MERGES = {"concat": concat_statement, "crop": crop_statement,
          "resize_like": resize_like_statement, "matmul": matmul_statement,
          "einsum": einsum_statement, "sdpa": sdpa_statement,
          "where": where_statement, "gather": gather_statement,
          "index_select": index_select_statement, "cast_like": cast_like_statement,
          "routed_linear": routed_linear_statement, "scatter_add": scatter_add_statement,
          "selective_scan": selective_scan_statement,
          **{op: binary_statement(op) for op in ("add", "sub", "mul", "div", "pow", "maximum",
                                                   "minimum", "eq", "ne", "lt", "le", "gt", "ge")}}
STATEMENT_OPS = sorted(LAYERS) + sorted(MERGES)


# ---- chains ------------------------------------------------------------------------------


def a_size(most: int) -> st.SearchStrategy:
    """1 to `most`, seldom 1 or 2 (hypothesis favours them, and few kernels fit them)."""
    return st.integers(3, most) | st.integers(3, most) | st.integers(1, 2)


@st.composite
def input_statement(draw) -> tuple[str, str]:
    """`input x: ... as LAYOUT` with tiny sizes: (statement, layout)."""
    layout = draw(st.sampled_from(sorted(LAYOUTS)))
    sizes = [str(draw(a_size(MAX_CHANNELS if axis == "C" else 6 if layout == "volume" else
                             MAX_SPATIAL))) for axis in LAYOUTS[layout]]
    if "L" in LAYOUTS[layout] and draw(st.booleans()):  # the length as a symbol, bounded
        at = LAYOUTS[layout].index("L")
        sizes[at] = f"L <= {sizes[at]}"
    return f"input x: {' x '.join(sizes)} as {layout}", layout


@st.composite
def statement(draw, chain: Chain, op_name: str, label: str) -> list[str]:
    if op_name in MERGES:
        return draw(MERGES[op_name](chain, label))
    return [f"{label}: {call_text(op_name, draw(arguments(op_name, chain.shape)))}"]


@st.composite
def chains(draw, ops: tuple[str, ...] = tuple(STATEMENT_OPS)) -> str:
    """A network of one input and up to MAX_STATEMENTS labelled statements, each reading
    the one before. At each step up to TRIES statements are drawn until check accepts one;
    if none is accepted, the chain ends with the last (a rejected spec)."""
    text, layout = draw(input_statement())
    chain = Chain([text])
    chain.shapes = checked_shapes(chain.text(), "x")
    for index in range(draw(st.integers(1, MAX_STATEMENTS))):
        label = f"s{index}"
        for _ in range(TRIES):
            op_name = draw(st.sampled_from(ops))
            saved = chain.declared
            lines = draw(statement(chain, op_name, label))
            shapes = checked_shapes(chain.text(tuple(lines)), label)
            if shapes is not None:
                break
            chain.declared = saved
        chain.lines += lines
        if shapes is None or shapes is CRASHED:
            event("chain ends rejected" if shapes is None else "check crashes")
            return chain.text()
        event(f"op {op_name}")
        event(f"layout {layout}")
        chain.shapes, chain.current = shapes, label
        if draw(st.integers(0, 7)) == 0:  # a second output, before the chain goes on
            chain.outputs.append(f"o{index}")
            chain.lines.append(f"output o{index}")
    return chain.text()


# ---- the property --------------------------------------------------------------------------


class BuildMismatch(AssertionError):
    """Torch disagrees with check: a shape differs, or a layer fails."""


def ir_name(node: fx.Node) -> str | None:
    """The IR node an fx node computes the value of: the lowering marks the last fx node of
    each with its .arch location, `... in NAME`, as the last frame of its stack trace."""
    trace = node.meta.get("stack_trace")
    if not trace:
        return None
    return trace.splitlines()[-2].rsplit(", in ", 1)[1]


class ShapeRecorder(fx.Interpreter):
    """Runs a GraphModule node by node, recording the shape of every IR node's value."""

    def __init__(self, module: fx.GraphModule, graph):
        super().__init__(module)
        self.ir, self.shapes = graph, {}

    def run_node(self, node: fx.Node):
        name = ir_name(node)
        at = where(self.ir, name) if name else f"fx node `{node.name}` (on the way to a later node)"
        try:
            value = super().run_node(node)
        except Exception as error:
            raise BuildMismatch(f"{at} fails in torch: {type(error).__name__}: {error}") from error
        if node.op == "call_module" and isinstance(self.fetch_attr(node.target), MAX_POOLS) \
                and value.isneginf().any():
            # caught here, in eval mode, since the backward of such a pool writes out of
            # bounds (torch 2.x): the process would abort with a heap corruption
            raise BuildMismatch(f"{at} gives -inf: one of its windows lies wholly in padding")
        if name is not None:
            self.shapes[name] = tuple(value.shape)
        return value


MAX_POOLS = (torch.nn.MaxPool1d, torch.nn.MaxPool2d, torch.nn.MaxPool3d)


def where(graph, name: str) -> str:
    """`s3 (slice(...), reads 4x5 LC)`: a node, its op and what check says it reads."""
    if name not in graph.nodes:
        return name
    item = ir.node(graph, name)
    reads = ", ".join(f"{'x'.join(map(str, s))} {s.axes}"
                      for s in (ir.shape(graph, i) for i in item.inputs))
    text = item.span.source.text[item.span.start:item.span.end]
    return f"`{name}` ({item.op}: `{text}`, reads {reads or 'nothing'})"


def graph_module(model, training: bool) -> fx.GraphModule:
    if isinstance(model, AuxiliaryNetwork):
        return model.train_module if training else model.eval_module
    return model


def builds_as_checked(text: str) -> None:
    """If check accepts the text, it lowers; in eval mode at batch 2 and in training mode
    at batch 3 (so a batch of 2 taken for something else shows), every node's value and
    every output has the shape check inferred, and in training a backward pass runs."""
    note(text)
    try:
        result = compile_source(text, "chain.arch")
    except Exception as error:
        raise AssertionError(f"check crashes: {type(error).__name__}: {error}") from error
    event("accepted" if result.ok else "rejected")
    if not result.ok:
        assert all(d.code.startswith("E03") for d in result.diagnostics
                   if d.severity == "error"), [d.code for d in result.diagnostics]
        return
    graph = result.graph
    model = lower_fx(graph)
    for batch, training in ((2, False), (3, True)):
        model.train(training)
        inputs = [value.requires_grad_(training) if value.is_floating_point() else value
                  for value in example_inputs(graph, batch)]
        outputs = [o for o in ir.network(graph).outputs if training or not o.train_only]
        recorder = ShapeRecorder(graph_module(model, training), graph)
        recorder.run(*inputs)
        needed = set().union(*({o.node} | nx.ancestors(graph, o.node) for o in outputs))
        agree(graph, recorder.shapes, needed - set(ir.network(graph).inputs), batch)
        got = model(*inputs)
        got = got if isinstance(got, dict) else {outputs[0].name: got}
        for output in outputs:
            expect(graph, output.node, tuple(got[output.name].shape), batch,
                   f"output `{output.name}`")
            assert DTYPES[ir.shape(graph, output.node).dtype](got[output.name]), \
                f"output `{output.name}` is {got[output.name].dtype}, not check's " \
                f"{ir.shape(graph, output.node).dtype}"
        learned = [value.sum() for value in got.values() if value.requires_grad]
        if training and learned:
            sum(learned).backward()
    runs_at_half_the_length(text, result, model)


def runs_at_half_the_length(text: str, result, model) -> None:
    """Where the input's length is a symbol and check warns of no layer fixed to it (W0300)
    nor of a network that fails at half of it (W0301), the module built at the bound runs
    at half the length, with the shapes check gives there."""
    sizes = ir.network(result.graph).sizes
    if "L" not in sizes or sizes["L"][0] < 2 or any(
            d.code in ("W0300", "W0301") for d in result.diagnostics):
        return
    if "relative_position_index" in text:  # its values, not its shape, reach past a table
        return  # that shrinks with L: check follows shapes, as with ids past a vocabulary
    event("runs at another length")
    other = compile_source(text, "chain.arch", settings={"L": sizes["L"][0] // 2})
    assert other.ok, [d.message for d in other.diagnostics]
    graph = other.graph
    model.eval()
    got = model(*example_inputs(graph, 2))
    outputs = [o for o in ir.network(graph).outputs if not o.train_only]
    got = got if isinstance(got, dict) else {outputs[0].name: got}
    for output in outputs:
        expect(graph, output.node, tuple(got[output.name].shape), 2,
               f"output `{output.name}` at L = {sizes['L'][0] // 2}")


def agree(graph, shapes: dict, needed: set[str], batch: int) -> None:
    missing = needed - set(shapes)
    assert not missing, f"no fx node computes {sorted(missing)}: did the lowering's stack " \
                        "traces change? (see ir_name)"
    for name in sorted(needed, key=list(graph.nodes).index):
        expect(graph, name, shapes[name], batch, where(graph, name))


def expect(graph, name: str, got: tuple, batch: int, what: str) -> None:
    checked = (batch, *ir.shape(graph, name))
    if got != checked:
        raise BuildMismatch(f"{what}: check says {'x'.join(map(str, checked))}, "
                            f"torch gives {'x'.join(map(str, got))} (batch {batch} first)")


# ---- the tests ------------------------------------------------------------------------------

FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))


def test_every_op_has_a_generator():
    """A new op in the table must join the chains (or say here why it cannot)."""
    covered = set(LAYERS) | set(MERGES) | set(SOURCES)
    assert set(OPS) - covered == set(), "give these ops an entry in LAYERS or MERGES"
    assert covered - set(OPS) == set(), "these generator entries name no op"
    assert not set(LAYERS) & set(MERGES) and not set(SOURCES) & (set(LAYERS) | set(MERGES))
    assert all(OPS[name].merge for name in MERGES)
    assert set(SOURCES) == set(ir.SOURCE_OPS)


def test_hints_name_declared_arguments():
    """A hint for an argument the op no longer has would silently stop steering it."""
    for name, hints in LAYERS.items():
        declared = {arg.name for arg in OPS[name].args}
        assert set(hints) <= declared, (name, set(hints) - declared)


@FAST
@given(chains())
def test_check_accepts_implies_the_chain_builds_with_its_shapes(text):
    builds_as_checked(text)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(specs() | sequence_specs() | channels_first_specs())
def test_specgen_specs_build_with_their_shapes(text):
    builds_as_checked(text)


@pytest.mark.slow
@LONG
@given(chains())
def test_long_chains_build_with_their_shapes(text):
    builds_as_checked(text)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(specs() | sequence_specs() | channels_first_specs())
def test_many_specgen_specs_build_with_their_shapes(text):
    builds_as_checked(text)
