"""Rewrites of a traced graph before its statements are written (archdsl.tools.
import_structure): what forward() computes in one step that the spec writes in several,
and the auxiliary heads that only the training forward() computes.
"""
from __future__ import annotations

import contextlib
import copy
import io
import operator
from dataclasses import dataclass

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from .import_export import is_layer


def one_axis_indexing(graph: fx.Graph) -> None:
    """`x[..., a:b, c:d]` (an ellipsis, or several axes sliced at once: U-Net's centre
    crop) as one indexing per sliced axis, `x[:, :, a:b]` then `x[:, :, :, c:d]`, each of
    which the spec writes as a `slice`."""
    full = slice(None)
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not operator.getitem:
            continue
        whole, index = node.args[0], node.args[1]
        index = index if isinstance(index, tuple) else (index,)
        meta = whole.meta.get("tensor_meta") if isinstance(whole, fx.Node) else None
        if not hasattr(meta, "shape") or index.count(Ellipsis) > 1 or not all(
                item is Ellipsis or isinstance(item, slice) and all(isinstance(
                    v, (int, type(None))) for v in (item.start, item.stop, item.step))
                for item in index):
            continue  # a number, a new axis, a tensor: read as it is, or refused
        ellipsis = Ellipsis in index
        if ellipsis:
            at = index.index(Ellipsis)
            index = index[:at] + (full,) * (len(meta.shape) - len(index) + 1) + index[at + 1:]
        chosen = [(axis, item) for axis, item in enumerate(index) if item != full]
        if not chosen or (len(chosen) == 1 and not ellipsis):
            continue  # nothing sliced, or one axis as the spec writes it
        shape, value = list(meta.shape), whole
        for axis, item in chosen:
            start, end, step = item.indices(shape[axis])
            shape[axis] = len(range(start, end, step))
            with graph.inserting_before(node):
                value = graph.call_function(operator.getitem, (
                    value, (full,) * axis + (slice(start, end, step),)))
            value.meta = {**node.meta, "tensor_meta": meta._replace(shape=torch.Size(shape))}
        node.replace_all_uses_with(value)
        graph.erase_node(node)


@dataclass(frozen=True)
class AuxHead:
    """An auxiliary head copied into the eval graph: the module that holds its layers,
    the value it taps, and its nodes in order (the last one its result)."""
    scope: str
    tap: fx.Node
    nodes: tuple[fx.Node, ...]


def aux_heads(model: nn.Module, graph: fx.Graph,
              shapes: list[tuple[int, ...]]) -> list[AuxHead]:
    """The heads that forward() computes only in training (GoogLeNet's, Inception's),
    copied into `graph` (the eval graph) from the values they tap: where layers with
    parameters are never called in eval mode, a copy of the model is traced in training
    mode (on float inputs of `shapes`), and each further output it returns whose layers
    lie under one module that the eval graph never calls is such a head. None where the
    training trace fails."""
    called = {n.target for n in graph.nodes if n.op == "call_module"}
    if all(path in called or not is_layer(m) or next(m.parameters(), None) is None
           for path, m in model.named_modules()):
        return []
    training = copy.deepcopy(model).train()
    try:
        traced = _LayerTracer().trace(training)
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            _TrainingShapes(training, traced).propagate(*(torch.randn(2, *s) for s in shapes))
    except Exception:  # noqa: BLE001 - no heads read; the eval graph is imported as it is
        return []
    (output,) = [n for n in traced.nodes if n.op == "output"]
    results = output.args[0]
    results = list(results.values()) if isinstance(results, dict) else \
        list(results) if isinstance(results, (tuple, list)) else [results]
    results = [r for r in results if isinstance(r, fx.Node)]
    main = next((r for r in results if r.name == graph.output_node().args[0].name), None) \
        if results else None
    kept = _ancestors([main]) if main is not None else set()
    return [head for head in (_copied(graph, result, kept, called) for result in results
                              if result is not main) if head is not None]


