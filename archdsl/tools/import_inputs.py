"""The inputs and outputs of an imported model: an input per parameter of its
forward(), in that order, and an output per value it returns.

The sizes given for them (`archdsl import --input`, or `import_torch`'s shapes) are bound
to forward()'s parameters here, by name where they are named and in order where not; the
examples the model is traced on are made for them; and the spec's `input` statements are
written for them, named as forward()'s parameters (`x` for a model of one input).
"""
from __future__ import annotations

import inspect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn

from ..errors import UsageError
from .import_layers import ImportFailure, language_name

__all__ = ["ModelInput", "bind_inputs", "examples", "input_names", "input_statements",
           "placeholders", "returned", "scope_entry"]


@dataclass(frozen=True)
class ModelInput:
    """One argument of forward(): its parameter's name, its sizes (batch excluded), and
    whether it holds token ids (int64, one axis) rather than float values."""
    name: str
    shape: tuple[int, ...]
    token_ids: bool = False


def bind_inputs(model: nn.Module, shapes, token_ids) -> list[ModelInput]:
    """The inputs given, in forward()'s order. `shapes`: one shape (a model of one input),
    or a sequence of inputs, each a shape or a (parameter name, shape) pair: named ones go
    to that parameter, the rest to the others in order. `token_ids`: one flag for every
    input, or one per input given. Wrong inputs are usage errors.

    >>> model = nn.Bilinear(4, 6, 2)
    >>> [i.name for i in bind_inputs(model, [("input2", (6,)), (4,)], False)]
    ['input1', 'input2']
    """
    given = [shapes] if shapes and all(isinstance(d, int) for d in shapes) else list(shapes)
    flags = list(token_ids) if isinstance(token_ids, Sequence) else [token_ids] * len(given)
    if len(flags) != len(given):
        raise UsageError(f"{len(given)} inputs, {len(flags)} token_ids flags: give one each")
    parameters = _forward_parameters(model)
    named = {}
    for item, flag in zip(given, flags):
        name, shape = item if item and isinstance(item[0], str) else (None, item)
        named.setdefault(name, []).append((tuple(shape), bool(flag)))
    unnamed = named.pop(None, [])
    for name, found in named.items():
        if name not in parameters:
            raise UsageError(f"--input {name}=...: forward() has no parameter `{name}` (it "
                             f"takes {_listed(parameters)})")
        if len(found) > 1:
            raise UsageError(f"--input {name}=... given twice")
    free = [p for p in parameters if p not in named]
    if len(unnamed) > len(free):
        raise UsageError(f"{len(given)} inputs given; forward() takes {len(parameters)} "
                         f"({_listed(parameters)})")
    bound = dict(zip(free, unnamed)) | {name: found[0] for name, found in named.items()}
    missing = [p for p, required in parameters.items() if required and p not in bound]
    if missing:
        raise UsageError(f"forward() needs {_listed(missing)} too: give an --input for each "
                         "argument (NAME=SIZES)")
    inputs = [ModelInput(p, *bound[p]) for p in parameters if p in bound]
    skipped = [p for p in list(parameters)[:len(inputs)] if p not in bound]
    if skipped:  # the model is called with its inputs in order, one for each parameter
        raise UsageError(f"forward() takes {_listed(skipped)} before "
                         f"{inputs[-1].name}: give an --input for it too")
    for each in inputs:
        if each.token_ids and len(each.shape) != 1:
            raise UsageError(f"token ids have one axis (L), not {len(each.shape)} "
                             f"(input `{each.name}`)")
    return inputs


def _forward_parameters(model: nn.Module) -> dict[str, bool]:
    """{name: required} of the parameters forward() takes one by one."""
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):  # no signature to read: one input, as traced
        return {"x": True}
    found = {}
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY):
            break
        found[p.name] = p.default is p.empty
    return found or {"x": True}


def _listed(names) -> str:
    return ", ".join(names) if names else "no arguments"


def examples(model: nn.Module, inputs: list[ModelInput]) -> tuple[torch.Tensor, ...]:
    """A batch of two for each input: random floats, or token ids that every embedding of
    the model can look up (ids 0 and 1 where it has none)."""
    generator = torch.Generator().manual_seed(0)
    sizes = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)]
    made = []
    for each in inputs:
        if each.token_ids:
            made.append(torch.randint(0, min(sizes, default=2), (2, *each.shape),
                                      generator=generator))
        else:
            made.append(torch.randn(2, *each.shape, generator=generator))
    return tuple(made)


