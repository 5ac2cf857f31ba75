"""Backend: lower a checked IR to a torch.fx.GraphModule, building the fx.Graph directly.

Inputs become placeholders, layers `call_module` nodes on standard torch.nn modules
installed at the IR's hierarchical names (so a spec written with torchvision's names
has torchvision's state_dict keys), merges and flatten `call_function` nodes. Every fx
node carries the .arch location it came from in `meta["stack_trace"]`, which
`gm.print_readable()` and torch's error messages show.

A network with train-only outputs (auxiliary heads) lowers to `AuxiliaryNetwork`: in
training mode it returns {output name: tensor} for all outputs; in eval mode only the
main output, and the train-only heads are not computed at all.

This is the only front-end-facing module that imports torch.
"""
from __future__ import annotations

import contextlib
import keyword
import operator

import networkx as nx
import torch
from torch import fx, nn

from .. import ir
from ..errors import InternalError
from ..ops import OPS
from .in_place import activations_in_place, sums_in_place


def lower_fx(graph: nx.DiGraph, *, zero_init_residual: bool = False) -> nn.Module:
    """Build the torch module for a checked IR, initialised like torchvision's models.

    >>> from archdsl import compile_source
    >>> gm = lower_fx(compile_source("network t { input x: 3 x 8 x 8; c: conv(4, 3); relu }").graph)
    >>> gm(torch.zeros(2, 3, 8, 8)).shape
    torch.Size([2, 4, 6, 6])
    """
    modules = _build_modules(graph)
    for name in activations_in_place(graph):  # as torchvision's layers do
        modules[name].inplace = True
    _initialise(graph, modules, zero_init_residual)
    root = _hierarchy(graph, modules)
    _tie(root, ir.network(graph).ties)
    parameters = {name for name, m in modules.items() if isinstance(m, nn.Parameter)}
    outputs = ir.network(graph).outputs
    if not any(o.train_only for o in outputs):
        return _in_order_of(fx.GraphModule(root, _fx_graph(graph, outputs, parameters),
                                           class_name=class_name(graph)), root)
    return AuxiliaryNetwork(graph, root, parameters)


def _tie(root: nn.Module, ties) -> None:
    """Each tied tensor replaced by its source: one Parameter under both keys, as
    transformers ties a head to its embedding (the source's initialisation holds)."""
    for tie in ties:
        setattr(root.get_submodule(tie.holder), tie.attribute, root.get_parameter(tie.source))


def _hierarchy(graph: nx.DiGraph, modules: dict[str, nn.Module]) -> nn.Module:
    """The modules installed at their paths in the scope tree, in the IR's order: so the
    state_dict lists them in the order the spec defines them (torchvision's order for its
    specs), not fx's default of shallow names first."""
    declared = {path: scope.declared for path, scope in ir.network(graph).scopes.items()
                if scope.declared}
    root = _holding(nn.Module(), declared.get("", ()))
    for name, module in modules.items():
        *path, last = ir.labels(graph, name)
        parent = _container(root, list(zip(path, ir.scopes_of(graph, name))), declared)
        if isinstance(module, nn.Parameter):
            _placed(parent, last, "_parameters")  # parameters come first in any case
            parent.register_parameter(last, module)
        elif isinstance(module, torch.Tensor):  # then buffers, as torch lists them
            _placed(parent, last, "_buffers")
            parent.register_buffer(last, module)
        else:
            _placed(parent, last, "_modules")
            parent.add_module(last, module)
    return root


def _placed(parent: nn.Module, label: str, table: str) -> None:
    """The places `_holding` kept for `label` gone but in `table`, which it fills."""
    for other in ("_parameters", "_buffers", "_modules"):
        if other != table and getattr(parent, other).get(label, 0) is None:
            del getattr(parent, other)[label]


def _container(root: nn.Module, path: list[tuple[str, str]], declared: dict) -> nn.Module:
    """The module at `path` ((label, scope path) of each level) below `root`, made where
    missing: an empty nn.Module holding the places of the labels its scope `declare`s."""
    parent = root
    for label, scope in path:
        if getattr(parent, label, None) is None:
            _placed(parent, label, "_modules")
            parent.add_module(label, _holding(nn.Module(), declared.get(scope, ())))
        parent = getattr(parent, label)
    return parent


def _holding(container: nn.Module, labels: tuple[str, ...]) -> nn.Module:
    """`container` with a place kept for each of `labels`, in order, filled when its layer,
    parameter or buffer is installed: the state_dict lists them there, whatever order
    they run in (parameters among parameters, as torch lists them)."""
    for label in labels:
        for table in ("_parameters", "_buffers", "_modules"):
            getattr(container, table)[label] = None
    return container


