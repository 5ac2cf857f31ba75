"""Global response normalisation written out in forward() (ConvNeXt V2's GRN, as timm's
GlobalResponseNorm computes it on C x H x W maps and `archdsl export` writes std.layers'
`grn`), read as one call of the module that holds its weight and bias, the library's
`grn(eps)`, whose keys (`grn.weight`, `grn.bias`) are the module's:

    norms = torch.linalg.vector_norm(x, dim=(2, 3), keepdim=True)   # or x.norm(p=2, ...)
    ratio = norms / (norms.mean(dim=1, keepdim=True) + eps)
    x + x * ratio * weight + bias       # or x + torch.addcmul(bias, weight, x * ratio)

the weight and bias read as they are, viewed as C x 1 x 1, or expanded to the batch and
unsqueezed so. A forward() that computes anything else is left as it is.
"""
from __future__ import annotations

import operator

import torch
from torch import fx, nn

# the function and the tensor method of each step
_ADD, _MUL, _DIV = (operator.add, torch.add, "add"), (operator.mul, torch.mul, "mul"), (
    operator.truediv, torch.div, "div")
_MEAN, _NORM = (torch.mean, "mean"), (torch.norm, "norm")
_SHAPING = ("expand", "unsqueeze", "view", "reshape")


def global_response_norms(graph: fx.Graph, modules: dict[str, nn.Module]) -> None:
    """Rewrite each GRN of `graph` (see the module's docstring) as a call of its module,
    read as `grn`."""
    for node in list(graph.nodes):
        found = _grn(node, modules)
        if found is None:
            continue
        x, holder, eps, nodes = found
        with graph.inserting_before(node):
            call = graph.call_module(holder, (x,))
        call.meta = {**node.meta, "read_as": ("grn", dict(eps=eps))}
        node.replace_all_uses_with(call)
        for each in sorted(nodes, key=_position(graph), reverse=True):
            graph.erase_node(each)


def grn_text(eps: float) -> str:
    """The call of std.layers' `grn` for eps: `grn`, or `grn(eps = 1e-05)`."""
    from ..source import format_value
    return "grn" if eps == 1e-6 else f"grn(eps = {format_value(float(eps))})"


def _grn(node: fx.Node, modules: dict[str, nn.Module]):
    """(x, the holder's path, eps, the nodes the call replaces) where `node` ends a GRN
    of x; else None."""
    if not _is(node, _ADD) or len(node.args) != 2:
        return None
    for inner, bias in (node.args, node.args[::-1]):  # (x + x·ratio·w) + b
        found = _sum(inner, bias) if _is(inner, _ADD) else None
        if found is not None:
            break
    else:  # x + addcmul(b, w, x·ratio)
        found = _addcmul(node)
    if found is None:
        return None
    x, scaled, weight, bias, steps = found
    ratio = next((r for r in scaled.args if r is not x), None) if _is(scaled, _MUL) else None
    eps, ratio_steps = _ratio(ratio, x) if isinstance(ratio, fx.Node) else (None, [])
    holder = _holder(weight, bias, modules, _shape(x))
    if eps is None or holder is None or x not in scaled.args:
        return None
    nodes = set(steps + ratio_steps + [scaled] + _chain(weight) + _chain(bias))
    if any(u not in nodes and u is not node for n in nodes for u in n.users):
        return None  # a step read elsewhere: not the layer alone
    return x, holder[0], eps, nodes | {node}


def _sum(inner: fx.Node, bias) -> tuple | None:
    """(x, x·ratio, weight, bias, steps) of `(x + x·ratio·weight) + bias`."""
    for x, gain in (inner.args, inner.args[::-1]):
        if _is(gain, _MUL) and len(gain.args) == 2:
            for scaled, weight in (gain.args, gain.args[::-1]):
                if _is(scaled, _MUL) and x in scaled.args:
                    return x, scaled, weight, bias, [inner, gain]
    return None


