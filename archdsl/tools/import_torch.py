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
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import itertools
import operator
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import UsageError
from ..lang.names import is_reserved
from ..lang.parse import grammar_text
from ..ops import OPS, REQUIRED, Args, Derived


class ImportFailure(Exception):
    """The model uses something archdsl cannot express; the message says what and where."""


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


def import_torch(model: nn.Module, shape: tuple[int, ...], name: str = "imported") -> str:
    """The `.arch` text of `model` for inputs of `shape` (batch excluded).

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
    model = model.eval()
    graph = _trace(model)
    moved = _chained_concatenations(graph)
    example = torch.randn(2, *shape)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints the traceback
            _ShapeProp(model, graph).propagate(example)
    except (Exception, SystemExit) as error:  # the model's own forward fails on this input
        raise ImportFailure(f"the model does not run on a {'x'.join(map(str, shape))} input: "
                            f"{_one_line(error.__cause__ or error)}") from None
    return _Importer(model, graph, shape, name, moved).spec()


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
    through)."""

    def is_leaf_module(self, module: nn.Module, name: str) -> bool:
        return module.__module__.startswith("torch.nn") and not isinstance(
            module, (nn.Sequential, nn.ModuleList, nn.ModuleDict))


def _trace(model: nn.Module) -> fx.Graph:
    """The model's graph; no fx.GraphModule is made of it, whose code and attributes would
    stumble on modules named `in` (a Python keyword) or `type` (torch's own attribute)."""
    try:
        return _Tracer().trace(model)
    except (Exception, SystemExit) as error:  # data-dependent control flow and the like
        raise ImportFailure(f"torch.fx cannot trace the model: {_one_line(error)}") from None


class _ShapeProp(ShapeProp):
    """torch's ShapeProp, run over the traced graph with the model itself, that finds a
    submodule by its name even where torch.nn.Module has an attribute so named (a layer
    called `type` or `forward`)."""

    def __init__(self, model: nn.Module, graph: fx.Graph):
        fx.Interpreter.__init__(self, model, graph=graph)  # what ShapeProp's would set:
        self.fake_module, self.fake_mode, self.real_module = None, None, model

    def fetch_attr(self, target: str):
        found = self.module
        for part in target.split("."):
            modules = vars(found).get("_modules") or {}
            found = modules[part] if part in modules else getattr(found, part)
        return found


# ---- one layer: torch module -> archdsl op ------------------------------------------------


def _sizes(value):
    if isinstance(value, (tuple, list)) and len(set(value)) == 1:
        return value[0]
    return tuple(value) if isinstance(value, list) else value


def _conv(m):
    if m.padding_mode != "zeros":
        return None
    return "conv", dict(channels=m.out_channels, kernel=_sizes(m.kernel_size),
                        stride=_sizes(m.stride), pad=_sizes(m.padding),
                        dilation=_sizes(m.dilation), groups=m.groups, bias=m.bias is not None)


def _batchnorm(m):
    if not (m.affine and m.track_running_stats) or m.momentum is None:
        return None
    return "batchnorm", dict(eps=m.eps, momentum=m.momentum)


def _pool(name, with_dilation):
    def read(m):
        if getattr(m, "return_indices", False) or getattr(m, "divisor_override", None):
            return None
        args = dict(kernel=_sizes(m.kernel_size), stride=_sizes(m.stride),
                    pad=_sizes(m.padding), ceil_mode=m.ceil_mode)
        if with_dilation:
            args["dilation"] = _sizes(m.dilation)
        else:
            args["count_include_pad"] = m.count_include_pad
        return name, args
    return read


def _adaptive(m):
    size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) * 2
    if set(size) == {1}:
        return "global_avgpool", {}
    return "adaptive_avgpool", dict(height=size[0], width=size[1])


def _flatten(m):
    if m.start_dim < 1:  # the batch too: no archdsl layer does that
        return None
    return "flatten", dict(start=m.start_dim - 1, end=m.end_dim if m.end_dim < 0
                           else m.end_dim - 1)


