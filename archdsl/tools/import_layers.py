"""One torch.nn layer, or one torch function of a forward(), as the parts of an archdsl
statement: the op and arguments it reads as, checked against the op table by building the
op's module again; the call's text; and the label its module's name becomes.

The numbers of a call's text are marked (`number`), so that module instances whose
statements differ only in numbers can become one block with those numbers as parameters.
"""
from __future__ import annotations

import operator

import re
import unicodedata
from functools import lru_cache

import torch
from torch import fx, nn

from ..source import format_value
from ..lang.names import is_reserved
from ..lang.parse import grammar_text
from ..ops import OPS, REQUIRED, Args, Derived


class ImportFailure(Exception):
    """The model uses something archdsl cannot express; the message says what and where."""


# ---- one layer: torch module -> archdsl op ------------------------------------------------


# Modules whose constructor arguments become an op's: each op's entry says which torch.nn
# classes it reads and how (`Op.imports`, `Op.read`). Every match is checked against the
# op table by building the op's module (`read_layer`).
READERS = {getattr(nn, name): op.read for op in OPS.values() for name in op.imports}


def argument_free_ops(shape) -> dict[type, str]:
    """{module class: op} for the ops without arguments, from the modules they build."""
    found = {}
    for op in OPS.values():
        if op.module is None or op.args or op.merge:
            continue
        try:
            with torch.device("meta"):
                module = op.module(op.defaults(), (shape,))
        except Exception:  # needs another input layout: not this one
            continue
        if isinstance(module, nn.Module):
            found.setdefault(type(module), op.name)
    return found


def shape_of(node: fx.Node) -> tuple[int, ...]:
    """The shape of a node's value, batch excluded, as the propagation on the example
    input found it; () where none was recorded."""
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape[1:]) if meta is not None else ()


def read_layer(node: fx.Node, module: nn.Module, by_type: dict[type, str]) -> tuple[str, dict]:
    """The op and arguments of the torch.nn layer `module` that `node` calls; `by_type`
    holds the ops without arguments (`argument_free_ops`)."""
    where = f"`{node.target}` ({type(module).__module__}.{type(module).__name__})"
    if "read_as" in node.meta:  # a module read by what its forward() computes
        op, args = node.meta["read_as"]
        if op in OPS:  # a library block (`grn`) is checked where it is recognised
            _check_state(where, op, args, module, shape_of(node.all_input_nodes[0]))
        return op, args
    own = own_layer(module)
    if own is not None:  # archdsl's own module, or an exported file's copy of it
        _check_state(where, *own, module, shape_of(node.all_input_nodes[0]))
        return own
    reader = READERS.get(type(module))
    if reader is not None:
        found = reader(module)
    elif type(module) in by_type:
        found = by_type[type(module)], {}
    else:
        found = None
    if found is None:
        raise ImportFailure(f"{where} has no archdsl equivalent")
    op, args = found
    _check(where, op, args, module, shape_of(node.all_input_nodes[0]))
    return op, args


# archdsl's own modules (archdsl.ops.functions) that no torch.nn class is: read as the op
# that builds them, by their settings.
_OWN = {"SelfAttention": lambda m: ("attention", dict(heads=m.num_heads, dropout=m.dropout,
                                                     bias=m.in_proj_bias is not None)),
        "SequencePad": lambda m: ("pad", dict(before=m.before, after=0, axis=m.dim - 1)),
        "SelectiveScan": lambda m: ("selective_scan", {}),
        "ShiftedWindowAttention": lambda m: _window_attention(m),
        "PatchMerging": lambda m: ("patch_merging", dict(eps=m.eps)),
        "Positions": lambda m: ("positions", dict(axis=m.dim - 1, count=m.count)),
        "ScaledDotProductAttention": lambda m: ("sdpa", dict(
            causal=m.causal, scale=m.scale, dropout=m.dropout, softmax_dtype=m.softmax_dtype))}