def input_statements(inputs: list[ModelInput], placeholders: list[fx.Node],
                     modules: dict[str, nn.Module], taken: set[str]) -> list[str]:
    """`input NAME: SIZES [as LAYOUT]` for each input; `taken`: the names of the model's
    top-level modules, which an input's name must not be."""
    names = input_names(inputs, taken)
    return [f"input {name}: " + " x ".join(map(str, each.shape)) + _layout(each, node, modules)
            for name, each, node in zip(names, inputs, placeholders)]


def input_names(inputs: list[ModelInput], taken: set[str]) -> list[str]:
    """The spec's name of each input: `x` for one (`inputs`, `x2`, ... where a top-level
    module is called so), forward()'s parameters' for several (`_2` added where taken)."""
    if len(inputs) == 1:
        candidates = itertools.chain(("x", "inputs"), (f"x{i}" for i in itertools.count(2)))
        return [next(name for name in candidates if name not in taken)]
    names = []
    for each in inputs:
        base = language_name(each.name, "x")
        name = next(n for n in itertools.chain([base], (f"{base}_{i}" for i in
                                                        itertools.count(2)))
                    if n not in taken and n not in names)
        names.append(name)
    return names


def _layout(each: ModelInput, node: fx.Node, modules: dict[str, nn.Module]) -> str:
    """Token ids `as token_ids`; a 2-D input a signal (C x L) where a 1-D convolution
    reads it, else tokens (L x C, the features last, as linear layers read them)."""
    if each.token_ids:
        return " as token_ids"
    if len(each.shape) != 2:
        return ""
    readers = [modules.get(u.target) for u in node.users if u.op == "call_module"]
    return " as signal" if any(isinstance(m, nn.Conv1d) for m in readers) else " as tokens"


def scope_entry(inside: list[fx.Node], params, inputs: set[fx.Node]) -> fx.Node | None:
    """Where the network has several `inputs`, the one a scope (its nodes `inside`)
    starts from: the first it reads, where it reads no other value from outside (BERT's
    embeddings, from input_ids); the others it reads by name. None otherwise."""
    if not inputs:
        return None
    within = set(inside)
    read = [v for n in inside for v in n.all_input_nodes if v not in params and v not in within]
    if any(v not in inputs for v in read):
        return None
    return read[0] if read else None


def placeholders(graph: fx.Graph, inputs: list[ModelInput]) -> list[fx.Node]:
    """The graph's nodes of the inputs given; a parameter of forward() beyond them
    (left at its default) that the traced graph reads anyway is an `ImportFailure`."""
    found = [n for n in graph.nodes if n.op == "placeholder"]
    read = next((n for n in found[len(inputs):] if n.users), None)
    if read is not None or len(found) < len(inputs):
        name = read.target if read is not None else "an argument"
        raise ImportFailure(f"the traced forward() reads `{name}`, which no input is given "
                            f"for; give one for each argument it reads ({len(found)} in all)")
    return found[:len(inputs)]


def returned(graph: fx.Graph) -> list[tuple[str, fx.Node]]:
    """The values forward() returns where they are several, each with the spec's name of
    its output: a dict's keys (`{"last_hidden_state": h, "pooler_output": p}`), else
    `out_0`, `out_1`, ... for a tuple; [] where it returns one tensor."""
    value = graph.output_node().args[0]
    if isinstance(value, fx.Node):
        return []
    pairs = list(value.items()) if isinstance(value, dict) else \
        [(f"out_{i}", v) for i, v in enumerate(value)] if isinstance(value, (tuple, list)) \
        else []
    if not pairs or not all(isinstance(v, fx.Node) for _, v in pairs):
        raise ImportFailure("forward() returns something else than tensors "
                            f"({type(value).__name__}); archdsl imports tensors, or a tuple "
                            "or dict of them")
    names = []
    for key, _ in pairs:
        base = language_name(str(key), "out")
        names.append(next(n for n in itertools.chain([base], (f"{base}_{i}" for i in
                                                              itertools.count(2)))
                          if n not in names))
    return [(name, v) for name, (_, v) in zip(names, pairs)]
