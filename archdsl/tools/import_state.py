"""What a model holds beyond the layers its graph calls, as statements: the parameters
forward() reads itself (`param gamma: 96 x 1 x 1`, read by `mul(gamma)`), and the order
in which it registers its modules where the spec would define them in another
(`declare norm1`), so that the state_dict lists them as the model does.
"""
from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from .import_einsum import einsum_text, is_einsum
from .import_layers import ImportFailure, module_labels
from .import_lookups import buffer_init, reads_state
from .import_text import LABEL_NAME, braced, declared_first

_COMBINING = {operator.add: "add", operator.iadd: "add", torch.add: "add", operator.mul: "mul",
              operator.imul: "mul", torch.mul: "mul", operator.sub: "sub", torch.sub: "sub",
              operator.truediv: "div", torch.div: "div", operator.matmul: "matmul",
              torch.matmul: "matmul"}


def unexpanded(nodes: list[fx.Node]) -> list[fx.Node]:
    """`nodes` without the expansions of a parameter or buffer to the batch, their readers
    reading the parameter itself: a `param` the spec names is one value, which the
    lowering expands so. Either the batch axis of 1 expanded (`p.expand(B, -1, -1)`, a
    class token before it joins the patches), or a batch axis put before the parameter's
    own, where einsum reads it (naming that axis by its letter), where a table is looked
    up (`index_select`), or, unsqueezed to the value's rank
    (`w.expand(B, -1).unsqueeze(1) * x`, as `archdsl export` writes a parameter read in
    forward()), one element-wise op with a value of its result's shape, where the
    parameter broadcasts as it is."""
    erased: set[fx.Node] = set()
    for node in nodes:
        value = node.args[0] if node.op == "call_method" and node.target == "expand" else None
        if getattr(value, "op", None) != "get_attr" or not all(a == -1 for a in node.args[2:]):
            continue
        rank = len(value.meta["tensor_meta"].shape)
        chain = ([node] if all(len(u.all_input_nodes) > 1 for u in node.users) else None) \
            if len(node.args) == 1 + rank else _batch_chain(node, rank) \
            if len(node.args) == 2 + rank else None
        if chain:
            chain[-1].replace_all_uses_with(value)
            for each in reversed(chain):
                node.graph.erase_node(each)
            erased.update(chain)
    return [node for node in nodes if node not in erased]


def _batch_chain(node: fx.Node, rank: int) -> list[fx.Node] | None:
    """The expansion `node` of a parameter to the batch and the unsqueezes after it,
    where einsum, a lookup or one element-wise op reads them as `unexpanded` says; else None."""
    chain = [node]
    while len(chain[-1].users) == 1 and _is_unsqueeze(next(iter(chain[-1].users))):
        chain.append(next(iter(chain[-1].users)))
    readers = list(chain[-1].users)
    if len(chain) == 1 and readers and all(is_einsum(user) or reads_state(user, chain[-1])
                                           for user in readers):
        return chain
    if len(readers) != 1 or _COMBINING.get(readers[0].target) not in ("add", "sub", "mul",
                                                                      "div"):
        return None
    others = [a for a in readers[0].args if a is not chain[-1]]
    shape, result = _shape(chain[-1]), _shape(readers[0])
    if len(readers[0].args) != 2 or len(others) != 1 or not isinstance(others[0], fx.Node) \
            or _shape(others[0]) != result or len(shape) > len(result) or \
            not _placed_alike(shape[1:], rank, result[1:]):
        return None
    return chain


def _placed_alike(sizes: tuple[int, ...], rank: int, value: tuple[int, ...]) -> bool:
    """A parameter of `rank` axes unsqueezed to `sizes` (the batch left out) meets the
    value's axes where the language places it by name: its own axes last (`1 x C`
    against L x C), or one axis of channels before axes of 1 (`C x 1 x 1` against a
    C x H x W map)."""
    last = not set(sizes[:len(sizes) - rank]) - {1}
    channels = rank == 1 and len(value) == 3 and sizes == value[:1] + (1, 1)
    return last or channels


def _is_unsqueeze(node: fx.Node) -> bool:
    return (node.op == "call_method" and node.target == "unsqueeze") or (
        node.op == "call_function" and node.target is torch.unsqueeze)


