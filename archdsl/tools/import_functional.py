"""Parameters that forward() passes to functions as weights, read as the layers and ops
that compute the same: a rewrite of the traced graph (its shapes propagated) before its
statements are written (archdsl.tools.import_structure).

* a module whose forward() is one functional layer over its own parameters, alone or
  between two permutes to channels-last and back, `F.layer_norm(x, shape, self.weight,
  self.bias, eps)` or `F.linear(x, self.weight, self.bias)` (ConvNeXt's LayerNorm2d and
  ChannelLinear, subclasses of nn.LayerNorm and nn.Linear with a forward of their own),
  is that layer: one call of the module, read as `layernorm`, `linear` or
  `channel_linear`, whose parameters keep the module's keys;
* `torch.addmm(b, x.view(-1, k), W).view(...)` (transformers' Conv1D: x·W + b, W
  stored in x out) is `torch.matmul(x, W) + b` on x itself, which the spec writes over
  the parameters declared, `param weight: 64 x 192`, `matmul(weight)`, `add(bias)`;
* x · rsqrt(mean(x², -1) + eps), an RMSNorm written out (transformers' LlamaRMSNorm), is
  the language's `rms_norm(eps)`; its weight, a parameter read by `mul`, stays one;
* a global response norm written out (ConvNeXt V2's GRN) is one call of the module that
  holds its weight and bias, read as std.layers' `grn` (archdsl.tools.import_grn).

* a module without parameters or buffers whose forward() computes an activation in
  element-wise steps (transformers' NewGELUActivation: 0.5·x·(1 + tanh(√(2/π)·(x +
  0.044715·x³)))) is the layer that gives its values, `gelu(approximate = "tanh")`,
  checked on random values.

What matches none of these is left as it is (and refused where the spec cannot say it).
"""
from __future__ import annotations

import math
import operator

import torch
from torch import fx, nn

from ..ops.functions import rms_norm
from .import_export import is_layer
from .import_layers import own_function
from .import_grn import global_response_norms

F = nn.functional

# functional layers: the function, its arguments' names in order, and the op it is
_LAYERS = {F.layer_norm: ("layernorm", ("input", "normalized_shape", "weight", "bias", "eps")),
           F.linear: ("linear", ("input", "weight", "bias"))}
_TO_CHANNELS_LAST, _TO_CHANNELS_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)


def functional_layers(model: nn.Module, graph: fx.Graph) -> None:
    """Rewrite in `graph` what forward() computes with parameters passed to functions as
    the layers and ops the spec writes (see the module's docstring)."""
    modules = dict(model.named_modules())
    _unchanged_casts(graph)
    for path, module in modules.items():
        _activation(graph, path, module)
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target in _LAYERS:
            _whole_layer(graph, node, modules)
        elif node.op == "call_function" and node.target is torch.addmm:
            _matrix_product(graph, node, modules)
        elif _is(node, "mul", operator.mul, torch.mul):
            _rms_norm(graph, node)
    global_response_norms(graph, modules)


def _unchanged_casts(graph: fx.Graph) -> None:
    """`x.to(torch.float32)`, `x.to(x.dtype)`, archdsl's `cast_like(x, weight)` where x
    has that type already: x (as torch.export's capture reads them)."""
    for node in list(graph.nodes):
        like = (node.args[1:2] or [node.kwargs.get("like")])[0] \
            if own_function(node.target, "cast_like") else None
        if not (_is(node, "to") or _is(node, "type_as") or _is(node, "float") or
                getattr(like, "op", None) == "get_attr" or
                (like is not None and like is node.args[0])) or \
                not isinstance(node.args[0], fx.Node):
            continue  # archdsl's cast_like of two values stays: it may end a float32 step
        before, after = node.args[0].meta.get("tensor_meta"), node.meta.get("tensor_meta")
        if hasattr(before, "dtype") and hasattr(after, "dtype") and before.dtype == after.dtype:
            node.replace_all_uses_with(node.args[0])
            _erase_unread(graph, node, keep=node.args[0])


# -- a module that is one functional layer