# ... read through where torch.export captures them, as its operations
READ_THROUGH_IN_EXPORT = ("Positions", "ScaledDotProductAttention")


def _window_attention(module: nn.Module) -> tuple[str, dict]:
    """Swin's window attention, whose windows and shifts the op makes square."""
    (window, *others), (shift, *shifts) = module.window_size, module.shift_size
    if others != [window] or shifts != [shift]:
        raise ImportFailure(f"window attention of {module.window_size} windows shifted by "
                            f"{module.shift_size}: archdsl's windows and shifts are square")
    return "window_attention", dict(heads=module.num_heads, window=window, shift=shift,
                                    dropout=module.dropout,
                                    attention_dropout=module.attention_dropout)


def own_layer(module: nn.Module) -> tuple[str, dict] | None:
    """(op, arguments) of archdsl's own module `module`, or of a copy of it (`is_own`);
    None for any other module."""
    return _OWN[type(module).__name__](module) if is_own(module) else None


def is_own(module: nn.Module) -> bool:
    """`module` is archdsl's own, or a copy of it, as a file `archdsl export --to pytorch`
    writes holds: a class of the same name and base whose forward() compiles to the same
    code. (Only its class is read: a tracer records what is read of the module.)"""
    cls = type(module)
    if cls.__name__ not in _OWN:
        return False
    from ..ops import functions
    own = getattr(functions, cls.__name__)
    return cls is own or (cls.__bases__ == own.__bases__
                          and same_code(cls.forward, own.forward))


def own_function(target, name: str) -> bool:
    """`target` is archdsl's function `name`, or a copy of it (an exported file's)."""
    from ..ops import functions
    return getattr(target, "__name__", "") == name and (
        getattr(target, "__module__", "") == "archdsl.ops.functions" or same_code(
            target, getattr(functions, name)))


def same_code(one, other) -> bool:
    a, b = getattr(one, "__code__", None), getattr(other, "__code__", None)
    return a is not None and b is not None and (a.co_code, a.co_consts, a.co_names) == (
        b.co_code, b.co_consts, b.co_names)


def _check(where: str, op: str, args: dict, module: nn.Module, shape) -> None:
    """The op's own module, built from these arguments, is the model's module."""
    from ..backends.export_pytorch import module_settings, state_shapes
    resolved = _resolve(op, args)
    if OPS[op].module is None:  # lowers to a function (flatten): nothing to compare
        return
    plain = {k: v + len(shape) + 1 if k == "dim" and isinstance(v, int) and v < 0 else v
             for k, v in module_settings(module).items() if k != "inplace"}  # dim=-1: last
    from ..ops.args import normalise_axes
    from ..ops.shapes import Shape
    for layout in _layouts(shape):
        given = layout if isinstance(layout, Shape) else Shape(layout)
        with torch.device("meta"):  # axes as the lowering reads them: -1 the last
            built = OPS[op].module(normalise_axes(OPS[op], resolved, (given,)), (layout,))
        rebuilt = {k: v for k, v in module_settings(built).items() if k != "inplace"}
        if type(built) is type(module) and plain == rebuilt and \
                state_shapes(built) == state_shapes(module):
            return
    raise ImportFailure(f"{where} has no archdsl equivalent: `{op}` builds {built!r}")


def _layouts(shape) -> tuple:
    """The layouts a value of `shape` may have in the spec: the default one, and a map
    made channels-last (H x W x C, as Swin's permuted maps are), whose layers act on
    the last axis."""
    from ..ops.shapes import Shape
    return (shape, Shape(shape, "HWC")) if len(shape) == 3 else (shape,)