def _shape(node: fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if hasattr(meta, "shape") else ()


def read_as_value(node: fx.Node, state: fx.Node) -> bool:
    """`node` expands the parameter or buffer `state` to the batch (`A.expand(B, -1, -1)`,
    as `archdsl export` writes a value a spec reads by name) for what follows to read as a
    value of its own: the spec's `from A`."""
    shape = tuple(state.meta["tensor_meta"].shape)
    return node.op == "call_method" and node.target == "expand" and node.args[0] is state \
        and (len(node.args) == 2 + len(shape) or shape[:1] == (1,) and
             len(node.args) == 1 + len(shape)) and all(a == -1 for a in node.args[2:])


def read_parameters(modules: dict[str, nn.Module],
                    nodes: list[fx.Node]) -> dict[fx.Node, tuple[str, str]]:
    """The parameters and buffers forward() reads itself: a parameter only by an
    element-wise op with one value (a layer scale, `x * gamma`), as the matrix a value is
    multiplied by (`x @ W`), as an operand of einsum with one value or as a table looked
    up (`index_select`), a buffer only as a lookup's table or index, its values those of
    an initialiser of the language (`buffer_init`); as `param` and `buffer` statements of
    the module that holds them, in the order the model registers them: {node: (module
    path, label)}."""
    found = {}
    for node in (n for n in nodes if n.op == "get_attr"):
        holder, _, name = node.target.rpartition(".")
        module = modules.get(holder)
        parameter = None if module is None else \
            dict(module.named_parameters(recurse=False)).get(name)
        buffer = None if module is None else dict(module.named_buffers(recurse=False)).get(name)
        if (parameter is None and buffer is None) or not node.users or any(
                not reads_state(user, node) and not read_as_value(user, node) and (
                    buffer is not None or scaling(user, node, name) is None)
                for user in node.users):
            raise ImportFailure(f"forward() reads the tensor `{node.target}` itself (a "
                                "buffer otherwise than as a lookup's table or index, or a "
                                "parameter used otherwise than by an element-wise op with "
                                "one value such as a layer scale's `x * gamma`, as the "
                                "matrix of `x @ W`, by einsum with one value or as a table "
                                "looked up); archdsl imports those and layers")
        if parameter is None:
            node.meta["buffer_init"] = buffer_init(node.target, buffer)
        found[node] = (holder, module_labels([node.target])[node.target])
    registered = [f"{holder}.{name}" if holder else name for holder, module in modules.items()
                  for name, _ in itertools.chain(module.named_parameters(recurse=False),
                                                 module.named_buffers(recurse=False))]
    return dict(sorted(found.items(), key=lambda item: registered.index(item[0].target)))


def param_statement(label: str, parameter: fx.Node) -> str:
    """`param gamma: 96 x 1 x 1`; a matrix `as signal`, its two axes as they are (a
    parameter of two axes is else read as tokens, one more axis before them), unless
    it is tokens (`declared_shape`)."""
    shape, tokens = declared_shape(parameter)
    sizes = " x ".join(map(str, shape))
    if "buffer_init" in parameter.meta:  # a constant: `buffer relative_position_index: ...`
        return f"buffer {label}: {sizes} = {parameter.meta['buffer_init']}"
    return f"param {label}: {sizes}" + (" as signal" if len(shape) == 2 and not tokens else "")


def scaling(node: fx.Node, parameter: fx.Node, label: str) -> str | None:
    """The statement by which `node` combines the current value with `parameter`, read
    by `label` (`x * gamma`: `mul(gamma)`; `torch.einsum("blc,cd->bld", x, w)`:
    `einsum("lc,cd->ld", w)`), the value first where the order matters; `concat` where
    the two are joined (`joined` writes it); None where it does something else."""
    if node.op == "call_function" and node.target is torch.cat:
        operands = node.args[0] if isinstance(node.args[0], (list, tuple)) else ()
        return "concat" if len(operands) == 2 and list(operands).count(parameter) == 1 \
            and set(node.kwargs) <= {"dim"} else None
    if is_einsum(node):
        return einsum_text(node, parameter, label)
    op = _COMBINING.get(node.target) if node.op == "call_function" else None
    values = [a for a in node.args if isinstance(a, fx.Node)]
    if op is None or node.kwargs or len(node.args) != 2 or \
            len(values) != 2 or values.count(parameter) != 1:
        return None
    return f"{op}({label})" if op in ("add", "mul") or node.args[1] is parameter else None


def declared_shape(parameter: fx.Node) -> tuple[tuple[int, ...], bool]:
    """(the sizes a `param` statement declares, whether they are tokens): a parameter
    stored with a batch axis of 1 before L x C (a class token, a position embedding) and
    read with tokens (or read as a value, expanded to the batch) is declared L x C, as
    the language stores tokens; any other as it is stored."""
    shape = tuple(parameter.meta["tensor_meta"].shape)
    others = [a for user in parameter.users for a in _operands(user) if a is not parameter]
    expanded = all(read_as_value(user, parameter) for user in parameter.users)
    tokens = len(shape) == 3 and shape[0] == 1 and (expanded or bool(others) and all(
        len(a.meta.get("tensor_meta").shape) == 3 for a in others if "tensor_meta" in a.meta))
    return (shape[1:], True) if tokens else (shape, False)


def grouped(holder_label: str, label: str, parameter: fx.Node, text: str) -> str:
    """`encoder: { param pos_embedding: 197 x 768; add(pos_embedding) }`: a parameter and
    the one statement that reads it (`scaling`), in a group of its holder's label, where
    the holder's modules run apart (their statements labelled by paths) and no scope
    declares it."""
    return f"{holder_label}: " + braced([param_statement(label, parameter), text])


def joined(node: fx.Node, parameter: fx.Node, label: str, taken: set[str]) -> tuple[str, str]:
    """(`tokens: identity`, `concat(class_token, tokens, axis = 0)`): a parameter and the
    current value concatenated, the current value named by an identity first, since
    `concat` joins values by name."""
    name = next(n for n in ("tokens", *(f"tokens_{i}" for i in range(2, 99))) if n not in taken)
    taken.add(name)
    operands = ", ".join(label if a is parameter else name for a in node.args[0])
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    axis = dim - 1 if dim > 0 else dim + len(node.meta["tensor_meta"].shape) - 1
    return f"{name}: identity", f"concat({operands}, axis = {axis})"


def _operands(node: fx.Node) -> list:
    if node.op == "call_function" and node.target is torch.cat:
        return list(node.args[0])
    return [a for a in node.args if isinstance(a, fx.Node)]


def _holds_state(module: nn.Module) -> bool:
    return next(itertools.chain(module.parameters(), module.buffers()), None) is not None


def declarations(scope: str, defined: list[str], modules: dict[str, nn.Module],
                 labels: dict[str, str], scope_label) -> list[str]:
    """`declare` for each container whose modules holding state, parameters or buffers
    the spec defines in another order than the model registers them (a head whose
    classifier runs first, a bias read before its weight):
    the fewest of them, in the model's order, that put the state_dict in it; in the
    scope's own body, or in a group of the container's label where it is a list that
    runs apart (`classifier: { declare cbr, scale }`)."""
    containers: dict[str, list[str]] = {}
    depth = scope.count(".") + 1 if scope else 0
    for parts in (path.split(".") for path in defined):  # `"a.b": ...` defines a, a.b
        for level in range(depth, len(parts)):
            paths = containers.setdefault(".".join(parts[:level]), [])
            if ".".join(parts[:level + 1]) not in paths:
                paths.append(".".join(parts[:level + 1]))
    lines = []
    for container, paths in containers.items():
        if container not in modules:  # a module registered twice: listed once
            continue
        module = modules[container]
        tensors = [name for name, _ in itertools.chain(module.named_parameters(recurse=False),
                                                       module.named_buffers(recurse=False))]
        order = [path for path in (f"{container}.{name}" if container else name
                                   for name in tensors + [n for n, _ in module.named_children()])
                 if path in paths and (path not in modules or _holds_state(modules[path]))]
        first = declared_first(order, [p for p in paths if p in order])
        names = [labels.get(path, path.rpartition(".")[2]) for path in first]
        if not first or not all(LABEL_NAME.fullmatch(name) for name in names):
            continue  # in order, or a number or a word no `declare` can name
        text = "declare " + ", ".join(names)
        lines.append(text if container == scope else
                     f"{scope_label(container)}: {{ {text} }}")
    return lines


@dataclass
class Naming:
    """A naming scope as its statements are written: the numbers its modules are
    labelled with, the labels taken, and the index its next unlabelled statement takes."""
    numbers: set[int]
    taken: set[str]
    index: int = 0
    defined: list[str] = field(default_factory=list)  # module and scope paths, in order
