"""Backend: a checked IR as one self-contained PyTorch source file.

`export_pytorch(graph)` returns the text of a `.py` file that needs only torch: an
`nn.Module` class whose `__init__` installs plain torch.nn modules at the spec's names
(nested `nn.ModuleList` / `nn.ModuleDict` containers, so the state_dict keys are the
lowered module's, in the same order) and whose `forward` is plain torch code with the
spec's names; the source of any small module archdsl adds to torch.nn (SelfAttention,
ShiftedWindowAttention, ...) is copied in. The weights are the lowered module's
state_dict, so `Model().load_state_dict(weights)` gives exactly its outputs.

Each module's constructor call is read back from the module itself (its `__init__`
arguments are its attributes) and checked by rebuilding it: the table in archdsl.ops
stays the only place that knows which module a layer is.

With `fold_bn=True`, every batch norm that reads a conv's output (and nothing else
does) is folded into that conv for inference: the conv's weight is scaled and it gains
a bias, the batch norm disappears from `__init__`, `forward` and the weights.
"""
from __future__ import annotations

import builtins
import inspect
import keyword
import operator
from dataclasses import dataclass

import networkx as nx
import torch
from torch import fx, nn

from .. import ir
from ..errors import InternalError
from ..ops import OPS, functions
from .in_place import sums_in_place
from .lower_fx import class_name, lower_fx


@dataclass(frozen=True)
class Export:
    """The exported source and the weights that go with it."""
    source: str
    state_dict: dict
    class_name: str


def export_pytorch(graph: nx.DiGraph, module: nn.Module | None = None, *,
                   fold_bn: bool = False) -> Export:
    """The standalone source of a checked IR, and the weights (of `module`, by default a
    freshly lowered one) that go with it.

    >>> from archdsl import compile_source
    >>> graph = compile_source("network t { input image: 3 x 8 x 8; c: conv(4, 3); relu }").graph
    >>> print(export_pytorch(graph).source.split("class T")[1].split("# ----")[0].strip())
    (nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 4, 3)
            self.add_module("0", nn.ReLU(inplace=True))
    <BLANKLINE>
        def forward(self, image):
            x = self.c(image)
            x = getattr(self, "0")(x)
            return x
    """
    module = lower_fx(graph) if module is None else module
    folded = _fold_batchnorms(graph, module) if fold_bn else {}
    writer = _Writer(graph, module, folded)
    return Export(writer.source(), writer.state_dict(), class_name(graph))


# ---- batch norm folding -------------------------------------------------------------------


def _fold_batchnorms(graph: nx.DiGraph, module: nn.Module) -> dict[str, nn.Module]:
    """{batch norm name: the conv it folds into, rebuilt with the folded weights}."""
    outputs = {o.node for o in ir.network(graph).outputs}
    folded = {}
    for item in ir.nodes(graph):
        if item.op != "batchnorm":
            continue
        conv = ir.node(graph, item.inputs[0])
        if conv.op != "conv" or graph.out_degree(conv.name) != 1 or conv.name in outputs:
            continue
        folded[item.name] = _folded_conv(module.get_submodule(conv.name),
                                         module.get_submodule(item.name))
    return folded


def _folded_conv(conv: nn.Module, norm: nn.Module) -> nn.Module:
    """conv then eval-mode batch norm as one conv: w' = w * g / sqrt(var + eps),
    b' = (b - mean) * g / sqrt(var + eps) + beta, computed in float64."""
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    fused = type(conv)(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                       conv.padding, conv.dilation, conv.groups, True, conv.padding_mode)
    shape = (-1,) + (1,) * (conv.weight.dim() - 1)
    with torch.no_grad():
        fused.weight.copy_((conv.weight.double() * scale.reshape(shape)).to(conv.weight.dtype))
        fused.bias.copy_(((bias - norm.running_mean.double()) * scale
                          + norm.bias.double()).to(conv.weight.dtype))
    return fused


# ---- constructor calls --------------------------------------------------------------------