def _addcmul(node: fx.Node) -> tuple | None:
    for x, product in (node.args, node.args[::-1]):
        if isinstance(product, fx.Node) and product.op == "call_function" and \
                product.target is torch.addcmul and len(product.args) == 3 and \
                not product.kwargs:
            bias, weight, scaled = product.args
            return x, scaled, weight, bias, [product]
    return None


def _ratio(ratio: fx.Node, x: fx.Node) -> tuple[float | None, list[fx.Node]]:
    """(eps, steps) where `ratio` is ‖x‖ over the positions divided by its mean over the
    channels plus eps, on a batch x C x H x W map; (None, []) else."""
    if not _is(ratio, _DIV) or len(ratio.args) != 2:
        return None, []
    norms, total = ratio.args
    if not _is(total, _ADD) or not isinstance(total.args[1], float) or \
            not _is(total.args[0], _MEAN) or total.args[0].args[0] is not norms:
        return None, []
    mean = total.args[0]
    if len(_shape(x)) != 4 or _axes(mean, "dim") != {1} or not _kept(mean, 2) or \
            not _is_norm(norms, x):
        return None, []
    return total.args[1], [ratio, total, mean, norms]


def _is_norm(node, x: fx.Node) -> bool:
    """The L2 norm of x over its axes 2 and 3, kept."""
    if not isinstance(node, fx.Node) or not node.args or node.args[0] is not x or \
            not _kept(node, 3):
        return False
    if node.op == "call_function" and node.target is torch.linalg.vector_norm:
        order = node.args[1] if len(node.args) > 1 else node.kwargs.get("ord", 2)
    elif _is(node, _NORM):
        order = node.args[1] if len(node.args) > 1 else node.kwargs.get("p", 2)
    else:
        return False
    return order == 2 and _axes(node, "dim", 2) == {2, 3}


def _holder(weight, bias, modules: dict[str, nn.Module], shape) -> tuple[str] | None:
    """(the path of the module whose only parameters are `weight` and `bias`, C values
    each, read as they are or shaped to broadcast), or None."""
    read = [_chain(value)[-1:] for value in (weight, bias)]
    if not all(read):
        return None
    (path, _, first), (other, _, second) = (r[0].target.rpartition(".") for r in read)
    module = modules.get(path) if (path, first, second) == (other, "weight", "bias") else None
    if module is None or any(module.children()) or {
            name: tuple(p.shape) for name, p in module.named_parameters()} != {
            "weight": shape[1:2], "bias": shape[1:2]}:
        return None
    return (path,)


def _chain(value) -> list[fx.Node]:
    """The shaping steps from a parameter to `value` and the parameter's `get_attr`,
    last; [] where `value` is not a parameter so read."""
    chain = []
    while isinstance(value, fx.Node) and value.op == "call_method" and \
            value.target in _SHAPING or _is(value, (torch.unsqueeze, torch.reshape, "view")):
        chain.append(value)
        value = value.args[0]
    return chain + [value] if isinstance(value, fx.Node) and value.op == "get_attr" else []


def _axes(node: fx.Node, keyword: str, position: int = 1) -> set[int]:
    dims = node.args[position] if len(node.args) > position else node.kwargs.get(keyword)
    dims = dims if isinstance(dims, (list, tuple)) else (dims,)
    rank = len(_shape(node.args[0]))
    return {d % rank for d in dims if isinstance(d, int)} if rank else set()


def _kept(node: fx.Node, position: int) -> bool:
    """The reduction keeps its axes (`keepdim`, by keyword or at `position`)."""
    given = node.args[position] if len(node.args) > position else False
    return bool(node.kwargs.get("keepdim", given))


def _is(node, step: tuple) -> bool:
    """`node` calls one of `step`'s functions, or its tensor method (its last entry)."""
    *functions, method = step
    return isinstance(node, fx.Node) and (
        (node.op == "call_function" and node.target in functions)
        or (node.op == "call_method" and node.target == method))


def _position(graph: fx.Graph):
    order = {n: i for i, n in enumerate(graph.nodes)}
    return order.__getitem__


def _shape(node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return tuple(meta.shape) if hasattr(meta, "shape") else ()