def _check_state(where: str, op: str, args: dict, module: nn.Module, shape) -> None:
    """The op's own module, built from these arguments, holds the model's module's
    tensors, at the same names and shapes (its forward() may be the model's own)."""
    from ..backends.export_pytorch import state_shapes
    if not state_shapes(module):
        return  # nothing to hold (Positions)
    with torch.device("meta"):
        built = OPS[op].module(_resolve(op, args), (shape,))
    if state_shapes(built) != state_shapes(module):
        raise ImportFailure(f"{where} has no archdsl equivalent: `{op}` builds {built!r}")


def read_function(node: fx.Node, owner: str) -> tuple[str, dict]:
    """The op and arguments of a torch function or tensor method that `node` calls in the
    forward() of the module at `owner`: the first of the readers below that knows it."""
    where = f"`{node.name}` in `{owner or 'forward'}`{source_line(node)}"
    name = getattr(node.target, "__name__", str(node.target))
    for reader in _FUNCTION_READERS:
        found = reader(node, name, where)
        if found is not None:
            return found
    raise ImportFailure(f"{where}: {node.op} `{name}` has no archdsl equivalent")


def _is(node: fx.Node, name: str, method: tuple[str, ...], *functions) -> bool:
    """`node` calls the tensor method `name` (one of `method`) or one of `functions`."""
    return (node.op == "call_method" and name in method) or (
        node.op == "call_function" and node.target in functions)


def _read_axes(node: fx.Node, name: str, where: str):
    """Reductions over axes, permute, transpose, contiguous, select, flatten from an axis."""
    if name in _REDUCTIONS and _is(node, name, _REDUCTIONS, getattr(torch, name)):
        dims = _argument(node, 1, "dim", None)
        if dims is None:
            raise ImportFailure(f"{where}: `{name}` over every element, the batch included; "
                                "archdsl reduces over the axes of one example: give `dim`")
        return name, dict(axis=axes(dims, where), keep=bool(_argument(node, 2, "keepdim", False)))
    if _is(node, name, ("contiguous", "clone")):
        return "identity", {}
    if _is(node, name, ("permute",)):
        order = node.args[1:] if len(node.args) > 2 else _argument(node, 1, "dims", ())
        order = [d % len(shape_of(node) + (0,)) for d in order]
        if not order or order[0] != 0:
            raise ImportFailure(f"{where}: `permute` moves the batch axis")
        return "permute", dict(order=tuple(d - 1 for d in order[1:]))
    if _is(node, name, ("transpose",), torch.transpose):
        a, b = _argument(node, 1, "dim0", 0), _argument(node, 2, "dim1", 1)
        return "transpose", dict(a=axes(a, where)[0], b=axes(b, where)[0])
    if _is(node, name, ("select",), torch.select):  # `x[:, 0]`, a class token's features
        index = _argument(node, 2, "index", None)
        if not isinstance(index, int) or index < 0:
            raise ImportFailure(f"{where}: `select` of an entry counted from the end, or "
                                "computed at run time; archdsl takes entries by number")
        return "take", dict(index=index, axis=axes(_argument(node, 1, "dim", 0), where)[0])
    if _is(node, name, ("flatten",), torch.flatten):
        start, end = _argument(node, 1, "start_dim", 0), _argument(node, 2, "end_dim", -1)
        (start,) = axes(start, where)
        return "flatten", dict(start=start, end=end if end < 0 else axes(end, where)[0])
    return None


def _read_shapes(node: fx.Node, name: str, where: str):
    """Indexing, narrow (a chunk's part), and reshapes that keep the batch axis."""
    if node.op == "call_function" and node.target is operator.getitem:
        return _indexing(node, where)
    if node.op == "call_function" and node.target is torch.narrow:
        _, dim, start, length = node.args
        return "slice", dict(start=start, end=start + length, axis=axes(dim, where)[0])
    if _is(node, name, ("view", "reshape", "squeeze", "unsqueeze"), torch.reshape,
           torch.squeeze, torch.unsqueeze):
        before, after = node.all_input_nodes[0].meta.get("tensor_meta"), node.meta.get(
            "tensor_meta")
        if before is None or after is None or before.shape[0] != after.shape[0]:
            raise ImportFailure(f"{where}: `{name}` that folds the batch axis into another; "
                                "archdsl reshapes one example at a time")
        return "reshape", dict(dims=shape_of(node))
    return None