def constructor(module: nn.Module) -> str:
    """The call that builds `module` again, e.g. `nn.Conv2d(3, 64, kernel_size=(7, 7))`:
    each `__init__` argument read from the attribute of the same name, defaults left out,
    and checked by building it.

    >>> constructor(nn.MaxPool2d(3, 2, 1))
    'nn.MaxPool2d(3, stride=2, padding=1)'
    """
    for collapse in (True, False):
        text = _call(module, collapse)
        if _rebuilds(module, text):
            return text
    raise InternalError(f"the exported constructor `{text}` does not rebuild {module!r}")


def _call(module: nn.Module, collapse: bool) -> str:
    cls = type(module)
    parts = []
    for name, parameter in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if name in _NOT_ARGUMENTS or parameter.kind in (parameter.VAR_POSITIONAL,
                                                        parameter.VAR_KEYWORD):
            continue
        value = _init_argument(module, name)
        if collapse and isinstance(value, tuple) and len(value) > 1 and len(set(value)) == 1:
            value = value[0]  # kernel_size=3 rather than (3, 3)
        if parameter.default is parameter.empty:
            parts.append(_literal(value))
        elif value is not _MISSING and not _same(value, parameter.default):
            parts.append(f"{name}={_literal(value)}")
    return f"{_class_path(cls)}({', '.join(parts)})"


_MISSING = object()
# constructor parameters that set no hyperparameter: placement, and nn.Embedding's
# initial table (the weights come from weights.pt)
_NOT_ARGUMENTS = ("device", "dtype", "_weight", "_freeze")


def _init_argument(module: nn.Module, name: str):
    if name == "bias" and not hasattr(module, "bias"):  # nn.MultiheadAttention
        return getattr(module, "in_proj_bias", None) is not None
    if name == "bias" and module.bias is None:
        return False
    value = getattr(module, name, _MISSING)
    if isinstance(value, torch.Tensor):  # a bias (or affine) tensor: the flag is that it is there
        return True
    if value is _MISSING:
        raise InternalError(f"cannot export {type(module).__name__}: no attribute `{name}` "
                            "holds its constructor argument")
    return value


def _same(value, default) -> bool:
    if isinstance(value, (tuple, list)) and not isinstance(default, (tuple, list)):
        return len(set(value)) == 1 and value[0] == default and type(value[0]) is type(default)
    return type(value) is type(default) and value == default


def _literal(value) -> str:
    if isinstance(value, float) and value != value:
        raise InternalError("a NaN constructor argument")
    if isinstance(value, list):
        return "[" + ", ".join(map(_literal, value)) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(_literal, value)) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _class_path(cls: type) -> str:
    if cls.__module__.startswith("torch.nn"):
        return f"nn.{cls.__name__}"
    if cls.__module__ == functions.__name__:
        return cls.__name__
    raise InternalError(f"cannot export a {cls.__module__}.{cls.__name__}: neither torch.nn "
                        "nor archdsl.ops.functions")


def _rebuilds(module: nn.Module, text: str) -> bool:
    namespace = {"nn": nn, "torch": torch, **_custom_names()}
    with torch.device("meta"):
        rebuilt = eval(text, namespace)  # noqa: S307 -- text we wrote, from module attributes
    return (type(rebuilt) is type(module) and state_shapes(rebuilt) == state_shapes(module)
            and module_settings(rebuilt) == module_settings(module))


def state_shapes(module: nn.Module):
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def module_settings(module: nn.Module) -> dict:
    """The plain attributes of a module and its parts; (3, 3) counts as 3, as torch takes
    them alike."""
    return {name: _uniform(value) for sub in module.modules() for name, value in vars(sub).items()
            if not name.startswith("_") and name != "training" and isinstance(value, (
                    int, float, str, bool, tuple,
                                                               list, type(None)))}


def _uniform(value):
    if isinstance(value, (tuple, list)) and len(value) >= 1 and len(set(value)) == 1:
        return value[0]
    return tuple(value) if isinstance(value, list) else value


def _custom_names() -> dict:
    return {name: value for name, value in vars(functions).items()
            if getattr(value, "__module__", None) == functions.__name__}


# ---- the writer ---------------------------------------------------------------------------

_CONTAINER_ATTRIBUTES = set(dir(nn.ModuleDict)) | set(dir(nn.ModuleList))
_TAKEN = {"self", "torch", "nn", "F", "operator", *dir(builtins)}