# Modules whose constructor arguments become an op's: how to read them. Every match is
# checked against the op table by building the op's module (`_Importer._layer`).
READERS = {
    nn.Conv1d: _conv, nn.Conv2d: _conv, nn.Conv3d: _conv,
    nn.BatchNorm1d: _batchnorm, nn.BatchNorm2d: _batchnorm, nn.BatchNorm3d: _batchnorm,
    nn.Linear: lambda m: ("linear", dict(features=m.out_features, bias=m.bias is not None)),
    nn.MaxPool1d: _pool("maxpool", True), nn.MaxPool2d: _pool("maxpool", True),
    nn.MaxPool3d: _pool("maxpool", True),
    nn.AvgPool1d: _pool("avgpool", False), nn.AvgPool2d: _pool("avgpool", False),
    nn.AvgPool3d: _pool("avgpool", False),
    nn.AdaptiveAvgPool2d: _adaptive,
    nn.Dropout: lambda m: ("dropout", dict(p=m.p)),
    nn.LeakyReLU: lambda m: ("leaky_relu", dict(slope=m.negative_slope)),
    nn.Flatten: _flatten,
}


def _argument_free_ops(shape) -> dict[type, str]:
    """{module class: op} for the ops without arguments, from the modules they build."""
    found = {}
    for op in OPS.values():
        if op.module is None or op.args or op.merge:
            continue
        try:
            with torch.device("meta"):
                module = op.module(Args(()), (shape,))
        except Exception:  # needs another input layout: not this one
            continue
        if isinstance(module, nn.Module):
            found.setdefault(type(module), op.name)
    return found


_FUNCTIONS = {  # torch functions in a forward(), as ops: (op, arguments from the call)
    torch.flatten: "flatten", nn.functional.relu: "relu", torch.relu: "relu",
    nn.functional.adaptive_avg_pool2d: "global_avgpool",
}
_MERGES = {operator.add: "add", operator.iadd: "add", torch.add: "add", torch.cat: "concat",
           operator.mul: "mul", torch.mul: "mul"}


# ---- text with numbers that blocks may turn into parameters ---------------------------------

_NUMBER = re.compile(r"\x00([^\x00|]*)\|([^\x00]*)\x00")


def _number(value, hint: str) -> str:
    return f"\x00{value}|{hint}\x00"


def _skeleton(text: str) -> str:
    return _NUMBER.sub("#", text)


def _values(text: str) -> list[tuple[str, str]]:
    return _NUMBER.findall(text)


def _plain(text: str) -> str:
    return _NUMBER.sub(lambda m: m.group(1), text)


