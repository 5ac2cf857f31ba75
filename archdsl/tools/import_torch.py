"""`archdsl import`: a PyTorch model as a `.arch` spec.

The model is traced with torch.fx (torch.nn layers stay whole, the model's own modules are
traced through) and its shapes propagated on an example input. Then, scope by scope of
the module tree:

* each torch.nn layer becomes the archdsl layer that lowers to the same module, labelled
  with its attribute name, so the spec's names, and so its state_dict keys, are the
  model's; which layer that is comes from the op table (archdsl.ops) itself: an op
  without arguments is found by the module it builds, the rest by reading the module's
  constructor arguments into the op's, and every match is checked by building the op's
  module again and comparing it with the model's;
* a fork whose paths meet again in an add becomes `residual { } skip { }`, in a
  concatenation `concat { }`;
* module instances of one class whose specs differ only in numbers become one `block`
  with those numbers as parameters, and runs of identical calls `repeat`s.

A layer archdsl cannot express is an `ImportFailure` naming the module path and type.

This module loads and traces the model; archdsl.tools.import_structure writes the scopes'
statements, archdsl.tools.import_layers each layer's.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import UsageError
from .import_export import capture_export, is_layer
from .import_functional import functional_layers
from .import_inputs import ModelInput, bind_inputs, examples, placeholders
from .import_layers import ImportFailure, top
from .import_lookups import lookup_functions
from .import_structure import write_spec
from .import_ties import with_ties

__all__ = ["CAPTURES", "ImportFailure", "Imported", "import_model", "import_torch",
           "load_factory"]


def load_factory(reference: str) -> tuple[nn.Module, str]:
    """`package.module:factory` or `path/to/file.py:factory` -> (the model it returns, the
    factory's name). A reference to nothing is a `UsageError`; a factory that needs
    arguments, raises, exits or returns something else than a module is an `ImportFailure`.

    >>> load_factory("torch.nn:Identity")
    (Identity(), 'Identity')
    """
    where, sep, factory = reference.rpartition(":")
    if not sep or not where or not factory.isidentifier():
        raise UsageError(f"{reference}: write MODULE:FACTORY (torchvision.models:resnet50) or "
                         "FILE.py:FACTORY")
    module = _module(where, reference)
    with _models_own_code(f"reading `{factory}` from {where}"):
        function = getattr(module, factory, None)
    if function is None or not callable(function):
        raise UsageError(f"{reference}: {where} has no function or class `{factory}`")
    needed = _required_parameters(function)
    if needed:
        raise ImportFailure(f"the factory needs arguments ({', '.join(needed)}); give a "
                            "factory that takes none")
    with _models_own_code("the factory"):
        model = function()
    if not isinstance(model, nn.Module):
        raise ImportFailure(f"the factory returned an object of type {type(model).__name__}, "
                            "not a torch.nn.Module")
    return model, factory


def _module(where: str, reference: str):
    """The module of a reference: a file's path or a module's name; one that does not
    exist is a usage error, one whose own code fails on import an `ImportFailure`."""
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise UsageError(f"{where}: no such file")
        with _models_own_code(f"importing {where}"):
            return _module_of_file(path)
    with _models_own_code(f"importing {where}"):
        try:
            return importlib.import_module(where)
        except ModuleNotFoundError as error:
            if error.name and (where + ".").startswith(error.name + "."):  # the module itself
                raise UsageError(f"{reference}: cannot import {error.name}") from None
            raise  # a module that the module imports: its own failure


def _module_of_file(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    registered = sys.modules.setdefault(path.stem, module) is module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if registered:  # no half-made module left behind under the file's name
            del sys.modules[path.stem]
        raise
    return module


@contextlib.contextmanager
def _models_own_code(what: str):
    """What the model's own code raises, or its `sys.exit()`, as one `ImportFailure` line
    that says where it happened (archdsl's own errors pass through)."""
    try:
        yield
    except (UsageError, ImportFailure):
        raise
    except SystemExit as stop:
        code = "" if stop.code is None else repr(stop.code)
        raise ImportFailure(f"{what} called sys.exit({code})") from None
    except Exception as error:
        raise ImportFailure(f"{what} raised {_one_line(error)}") from None


def _required_parameters(function) -> list[str]:
    """The parameters a call without arguments would miss."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins): call and see
        return []
    return [p.name for p in parameters if p.default is p.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _one_line(error: BaseException) -> str:
    """`ValueError: the first line of its message`."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


CAPTURES = ("auto", "fx", "export")


@dataclass(frozen=True)
class Imported:
    """A model's spec, and how its graph was captured: `fx`, or `export` with `why`
    (what torch.fx could not trace, and whether the sequence length was dynamic)."""
    text: str
    capture: str
    why: str = ""


def import_torch(model: nn.Module, shape, name: str = "imported", capture: str = "auto",
                 token_ids=False) -> str:
    """The `.arch` text of `model` for inputs of `shape` (batch excluded): float
    values, or token ids (`token_ids`, one axis) where the model embeds them. `capture`:
    torch.fx (`fx`), torch.export (`export`), or torch.export where torch.fx cannot trace
    the model (`auto`). A model whose forward() takes several arguments takes a sequence
    of inputs, each a shape or a (parameter name, shape) pair, with `token_ids` one flag
    for all or one for each (archdsl.tools.import_inputs.bind_inputs); the spec declares
    them as forward()'s parameters are named.

    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
    ...                       nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    >>> print(import_torch(model, (3, 4, 4), "tiny"))
    network tiny {
        input x: 3 x 4 x 4
        0: conv(8, 3, pad = 1, bias = false)
        1: batchnorm
        2: relu
        3: flatten
        4: linear(10)
    }
    <BLANKLINE>
    """
    return import_model(model, shape, name, capture, token_ids).text


def import_model(model: nn.Module, shape, name: str = "imported", capture: str = "auto",
                 token_ids=False) -> Imported:
    """As `import_torch`, and how the graph was captured: with `auto`, torch.fx's graph
    where the spec can be written from it, else torch.export's."""
    if capture not in CAPTURES:
        raise UsageError(f"--capture {capture}: write {', '.join(CAPTURES)}")
    inputs = bind_inputs(model, shape, token_ids)
    model = model.eval()
    example = examples(model, inputs)
    if capture != "auto":
        return _imported(model, inputs, example, name, *_capture(model, example, capture, inputs))
    try:
        graph = _trace(model)
    except ImportFailure as failure:  # read torch.export's graph
        why = f"torch.fx could not trace: {str(failure).partition(': ')[2]}"
        return _imported(model, inputs, example, name,
                         *_captured_export(model, example, inputs, why))
    try:
        return _imported(model, inputs, example, name, graph, "fx", "")
    except _NotRun:
        raise
    except ImportFailure as failure:  # torch.export's graph may say more (a function's
        why = f"torch.fx's graph stopped at {failure}"  # steps, values made in forward())
        try:
            return _imported(model, inputs, example, name,
                             *_captured_export(model, example, inputs, why))
        except ImportFailure:
            raise failure from None  # the first reason, in the model's own terms


class _NotRun(ImportFailure):
    """The model's own forward() fails on the example, or reads an argument given no
    input: no capture does better."""


def _imported(model: nn.Module, inputs: list[ModelInput], example, name: str,
              graph: fx.Graph, how: str, why: str) -> Imported:
    """The spec written from one capture's graph."""
    try:
        placeholders(graph, inputs)  # stops where it reads an argument given no input
    except ImportFailure as failure:
        raise _NotRun(str(failure)) from None
    moved = _chained_concatenations(graph)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints the traceback
            _ShapeProp(model, graph).propagate(*example)
    except (Exception, SystemExit) as error:  # the model's own forward fails on this input
        sizes = " and ".join("x".join(map(str, i.shape)) for i in inputs)
        raise _NotRun(f"the model does not run on {'a ' if len(inputs) == 1 else ''}"
                      f"{sizes} input{'s' if len(inputs) > 1 else ''}: "
                      f"{_one_line(error.__cause__ or error)}") from None
    _fold_sizes(graph)
    _split_chunks(graph)
    _split_topk(graph)
    functional_layers(model, graph)  # parameters passed to functions, as layers and ops
    text = with_ties(write_spec(model, graph, inputs, name, moved), model)
    if how == "export":
        text = f"# Captured with torch.export ({why}).\n" + text
    return Imported(text, how, why)


def _capture(model: nn.Module, example: tuple[torch.Tensor, ...], capture: str,
             inputs: list[ModelInput]) -> tuple[fx.Graph, str, str]:
    """The model's graph in torch.fx's form by the capture asked for, how it was
    captured and why so."""
    if capture == "fx":
        return _trace(model), "fx", ""
    return _captured_export(model, example, inputs, "--capture export")


def _captured_export(model: nn.Module, example: tuple[torch.Tensor, ...],
                     inputs: list[ModelInput], why: str) -> tuple[fx.Graph, str, str]:
    lengths = {each.shape[0] for each in inputs if each.token_ids}
    dynamic = [1 if each.token_ids or (len(each.shape) > 1 and each.shape[0] in lengths)
               else None for each in inputs]  # the sequence length, and where others share it
    with _models_own_code("torch.export"):
        graph, note = capture_export(model, example, dynamic)
    return graph, "export", why + (f"; {note}" if note else "")


def _fold_sizes(graph: fx.Graph) -> None:
    """Sizes read in forward() (`B, L, C = x.shape`, `x.size(-1) // heads`) as the numbers
    they were on the example: the spec is written for the input it was traced on."""
    folded = [n for n in graph.nodes if "size_value" in n.meta]
    values = {node: node.meta["size_value"] for node in folded}

    def constant(arg):
        return values.get(arg, arg)
    for node in folded:
        for user in list(node.users):
            user.args = fx.node.map_arg(user.args, constant)
            user.kwargs = fx.node.map_arg(user.kwargs, constant)
    for node in reversed(folded):
        graph.erase_node(node)


_CHUNKS = {"chunk", "split", "tensor_split", "unbind"}


def _split_chunks(graph: fx.Graph) -> None:
    """`q, k, v = x.chunk(3, -1)` (or split, unbind): each part as a `torch.narrow` of x,
    which the spec writes as a slice."""
    import operator
    for node in list(graph.nodes):
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        if name not in _CHUNKS or not node.args or not isinstance(node.args[0], fx.Node):
            continue
        parts = node.meta.get("tensor_meta")
        users = list(node.users)
        if not isinstance(parts, (tuple, list)) or not all(
                u.op == "call_function" and u.target is operator.getitem for u in users):
            continue
        whole = node.args[0]
        dim = node.kwargs.get("dim", node.args[2] if len(node.args) > 2 else 0) \
            if name != "unbind" else node.kwargs.get("dim", node.args[1] if len(node.args) > 1
                                                     else 0)
        rank = len(whole.meta["tensor_meta"].shape)
        dim %= rank
        starts = [0]
        for part in parts:
            starts.append(starts[-1] + (part.shape[dim] if name != "unbind" else 1))
        for user in users:
            index = user.args[1]
            with graph.inserting_after(user):
                narrow = graph.call_function(torch.narrow, (whole, dim, starts[index],
                                                            starts[index + 1] - starts[index]))
            narrow.meta = dict(user.meta)
            if name == "unbind":
                with graph.inserting_after(narrow):
                    squeezed = graph.call_method("squeeze", (narrow, dim))
                squeezed.meta = dict(user.meta)
                narrow.meta["tensor_meta"] = None
                user.replace_all_uses_with(squeezed)
            else:
                user.replace_all_uses_with(narrow)
            graph.erase_node(user)
        graph.erase_node(node)


def _split_topk(graph: fx.Graph) -> None:
    """`torch.topk(x, k, dim)[0]` and `[1]` (a method too): each the language's `topk`,
    of the entries or of their indices, as torch.export's are read (`top`)."""
    import operator
    for node in list(graph.nodes):
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        users = list(node.users)
        if name != "topk" or not users or any(
                u.op != "call_function" or u.target is not operator.getitem for u in users):
            continue
        x, k, dim, largest = (tuple(node.args) + (-1, True)[len(node.args) - 2:])[:4]
        dim, largest = node.kwargs.get("dim", dim), node.kwargs.get("largest", largest)
        for user in users:
            with graph.inserting_after(user):
                made = graph.call_function(top, (x, k, dim, largest, user.args[1] == 1))
            made.meta = dict(user.meta)
            user.replace_all_uses_with(made)
            graph.erase_node(user)
        graph.erase_node(node)


def _chained_concatenations(graph: fx.Graph) -> dict[fx.Node, str]:
    """DenseNet's `torch.cat(features)` of a list that grows by one each layer, as the
    chain archdsl writes, `concat { {}; layer }`: a cat of one tensor is that tensor, a
    cat of a list that extends an earlier cat's list by one is that cat and the new
    tensor (the same values: cat only copies), and belongs to the scope of the layer that
    made the new tensor. Returns {moved cat: its scope}."""
    by_operands: dict[tuple, fx.Node] = {}
    moved = {}
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not torch.cat or not isinstance(
                node.args[0], (list, tuple)):
            continue
        operands = tuple(node.args[0])
        if len(operands) == 1 and isinstance(operands[0], fx.Node):
            node.replace_all_uses_with(operands[0])
            graph.erase_node(node)
            by_operands[operands] = operands[0]
            continue
        by_operands[operands] = node
        earlier = by_operands.get(operands[:-1])
        if earlier is not None and len(operands) > 2:
            node.args = ((earlier, operands[-1]),) + tuple(node.args[1:])
        last = operands[-1]
        if earlier is not None and last.op == "call_module" and "." in last.target:
            moved[node] = last.target.rpartition(".")[0]
    return moved


class _Tracer(fx.Tracer):
    """torch.nn layers stay whole (containers and the model's own modules are traced
    through), and so do archdsl's own lookups (`index_select`); each node remembers the
    line of forward() that made it."""

    def __init__(self, functions: tuple = ()):
        super().__init__(autowrap_functions=functions)
        self.record_stack_traces = True
        self.proxy_buffer_attributes = True  # a buffer read in forward(): a get_attr node

    def is_leaf_module(self, module: nn.Module, name: str) -> bool:
        return is_layer(module)


def _trace(model: nn.Module) -> fx.Graph:
    """The model's graph; no fx.GraphModule is made of it, whose code and attributes would
    stumble on modules named `in` (a Python keyword) or `type` (torch's own attribute)."""
    try:
        return _Tracer(lookup_functions(model)).trace(model)
    except (Exception, SystemExit) as error:  # data-dependent control flow and the like
        raise ImportFailure(f"torch.fx cannot trace the model: {_one_line(error)}") from None


class _ShapeProp(ShapeProp):
    """torch's ShapeProp, run over the traced graph with the model itself, that finds a
    submodule by its name even where torch.nn.Module has an attribute so named (a layer
    called `type` or `forward`)."""

    def __init__(self, model: nn.Module, graph: fx.Graph):
        fx.Interpreter.__init__(self, model, graph=graph)  # what ShapeProp's would set:
        self.fake_module, self.fake_mode, self.real_module = None, None, model

    def run_node(self, node: fx.Node):
        """As ShapeProp, and a size a node computes (not a tensor) kept in its meta."""
        result = super().run_node(node)
        if node.op != "placeholder" and _is_size(result):
            node.meta["size_value"] = tuple(result) if isinstance(result, torch.Size) \
                else result
        return result

    def fetch_attr(self, target: str):
        found = self.module
        for part in target.split("."):
            modules = vars(found).get("_modules") or {}
            found = modules[part] if part in modules else getattr(found, part)
        return found


def _is_size(value) -> bool:
    """A number or a tuple of numbers (a shape), not a tensor."""
    if isinstance(value, (tuple, list)):
        return all(_is_size(v) for v in value) and not isinstance(value, list)
    return isinstance(value, (int, float)) and not isinstance(value, bool)