def _attribute(base: str, part: str, container: str = "") -> str:
    """`base.part`, `base[3]` or `base["part"]`: how forward() reaches a child of a
    module, a "list" (nn.ModuleList) or a "dict" (nn.ModuleDict); "module" reaches an
    attribute (a parameter) of a container."""
    if container == "list" and part.isdigit():
        return f"{base}[{part}]"
    if _plain(part) and not (container and part in _CONTAINER_ATTRIBUTES):
        return f"{base}.{part}"
    return f'{base}["{part}"]' if container == "dict" else f'getattr({base}, "{part}")'


class _Writer:
    def __init__(self, graph: nx.DiGraph, module: nn.Module, folded: dict[str, nn.Module]):
        self.graph, self.module, self.folded = graph, module, folded
        self.conv_of_norm = {name: ir.node(graph, name).inputs[0] for name in folded}
        self.replaced = {self.conv_of_norm[n]: conv for n, conv in folded.items()}
        self.leaves = {item.name for item in ir.nodes(graph) if OPS[item.op].lowers_to_module(
            item.args, tuple(ir.shape(graph, name) for name in item.inputs))} - set(folded)
        self.lists: set[str] = set()  # the containers written as nn.ModuleList
        self.classes: set[type] = set()
        self.functions: set[str] = set()
        self.uses_operator = False
        self.buffers = {".".join(ir.labels(graph, item.name)): item.args
                        for item in ir.nodes(graph) if item.op == "buffer"}

    # -- weights

    def state_dict(self) -> dict:
        """The lowered module's state_dict, with folded batch norms gone and their convs'
        weights replaced, in the order the exported module lists them."""
        folded = {}
        owners = _owners(self.module)
        for key, value in self.module.state_dict().items():
            owner = owners[key]
            if owner in self.folded:
                continue
            if owner in self.replaced:
                for name, tensor in self.replaced[owner].state_dict().items():
                    folded[f"{owner}.{name}"] = tensor
                continue
            folded[key] = value
        return folded

    # -- __init__

    def init_lines(self) -> list[str]:
        lines = []
        for name, parameter in self.module.named_parameters(recurse=False):
            lines.append(f"self.{name} = {self._parameter(parameter)}"
                         if _plain(name) else
                         f'self.register_parameter("{name}", {self._parameter(parameter)})')
        for name, child in self.module.named_children():
            if name not in self.leaves and not self._holds_leaves(name):
                continue
            value = self._tree(name, child, 0)
            lines.append(f"self.{name} = {value}" if _plain(name)
                         else f'self.add_module("{name}", {value})')
        for name, buffer in self.module.named_buffers(recurse=False):
            lines.append(f'self.register_buffer("{name}", {self._buffer(buffer, name)})')
        for owner, last, tensor in self._nested_parameters():
            *scope, inner = ir.labels(self.graph, owner)
            if isinstance(tensor, nn.Parameter):
                lines.append(f'{self._reach(scope, inner)}.register_parameter("{last}", '
                             f"{self._parameter(tensor)})")
            else:
                lines.append(f'{self._reach(scope, inner)}.register_buffer("{last}", '
                             f"{self._buffer(tensor, f'{owner}.{last}')})")
        for tie in ir.network(self.graph).ties:  # one tensor under both names
            lines.append(f'setattr(self.get_submodule("{tie.holder}"), "{tie.attribute}", '
                         f'self.get_parameter("{tie.source}"))')
        return lines

    def _holds_leaves(self, path: str) -> bool:
        """Whether the scope `path` holds a layer or a bare parameter to write."""
        return any(path in ir.scopes_of(self.graph, leaf) for leaf in self.leaves) or any(
            path in ir.ancestors(self.graph, owner) for owner, _, _ in self._nested_parameters())

    def _nested_parameters(self):
        """(scope path, name, parameter) of the bare parameters (layer scales, class
        tokens) held by a scope's container, outside every layer."""
        def walk(path: str, module: nn.Module):
            for name, child in module.named_children():
                inner = f"{path}.{name}" if path else name
                if inner in self.leaves or inner in self.folded:
                    continue
                for last, parameter in child.named_parameters(recurse=False):
                    yield inner, last, parameter
                for last, buffer in child.named_buffers(recurse=False):
                    yield inner, last, buffer
                yield from walk(inner, child)
        yield from walk("", self.module)

    def _parameter(self, parameter: torch.Tensor) -> str:
        return f"nn.Parameter(torch.empty({', '.join(map(str, parameter.shape))}))"

    def _buffer(self, buffer: torch.Tensor, path: str) -> str:
        """A `buffer` statement's constant as its initialiser computes it (the values are
        the spec's, not learned: the model holds them without weights.pt), laid out in
        the declared sizes; any other buffer as room for the weights to fill."""
        sizes = ", ".join(map(str, buffer.shape))
        declared = self.buffers.get(path)
        if declared is not None:
            self.functions.add(declared["init"])
            return f"{declared['init']}({declared['height']}, {declared['width']})" \
                f".reshape({sizes})"
        dtype = "" if buffer.is_floating_point() else f", dtype={buffer.dtype}"
        return f"torch.empty(({sizes},){dtype})"

    def _tree(self, path: str, module: nn.Module, depth: int) -> str:
        if path in self.leaves:
            return self._leaf(path, module)
        children = [(name, child) for name, child in module.named_children()
                    if f"{path}.{name}" in self.leaves or self._holds_leaves(f"{path}.{name}")]
        pad = "    " * (depth + 1)
        if [name for name, _ in children] == [str(i) for i in range(len(children))]:
            self.lists.add(path)
            items = [self._tree(f"{path}.{n}", c, depth + 1) for n, c in children]
            return "nn.ModuleList([\n" + "".join(f"{pad}{item},\n" for item in items) \
                + "    " * depth + "])"
        items = [f'"{n}": {self._tree(f"{path}.{n}", c, depth + 1)}' for n, c in children]
        return "nn.ModuleDict({\n" + "".join(f"{pad}{item},\n" for item in items) \
            + "    " * depth + "})"

    def _leaf(self, path: str, module: nn.Module) -> str:
        module = self.replaced.get(path, module)
        for sub in module.modules():
            if type(sub).__module__ == functions.__name__:
                self.classes.add(type(sub))
        return constructor(module)

    def _reach(self, scope: list[str], last: str, parameter: bool = False) -> str:
        """The expression for the module or parameter at scope + [last]. A parameter is
        an attribute of its container, never one of its items."""
        text, container = "self", ""
        parts = scope + [last]
        for depth, part in enumerate(parts):
            if parameter and depth == len(parts) - 1:
                return _attribute(text, part, "module" if container else "")
            text = _attribute(text, part, container)
            path = ".".join(parts[:depth + 1])
            container = "list" if path in self.lists else "dict"
        return text

    def module_at(self, name: str) -> str:
        *scope, last = ir.labels(self.graph, name)
        return self._reach(scope, last, isinstance(_lookup(self.module, name), nn.Parameter))

    # -- forward

    def forward_lines(self) -> tuple[list[str], list[str]]:
        """The statements of forward(), and its parameter names."""
        graph = self.graph
        outputs = ir.network(graph).outputs
        main = [o for o in outputs if not o.train_only]
        overwrite = sums_in_place(graph)
        readers = {item.name: 0 for item in ir.nodes(graph)}
        for item in ir.nodes(graph):
            for name in set(item.inputs):
                readers[name] += 1
        output_nodes = {o.node for o in outputs}
        names = _Names()
        variables: dict[str, str] = {}
        arguments = []
        for name in ir.network(graph).inputs:
            variables[name] = names.fresh(name)
            arguments.append(variables[name])
        self.batch = arguments[0] if arguments else "None"
        lines, training, seen_train = [], [], False
        remaining = dict(readers)
        for item in ir.nodes(graph):
            if item.op == "input":
                continue
            target = training if item.train_only else lines
            seen_train |= item.train_only
            if item.name in self.folded:  # the conv before it already did its work
                variables[item.name] = variables[item.inputs[0]]
                remaining[item.inputs[0]] -= 1
                continue
            first = item.inputs[0] if item.inputs else None
            reuse = (first is not None and readers[first] == 1 and first not in output_nodes
                     and first not in ir.network(graph).inputs
                     and item.train_only == ir.node(graph, first).train_only)
            var = variables[first] if reuse else names.fresh(_scope_name(graph, item.name))
            args = [variables[name] for name in item.inputs]
            if item.name in overwrite and reuse:
                target.append(f"{var} += {args[1]}")
            else:
                target.append(f"{var} = {self._expression(item, args)}")
            variables[item.name] = var
            for name in set(item.inputs):
                remaining[name] -= 1
                dead = remaining[name] == 0 and name not in output_nodes and \
                    name not in ir.network(graph).inputs  # the caller holds the inputs
                if dead and variables[name] != var and not seen_train:
                    target.append(f"del {variables[name]}")
        result = [f"return {variables[main[0].node]}"] if len(main) == 1 else [
            "return {" + ", ".join(f'"{o.name}": {variables[o.node]}' for o in main) + "}"]
        if len(main) < len(outputs):
            everything = "{" + ", ".join(f'"{o.name}": {variables[o.node]}'
                                         for o in outputs) + "}"
            lines += ["if not self.training:", "    " + result[0]] + training
            result = [f"return {everything}"]
        return lines + result, arguments

    def _expression(self, item: ir.Node, args: list[str]) -> str:
        if item.op in ("parameter", "buffer"):  # a class token: one copy per image, a view
            batch = self.batch
            return (f"{self.module_at(item.name)}.expand({batch}.size(0), "
                    + ", ".join(["-1"] * len(item.args["shape"])) + ")")
        if isinstance(_lookup(self.module, item.name), nn.Parameter):  # a layer scale
            return f"{args[0]} * {self.module_at(item.name)}"
        if item.name in self.leaves:
            return f"{self.module_at(item.name)}({', '.join(args)})"
        return self._function(item, args)

    def _function(self, item: ir.Node, args: list[str]) -> str:
        """The op's own lowering (an fx node or a few), written as one expression."""
        graph = fx.Graph()
        inputs = [graph.placeholder(f"in{i}") for i in range(len(args))]
        ins = tuple(ir.shape(self.graph, name) for name in item.inputs)
        result = OPS[item.op].function(graph, inputs, item.args, ins)
        text = dict(zip(inputs, args))
        for node in graph.nodes:
            if node.op != "placeholder":
                text[node] = self._fx_expression(node, text)
        return text[result]

    def _fx_expression(self, node: fx.Node, text: dict) -> str:
        def value(arg) -> str:
            if isinstance(arg, fx.Node):
                return text[arg]
            if isinstance(arg, (tuple, list)):
                inner = ", ".join(value(a) for a in arg)
                return f"({inner},)" if len(arg) == 1 else f"({inner})"
            if isinstance(arg, slice):
                return (f"{'' if arg.start is None else arg.start}:"
                        f"{'' if arg.stop is None else arg.stop}"
                        + ("" if arg.step in (None, 1) else f":{arg.step}"))
            return repr(arg)
        args = node.args
        if node.op == "call_method":
            return f"{_operand(value(args[0]))}.{node.target}({', '.join(map(value, args[1:]))})"
        target = node.target
        if target in _BINARY:
            return f"{_operand(value(args[0]))} {_BINARY[target]} {_operand(value(args[1]))}"
        arguments = ", ".join([value(a) for a in args]
                              + [f"{k}={value(v)}" for k, v in node.kwargs.items()])
        if target is torch.linalg.vector_norm:  # a builtin of torch._C: its public name
            return f"torch.linalg.vector_norm({arguments})"
        if target is operator.getitem:
            index = args[1]
            inner = ", ".join(value(i) for i in index) if isinstance(index, tuple) \
                else value(index)
            return f"{_operand(value(args[0]))}[{inner}]"
        if getattr(target, "__module__", "").startswith("torch") and hasattr(torch,
                                                                              target.__name__):
            return f"torch.{target.__name__}({arguments})"
        if getattr(target, "__module__", None) == functions.__name__:
            self.functions.add(target.__name__)
            return f"{target.__name__}({arguments})"
        raise InternalError(f"cannot export the function {target!r} of `{node.name}`")

    # -- the file

    def source(self) -> str:
        init = self.init_lines()
        forward, arguments = self.forward_lines()
        name = class_name(self.graph)
        header = [f'"""{name}: {ir.network(self.graph).name} from {ir.network(self.graph).source}, '
                  "exported by archdsl.", "",
                  "Needs only PyTorch. Load the weights written beside this file:", "",
                  f"    model = {name}()",
                  '    model.load_state_dict(torch.load("weights.pt"))',
                  '    model.eval()']
        if self.folded:
            header += ["", "Batch norms are folded into the convs before them: for inference "
                           "(eval mode) only."]
        header += ['"""', "import torch", "from torch import nn", ""]
        helpers = self._helpers()
        body = [f"class {name}(nn.Module):", "    def __init__(self):",
                "        super().__init__()"]
        body += ["        " + line.replace("\n", "\n        ") for line in init]
        body += ["", f"    def forward(self, {', '.join(arguments)}):"]
        body += ["        " + line for line in forward]
        text = "\n".join(header) + "\n"
        if helpers:
            text += "\n" + helpers + "\n\n"
        text += "\n" + "\n".join(body) + "\n"
        return text + _TRAILER.format(cls=name)

    def _helpers(self) -> str:
        """The source of the functions and classes of archdsl.ops.functions in use, and of
        what they call, in the order that module defines them."""
        names = set(self.functions) | {cls.__name__ for cls in self.classes}
        custom = _custom_names()
        changed = True
        while changed:
            changed = False
            for name in list(names):
                code = inspect.getsource(custom[name])
                for other in custom:
                    if other not in names and other in code.replace(f"class {name}", ""):
                        names.add(other)
                        changed = True
        order = list(custom)
        blocks = [inspect.getsource(custom[n]).rstrip() for n in sorted(names, key=order.index)]
        if not blocks:
            return ""
        needs = "\n".join(blocks)
        prelude = ["# ---- modules and functions torch.nn lacks (from archdsl.ops.functions)"]
        if "Tensor" in needs:
            prelude.append("from torch import Tensor")
        return "\n".join(prelude) + "\n\n\n" + "\n\n\n".join(blocks)


