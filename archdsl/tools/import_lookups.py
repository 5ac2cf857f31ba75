"""Tables that forward() looks up by a constant index: a relative position bias table (a
parameter) read at the rows a relative position index (a buffer) names, as Swin's and
MaxViT's attention and the language's `index_select(table, index)` do.

* archdsl's own functions that the importer reads whole (`LOOKUPS`), and a model's copies
  of them (the functions an exported file holds), stay one call when torch.fx traces;
* a buffer is written as the language's `buffer NAME: SIZES = INIT(h, w)` when its values
  are those of one of the language's initialisers (archdsl.ops.io.BUFFER_INITS) for some
  h and w its size allows, compared exactly; any other buffer stops the import, since
  the language declares no buffer whose values come with the weights;
* a lookup of a parameter by a buffer is the statement that reads both by name,
  `index_select(relative_position_bias_table, relative_position_index)`, in the scope
  that declares them.
"""
from __future__ import annotations

import types

import torch
from torch import fx, nn

from ..ops import functions
from ..ops.io import BUFFER_INITS
from .import_layers import ImportFailure, own_function, same_code, source_line

# archdsl's own functions read whole, as the op of the same name: {name: its axis argument's
# position (batch first, as the lowering calls it)}
LOOKUPS = {"index_select": 2}
# ... and those read as calls of several values by name (`routed_linear(x, weight, index)`,
# `cast_like(x, sample)`, which brings a float32 step back to the network's precision)
WHOLE = (*LOOKUPS, "routed_linear", "cast_like")


def lookup_functions(model: nn.Module) -> tuple[types.FunctionType, ...]:
    """The functions of `WHOLE` that the modules of `model` call: archdsl's own, and
    functions of the same name whose code compiles the same in the files that define
    the model's modules (an exported file's copies), for torch.fx to keep whole."""
    found = {id(f): f for f in (getattr(functions, name) for name in WHOLE)}
    for module in model.modules():
        names = getattr(type(module).forward, "__globals__", {})
        for name in WHOLE:
            function = names.get(name)
            if isinstance(function, types.FunctionType) and same_code(
                    function, getattr(functions, name)):
                found[id(function)] = function
    return tuple(found.values())


def is_lookup(node: fx.Node) -> bool:
    """`node` calls one of `LOOKUPS` (kept whole by `lookup_functions`)."""
    return node.op == "call_function" and any(own_function(node.target, n) for n in LOOKUPS)


def reads_state(node: fx.Node, state: fx.Node) -> bool:
    """`node` looks `state` up, or looks a table up by `state`, or multiplies by the
    matrices `state` holds (`routed_linear(x, weight, index)`)."""
    return (is_lookup(node) and state in node.args[:2]) or (
        is_whole(node, "routed_linear") and node.args[1:2] == (state,))


def is_whole(node: fx.Node, name: str) -> bool:
    """`node` calls archdsl's own function `name` (one of `WHOLE`), or a copy of it."""
    return node.op == "call_function" and own_function(node.target, name)


def lookup_text(node: fx.Node, names: dict[fx.Node, str]) -> str:
    """`index_select(relative_position_bias_table, relative_position_index)`: a lookup of
    the values `names` names (the parameters and buffers it reads, by their labels)."""
    table, index, *rest = node.args
    axis = (rest[0] if rest else node.kwargs.get("dim", 1)) - 1  # the batch is not an axis
    if table not in names or index not in names:
        raise ImportFailure(f"`{node.name}`{source_line(node)}: {node.target.__name__} of "
                            "a value forward() computes; archdsl imports lookups of a "
                            "parameter or buffer by a buffer")
    option = f", axis = {axis}" if axis else ""
    return f"{node.target.__name__}({names[table]}, {names[index]}{option})"


def buffer_init(target: str, buffer: torch.Tensor) -> str:
    """`relative_position_index(7, 7)`: the initialiser of the language whose values, for
    some h and w, are the buffer's, laid out in its sizes. A buffer of other values is an
    `ImportFailure`.

    >>> buffer_init("index", functions.relative_position_index(3, 2).reshape(-1))
    'relative_position_index(3, 2)'
    """
    floating = buffer.is_floating_point()
    for init, (dtype, count) in BUFFER_INITS.items():
        if (dtype == "float") != floating:
            continue
        for height, width in _sizes(count, buffer.numel()):
            values = getattr(functions, init)(height, width)
            if values.dtype == buffer.dtype and torch.equal(values.reshape(-1),
                                                            buffer.reshape(-1)):
                return f"{init}({height}, {width})"
    raise ImportFailure(f"forward() reads the buffer `{target}`, whose values no initialiser "
                        f"of the language gives ({', '.join(BUFFER_INITS)}); archdsl declares "
                        "buffers of computed values only")


def _sizes(count, numel: int):
    """The (h, w), each at least 2, for which an initialiser gives `numel` values
    (`count(h, w)`, which grows with both)."""
    height = 2
    while count(height, 2) <= numel:
        width = 2
        while count(height, width) <= numel:
            if count(height, width) == numel:
                yield height, width
            width += 1
        height += 1