def _format(value, hint: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return "(" + ", ".join(_format(v, hint) for v in value) + ")"
    if isinstance(value, int):
        return _number(value, hint)
    return repr(value)


# ---- module names as labels ----------------------------------------------------------------

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


def _labels(paths) -> dict[str, str]:
    """{module path: its label as the spec writes it}, renaming among siblings where
    needed."""
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


# ---- the importer -------------------------------------------------------------------------


@dataclass
class _Item:
    """One thing in a scope: a layer, a function of the forward(), or a child scope."""
    key: str
    inputs: list[str] = field(default_factory=list)
    node: fx.Node | None = None  # a layer or a function
    scope: str | None = None  # a child scope


class _Importer:
    def __init__(self, model: nn.Module, graph: fx.Graph, shape, name: str,
                 moved: dict[fx.Node, str]):
        self.model, self.graph, self.shape, self.name = model, graph, shape, name
        self.modules = dict(model.named_modules())
        self.labels = _labels(self.modules)
        self.nodes = [n for n in graph.nodes if n.op not in ("placeholder", "output")]
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ImportFailure(f"the model's forward() takes {len(placeholders)} inputs; "
                                "archdsl imports models of one input")
        self.input = placeholders[0]
        (self.output,) = [n for n in graph.nodes if n.op == "output"]
        if not isinstance(self.output.args[0], fx.Node):
            raise ImportFailure("the model returns several values; archdsl imports models "
                                "with one output")
        self.owner = {n: moved.get(n) or self._owner(n) for n in self.nodes}
        self.seen_targets: set[str] = set()
        self.by_type = _argument_free_ops(self._shape(self.input))
        self.calls: dict[str, str] = {}  # scope -> the block call that replaces its body
        self.blocks: list[str] = []
        self.block_names: set[str] = set()

    # -- where a node lives

    def _owner(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return node.target.rpartition(".")[0]
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return ""
        path = list(stack.values())[-1]
        path = path[0] if isinstance(path, tuple) else str(path)
        return path.split("@")[0]

    def _shape(self, node: fx.Node) -> tuple[int, ...]:
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape[1:]) if meta is not None else ()

    # -- scopes

    def _items(self, scope: str) -> tuple[dict[str, _Item], str, str]:
        """The items of a scope in order, its entry (a value from outside it) and the
        item that gives its result."""
        inside = [n for n in self.nodes if self._within(self.owner[n], scope)]
        items: dict[str, _Item] = {}
        key_of: dict[fx.Node, str] = {}
        for node in inside:  # a node of this scope, or of the child scope it lies in
            owner = self.owner[node]
            child = None if owner == scope else self._child(scope, owner)
            key = f"scope:{child}" if child else node.name
            key_of[node] = key
            if key not in items:
                items[key] = _Item(key, node=None if child else node, scope=child)
        entries = set()
        for node in inside:
            key = key_of[node]
            for value in node.all_input_nodes:
                source = key_of.get(value)
                if source is None:
                    entries.add(value)
                    source = "entry"
                if source != key and source not in items[key].inputs:
                    items[key].inputs.append(source)
        if len(entries) > 1:
            raise ImportFailure(f"`{scope or 'the model'}` reads {len(entries)} values from "
                                "outside it; archdsl imports modules of one input")
        results = {key_of[n] for n in inside
                   if any(u not in key_of for u in n.users) or n is self.output.args[0]}
        if len(results) != 1:
            raise ImportFailure(f"`{scope or 'the model'}` gives {len(results)} values to "
                                "the rest of the model; archdsl imports modules of one output")
        return items, "entry", results.pop()

    @staticmethod
    def _within(path: str, scope: str) -> bool:
        return not scope or path == scope or path.startswith(scope + ".")

    @staticmethod
    def _child(scope: str, path: str) -> str | None:
        rest = path[len(scope) + 1:] if scope else path
        if not rest:
            return None
        return (f"{scope}." if scope else "") + rest.split(".")[0]

    def render(self, scope: str) -> list[str]:
        items, entry, result = self._items(scope)
        users: dict[str, list[str]] = {key: [] for key in items}
        users[entry] = []
        for key, item in items.items():
            for source in item.inputs:
                users[source].append(key)
        order = list(items)
        return _Series(self, items, users, order).lines(entry, result)

    # -- one item as a statement

    def statement(self, item: _Item, scope_of_parent: str) -> str:
        if item.scope is not None:
            label = self.labels[item.scope]
            if item.scope in self.calls:
                return f"{label}: {self.calls[item.scope]}"
            body = self.render(item.scope)
            calls = [line.partition(": ")[2] for line in body]
            if len(body) > 1 and body == [f"{k}: {calls[0]}" for k in range(len(body))] \
                    and "\n" not in calls[0]:
                return f"{label}: repeat {len(body)} {{ {calls[0]} }}"
            return f"{label}: " + _braced(_repeats(body, self.block_names))
        node = item.node
        if node.op == "call_module":
            op, args = self._layer(node)
            label = self.labels[node.target]
            text = _call(op, args)
            if node.target in self.seen_targets:
                if any(True for _ in self.modules[node.target].parameters()):
                    raise ImportFailure(f"`{node.target}` ({type(self.modules[node.target]).__name__}) "
                                        "is called twice, sharing its weights; archdsl gives "
                                        "each layer its own")
                return text  # a stateless layer used again (torchvision's `relu`)
            self.seen_targets.add(node.target)
            return f"{label}: {text}"
        return _call(*self._function(node))

    def _layer(self, node: fx.Node):
        module = self.modules[node.target]
        where = f"`{node.target}` ({type(module).__module__}.{type(module).__name__})"
        reader = READERS.get(type(module))
        if reader is not None:
            found = reader(module)
        elif type(module) in self.by_type:
            found = self.by_type[type(module)], {}
        else:
            found = None
        if found is None:
            raise ImportFailure(f"{where} has no archdsl equivalent")
        op, args = found
        self._check(where, op, args, module, self._shape(node.all_input_nodes[0]))
        return op, args

    def _check(self, where: str, op: str, args: dict, module: nn.Module, shape) -> None:
        """The op's own module, built from these arguments, is the model's module."""
        from ..backends.export_pytorch import module_settings, state_shapes
        resolved = _resolve(op, args)
        if OPS[op].module is None:  # lowers to a function (flatten): nothing to compare
            return
        with torch.device("meta"):
            built = OPS[op].module(resolved, (shape,))
        plain = {k: v for k, v in module_settings(module).items() if k != "inplace"}
        rebuilt = {k: v for k, v in module_settings(built).items() if k != "inplace"}
        if type(built) is not type(module) or plain != rebuilt or \
                state_shapes(built) != state_shapes(module):
            raise ImportFailure(f"{where} has no archdsl equivalent: `{op}` builds {built!r}")

    def _function(self, node: fx.Node):
        where = f"`{node.name}` in `{self.owner[node] or 'forward'}`"
        target = node.target
        if node.op == "call_method" and target == "flatten":
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            if start == 1:
                return "flatten", dict(start=0, end=end if end < 0 else end - 1)
        if node.op == "call_method" and target in ("relu", "relu_"):
            return "relu", {}
        if node.op == "call_function" and target in _FUNCTIONS:
            op = _FUNCTIONS[target]
            if op == "flatten" and (node.args[1:2] or [node.kwargs.get("start_dim", 0)])[0] == 1:
                return "flatten", {}
            if op == "global_avgpool" and node.args[1] in (1, (1, 1)):
                return op, {}
            if op == "relu":
                return op, {}
        name = getattr(target, "__name__", str(target))
        raise ImportFailure(f"{where}: {node.op} `{name}` has no archdsl equivalent")

    # -- blocks

    def find_blocks(self) -> None:
        """Module instances of one class (not containers) whose statements differ only in
        numbers become one block, deepest first so that blocks may call blocks."""
        scopes = [path for path, module in self.modules.items() if path and
                  not isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict))
                  and not module.__module__.startswith("torch.nn")
                  and any(self._within(self.owner[n], path) for n in self.nodes)]
        for depth in sorted({s.count(".") for s in scopes}, reverse=True):
            groups: dict[tuple, list[tuple[str, str]]] = {}
            for scope in (s for s in scopes if s.count(".") == depth):
                saved = set(self.seen_targets)
                text = "\x01".join(self.render(scope))  # statements apart
                self.seen_targets = saved
                key = (type(self.modules[scope]).__name__, _skeleton(text))
                groups.setdefault(key, []).append((scope, text))
            for (cls, _), members in groups.items():
                if len(members) >= 2:
                    self._block(cls, members)

    def _block(self, cls: str, members: list[tuple[str, str]]) -> None:
        name = _snake(cls)
        taken = {b.split()[1].split("(")[0] for b in self.blocks}
        base, count = name, 2
        while name in taken or name in OPS:
            name, count = f"{base}_{count}", count + 1
        columns = list(zip(*(_values(text) for _, text in members)))
        params: dict[tuple, str] = {}
        names: list[str] = []
        for column in columns:
            values = tuple(v for v, _ in column)
            if len(set(values)) > 1 and values not in params:
                hint = column[0][1] or "n"
                label, k = hint, 2
                while label in names:
                    label, k = f"{hint}{k}", k + 1
                params[values] = label
                names.append(label)
        template = members[0][1]
        index = iter(range(len(columns)))

        def substitute(match):
            i = next(index)
            values = tuple(v for v, _ in columns[i])
            return params.get(values, match.group(1)) if values in params else match.group(1)
        body = _NUMBER.sub(substitute, template)
        self.block_names.add(name)
        header = f"block {name}({', '.join(names)}) " if names else f"block {name} "
        self.blocks.append(header + _braced(body.split("\x01")))
        for position, (scope, _) in enumerate(members):
            args = []
            for values, label in params.items():
                hint = label
                args.append(_number(values[position], hint))
            self.calls[scope] = f"{name}({', '.join(args)})" if args else name

    # -- the spec

    def spec(self) -> str:
        self.find_blocks()
        self.seen_targets = set()
        body = _repeats(self.render(""), self.block_names)
        dims = " x ".join(map(str, self.shape))
        lines = [f"input {self._input_name()}: {dims}"] + body
        network = f"network {_name(self.name, 'imported')} " + _braced(lines)
        text = "\n\n".join(self.blocks + [network]) + "\n"
        return self._renames() + _plain(text)

    def _input_name(self) -> str:
        """`x`, unless a module of the model's top level is called so."""
        top = {label.strip('"') for path, label in self.labels.items() if "." not in path}
        names = itertools.chain(("x", "inputs"), (f"x{i}" for i in itertools.count(2)))
        return next(name for name in names if name not in top)

    def _spec_path(self, path: str) -> str:
        parts = path.split(".")
        return ".".join(self.labels[".".join(parts[:i + 1])].strip('"')
                        for i in range(len(parts)))

    def _renames(self) -> str:
        """A comment listing the modules of the spec whose names no label can hold (`_head`,
        `forward`), and what the spec calls them: their state_dict keys change too."""
        used = {n.target for n in self.nodes if n.op == "call_module"} | set(self.owner.values())
        within = {".".join(p.split(".")[:i + 1]) for p in used if p
                  for i in range(p.count(".") + 1)}
        renamed = [f"#   {path} -> {self._spec_path(path)}" for path in self.modules
                   if path in within and self.labels[path].strip('"') != path.rpartition(".")[2]]
        if not renamed:
            return ""
        header = ["# Modules whose names no label can hold, and their names here (the state_dict",
                  "# keys under them change with them):"]
        return "\n".join(header + renamed) + "\n\n"