def _read_arithmetic(node: fx.Node, name: str, where: str):
    """A number and a value: `x * 0.5`, `x + 1`, `1 - x`."""
    if node.op != "call_function" or node.target not in _SCALED or \
            len(node.all_input_nodes) != 1:
        return None
    number = next(a for a in node.args if not isinstance(a, fx.Node))
    if not isinstance(number, (int, float)) or isinstance(number, bool):
        raise ImportFailure(f"{where}: `{name}` with {number!r}")
    first = not isinstance(node.args[0], fx.Node)
    if first and node.target in (operator.sub, operator.truediv, torch.sub, torch.div):
        return _SCALED[node.target], dict(constant=float(number), constant_first=True)
    return _SCALED[node.target], dict(constant=float(number))


def _read_functional(node: fx.Node, name: str, where: str):
    """torch.nn.functional's pooling, dropout, resizing, softmax and activations."""
    target = node.target
    if _is(node, name, ("softmax", "log_softmax"), torch.softmax, torch.log_softmax,
           nn.functional.softmax, nn.functional.log_softmax):
        return name, dict(axis=axes(_argument(node, 1, "dim", None), where)[0])
    if node.op == "call_function" and target is nn.functional.interpolate:
        return _interpolation(node, where)
    if node.op == "call_function" and target in _POOLS:
        kernel = _argument(node, 1, "kernel_size", None)
        options = dict(kernel=kernel, stride=_argument(node, 2, "stride", None) or kernel,
                       pad=_argument(node, 3, "padding", 0),
                       ceil_mode=bool(node.kwargs.get("ceil_mode", False)))
        dilation = _argument(node, 4, "dilation", 1)
        if target is nn.functional.max_pool2d and dilation not in (1, (1, 1)):
            options["dilation"] = dilation
        return _POOLS[target], options
    if node.op == "call_function" and target is nn.functional.dropout:
        return "dropout", dict(p=float(_argument(node, 1, "p", 0.5)))
    if node.op == "call_function" and target is nn.functional.gelu and \
            node.kwargs.get("approximate", "none") != "none":
        return "gelu", dict(approximate=node.kwargs["approximate"])
    if node.op == "call_function" and target in _ACTIVATIONS:
        return _ACTIVATIONS[target], {}
    if _is(node, name, _METHOD_ACTIVATIONS + ("relu", "relu_")):
        return name.rstrip("_"), {}
    if node.op == "call_function" and target is nn.functional.adaptive_avg_pool2d and \
            node.args[1] in (1, (1, 1)):
        return "global_avgpool", {}
    return None


def top(x: torch.Tensor, k: int, dim: int = -1, largest: bool = True,
        indices: bool = False) -> torch.Tensor:
    """The `k` largest (or smallest) entries of `x` along `dim`, or their indices: one of
    the two values of `torch.topk`, as the language's `topk(k, indices = ...)` gives it
    (torch.export's `topk` and the item taken of it, archdsl.tools.import_export)."""
    return torch.topk(x, k, dim, largest)[1 if indices else 0]


def positions(x: torch.Tensor) -> torch.Tensor:
    """0, 1, ..., L - 1 along the first axis of each example of `x` (the sequence), as
    floats: the language's `positions(0)`, which the position ids a forward() makes with
    `arange` are read as (archdsl.tools.import_export)."""
    from ..ops.functions import Positions
    return Positions(1, sequence=False)(x)