def _whole_layer(graph: fx.Graph, core: fx.Node, modules: dict[str, nn.Module]) -> None:
    """`core` (F.layer_norm, F.linear) as a call of the module whose own parameters it
    reads, where that module's forward() computes nothing else (bar two permutes)."""
    kind, names = _LAYERS[core.target]
    args = dict(zip(names, core.args)) | dict(core.kwargs)
    weight, bias = args.get("weight"), args.get("bias")
    holder = _holder(weight, modules)
    if holder is None or weight.target.rpartition(".")[2] != "weight" or (
            bias is not None and _holder(bias, modules) != holder):
        return
    module = modules[holder]
    used = {"weight"} | ({"bias"} if bias is not None else set())
    if {name for name, _ in module.named_parameters()} != used or any(module.children()):
        return
    first, last = args["input"], _only_user(core)
    if not (_permutes(first, _TO_CHANNELS_LAST) and len(first.users) == 1
            and last is not None and _permutes(last, _TO_CHANNELS_FIRST)):
        first = last = None
    nodes = [n for n in (first, core, last) if n is not None]
    owned = {n for n in graph.nodes if n.op in ("call_function", "call_method")
             and _owner(n) == holder}
    if owned != set(nodes):
        return
    read = _read(kind, args, module, channels_first=first is not None)
    if read is None:
        return
    with graph.inserting_before(nodes[-1]):
        call = graph.call_module(holder, (nodes[0].args[0] if first is not None
                                          else args["input"],))
    call.meta = {**nodes[-1].meta, "read_as": read}
    nodes[-1].replace_all_uses_with(call)
    for node in reversed(nodes):
        graph.erase_node(node)
    for attribute in (weight, bias):
        if attribute is not None and not attribute.users:
            graph.erase_node(attribute)


def _read(kind: str, args: dict, module: nn.Module, channels_first: bool):
    """The op and arguments of a functional layer; None where no op computes it."""
    weight = module.weight
    if kind == "linear":
        op = "channel_linear" if channels_first else "linear"
        return op, dict(features=weight.shape[0], bias=args.get("bias") is not None)
    shape = tuple(args["normalized_shape"])
    if len(shape) != 1 or tuple(weight.shape) != shape or args.get("bias") is None:
        return None
    return "layernorm", dict(eps=float(args.get("eps", 1e-5)))


# -- an activation written out

_ACTIVATIONS = (("gelu", {}, F.gelu), ("gelu", dict(approximate="tanh"),
                                       lambda x: F.gelu(x, approximate="tanh")),
                ("silu", {}, F.silu), ("relu", {}, F.relu), ("sigmoid", {}, torch.sigmoid),
                ("tanh", {}, torch.tanh), ("hardswish", {}, F.hardswish))