class _Series:
    """A scope's items as statements: chains in sequence, forks that meet again as
    `residual` or merges with branches."""

    def __init__(self, importer: _Importer, items, users, order):
        self.importer, self.items, self.users, self.order = importer, items, users, order

    def lines(self, start: str, stop: str, allowed: set[str] | None = None) -> list[str]:
        """From the value `start` to the item `stop`, through the items `allowed` (all)."""
        out, current = [], start
        while current != stop:
            readers = [u for u in self.users[current] if allowed is None or u in allowed]
            if len(readers) == 1 and self.items[readers[0]].inputs == [current] and \
                    not self._merge(readers[0]):
                out.append(self.importer.statement(self.items[readers[0]], ""))
                current = readers[0]
                continue
            join = self._join(current, allowed)
            out += self._merged(current, join)
            current = join
        return out

    def _merge(self, key: str) -> str | None:
        node = self.items[key].node
        if node is not None and node.op == "call_function" and node.target in _MERGES:
            return _MERGES[node.target]
        return None

    def _join(self, start: str, allowed: set[str] | None) -> str:
        """Where the paths out of `start` meet again: the first item after which nothing
        between reads anything else or is read from beyond it."""
        descendants = self._descendants(start)
        if allowed is not None:
            descendants &= allowed
        between: set[str] = set()
        for key in (k for k in self.order if k in descendants):
            if self._merge(key) and all(i in between or i == start for i in self.items[key].inputs):
                escaping = [u for b in between | {start} for u in self.users[b]
                            if u not in between and u != key
                            and (allowed is None or u in allowed)]
                if not escaping:
                    return key
            between.add(key)
        raise ImportFailure("the model's graph forks in a way archdsl cannot write "
                            f"(after `{start}`)")

    def _between(self, start: str, stop: str) -> set[str]:
        """The items on paths from `start` to `stop`, `stop` included."""
        ancestors = self._ancestors(stop)
        return (self._descendants(start) & ancestors) | {stop}

    def _ancestors(self, stop: str) -> set[str]:
        seen, todo = set(), [stop]
        while todo:
            key = todo.pop()
            for source in self.items[key].inputs if key in self.items else ():
                if source not in seen:
                    seen.add(source)
                    todo.append(source)
        return seen

    def _descendants(self, start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for user in self.users[todo.pop()]:
                if user not in seen:
                    seen.add(user)
                    todo.append(user)
        return seen

    def _merged(self, start: str, join: str) -> list[str]:
        item = self.items[join]
        node = item.node
        operands = [a for a in node.args if isinstance(a, fx.Node)] if self._merge(join) \
            != "concat" else list(node.args[0])
        keys = [self._key(a) for a in operands]
        op = self._merge(join)
        if op == "concat" and (node.args[1:2] or [node.kwargs.get("dim", 0)])[0] != 1:
            raise ImportFailure(f"`{node.name}`: torch.cat along a dimension other than "
                                "the channels")
        def branch(key):
            return [] if key == start else self.lines(start, key, self._between(start, key))
        if op == "add" and len(keys) == 2 and start in keys:
            body = branch(keys[1] if keys[0] == start else keys[0])
            return ["residual " + _braced(body)]
        if op == "add" and len(keys) == 2:
            skip_first = self._is_scope(keys[0]) and not self._is_scope(keys[1])
            body_key, skip_key = (keys[1], keys[0]) if skip_first else keys
            body = branch(body_key)
            if self._is_scope(skip_key) and skip_key not in self.importer.calls and \
                    self.items[skip_key].inputs == [start]:
                label = self.importer.labels[self.items[skip_key].scope]
                inner = self.importer.render(self.items[skip_key].scope)
                if label.startswith('"'):  # `skip NAME` takes a bare name: a labelled group
                    return ["residual " + _braced(body) + " skip " +
                            _braced([f"{label}: " + _braced(inner)])]
                return ["residual " + _braced(body) + f" skip {label} " + _braced(inner)]
            return ["residual " + _braced(body) + " skip " + _braced(branch(skip_key))]
        branches = [branch(key) for key in keys]
        text = [f"{op} {{"]
        for branch in branches:
            text.append("    " + (_braced(branch).replace("\n", "\n    ") if branch else "{}"))
        return ["\n".join(text + ["}"])]

    def _key(self, node: fx.Node) -> str:
        for key, item in self.items.items():
            if item.node is node:
                return key
        for key, item in self.items.items():
            if item.scope and node in self.importer.owner and \
                    self.importer._within(self.importer.owner[node], item.scope):
                return key
        return "entry"

    def _is_scope(self, key: str) -> bool:
        return key in self.items and self.items[key].scope is not None


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


def _call(op: str, args: dict) -> str:
    """`conv(64, 3, stride = 2, bias = false)`: required arguments by position, the rest
    by name where they differ from the default."""
    parts = []
    resolved = dict(_resolve(op, args))
    for arg in OPS[op].args:
        value = resolved[arg.name]
        if arg.default is REQUIRED:
            parts.append(_format(value, arg.name))
        elif isinstance(arg.default, Derived):
            if value != resolved[arg.default.source]:
                parts.append(f"{arg.name} = {_format(value, arg.name)}")
        elif value != arg.default or type(value) is not type(arg.default):
            if isinstance(arg.default, float) and isinstance(value, (int, float)) and \
                    float(value) == arg.default:
                continue
            parts.append(f"{arg.name} = {_format(value, arg.name)}")
    return f"{op}({', '.join(parts)})" if parts else op


def _repeats(lines: list[str], blocks: set[str]) -> list[str]:
    """Runs of `k: call`, `k + 1: call`, ... of one block call as one repeat."""
    out, i = [], 0
    while i < len(lines):
        label, _, call = lines[i].partition(": ")
        j = i + 1
        if label.isdigit() and call.split("(")[0] in blocks:
            while j < len(lines) and lines[j] == f"{int(label) + j - i}: {call}":
                j += 1
        if j - i > 1:
            offset = f" + {label}" if int(label) else ""
            out.append(f'repeat {j - i} as i {{ "{{i{offset}}}": {call} }}')
        else:
            out.append(lines[i])
            j = i + 1
        i = j
    return out


_LABELLED = re.compile(r'^("[^"]*"|[A-Za-z0-9_]+): (.*)$', re.DOTALL)


def _aligned(lines: list[str]) -> list[str]:
    """Labels in a column, as the shipped specs write them; statements of several lines
    and bodies with long labels are left as they are."""
    labels = [m.group(1) for m in map(_LABELLED.match, lines) if m and "\n" not in m.group(2)]
    width = max(map(len, labels), default=0) + 2
    if not labels or width > 18:
        return lines
    out = []
    for line in lines:
        match = _LABELLED.match(line)
        if match and "\n" not in match.group(2):
            out.append(f"{match.group(1) + ':':<{width}}{match.group(2)}")
        elif not match and "\n" not in line and not line.startswith(("repeat", "input")):
            out.append(" " * width + line)
        else:
            out.append(line)
    return out


def _braced(lines: list[str]) -> str:
    inner = "\n".join("    " + line.replace("\n", "\n    ") for line in _aligned(lines))
    return "{\n" + inner + "\n}"


def _snake(name: str) -> str:
    return _name(re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower(), "unit")


def _name(text: str, otherwise: str) -> str:
    """`text` as a name of the language (ASCII letters, digits and `_`).

    >>> _name("ñet", "imported"), _name("9lives", "imported")
    ('net', 'imported')
    """
    name = re.sub(r"[^A-Za-z0-9_]+", "_", _ascii(text)).strip("_")
    return name if name and not name[0].isdigit() else otherwise


def _ascii(text: str) -> str:
    """Letters without their accents (`ñ` is `n`), the rest as it is."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