def _copied(graph: fx.Graph, result: fx.Node, kept: set[fx.Node],
            called: set[str]) -> AuxHead | None:
    """The head that ends at `result` of the training graph, copied into `graph`; None
    where it taps no one value of the eval graph, or its layers lie under no module of
    their own."""
    head = _ancestors([result]) - kept
    nodes = [n for n in result.graph.nodes if n in head]
    taps = {v for n in nodes for v in n.all_input_nodes if v not in nodes}
    targets = [n.target for n in nodes if n.op == "call_module"]
    scope = _common_scope(targets)
    by_name = {n.name: n for n in graph.nodes}
    tap = by_name.get(next(iter(taps)).name) if len(taps) == 1 else None
    if tap is None or (tap.op, tap.target) != (next(iter(taps)).op, next(iter(taps)).target) \
            or not scope or any(t == scope or t.startswith(scope + ".") for t in called):
        return None
    copies = {next(iter(taps)): tap}
    with graph.inserting_before(graph.output_node()):
        for node in nodes:
            copies[node] = graph.node_copy(node, lambda value: copies[value])
    return AuxHead(scope, tap, tuple(copies[n] for n in nodes))


def _ancestors(nodes: list[fx.Node]) -> set[fx.Node]:
    """The nodes and every node they read, directly or not."""
    seen, todo = set(nodes), list(nodes)
    while todo:
        for value in todo.pop().all_input_nodes:
            if value not in seen:
                seen.add(value)
                todo.append(value)
    return seen


def _common_scope(targets: list[str]) -> str:
    """The deepest module path that holds every one of `targets`' modules' parents."""
    parents = [t.rpartition(".")[0].split(".") for t in targets]
    common = []
    for parts in zip(*parents) if parents else ():
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common)


class _LayerTracer(fx.Tracer):
    """torch.nn layers whole, the rest traced through, as the eval graph was traced."""

    def __init__(self):
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, module: nn.Module, name: str) -> bool:
        return is_layer(module)


class _TrainingShapes(ShapeProp):
    """torch's ShapeProp over a graph traced from `model` (no fx.GraphModule made)."""

    def __init__(self, model: nn.Module, graph: fx.Graph):
        fx.Interpreter.__init__(self, model, graph=graph)
        self.fake_module, self.fake_mode, self.real_module = None, None, model


def cyclic(inputs: dict[str, set[str]]) -> bool:
    """True where following the inputs from some item comes back to it (iteratively)."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for root in inputs:
        if state.get(root):
            continue
        stack = [(root, iter(inputs[root]))]
        state[root] = 1
        while stack:
            key, pending = stack[-1]
            source = next(pending, None)
            if source is None:
                state[key] = 2
                stack.pop()
            elif source in inputs:
                if state.get(source) == 1:
                    return True
                if not state.get(source):
                    state[source] = 1
                    stack.append((source, iter(inputs[source])))
    return False


def uncalled(module) -> bool:
    """A module without a forward() of its own (a ModuleList, a ModuleDict, a bare
    nn.Module holding layers): a container whose members forward() calls one by one
    (DenseNet's dense block, a ModuleDict with its own forward, is called as a whole)."""
    return isinstance(module, nn.Module) and type(module).forward in (
        nn.ModuleList.forward, nn.ModuleDict.forward, nn.Module.forward)


def reached(start: str, edges) -> set[str]:
    """The items reached from `start` (not itself, unless by a cycle) along `edges`
    (an item: the items next to it): its descendants, or its ancestors.

    >>> sorted(reached("a", {"a": ["b"], "b": ["c", "a"], "c": []}.__getitem__))
    ['a', 'b', 'c']
    """
    seen, todo = set(), [start]
    while todo:
        for other in edges(todo.pop()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def meeting_point(start: str, keys: list[str], inputs) -> str | None:
    """The first of `keys` (items after `start`, in the order they run; `inputs`: an
    item's the items it reads) that every later one reaches only through it: none after
    it reads `start` or an item before it. None where only the last is.

    >>> meeting_point("s", ["a", "b", "c", "d"], {"a": ["s"], "b": ["s"], "c": ["a", "b"],
    ...                                           "d": ["c"]}.__getitem__)
    'c'
    """
    last: dict[str, int] = {}  # an item's last reader, by place
    for place, key in enumerate(keys):
        for source in inputs(key):
            last[source] = max(last.get(source, -1), place)
    reach = last.get(start, -1)
    for place, key in enumerate(keys[:-1]):
        if reach <= place:
            return key
        reach = max(reach, last.get(key, -1))
    return None


def overlapping(branches) -> bool:
    """Two of the sets of items share one: a merge's branches that cannot be written
    apart (a mixture of experts' router, read by both the experts and their weights).

    >>> overlapping([{"a", "b"}, {"c"}]), overlapping([{"a", "b"}, {"b"}])
    (False, True)
    """
    seen: set[str] = set()
    for branch in branches:
        if seen & branch:
            return True
        seen |= branch
    return False