def _read_positions(node: fx.Node, name: str, where: str):
    """The language's own functions the importer rewrites a forward()'s steps into:
    `positions`, `topk`, `rms_norm` (archdsl.tools.import_functional), `rope`
    (archdsl.tools.import_rope)."""
    from .import_rope import rotary
    if node.op == "call_function" and node.target is positions:
        return "positions", {}
    if node.op == "call_function" and node.target is top:
        k, dim, largest, indices = (tuple(node.args[1:]) + (-1, True, False)[len(node.args) - 2:])
        return "topk", dict(k=k, axis=axes(dim, where)[0], largest=largest, indices=indices)
    if node.op == "call_function" and node.target is rotary:
        return "rope", dict(theta=float(node.args[1]),
                            scaling=node.args[2] if len(node.args) > 2 else None)
    if node.op == "call_function" and own_function(node.target, "rms_norm"):
        return "rms_norm", dict(eps=float(node.args[1]))
    if node.op == "call_function" and node.target is torch.rms_norm and \
            len(_argument(node, 1, "normalized_shape", ())) == 1 and \
            _argument(node, 2, "weight", None) is None and \
            _argument(node, 3, "eps", None) is not None:  # over the last axis, no weight
        return "rms_norm", dict(eps=float(_argument(node, 3, "eps", None)))
    return None


def _read_ops(node: fx.Node, name: str, where: str):
    """Padding, rolling, comparisons with a number (archdsl.tools.import_ops)."""
    from .import_ops import read_ops
    return read_ops(node, where)


_FUNCTION_READERS = (_read_axes, _read_shapes, _read_arithmetic, _read_functional, _read_ops,
                     _read_positions)


_REDUCTIONS = ("mean", "sum", "amax", "amin")
_SCALED = {operator.add: "add", operator.mul: "mul", operator.sub: "sub",
           operator.truediv: "div", torch.add: "add", torch.mul: "mul", torch.sub: "sub",
           torch.div: "div", operator.iadd: "add", operator.imul: "mul"}
_ACTIVATIONS = {nn.functional.gelu: "gelu", nn.functional.silu: "silu", torch.sigmoid: "sigmoid",
                torch.tanh: "tanh", nn.functional.sigmoid: "sigmoid", nn.functional.tanh: "tanh",
                nn.functional.relu6: "relu6", nn.functional.hardswish: "hardswish",
                nn.functional.relu: "relu", torch.relu: "relu", torch.exp: "exp",
                torch.log: "log", torch.sqrt: "sqrt", torch.neg: "neg", operator.neg: "neg",
                torch.sin: "sin", torch.cos: "cos", torch.reciprocal: "reciprocal",
                nn.functional.softplus: "softplus"}
_METHOD_ACTIVATIONS = ("sigmoid", "tanh", "exp", "log", "sqrt", "neg", "sin", "cos",
                       "reciprocal")


def _indexing(node: fx.Node, where: str) -> tuple[str, dict]:
    """`x[:, a:b]` (one axis sliced, the batch kept) as `slice`; `x[:, :, None]` (one
    axis added) as `reshape` to the shape it gives; `x[:, 0]` (one entry) as `take`."""
    index = node.args[1] if isinstance(node.args[1], tuple) else (node.args[1],)
    full = slice(None, None, None)
    if not index or index[0] != full or Ellipsis in index:
        raise ImportFailure(f"{where}: indexing `[{_index_text(index)}]` that does not keep "
                            "the batch axis whole (`x[:, ...]`); archdsl slices one example "
                            "at a time")
    chosen = [(axis, item) for axis, item in enumerate(index[1:]) if item != full]
    if len(chosen) != 1:
        raise ImportFailure(f"{where}: indexing `[{_index_text(index)}]` changes "
                            f"{len(chosen)} axes at once; archdsl reads one slice or one new "
                            "axis per indexing (split it in steps)")
    (axis, item), = chosen
    if item is None:
        return "reshape", dict(dims=shape_of(node))
    if isinstance(item, int) and item >= 0:  # `x[:, 0]`: a class token's features
        return "take", dict(index=item, axis=axis)
    if isinstance(item, slice) and all(isinstance(v, (int, type(None)))
                                       for v in (item.start, item.stop, item.step)):
        size = shape_of(node.args[0])[axis]
        start, end, step = item.indices(size)
        return "slice", dict(start=start, end=end, axis=axis, step=step)
    raise ImportFailure(f"{where}: indexing `[{_index_text(index)}]` by a tensor or a "
                        "number from the end; archdsl slices (`a:b`), takes entries (`0`) and "
                        "adds axes (`None`)")


