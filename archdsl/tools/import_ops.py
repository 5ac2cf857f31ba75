"""torch functions read as the language's ops beyond archdsl.tools.import_layers' own
readers: `F.pad(x, (..., before, after))` with zeros as `pad(before, after, axis = a)`,
`torch.roll(x, shift, dim)` as `roll(shift, axis = a)` (Swin's windows padded to whole
windows and shifted), a comparison with a number as `ge(192)` (`192 <= x` too, as
`ge(192)`), `torch.linalg.vector_norm` as `norm`, archdsl's own `maximum(x, 1e-12)` as
`maximum(1e-12)`. Each works on one example: an axis of the batch stops the import.
"""
from __future__ import annotations

import operator

import torch
from torch import fx, nn

from ..ops.shapes import PRECISIONS
from ..source import format_value
from .import_layers import ImportFailure, argument, axes, call_text, own_function, own_layer


_COMPARISONS = {operator.ge: "ge", operator.gt: "gt", operator.le: "le", operator.lt: "lt",
                operator.eq: "eq", operator.ne: "ne", torch.ge: "ge", torch.gt: "gt",
                torch.le: "le", torch.lt: "lt", torch.eq: "eq", torch.ne: "ne"}
_BOUNDS = {torch.clamp_min: "maximum", torch.clamp_max: "minimum"}  # by a number
_FLIPPED = {"ge": "le", "le": "ge", "gt": "lt", "lt": "gt", "eq": "eq", "ne": "ne"}


def read_ops(node: fx.Node, where: str) -> tuple[str, dict] | None:
    """The op and arguments of a pad, roll, cast or comparison with a number `node`;
    None for any other node."""
    if node.op == "call_method" and node.target == "to":
        return _cast(node, where)
    if node.op != "call_function":
        return None
    if node.target is nn.functional.pad:
        return _pad(node, where)
    if node.target is torch.roll:
        return _roll(node, where)
    if node.target is torch.linalg.vector_norm:
        dims = argument(node, 2, "dim", None)
        if dims is None:
            raise ImportFailure(f"{where}: a norm over every element, the batch included; "
                                "archdsl reduces over the axes of one example: give `dim`")
        return "norm", dict(axis=axes(dims, where), p=float(argument(node, 1, "ord", 2.0)),
                            keep=bool(argument(node, 3, "keepdim", False)))
    bound = next((n for n in ("maximum", "minimum") if own_function(node.target, n)), None) \
        or _BOUNDS.get(node.target)
    if bound is not None and len(node.all_input_nodes) == 1:  # archdsl's, with a number
        number = next(a for a in node.args if not isinstance(a, fx.Node))
        return bound, dict(constant=float(number))
    if node.target in _COMPARISONS and len(node.all_input_nodes) == 1 and len(node.args) == 2:
        number = next(a for a in node.args if not isinstance(a, fx.Node))
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            raise ImportFailure(f"{where}: a comparison with {number!r}")
        op = _COMPARISONS[node.target]
        return (op if isinstance(node.args[0], fx.Node) else _FLIPPED[op]), dict(
            constant=float(number))
    return None


def _cast(node: fx.Node, where: str) -> tuple[str, dict] | None:
    """`x.to(torch.float32)`: nothing where x is of that type already, else `cast` to
    that precision (a timestep's ids as floats)."""
    dtype = next((a for a in (*node.args[1:], node.kwargs.get("dtype"))
                  if isinstance(a, torch.dtype)), None)
    before = node.all_input_nodes[0].meta.get("tensor_meta")
    if dtype is None or len(node.args) > 2 or set(node.kwargs) - {"dtype"}:
        return None  # `.to(device)`, `.to(other)`: not a cast to a type
    if before is not None and before.dtype == dtype:
        return "identity", {}
    if before is not None and before.dtype == torch.bool:
        raise ImportFailure(f"{where}: a mask cast to {dtype}; archdsl makes a mask numbers "
                            "with `cast_like(mask, value)`, in a value's type")
    name = str(dtype).removeprefix("torch.")
    if name not in PRECISIONS:
        raise ImportFailure(f"{where}: `to({dtype})`; archdsl casts to {', '.join(PRECISIONS)}")
    return "cast", dict(dtype=name)


