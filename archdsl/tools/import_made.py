"""Tensors a forward() makes itself, from the input's sizes, buffers and constants alone:
position ids from `arange`, a causal mask from `ones` and `tril` or from comparisons of
positions, token type ids read from a buffer of zeros. torch.export's graph computes them
between layers; archdsl.tools.import_export asks here what they are. Each is evaluated
on the example input and recognised by its values:

* ids 0, 1, ..., L - 1 along the sequence (plus an offset, repeated over the batch) are
  the language's `positions` of the input, cast to its integers;
* one whole number at every position (token types from a buffer of zeros) is that
  number, made from the positions the same way;
* a mask (booleans, or 0 and -inf added to the scores) that keeps every position is no
  mask; one that keeps, for each query, the keys up to its own position is causal.

What is none of these stops the import with the operation that made it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import fx

IDS = ("positions", "constant")
MASKS = ("all", "causal", "other")


def _is_size(node: fx.Node) -> bool:
    """A number computed in forward() (`x.size(1)`, `L // heads`), not a tensor."""
    value = node.meta.get("val")
    return isinstance(value, (int, float, bool, torch.SymInt, torch.SymFloat, torch.SymBool))


def made_nodes(graph: fx.Graph, kept: set[str], in_layers: set[fx.Node]) -> set[fx.Node]:
    """The operations of `graph` (outside layers) whose values come from sizes and the
    buffers and constants named in `kept` alone, not from the input's values or the
    parameters; those written into in place by an operation that is not are left out,
    with all that reads them."""
    made: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op != "call_function" or node in in_layers or _is_size(node):
            continue
        if all(m in made or m.name in kept or _is_size(m) for m in node.all_input_nodes):
            made.add(node)
        else:
            made -= _written(node)
    return made


def _written(node: fx.Node) -> set[fx.Node]:
    """The values an operation writes into in place (`copy_`, `add_`), and what they are
    views of, as far as the graph shows."""
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return set()
    found = set()
    for argument, value in zip(schema.arguments, node.args):
        if argument.alias_info is not None and argument.alias_info.is_write:
            while isinstance(value, fx.Node) and value not in found:
                found.add(value)
                value = value.args[0] if _is_view(value) else None
    return found


def _is_view(node: fx.Node) -> bool:
    """An operation whose value shares its first operand's memory (`x[:, 1:]`, `view`)."""
    schema = getattr(node.target, "_schema", None)
    return schema is not None and bool(schema.returns) and node.args and \
        schema.returns[0].alias_info is not None


@dataclass
class Made:
    """The made operations of an exported program, evaluated on demand on `example`
    (a tensor for each input).

    >>> made = Made(program, example, nodes)   # doctest: +SKIP
    >>> made.ids(position_ids)                 # doctest: +SKIP
    ('positions', 0)
    """
    program: object  # torch.export.ExportedProgram
    example: tuple[torch.Tensor, ...]
    nodes: set[fx.Node]
    values: dict[fx.Node, object] = field(default_factory=dict)

    def value(self, node: fx.Node):
        """The node's value on the example: the made operations run in order up to it,
        those that write into a value in place included (`mask[:] = mask.tril()`); None
        for one that reads what no made operation gives (a size that depends on values,
        the number of tokens routed to an expert)."""
        if node not in self.values:
            for each in self.program.graph.nodes:
                if each not in self.values and (
                        each in self.nodes or each.op == "placeholder" or _is_size(each)):
                    self.values[each] = self._run(each) if all(
                        self.values.get(m) is not None for m in each.all_input_nodes) \
                        else None
                if each is node:
                    break
        return self.values[node]

    def _run(self, node: fx.Node):
        if node.op == "placeholder":
            return self._state(node.name)
        args = fx.node.map_arg(node.args, self.values.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, self.values.__getitem__)
        return node.target(*args, **kwargs)

    def _state(self, name: str):
        signature = self.program.graph_signature
        target = {**signature.inputs_to_parameters, **signature.inputs_to_buffers,
                  **signature.inputs_to_lifted_tensor_constants}.get(name)
        if target is None:  # an input: the example for it, in the inputs' order
            users = [s.arg.name for s in signature.input_specs if s.kind.name == "USER_INPUT"]
            return self.example[users.index(name)]
        found = self.program.state_dict.get(target)
        found = self.program.constants[target] if found is None else found
        if name in signature.inputs_to_parameters:
            return found  # read for its sizes at most
        return found.detach().clone()  # the model's own buffers stay as they were

    def ids(self, node: fx.Node) -> tuple[str, int] | None:
        """(`positions`, first) for ids first, first + 1, ... along the sequence, the
        same in every example; (`constant`, number) for one number everywhere; else None."""
        value = self.value(node)
        first = self.example[0]
        length = first.shape[1] if first.dim() > 1 else -1
        if not isinstance(value, torch.Tensor) or value.is_floating_point() or \
                value.dtype == torch.bool or not 1 <= value.dim() <= 2 or \
                value.shape[-1] != length or value.numel() == 0:
            return None
        rows = value.reshape(-1, length)
        if (rows != rows[:1]).any():
            return None
        first = rows[0]
        if (first == first[0]).all():
            return "constant", int(first[0])
        if torch.equal(first - first[0], torch.arange(length, dtype=first.dtype)):
            return "positions", int(first[0])
        return None

    def mask(self, node: fx.Node) -> str:
        """`all` for a mask that keeps every position, `causal` for one that keeps the keys
        up to each query's position, `other` else; booleans keep where true, numbers added
        to the scores where 0 (and mask where -inf, or the type's lowest)."""
        value = self.value(node)
        if not isinstance(value, torch.Tensor) or value.dim() < 2:
            return "other"
        if value.dtype == torch.bool:
            keep = value
        elif value.is_floating_point():
            keep = value == 0
            if not (keep | (value <= torch.finfo(value.dtype).min / 2)).all():
                return "other"
        else:
            return "other"
        if keep.all():
            return "all"
        queries, keys = keep.shape[-2:]
        causal = torch.ones(queries, keys, dtype=torch.bool).tril()
        return "causal" if queries == keys and (keep == causal).all() else "other"


def ancestors(node: fx.Node) -> set[fx.Node]:
    """The node and every node its value is computed from."""
    found, todo = set(), [node]
    while todo:
        each = todo.pop()
        if each not in found:
            found.add(each)
            todo.extend(each.all_input_nodes)
    return found