def _index_text(index: tuple) -> str:
    def one(item):
        if isinstance(item, slice):
            return ":".join("" if v is None else str(v)
                            for v in (item.start, item.stop, item.step)[:3 if item.step else 2])
        return "..." if item is Ellipsis else str(item)
    return ", ".join(map(one, index))


_POOLS = {nn.functional.max_pool2d: "maxpool", nn.functional.avg_pool2d: "avgpool"}


def _interpolation(node: fx.Node, where: str) -> tuple[str, dict]:
    """`F.interpolate` by a whole factor (nearest: `upsample`) or to the size it gives
    (`resize`, bilinear or nearest)."""
    mode = node.kwargs.get("mode", "nearest")
    scale = node.kwargs.get("scale_factor")
    if scale is not None and mode == "nearest" and float(scale) == int(scale) and \
            not isinstance(scale, (tuple, list)):
        return "upsample", dict(scale=int(scale))
    size = shape_of(node)
    if len(size) != 3 or mode not in ("nearest", "bilinear"):
        raise ImportFailure(f"{where}: `interpolate` in mode {mode!r} on {len(size)} axes; "
                            "archdsl resizes C x H x W maps, nearest or bilinear")
    return "resize", dict(height=size[1], width=size[2], mode=mode,
                          align_corners=bool(node.kwargs.get("align_corners") or False))


def source_line(node: fx.Node) -> str:
    """`, model.py:12` where tracing recorded the line of forward() that made the node."""
    trace = node.meta.get("stack_trace") or getattr(node, "stack_trace", None) or ""
    found = [(path, line) for path, line in re.findall(r'File "([^"]+)", line (\d+)', trace)
             if "/torch/" not in path]  # the model's own code, not torch's
    return f" ({found[-1][0].rpartition('/')[2]}:{found[-1][1]})" if found else ""


def argument(node: fx.Node, position: int, keyword: str, default):
    """A call's argument, given by position (after the tensor) or by keyword."""
    if len(node.args) > position:
        return node.args[position]
    return node.kwargs.get(keyword, default)


_argument = argument