def _pad(node: fx.Node, where: str) -> tuple[str, dict]:
    """`F.pad` with zeros along one axis (no padding at all: `identity`)."""
    pads = tuple(argument(node, 1, "pad", ()))
    rank = len(node.all_input_nodes[0].meta["tensor_meta"].shape)
    sides = {rank - 1 - i // 2: (pads[i], pads[i + 1]) for i in range(0, len(pads), 2)
             if (pads[i], pads[i + 1]) != (0, 0)}
    if argument(node, 2, "mode", "constant") != "constant" or \
            argument(node, 3, "value", None) not in (None, 0, 0.0) or len(sides) > 1 or \
            0 in sides or any(not isinstance(p, int) or p < 0 for p in pads):
        raise ImportFailure(f"{where}: `pad` {pads} of the batch, of several axes, by a "
                            "number of its own or not with zeros; archdsl pads one axis of "
                            "each example with zeros")
    if not sides:
        return "identity", {}
    ((dim, (before, after)),) = sides.items()
    return "pad", dict(before=before, after=after, axis=dim - 1)


def _roll(node: fx.Node, where: str) -> tuple[str, dict]:
    """`torch.roll` by one shift along one axis (by 0: `identity`)."""
    shifts, dims = argument(node, 1, "shifts", None), argument(node, 2, "dims", None)
    shifts = shifts if isinstance(shifts, (tuple, list)) else (shifts,)
    dims = dims if isinstance(dims, (tuple, list)) else (dims,)
    rank = len(node.all_input_nodes[0].meta["tensor_meta"].shape)
    if len(shifts) != 1 or len(dims) != 1 or not isinstance(shifts[0], int) or \
            not isinstance(dims[0], int) or dims[0] % rank == 0:
        raise ImportFailure(f"{where}: `roll` by {shifts} along {dims}: archdsl rolls one "
                            "axis of each example by a number")
    if shifts[0] == 0:
        return "identity", {}
    return "roll", dict(shift=shifts[0], axis=dims[0] % rank - 1)


def read_merge(node: fx.Node, operands: list[str], modules: dict[str, nn.Module]) -> str:
    """A call of several values (`operands`: their names, in the order of the call's
    arguments) as the statement that reads them by name: `add(a, b)`, `concat(a, b, axis =
    1)`, `matmul(a, b)`, `einsum("lc,mc->lm", a, b)`, `where(m, a, 0)`, `ge(a, b)`,
    `sdpa(q, k, v, causal = true)`; a
    call of archdsl's own module of several values (in `modules`) as its op's,
    `selective_scan(x, dt, a, b, c)`."""
    target = node.target
    name = getattr(target, "__name__", str(target))
    where = f"`{node.name}`"
    own = own_layer(modules[target]) if node.op == "call_module" else None
    if own is not None:  # `selective_scan(x, dt, a, b, c)`, `sdpa(q, k, v, causal = true)`
        text = call_text(*own)
        return text.replace("(", f"({', '.join(operands)}, ", 1) if "(" in text else \
            f"{own[0]}({', '.join(operands)})"
    if target in (operator.add, operator.iadd, torch.add):
        return f"add({', '.join(operands)})"
    if target in (operator.mul, operator.imul, torch.mul):
        return f"mul({', '.join(operands)})"
    if target in (operator.sub, torch.sub):
        return f"sub({', '.join(operands)})"
    if target in (operator.truediv, torch.div):
        return f"div({', '.join(operands)})"
    if target in (operator.matmul, torch.matmul) or name == "matmul":
        return f"matmul({', '.join(operands)})"
    if name in ("cast_like", "routed_linear") and own_function(target, name):
        return f"{name}({', '.join(operands)})"
    compared = _COMPARISONS.get(target) or next(
        (n for n in ("maximum", "minimum") if own_function(target, n)), None)
    if compared is not None and len(operands) == 2 and not node.kwargs:
        return f"{compared}({', '.join(operands)})"
    if target is torch.where and len(node.args) == 3 and not node.kwargs and \
            isinstance(node.args[1], fx.Node):
        given = iter(operands)  # `where(mask, a, b)`, a number in place of a value kept
        return "where(" + ", ".join(next(given) if isinstance(a, fx.Node) else
                                    format_value(float(a)) for a in node.args) + ")"
    if target is torch.einsum:
        from .import_einsum import einsum_merge
        return einsum_merge(node, operands)
    if target is torch.cat:
        dim = argument(node, 1, "dim", 0)
        return f"concat({', '.join(operands)}, axis = {axes(dim, where)[0]})"
    if target is nn.functional.scaled_dot_product_attention:
        causal = argument(node, 5, "is_causal", False)
        dropout = argument(node, 4, "dropout_p", 0.0)
        scale = node.kwargs.get("scale")
        options = (", causal = true" if causal else "") + (
            f", dropout = {format_value(dropout)}" if dropout else "") + (
            f", scale = {format_value(scale)}" if scale is not None else "")
        return f"sdpa({', '.join(operands)}{options})"
    raise ImportFailure(f"{where}: {node.op} `{name}` of several values has no archdsl "
                        "equivalent (add, sub, mul, div, matmul, einsum, comparisons, "
                        "where, concat and scaled_dot_product_attention have)")