def _activation(graph: fx.Graph, path: str, module: nn.Module) -> None:
    """The steps of a module's forward() as one call of it, read as the activation
    whose values its forward() gives on random values of its input's shape."""
    if not path or is_layer(module) or next(iter(module.state_dict()), None) is not None:
        return  # a torch.nn layer is read as it is
    nodes = [n for n in graph.nodes if n.op not in ("placeholder", "output") and (
        (n.target if n.op == "call_module" else _owner(n)) + ".").startswith(path + ".")]
    inside = set(nodes)
    entries = {v for n in nodes for v in n.all_input_nodes if v not in inside}
    leaving = [n for n in nodes if any(u not in inside for u in n.users)]
    if len(entries) != 1 or len(leaving) != 1 or any(
            v.op == "get_attr" for v in entries):
        return
    (entry,) = entries
    shape = _shape(entry)
    if not shape or _shape(leaving[0]) != shape:
        return
    probe = 3 * torch.randn(shape, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            given = module(probe)
    except Exception:  # noqa: BLE001 - a forward() that takes more than one tensor
        return
    found = next(((op, args) for op, args, function in _ACTIVATIONS
                  if isinstance(given, torch.Tensor) and given.shape == probe.shape
                  and torch.allclose(given, function(probe), rtol=1e-5, atol=1e-6)), None)
    if found is None:
        return
    with graph.inserting_before(leaving[0]):
        call = graph.call_module(path, (entry,))
    call.meta = {**leaving[0].meta, "read_as": found}
    leaving[0].replace_all_uses_with(call)
    for node in reversed(nodes):
        graph.erase_node(node)


# -- transformers' Conv1D: x·W + b on the tokens flattened


def _matrix_product(graph: fx.Graph, node: fx.Node, modules: dict[str, nn.Module]) -> None:
    """`torch.addmm(b, x.view(-1, k), W).view(..., n)` as `torch.matmul(x, W) + b`."""
    if node.kwargs or len(node.args) != 3:
        return
    bias, flat, weight = node.args
    after = _only_user(node)
    if _holder(bias, modules) is None or _holder(weight, modules) is None or \
            not _is_reshape(flat) or after is None or not _is_reshape(after):
        return
    x = flat.args[0]
    before, flattened, result = _shape(x), _shape(flat), _shape(after)
    if not before or len(flattened) != 2 or before[:-1] != result[:-1] or \
            flattened != (math.prod(before[:-1]), before[-1]):
        return
    with graph.inserting_before(after):
        product = graph.call_function(torch.matmul, (x, weight))
        total = graph.call_function(operator.add, (product, bias))
    product.meta = {**node.meta, "tensor_meta": after.meta.get("tensor_meta")}
    total.meta = dict(product.meta)
    after.replace_all_uses_with(total)
    graph.erase_node(after)
    graph.erase_node(node)
    if not flat.users:
        graph.erase_node(flat)


# -- RMSNorm written out


def _rms_norm(graph: fx.Graph, node: fx.Node) -> None:
    """`x * rsqrt(mean(x ** 2, -1, keepdim=True) + eps)` as `rms_norm(x, eps)`."""
    if len(node.args) != 2 or not all(isinstance(a, fx.Node) for a in node.args):
        return
    for x, scale in (node.args, node.args[::-1]):
        eps = _mean_square_plus(scale, x)
        if eps is not None:
            break
    else:
        return
    with graph.inserting_before(node):
        normed = graph.call_function(rms_norm, (x, eps))
    normed.meta = dict(node.meta)
    node.replace_all_uses_with(normed)
    _erase_unread(graph, node, keep=x)


def _erase_unread(graph: fx.Graph, node: fx.Node, keep: fx.Node) -> None:
    """`node` and what it alone read, back to `keep`, where nothing reads them."""
    chain, erased = [node], set()
    while chain:
        each = chain.pop(0)
        if each not in erased and each is not keep and not each.users:
            chain += each.all_input_nodes
            erased.add(each)
            graph.erase_node(each)


def _mean_square_plus(node: fx.Node, x: fx.Node) -> float | None:
    """eps where `node` is rsqrt(mean(x ** 2 over the last axis, kept) + eps), else None."""
    if not _is(node, "rsqrt", torch.rsqrt) or len(node.all_input_nodes) != 1:
        return None
    total = node.all_input_nodes[0]
    if not _is(total, "add", operator.add, torch.add) or len(total.args) != 2 or \
            not isinstance(total.args[1], (int, float)) or not isinstance(total.args[0], fx.Node):
        return None
    mean = total.args[0]
    if not _is(mean, "mean", torch.mean) or len(mean.args) < 2:
        return None
    axes = mean.args[1] if isinstance(mean.args[1], (list, tuple)) else (mean.args[1],)
    kept = mean.args[2] if len(mean.args) > 2 else mean.kwargs.get("keepdim", False)
    rank = len(_shape(x))
    if not kept or not rank or [a % rank for a in axes] != [rank - 1]:
        return None
    square = mean.args[0]
    if not _is(square, "pow", torch.pow, operator.pow) or square.args[:2] != (x, 2):
        return None
    return float(total.args[1])


# -- reading nodes


def _is(node, method: str, *functions) -> bool:
    return isinstance(node, fx.Node) and (
        (node.op == "call_method" and node.target == method)
        or (node.op == "call_function" and node.target in functions))


def _holder(node, modules: dict[str, nn.Module]) -> str | None:
    """The path of the module whose own parameter `node` reads (`get_attr`), else None."""
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        return None
    holder, _, name = node.target.rpartition(".")
    module = modules.get(holder)
    own = dict(module.named_parameters(recurse=False)) if module is not None else {}
    return holder if name in own else None


def _only_user(node: fx.Node) -> fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _permutes(node, order: tuple[int, ...]) -> bool:
    if not _is(node, "permute", torch.permute):
        return False
    given = node.args[1:] if len(node.args) > 2 else node.args[1:2]
    given = tuple(given[0]) if len(given) == 1 and isinstance(given[0], (list, tuple)) \
        else tuple(given)
    return given == order


def _is_reshape(node) -> bool:
    return _is(node, "view", torch.reshape) or _is(node, "reshape")


def _shape(node: fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if hasattr(meta, "shape") else ()


def _owner(node: fx.Node) -> str:
    """The module in whose forward() the node ran (its module stack's last entry)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1]
    return (path[0] if isinstance(path, tuple) else str(path)).split("@")[0]