def _in_order_of(copy: nn.Module, original: nn.Module) -> nn.Module:
    """`copy` (fx's GraphModule, which installs modules in the order its graph first uses
    them) with its parameters and modules in `original`'s order, recursively: the order
    the spec defines them, or `declare`s them."""
    for table in ("_parameters", "_buffers", "_modules"):
        mine, theirs = getattr(copy, table), getattr(original, table)
        order = [k for k in theirs if k in mine] + [k for k in mine if k not in theirs]
        setattr(copy, table, {k: mine[k] for k in order})
    for name, child in copy._modules.items():
        source = original._modules.get(name)
        if child is not None and source is not None and child is not source:
            _in_order_of(child, source)
    return copy


class AuxiliaryNetwork(nn.Module):
    """A network with train-only heads: two fx graphs over one set of modules."""

    def __init__(self, graph: nx.DiGraph, modules: nn.Module, parameters: set[str]):
        super().__init__()
        name = class_name(graph)
        train = _in_order_of(fx.GraphModule(
            modules, _fx_graph(graph, ir.network(graph).outputs, parameters), name), modules)
        for name, parameter in train.named_parameters(recurse=False):
            self.register_parameter(name, parameter)  # a top-level layer scale
        for child_name, child in train.named_children():
            self.add_module(child_name, child)  # registered once: flat state_dict keys
        main = tuple(o for o in ir.network(graph).outputs if not o.train_only)
        evaluate = fx.GraphModule(modules, _fx_graph(graph, main, parameters), name)
        object.__setattr__(self, "train_module", train)  # not registered: no duplicate keys
        object.__setattr__(self, "eval_module", evaluate)
        self.output_names = tuple(o.name for o in ir.network(graph).outputs)

    def forward(self, *inputs):
        return (self.train_module if self.training else self.eval_module)(*inputs)

    @property
    def graph(self) -> fx.Graph:
        """The training graph (all outputs); `eval_module.graph` has the main outputs only."""
        return self.train_module.graph

    @property
    def code(self) -> str:
        return self.train_module.code


def class_name(graph: nx.DiGraph) -> str:
    return "".join(part.capitalize() for part in ir.network(graph).name.split("_")) or "Network"


def _build_modules(graph: nx.DiGraph) -> dict[str, nn.Module]:
    """Build every layer on the meta device (no memory, no default init): _initialise
    then gives each its real storage and its one initialisation."""
    modules = {}
    with torch.device("meta"):
        for item in ir.nodes(graph):
            op = OPS[item.op]
            ins = tuple(ir.shape(graph, name) for name in item.inputs)
            if op.lowers_to_module(item.args, ins):
                modules[item.name] = op.module(item.args, ins)
    return {name: _on_cpu(module) for name, module in modules.items()}


def _on_cpu(module):
    if isinstance(module, nn.Parameter):  # a bare parameter (layer scale)
        return nn.Parameter(torch.empty_like(module, device="cpu"))
    if isinstance(module, torch.Tensor):  # a buffer
        return torch.empty_like(module, device="cpu")
    return module.to_empty(device="cpu")


def _fx_graph(graph: nx.DiGraph, outputs, parameters: set[str]) -> fx.Graph:
    needed = _ancestors(graph, [o.node for o in outputs])
    overwrite = sums_in_place(graph)
    fx_graph = fx.Graph()
    fx_graph.set_codegen(_KeywordSafeCodegen())
    values: dict[str, fx.Node] = {}
    for name in ir.network(graph).inputs:
        values[name] = _placeholder(fx_graph, name)
    batch = values[ir.network(graph).inputs[0]] if ir.network(graph).inputs else None
    for item in ir.nodes(graph):
        if item.op == "input" or item.name not in needed:
            continue
        args = [values[name] for name in item.inputs]
        if item.op in ("parameter", "buffer"):
            values[item.name] = _parameter(fx_graph, item, batch)
        elif item.name in overwrite:  # `out += skip`, as torchvision's blocks add
            values[item.name] = fx_graph.call_function(operator.iadd, tuple(args))
        else:
            ins = tuple(ir.shape(graph, name) for name in item.inputs)
            values[item.name] = _fx_node(fx_graph, item, args, ins, parameters)
        values[item.name].meta["stack_trace"] = _stack_trace(item)
        values[item.name].meta["archdsl_node"] = item.name
    if len(outputs) == 1:
        fx_graph.output(values[outputs[0].node])
    else:
        fx_graph.output({o.name: values[o.node] for o in outputs})
    fx_graph.lint()
    return fx_graph


def _placeholder(fx_graph: fx.Graph, name: str) -> fx.Node:
    """An input of forward(). Its parameter name is the input's, unless Python or the
    generated code needs that name (`class`, `self`, `getattr`, `torch`): then fx's
    mangled node name (`class_1`)."""
    node = fx_graph.placeholder(name + "_" if name == "self" else name)
    node.target = node.name
    return node