def axes(dims, where: str) -> tuple[int, ...]:
    """torch dimensions (the batch first) as the spec's axes (of one example): 1 is 0,
    negative ones count from the end as they are; the batch itself has none."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if any(not isinstance(d, int) for d in dims):
        raise ImportFailure(f"{where}: dimensions computed at run time ({dims}); archdsl "
                            "reads numbers")
    if 0 in dims:
        raise ImportFailure(f"{where}: an operation over the batch axis (dim 0); archdsl "
                            "layers work on one example at a time")
    return tuple(d - 1 if d > 0 else d for d in dims)


# ---- one call as text, its numbers marked -------------------------------------------------


def _resolve(op: str, given: dict) -> Args:
    values = {}
    for arg in OPS[op].args:
        value = given.get(arg.name, arg.default)
        if isinstance(value, Derived):
            value = values[value.source]
        if value is REQUIRED:
            raise ImportFailure(f"internal: `{op}` needs `{arg.name}`")
        values[arg.name] = value
    return Args(tuple(values.items()))


def call_text(op: str, args: dict) -> str:
    """`conv(64, 3, stride = 2, bias = false)`: required arguments by position, the rest
    by name where they differ from the default; its numbers marked, and the whole numbers
    at their defaults hidden (`HIDDEN`: out of the plain text, in the skeleton).

    >>> text = call_text("conv", dict(channels=64, kernel=3, stride=2, groups=4, bias=False))
    >>> plain(text)
    'conv(64, 3, stride = 2, groups = 4, bias = false)'
    >>> plain(skeleton(text))
    'conv(#, #, stride = #, groups = #, bias = false)'
    >>> numbers_of(text)[2:]
    [('2', 'stride'), ('0', 'pad'), ('1', 'dilation'), ('4', 'groups')]
    """
    if op == "rope":  # a block of std.layers, not an op
        from .import_rope import rope_text
        return rope_text(args["theta"], args.get("scaling"))
    if op == "grn":
        from .import_grn import grn_text
        return grn_text(args["eps"])
    if "constant" in args:  # a number and the current value: `mul(0.5)`; `1 - x` as -x + 1
        text = f"{op}({_format(args['constant'], 'constant')})"
        if args.get("constant_first"):
            if op == "sub":
                return f"neg\nadd({_format(args['constant'], 'constant')})"
            raise ImportFailure(f"`{op}` of a number by a value: write it as the value's "
                                "reciprocal times the number")
        return text
    parts = []
    resolved = dict(_resolve(op, args))
    for position, arg in enumerate(OPS[op].args):
        value = resolved[arg.name]
        if arg.kind in ("axes", "dims") and (arg.default is REQUIRED or position == 0):
            if arg.default is REQUIRED or value != arg.default:  # `mean(1, 2)`, `reshape(8, 6)`
                parts += [_format(v, arg.name) for v in value]
        elif arg.default is REQUIRED or (position == 0 and arg.kind == "axis"):
            if arg.default is REQUIRED or value != arg.default:  # `softmax(-1)`
                parts.append(_format(value, arg.name))
        elif isinstance(arg.default, Derived):
            if value != resolved[arg.default.source]:
                parts.append(f"{arg.name} = {_format(value, arg.name)}")
            elif _whole(value):
                parts.append(hidden(f"{arg.name} = {_format(value, arg.name)}"))
        elif value != arg.default or type(value) is not type(arg.default):
            if isinstance(arg.default, float) and isinstance(value, (int, float)) and \
                    float(value) == arg.default:
                continue
            parts.append(f"{arg.name} = {_format(value, arg.name)}")
        elif _whole(value):
            parts.append(hidden(f"{arg.name} = {_format(value, arg.name)}"))
    return joined(op, parts)


HIDDEN = re.compile(r"\x02([^\x02\x03]*)\x03")  # a number at its default: in no plain text
SHOWN = re.compile(r"\x0e([^\x0e\x0f]*)\x0f")  # an argument by name, in the plain text
_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]* = ")


def hidden(part: str) -> str:
    return f"\x02{part}\x03"


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def alike(text: str) -> str:
    """The text with arguments shown and hidden marked alike: equal for two calls that
    differ in whether they give a number its default (a stride of 2, and of 1)."""
    return text.replace("\x0e", "\x02").replace("\x0f", "\x03")


def joined(op: str, parts: list[str]) -> str:
    """`op(a, b)`; a whole number at its default hidden (`hidden`), and the arguments by
    name after the first marked as shown, each with its comma, so that block families
    may show a hidden one where it varies."""
    text = ""
    for part in parts:
        kept = HIDDEN.fullmatch(part)
        if not text and kept:
            continue  # nothing before it to hang it on: left out
        if not text:
            text = part
        elif kept:
            text += hidden(", " + kept.group(1))
        elif _KEYWORD.match(part):
            text += f"\x0e, {part}\x0f"
        else:
            text += ", " + part
    return f"{op}({text})" if text else op


NUMBER = re.compile(r"\x00([^\x00|]*)\|([^\x00]*)\x00")  # a marked number: its value and hint


def number(value, hint: str) -> str:
    """`value` marked as a number that a block may turn into its parameter `hint`."""
    return f"\x00{value}|{hint}\x00"


def skeleton(text: str) -> str:
    """The text with each marked number as `#`: equal for statements that differ only in
    numbers."""
    return NUMBER.sub("#", text)


def numbers_of(text: str) -> list[tuple[str, str]]:
    """The marked numbers of the text, in order: (value, hint)."""
    return NUMBER.findall(text)


def plain(text: str) -> str:
    """The text with its marked numbers as their values, hidden arguments left out."""
    return NUMBER.sub(lambda m: m.group(1), HIDDEN.sub("", text)).translate(
        {0x0e: None, 0x0f: None})


def _format(value, hint: str) -> str:
    if isinstance(value, str):  # a word of the language (`same`) bare, text quoted
        return value if value == "same" else format_value(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_format(v, hint) for v in value) + ")"
    if isinstance(value, int) and not isinstance(value, bool):
        return number(value, hint)  # marked, so blocks can take it as a parameter
    return format_value(value)


# ---- module names as labels, and names of the language ------------------------------------

# What a label may be: a name or a number bare, and a name with `-` quoted (the parser reads
# a quoted label as computed text, which the elaborator allows to be letters, digits, `_`
# and `-`); a number that is not written as its value (`007`) would name another module.
_BARE_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|0|[1-9][0-9]*")
_QUOTED_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@lru_cache(maxsize=1)
def _keywords() -> frozenset[str]:
    """The words of the grammar (`input`, `repeat`, `in`): labels spelled so are quoted."""
    return frozenset(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', grammar_text()))


def _written(name: str) -> str | None:
    """A module's name as the spec writes its label, or None where no label can hold it.

    >>> _written("conv1"), _written("input"), _written("conv-1"), _written("_conv")
    ('conv1', '"input"', '"conv-1"', None)
    """
    if is_reserved(name):
        return None
    if _BARE_LABEL.fullmatch(name) and name not in _keywords():
        return name
    return f'"{name}"' if _QUOTED_LABEL.fullmatch(name) else None


def _renamed(name: str, taken: set[str]) -> str:
    """A label for a module whose name no label can hold: its letters, digits, `_` and
    `-`, not beginning with `_` (torch's own) nor being a name torch uses, and none of its
    siblings' names.

    >>> _renamed("_head", {"stem"}), _renamed("forward", set()), _renamed("007", set())
    ('head', 'forward_', 'layer_007')
    """
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", _ascii(name)).strip("_-")
    if not base or base[0].isdigit():
        base = f"layer_{base}".rstrip("_")
    if is_reserved(base):
        base += "_"
    label, count = base, 2
    while label in taken:
        label, count = f"{base}_{count}", count + 1
    return label


def module_labels(paths) -> dict[str, str]:
    """{module path: its label as the spec writes it}, renaming among siblings where
    needed.

    >>> module_labels(["", "stem", "stem.0", "_head", "input"])
    {'stem': 'stem', '_head': 'head', 'input': '"input"', 'stem.0': '0'}
    """
    siblings: dict[str, list[str]] = {}
    for path in paths:
        if path:
            parent, _, name = path.rpartition(".")
            siblings.setdefault(parent, []).append(name)
    labels = {}
    for parent, names in siblings.items():
        taken = {name for name in names if _written(name) is not None}
        for name in names:
            written = _written(name)
            if written is None:
                written = _renamed(name, taken)
                taken.add(written)
                written = _written(written)
            labels[f"{parent}.{name}" if parent else name] = written
    return labels


def language_name(text: str, otherwise: str) -> str:
    """`text` as a name of the language (ASCII letters, digits and `_`).

    >>> language_name("ñet", "imported"), language_name("9lives", "imported")
    ('net', 'imported')
    """
    name = re.sub(r"[^A-Za-z0-9_]+", "_", _ascii(text)).strip("_")
    return name if name and not name[0].isdigit() else otherwise


def _ascii(text: str) -> str:
    """Letters without their accents (`ñ` is `n`), the rest as it is."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