_TRAILER = """

# ---- run it: python this_file.py [weights.pt]
if __name__ == "__main__":
    import sys
    model = {cls}()
    if len(sys.argv) > 1:
        model.load_state_dict(torch.load(sys.argv[1]))
    print(model)
"""


def _plain(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


# the operators fx's graphs of element-wise ops and comparisons hold, as Python writes them
_BINARY = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/",
           operator.pow: "**", operator.iadd: "+", operator.eq: "==", operator.ne: "!=",
           operator.lt: "<", operator.le: "<=", operator.gt: ">", operator.ge: ">="}


def _operand(text: str) -> str:
    """`text` as the operand of `.method()` or `[...]`: in parentheses unless a name or
    a call."""
    return text if text.replace("_", "a").replace(".", "a").isalnum() or text.endswith(")") \
        and text.count("(") == 1 else f"({text})"


def _lookup(module: nn.Module, name: str):
    try:
        return module.get_parameter(name)
    except AttributeError:
        return None


def _scope_name(graph: nx.DiGraph, name: str) -> str:
    """A new value's variable: named after the scope of the node (`layer1.0.conv1` ->
    `layer1_0`), `x` at the top level."""
    parts = ir.labels(graph, ir.parent(graph, name)) if ir.parent(graph, name) else ()
    return "_".join(parts).replace("-", "_") if parts else "x"


def _owners(module: nn.Module) -> dict[str, str]:
    """{state_dict key: the path of the module that holds the tensor}."""
    owners = {}
    for path, held in module.named_modules():
        for name, _ in [*held.named_parameters(recurse=False), *held.named_buffers(recurse=False)]:
            owners[f"{path}.{name}" if path else name] = path
    return owners


class _Names:
    """Unique variable names, never one of Python's or the file's own."""

    def __init__(self):
        self.used: set[str] = set(_TAKEN)

    @staticmethod
    def clean(name: str) -> str:
        text = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
        if not text or text[0].isdigit():
            text = "x" + text
        return text + "_" if keyword.iskeyword(text) or text in _TAKEN else text

    def fresh(self, name: str) -> str:
        base = self.clean(name)
        text, count = base, 1
        while text in self.used:
            text, count = f"{base}_{count}", count + 1
        self.used.add(text)
        return text