class _KeywordSafeCodegen(fx.graph.CodeGen):
    """fx's code generator, except that a module path through a Python keyword is written
    `getattr(self, "class")` instead of the invalid `self.class`: so a label may be any
    identifier and the state_dict keys stay exactly as the spec writes them."""

    def _gen_python_code(self, *args, **kwargs):
        with _keywords_through_getattr():
            return super()._gen_python_code(*args, **kwargs)


@contextlib.contextmanager
def _keywords_through_getattr():
    original = fx.graph._format_target

    def format_target(base: str, target: str) -> str:
        for part in target.split("."):  # fx's own dotted target, not a name of the IR
            base = f"{base}.{part}" if part.isidentifier() and not keyword.iskeyword(part) \
                else f'getattr({base}, "{part}")'
        return base
    fx.graph._format_target = format_target
    try:
        yield
    finally:
        fx.graph._format_target = original


def _fx_node(fx_graph: fx.Graph, item: ir.Node, args: list[fx.Node], ins: tuple,
             parameters: set[str]) -> fx.Node:
    op = OPS[item.op]
    if item.name in parameters:  # a learned factor: input times the parameter
        return fx_graph.call_function(operator.mul, (args[0], fx_graph.get_attr(item.name)))
    if op.lowers_to_module(item.args, ins):
        # named after the module path, as fx would, but never `self` (the module itself)
        name = item.name.replace(".", "_")
        return fx_graph.create_node("call_module", item.name, tuple(args),
                                    name=name + "_" if name == "self" else name)
    return op.function(fx_graph, args, item.args, ins)


def _parameter(fx_graph: fx.Graph, item: ir.Node, batch: fx.Node) -> fx.Node:
    """A declared parameter repeated over the batch, as a class token is
    before it joins the patches: `p.expand(x.size(0), -1, ...)`, a view."""
    value = fx_graph.get_attr(item.name)
    size = fx_graph.call_method("size", (batch, 0))
    return fx_graph.call_method("expand", (value, size) + (-1,) * len(item.args["shape"]))


def _ancestors(graph: nx.DiGraph, names: list[str]) -> set[str]:
    needed = set(names)
    for name in names:
        needed |= nx.ancestors(graph, name)
    return needed


def _stack_trace(item: ir.Node) -> str:
    frames = [f'  File "{frame.call.source.path}", line {frame.call.line}, in {frame.block}'
              for frame in item.trace]
    where = item.span
    return "\n".join(frames + [f'  File "{where.source.path}", line {where.line}, in {item.name}',
                               f"    {where.source.line_text(where.line).strip()}"])


# ---- initialisation ---------------------------------------------------------------------


def _initialise(graph: nx.DiGraph, modules: dict[str, nn.Module], zero_init_residual: bool):
    """Each layer as its op's `init` says (torchvision's: Kaiming normal convs with zero
    bias, norms at weight 1 and bias 0 with fresh statistics, linear layers as torch).
    Modules are built on the meta device, so a layer with parameters or buffers and no
    `init` would keep garbage: that is refused, never silently left."""
    for item in ir.nodes(graph):
        module = modules.get(item.name)
        if module is None:
            continue
        op = OPS[item.op]
        if op.init is not None:
            op.init(module, item.args)
        elif _has_state(module):
            raise InternalError(f"op `{op.name}` builds {type(module).__name__} with parameters "
                                "or buffers but declares no `init`")
    if zero_init_residual:
        for name in _last_residual_norms(graph):
            target = modules[name]
            nn.init.zeros_(target if isinstance(target, nn.Parameter) else target.weight)


def _has_state(module) -> bool:
    if isinstance(module, torch.Tensor):  # a bare parameter or buffer
        return True
    return any(True for _ in module.parameters()) or any(
        b.is_floating_point() for b in module.buffers())


def _last_residual_norms(graph: nx.DiGraph):
    """The normalisation that ends each residual body (through parameter-free layers):
    a norm op with learned parameters (batch, layer or group norm; a layer scale)."""
    def weighted_norm(item) -> bool:
        op = OPS[item.op]
        return op.family == "norm" and op.params(item.args, (
            ir.shape(graph, item.inputs[0]),)) > 0
    for item in ir.nodes(graph):
        if item.role != "residual":
            continue
        body = ir.node(graph, item.inputs[0])
        while not weighted_norm(body) and len(body.inputs) == 1 and (
                OPS[body.op].family in ("act", "reg") or body.op == "identity"):
            body = ir.node(graph, body.inputs[0])
        if weighted_norm(body):
            yield body.name
