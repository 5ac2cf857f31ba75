"""Capture with torch.export, for models torch.fx cannot trace (control flow on sizes,
assignment into tensors, `x[:, None, None, :]` masks): the exported program, whose graph
holds ATen operations, is rebuilt as the graph torch.fx would have given, the form
archdsl.tools.import_structure reads:

* the operations that ran inside one call of a torch.nn layer (the node's
  `nn_module_stack` says which) become one `call_module` node of that layer;
* the operations between layers become the torch functions and tensor methods the
  importer reads (`aten.add.Tensor` is `operator.add`, `aten.view` `torch.reshape`, ...),
  by the table `FUNCTIONS` and the few rewrites after it;
* a parameter or buffer read outside a layer is a `get_attr` node of its name (the
  ExportGraphSignature maps the program's inputs to them), which the importer refuses
  by name;
* operations nothing reads (a mask forward() builds and never uses) are left out;
* tensors forward() makes from sizes and buffers alone (position ids, token types, a
  causal mask) are read by their values (archdsl.tools.import_made): positions, a mask
  that keeps everything (dropped) or a causal one (`is_causal`); rotary cosines and sines
  applied to heads, the language's `rope` (archdsl.tools.import_rope);
* `expand` to the shape an elementwise operation would broadcast to anyway is dropped,
  an in-place operation (`add_`) read as the plain one.

An operation the table does not know stops the capture with its name and the module it
ran in (`ImportFailure`).
"""
from __future__ import annotations

import operator

import torch
from torch import fx, nn

from ..ops.functions import cast_like, rms_norm
from .import_layers import (READ_THROUGH_IN_EXPORT, ImportFailure, is_own, positions,
                            source_line, top)
from .import_made import Made, made_nodes
from .import_own import OPERATIONS, kept_whole
from .import_rope import rotary, rotations

aten = torch.ops.aten
F = nn.functional

# ATen operations as the torch function the importer reads, with the same arguments.
FUNCTIONS = {
    aten.add.Tensor: operator.add, aten.sub.Tensor: operator.sub,
    aten.mul.Tensor: operator.mul, aten.div.Tensor: operator.truediv,
    aten.matmul.default: torch.matmul, aten.bmm.default: torch.matmul,
    aten.cat.default: torch.cat, aten.transpose.int: torch.transpose,
    aten.view.default: torch.reshape, aten.reshape.default: torch.reshape,
    aten._unsafe_view.default: torch.reshape, aten.unsqueeze.default: torch.unsqueeze,
    aten.squeeze.dim: torch.squeeze, aten.flatten.using_ints: torch.flatten,
    aten.mean.dim: torch.mean, aten.sum.dim_IntList: torch.sum,
    aten.amax.default: torch.amax, aten.amin.default: torch.amin,
    aten.softmax.int: torch.softmax, aten.log_softmax.int: torch.log_softmax,
    aten.chunk.default: torch.chunk, aten.split.Tensor: torch.split,
    aten.unbind.int: torch.unbind, aten.relu.default: F.relu, aten.gelu.default: F.gelu,
    aten.silu.default: F.silu, aten.sigmoid.default: torch.sigmoid,
    aten.tanh.default: torch.tanh, aten.hardswish.default: F.hardswish,
    aten.exp.default: torch.exp, aten.log.default: torch.log, aten.sqrt.default: torch.sqrt,
    aten.sin.default: torch.sin, aten.cos.default: torch.cos,
    aten.reciprocal.default: torch.reciprocal, aten.pad.default: F.pad,
    aten.roll.default: torch.roll, aten.linalg_vector_norm.default: torch.linalg.vector_norm,
    aten.clamp_min.default: torch.clamp_min, aten.clamp_max.default: torch.clamp_max,
    aten.where.self: torch.where, aten.where.ScalarOther: torch.where,
    aten.ge.Scalar: operator.ge, aten.gt.Scalar: operator.gt, aten.le.Scalar: operator.le,
    aten.lt.Scalar: operator.lt, aten.eq.Scalar: operator.eq, aten.ne.Scalar: operator.ne,
    aten.ge.Tensor: operator.ge, aten.gt.Tensor: operator.gt, aten.le.Tensor: operator.le,
    aten.lt.Tensor: operator.lt, aten.eq.Tensor: operator.eq, aten.ne.Tensor: operator.ne,
    aten.linalg_vector_norm.default: torch.linalg.vector_norm,
    aten.scaled_dot_product_attention.default: F.scaled_dot_product_attention,
    aten.adaptive_avg_pool2d.default: F.adaptive_avg_pool2d,
    aten.einsum.default: torch.einsum,  # its operands as one list, as torch.einsum takes them
    # functions of parameters (archdsl.tools.import_functional reads them as layers)
    aten.linear.default: F.linear,
    aten.addmm.default: torch.addmm, aten.pow.Tensor_Scalar: torch.pow,
    aten.rsqrt.default: torch.rsqrt, aten.addcmul.default: torch.addcmul,
}
# in-place operations (`x += y`), as the plain ones: the value read afterwards is theirs
IN_PLACE = {aten.add_.Tensor: operator.add, aten.sub_.Tensor: operator.sub,
            aten.mul_.Tensor: operator.mul, aten.div_.Tensor: operator.truediv,
            aten.relu_.default: F.relu, aten.sigmoid_.default: torch.sigmoid,
            aten.hardswish_.default: F.hardswish, aten.silu_.default: F.silu}
FUNCTIONS.update(IN_PLACE)
FUNCTIONS.update(OPERATIONS)  # archdsl's own functions, kept whole
ATTENTION = {aten.scaled_dot_product_attention.default}
# elementwise operations that broadcast their operands (an `expand` before them is moot)
BROADCASTING = {aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor,
                aten.add_.Tensor, aten.sub_.Tensor, aten.mul_.Tensor, aten.div_.Tensor,
                aten.where.self, aten.masked_fill.Scalar}
# ... as a tensor method of the same arguments
METHODS = {aten.permute.default: "permute", aten.sym_size.int: "size"}
# ... as the value they read: copies and views that change nothing the spec says
ALIASES = {aten.alias.default, aten.detach.default, aten.contiguous.default,
           aten.clone.default, aten.lift_fresh_copy.default}
# sizes computed in forward() (`L // heads`): kept, and folded to numbers after shapes
SIZE_FUNCTIONS = {operator.add, operator.sub, operator.mul, operator.floordiv,
                  operator.truediv, operator.neg, operator.getitem}


def is_layer(module: nn.Module) -> bool:
    """A torch.nn layer, or archdsl's own (`is_own`), imported whole (containers and
    the model's own modules are read through)."""
    return module.__module__.startswith("torch.nn") and not isinstance(
        module, (nn.Sequential, nn.ModuleList, nn.ModuleDict)) or is_own(module)


def capture_export(model: nn.Module, example: tuple[torch.Tensor, ...],
                   dynamic_axes: list[int | None]) -> tuple[fx.Graph, str]:
    """The graph of `model` called on the tensors of `example`, captured with torch.export
    and rebuilt as torch.fx gives it, and a note on the capture: with the sequence length
    (the axis `dynamic_axes[i]` of each input, None where it has none) dynamic where the
    model allows it, else static and why. torch.export finds the lengths that must stay
    equal (two inputs of one sequence) itself."""
    with kept_whole(model):
        program, note = _export(model, example, dynamic_axes)
    return _Rebuild(model, program, example).graph(), note


def _export(model: nn.Module, example: tuple[torch.Tensor, ...],
            dynamic_axes: list[int | None]):
    """The exported program, dynamic on the inputs' `dynamic_axes` where the model allows
    it."""
    if any(axis is not None for axis in dynamic_axes):
        dims = tuple(None if axis is None else {axis: torch.export.Dim.AUTO}
                     for axis in dynamic_axes)
        try:
            program = _quiet_export(model, example, dims)
        except Exception as error:  # noqa: BLE001 - retried static, and said so
            note = f"sequence length static (dynamic: {one_line(error)})"
        else:
            first = next(i for i, axis in enumerate(dynamic_axes) if axis is not None)
            size = _input_values(program)[first].shape[dynamic_axes[first]]
            if isinstance(size, torch.SymInt) and not size.node.expr.is_number:
                low, high = _range(program, size)
                return program, f"sequence length dynamic ({low} to {high})"
            return program, "sequence length static (the model fixes it)"
    else:
        note = ""
    try:
        return _quiet_export(model, example, None), note
    except Exception as error:  # noqa: BLE001 - the model's own code, one line
        raise ImportFailure(f"torch.export cannot capture the model: {one_line(error)}") \
            from None


def _quiet_export(model, example, dims):
    import logging
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)  # export's warnings are for torch's users, not ours
    try:
        return torch.export.export(model, tuple(example), dynamic_shapes=dims, strict=False)
    finally:
        logger.setLevel(level)


def _input_values(program) -> list:
    names = [spec.arg.name for spec in program.graph_signature.input_specs
             if spec.kind.name == "USER_INPUT"]
    by_name = {n.name: n for n in program.graph.nodes}
    return [by_name[name].meta["val"] for name in names]


def _range(program, size: torch.SymInt) -> tuple[int, str]:
    found = program.range_constraints.get(size.node.expr)
    if found is None:
        return 0, "any"
    try:
        high = str(int(found.upper))
    except (TypeError, ValueError, AttributeError, OverflowError):  # sympy's infinity
        high = "any"
    return int(found.lower), high


def one_line(error: BaseException) -> str:
    """`ValueError: the first line of its message`."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class _Rebuild:
    """The exported program's graph as torch.fx's: layers whole, functions between them."""

    def __init__(self, model: nn.Module, program, example: tuple[torch.Tensor, ...]):
        self.model, self.program, self.example = model, program, example
        self.modules = dict(model.named_modules())
        signature = program.graph_signature
        self.state = {**signature.inputs_to_parameters, **signature.inputs_to_buffers}
        self.constants = set(signature.inputs_to_lifted_tensor_constants)
        self.kept = set(signature.inputs_to_buffers) | self.constants
        self.input: fx.Node | None = None
        self.new = fx.Graph()
        self.env: dict[fx.Node, object] = {}
        self.calls: dict[str, fx.Node] = {}  # a layer call's stack key -> its node

    def graph(self) -> fx.Graph:
        nodes = _live(self.program.graph)
        calls = {n: self._layer_call(n) for n in nodes if n.op == "call_function"}
        self.layers: dict[str, list[fx.Node]] = {}  # a layer call's key -> its operations
        for node, call in calls.items():
            if call is not None:
                self.layers.setdefault(call[0], []).append(node)
        in_layers = {n for n, call in calls.items() if call is not None}
        self.made = Made(self.program, self.example,
                         made_nodes(self.program.graph, self.kept, in_layers))
        self.rotations = rotations(self.program.graph, self.made)
        self.repeats = repeated_heads(self.program.graph)
        self.unbatched = batch_expanded(self.program.graph, self.state)
        replaced = {p for r in self.rotations.values() for p in r.parts} | {
            p for _, chain in self.repeats.values() for p in chain}
        for node in nodes:
            if node in replaced:
                continue  # written as the rotation or the grouping they make (`_function`)
            if node.op == "placeholder":
                self._placeholder(node)
            elif node.op == "output":
                self.new.output(self._arg(self._returned(node), node))
            elif calls.get(node) is not None:
                self._in_layer(node, *calls[node])
            else:
                self._function(node)
        return self.new

    def _returned(self, output: fx.Node):
        """What forward() returns: one value, or its values as forward() gathered them,
        a dict (with its keys, which name the spec's outputs) or a tuple."""
        (values,) = output.args
        if len(values) == 1:
            return values[0]
        spec = getattr(self.program.call_spec, "out_spec", None)
        if spec is not None and spec.type is dict and len(spec.context) == len(values):
            return dict(zip(spec.context, values))
        return tuple(values)

    # -- the input, parameters and buffers

    def _placeholder(self, node: fx.Node) -> None:
        if node.name in self.state or node.name in self.constants:
            return  # made where something outside a layer reads it (get_attr)
        self.env[node] = self.new.placeholder(node.name)
        if self.input is None:  # the first input, which made positions count along
            self.input = self.env[node]

    def _arg(self, value, reader: fx.Node):
        return fx.node.map_arg(value, lambda n: self._value(n, reader))

    def _value(self, node: fx.Node, reader: fx.Node) -> fx.Node:
        if node in self.env:
            return self.env[node]
        if node in self.made.nodes:
            self.env[node] = self._ids(node)
            return self.env[node]
        if node.name in self.state:
            self.env[node] = self.new.get_attr(self.state[node.name])
            return self.env[node]
        raise ImportFailure(f"{_where(reader)}: `{_name(reader)}` reads a tensor that forward() "
                            "makes itself (a constant); archdsl imports functions of the input")

    # -- the operations inside one call of a layer

    def _layer_call(self, node: fx.Node) -> tuple[str, str] | None:
        """(the stack key of the call, the layer's path) of the torch.nn layer the node
        ran in, outermost first; None outside layers."""
        for key, value in (node.meta.get("nn_module_stack") or {}).items():
            path = value[0] if isinstance(value, tuple) else str(value)
            module = self.modules.get(path)
            if module is not None and path and is_layer(module) and \
                    type(module).__name__ not in READ_THROUGH_IN_EXPORT:
                return key, path
        return None

    def _in_layer(self, node: fx.Node, key: str, path: str) -> None:
        """One call_module node for the call: made at its first operation from the
        values it reads from outside (not its own parameters), standing for the one
        operation whose value is read after it."""
        if key in self.calls:
            return
        inside = set(self.layers[key])
        outside = [v for n in self.layers[key] for v in n.all_input_nodes
                   if v not in inside and v.name not in self.state
                   and isinstance(v.meta.get("val"), torch.Tensor)]
        leaving = [n for n in self.layers[key] if any(u not in inside for u in n.users)]
        if len(leaving) != 1:
            raise ImportFailure(f"`{path}` ({type(self.modules[path]).__name__}) gives "
                                f"{len(leaving)} values; archdsl imports layers of one")
        values = list(dict.fromkeys(outside))  # in the order the layer's operations read them
        if len(values) > 1 and is_own(self.modules[path]):  # not that of its arguments
            raise ImportFailure(f"`{path}` ({type(self.modules[path]).__name__}) reads "
                                f"{len(values)} values, whose order torch.export does not "
                                "record; torch.fx (`--capture fx`) reads them in order")
        args = tuple(self._arg(v, node) for v in values)
        call = self.new.call_module(path, args)
        call.meta["nn_module_stack"] = _stack_above(node, key)
        call.meta["stack_trace"] = node.meta.get("stack_trace")
        self.calls[key] = call
        self.env[leaving[0]] = call

    # -- the operations between layers

    def _function(self, node: fx.Node) -> None:
        target = node.target
        if node in self.made.nodes:
            return  # read by its values where something reads it (`_value`, `_unmasked`)
        if node in self.rotations:  # RoPE: `x * cos + rotate_half(x) * sin` of made tables
            rotation = self.rotations[node]
            self.env[node] = self.new.call_function(
                rotary, (self._value(rotation.x, node), rotation.theta, rotation.scaling))
            _keep_meta(self.env[node], node)
            return
        if node in self.unbatched:  # a parameter expanded to the batch: as it is
            self.env[node] = self._value(self.unbatched[node], node)
            return
        if node in self.repeats:  # keys and values repeated per query head: sdpa groups them
            self.env[node] = self._value(self.repeats[node][0], node)
            return
        kept = self._unmasked(node)
        if kept is not None:
            self.env[node] = self._value(kept, node)
            return
        args, kwargs = self._attention_mask(node) if target in ATTENTION else (
            node.args, node.kwargs)
        args, kwargs = self._arg(args, node), self._arg(kwargs, node)
        if target in ALIASES or _unchanged_cast(node):
            self.env[node] = args[0]
            return
        rewrite = REWRITES.get(target)
        if rewrite is not None:
            made = rewrite(self, node, args, kwargs)
        elif target in FUNCTIONS:
            made = self._call(node, FUNCTIONS[target], args, kwargs)
        elif target in METHODS:
            made = self.new.call_method(METHODS[target], args, kwargs)
        elif target is operator.getitem and isinstance(args[0], tuple):
            made = args[0][args[1]]  # one value of an operation of several (`topk`)
        elif target in SIZE_FUNCTIONS or getattr(target, "__module__", "") in ("math",):
            made = self.new.call_function(target, args, kwargs)
        elif not any(isinstance(n.meta.get("val"), torch.Tensor) for n in node.all_input_nodes):
            raise ImportFailure(f"{_where(node)}: torch.export's `{_name(node)}` makes a "
                                "tensor of forward()'s own (positions, a mask), which archdsl "
                                "has no equivalent for; archdsl imports functions of the input")
        else:
            raise ImportFailure(f"{_where(node)}: torch.export's `{_name(node)}` has no "
                                "archdsl equivalent")
        self.env[node] = made
        if target in IN_PLACE and isinstance(node.args[0], fx.Node):
            self.env[node.args[0]] = made  # what reads the operand later reads the result
        if isinstance(made, fx.Node) and "nn_module_stack" not in made.meta:
            _keep_meta(made, node)  # a value passed through (`x[:, :]`) keeps its own

    # -- tensors forward() makes itself (archdsl.tools.import_made)

    def _ids(self, node: fx.Node) -> fx.Node:
        """Ids forward() makes (position ids, token types of a buffer) as the language
        writes them: the positions of the input (plus an offset, or times 0 plus one
        number), cast to the input's integers."""
        found = self.made.ids(node)
        if found is None or self.input is None:
            raise ImportFailure(f"{_where(node)}: torch.export's `{_name(node)}` makes a "
                                "tensor of forward()'s own that is neither positions, one "
                                "number at every position, a mask that keeps every "
                                "position or is causal, nor rotary cosines and sines of "
                                "t · θ^(-2i/d) applied as x · cos + rotate_half(x) · sin; "
                                "archdsl imports functions of the input")
        kind, number = found
        made = [self.new.call_function(positions, (self.input,))]
        if kind == "constant":
            made.append(self.new.call_function(operator.mul, (made[-1], 0.0)))
        if number:
            made.append(self.new.call_function(operator.add, (made[-1], float(number))))
        made.append(self.new.call_function(cast_like, (made[-1], self.input)))
        for each in made:
            _keep_meta(each, node)
        return made[-1]

    def _unmasked(self, node: fx.Node) -> fx.Node | None:
        """The value a made mask that keeps every position passes through unchanged
        (`where(mask, x, y)`, `x.masked_fill(mask, v)`, `x + mask`); None for any other
        operation."""
        target, args = node.target, node.args
        if target is aten.where.self and args[0] in self.made.nodes:
            mask, kept = args[0], args[1]
            return kept if self.made.mask(mask) == "all" else None
        if target is aten.masked_fill.Scalar and args[1] in self.made.nodes:
            value = self.made.value(args[1])
            return args[0] if not value.any() else None
        if target is aten.add.Tensor and args[1] in self.made.nodes and \
                self.made.value(args[1]).is_floating_point():
            return args[0] if self.made.mask(args[1]) == "all" else None
        return None

    def _attention_mask(self, node: fx.Node):
        """scaled_dot_product_attention's arguments with a made mask read: none where it
        keeps every position, `is_causal` where it is causal; `enable_gqa` where the keys
        and values are read before their repetition for each query head."""
        args, kwargs = list(node.args), dict(node.kwargs)
        if any(value in self.repeats for value in args[1:3]):
            kwargs["enable_gqa"] = True
        mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
        if mask not in self.made.nodes:
            return tuple(args), kwargs
        kind = self.made.mask(mask)
        if kind == "other":
            _refuse(mask, "a mask that neither keeps every position nor is causal")
        args = args[:3] + [None] + args[4:]
        kwargs.pop("attn_mask", None)
        if kind == "causal":
            if len(args) > 5:
                args[5] = True
            else:
                kwargs["is_causal"] = True
        return tuple(args), kwargs

    def _call(self, node: fx.Node, function, args, kwargs) -> fx.Node:
        if kwargs.get("alpha", 1) != 1:
            raise ImportFailure(f"{_where(node)}: `{_name(node)}` with alpha = "
                                f"{kwargs['alpha']}")
        kwargs = {k: v for k, v in kwargs.items() if k != "alpha"}
        return self.new.call_function(function, tuple(args), kwargs)


def repeated_heads(graph: fx.Graph) -> dict[fx.Node, tuple[fx.Node, list[fx.Node]]]:
    """{reshape: (heads, the operations between)} for the keys and values of grouped-query
    attention repeated for each query head as transformers' `repeat_kv` does,
    `x[:, :, None].expand(B, kv, n, L, d).reshape(B, kv · n, L, d)`, where only
    scaled_dot_product_attention reads them as its keys or values: it groups the heads
    itself (`enable_gqa`), as the language's `sdpa` does."""
    found = {}
    for node in graph.nodes:
        chain = [node.args[0]] if node.target in _RESHAPES else []
        while chain and isinstance(chain[-1], fx.Node) and chain[-1].args and (
                len(chain) == 1 or _whole_slice(chain[-1])):
            chain.append(chain[-1].args[0])  # `x[:, :, None, :, :]` slices every axis
        if len(chain) < 2 or not isinstance(chain[-1], fx.Node) or \
                chain[0].target is not aten.expand.default or \
                chain[-1].target is not aten.unsqueeze.default or chain[-1].args[1] != 2 or \
                any(len(each.users) != 1 for each in chain):
            continue
        heads = chain[-1].args[0]
        before, grown, after = _sizes(heads), _sizes(chain[0]), _sizes(node)
        if len(before) == 4 == len(after) and grown[:2] + grown[3:] == before and \
                after[:1] + after[2:] == before[:1] + before[2:] and all(
                user.target in ATTENTION and node not in (user.args[:1] + user.args[3:])
                for user in node.users):
            found[node] = heads, chain
    return found


def batch_expanded(graph: fx.Graph, state: dict) -> dict[fx.Node, fx.Node]:
    """{operation: parameter} for a parameter expanded to the batch and unsqueezed before
    its own axes (`w.expand(B, -1).unsqueeze(1) * x`, as `archdsl export` writes a
    parameter read in forward()) where only an element-wise operation reads it, with a
    value of its result's shape: the parameter broadcasts there as it is."""
    found = {}
    for node in graph.nodes:
        if node.target is not aten.expand.default or node.args[0].name not in state:
            continue
        weight, chain = _sizes(node.args[0]), [node]
        while len(chain[-1].users) == 1 and next(iter(chain[-1].users)).target is \
                aten.unsqueeze.default:
            chain.append(next(iter(chain[-1].users)))
        (reader, *more) = chain[-1].users or [None]
        sizes = _sizes(chain[-1])
        others = [a for a in getattr(reader, "args", ())[:2] if a is not chain[-1]]
        if more or reader.target not in BROADCASTING or len(others) != 1 or \
                not isinstance(others[0], fx.Node) or \
                _sizes(others[0]) != _sizes(reader) or len(sizes) > len(_sizes(reader)) or \
                sizes[len(sizes) - len(weight):] != weight or \
                set(sizes[1:len(sizes) - len(weight)]) - {"1"}:
            continue
        found.update(dict.fromkeys(chain, node.args[0]))
    return found


def _whole_slice(node) -> bool:
    """`x[:, a:b]` that keeps the whole axis."""
    if not isinstance(node, fx.Node) or node.target is not aten.slice.Tensor:
        return False
    x, dim, start, end, step = (tuple(node.args) + (0, None, None, 1)[len(node.args) - 1:])[:5]
    return (start or 0) == 0 and step == 1 and _sizes(x) == _sizes(node)


_RESHAPES = {aten.view.default, aten.reshape.default, aten._unsafe_view.default}


def _slice(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    """`x[:, a:b]`: an indexing of one axis, or nothing where it keeps the whole axis."""
    x, dim, start, end, step = (tuple(args) + (0, None, None, 1)[len(args) - 1:])[:5]
    shape = node.args[0].meta["val"].shape
    dim %= len(shape)
    start = 0 if start is None else start
    whole = end is None or (isinstance(end, int) and (
        end >= 2 ** 62 or isinstance(shape[dim], int) and end >= shape[dim]))
    if start == 0 and step == 1 and whole:
        return x
    index = (slice(None),) * dim + (slice(start, end, None if step == 1 else step),)
    return rebuild.new.call_function(operator.getitem, (x, index))


def _select(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    """`x[:, 0]`: the one entry, its axis dropped (`take`)."""
    x, dim, index = args
    size = node.args[0].meta["val"].shape[dim]
    if isinstance(index, int) and index < 0 and isinstance(size, int):
        index += size
    if not isinstance(index, int) or index < 0:
        return _refuse(node, "an entry counted from the end, or computed at run time")
    return rebuild.new.call_function(torch.select, (x, dim, index))


def _dropout(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    return rebuild.new.call_function(F.dropout, (args[0], args[1], False))


def _gelu(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    return rebuild.new.call_function(F.gelu, tuple(args), kwargs)


def _rsub(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    """`1 - x`."""
    return rebuild.new.call_function(operator.sub, (args[1], args[0]))


def _neg(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    return rebuild.new.call_function(operator.mul, (args[0], -1.0))


def _softmax(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    return rebuild.new.call_function(torch.softmax, (args[0], args[1]))


def _relu6(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    if tuple(args[1:3]) != (0.0, 6.0):
        return _refuse(node, f"hardtanh between {args[1]} and {args[2]}")
    return rebuild.new.call_function(F.relu6, (args[0],))


def _pool(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    """`F.max_pool2d(x, 2)`: each size as one number where it is square."""
    def size(value):
        value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        return value[0] if len(set(value)) == 1 else value
    sizes = [size(a) if isinstance(a, (list, tuple)) and a else a for a in args[1:]]
    if len(sizes) > 1 and sizes[1] == []:  # no stride: the kernel's
        sizes[1] = sizes[0]
    function = F.max_pool2d if node.target is aten.max_pool2d.default else F.avg_pool2d
    names = ("kernel_size", "stride", "padding", "dilation" if function is F.max_pool2d
             else "ceil_mode", "ceil_mode" if function is F.max_pool2d else "count_include_pad")
    options = dict(zip(names, sizes))
    if function is F.avg_pool2d and not options.pop("count_include_pad", True):
        return _refuse(node, "average pooling that leaves the padding out")
    return rebuild.new.call_function(function, (args[0],), options)


def _adaptive_pool(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    return rebuild.new.call_function(F.adaptive_avg_pool2d, (args[0], tuple(args[1])))


def _nearest(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    """`F.interpolate(x, scale_factor = 2)` or to a size, nearest."""
    x, size, scales = (tuple(args) + (None, None))[:3]
    if scales and len(set(scales)) == 1 and float(scales[0]).is_integer():
        return rebuild.new.call_function(F.interpolate, (x,), dict(scale_factor=scales[0]))
    return rebuild.new.call_function(F.interpolate, (x,), dict(size=size))


def _bilinear(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    x, size, align_corners, scales = (tuple(args) + (None,))[:4]
    where = dict(size=size) if size is not None else dict(scale_factor=tuple(scales))
    return rebuild.new.call_function(F.interpolate, (x,), dict(
        mode="bilinear", align_corners=align_corners, **where))


def _expand(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    """`x.expand(...)`: the value itself where it keeps its shape, or where each reader
    broadcasts it to the expanded shape anyway (`a + b.expand_as(a)`)."""
    shape = _sizes(node)
    if _sizes(node.args[0]) == shape or node.users and all(
            user.target in BROADCASTING and _sizes(user) == shape for user in node.users):
        return args[0]
    if node.args[0].name in rebuild.state:  # a parameter read in forward(), said as such
        return rebuild.new.call_method("expand", (args[0], *args[1]))
    return _refuse(node, "an expansion that the operations reading it do not broadcast to")


def _sizes(node: fx.Node) -> tuple[str, ...]:
    """The node's shape, its sizes as text (a size symbolic in the length, `s0`, too)."""
    value = node.meta.get("val")
    return tuple(map(str, value.shape)) if isinstance(value, torch.Tensor) else ()


def _layer_norm(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    """`F.layer_norm(x, shape, weight, bias, eps)`, ATen's cudnn flag left out."""
    return rebuild.new.call_function(F.layer_norm, tuple(args)[:5])


def _rms_norm(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    """torch.rms_norm over the last axis without a weight: the language's `rms_norm`."""
    x, shape, weight, eps = (tuple(args) + (None, None))[:4]
    if weight is not None or len(shape) != 1 or eps is None:
        return _refuse(node, "an RMS norm with a weight, over several axes or without eps")
    return rebuild.new.call_function(rms_norm, (x, eps))


def _to(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    """A conversion to another type, `x.to(torch.float32)` (those to the type a value has
    are dropped before)."""
    dtype = kwargs.get("dtype", args[1] if len(args) > 1 else None)
    return rebuild.new.call_method("to", (args[0], dtype))


def _topk(rebuild: _Rebuild, node: fx.Node, args, kwargs):
    """`torch.topk(x, k, dim)`: its two values, the entries and their indices, each the
    language's `topk` (read where an item of it is taken)."""
    x, k, dim, largest = (tuple(args) + (-1, True)[len(args) - 2:])[:4]
    dim, largest = kwargs.get("dim", dim), kwargs.get("largest", largest)
    return tuple(rebuild.new.call_function(top, (x, k, dim, largest, which))
                 for which in (False, True))


def _refuse(node: fx.Node, what: str):
    raise ImportFailure(f"{_where(node)}: torch.export's `{_name(node)}`: {what}; archdsl "
                        "has no equivalent")


REWRITES = {aten.slice.Tensor: _slice, aten.select.int: _select,
            aten.dropout.default: _dropout, aten.gelu.default: _gelu,
            aten.rsub.Scalar: _rsub, aten.neg.default: _neg, aten._softmax.default: _softmax,
            aten.hardtanh.default: _relu6, aten.max_pool2d.default: _pool,
            aten.avg_pool2d.default: _pool, aten.adaptive_avg_pool2d.default: _adaptive_pool,
            aten.upsample_nearest2d.vec: _nearest, aten.upsample_bilinear2d.vec: _bilinear,
            aten.expand.default: _expand, aten.expand_as.default: _expand,
            aten.rms_norm.default: _rms_norm, aten.layer_norm.default: _layer_norm,
            aten.topk.default: _topk, aten.to.dtype: _to, aten._to_copy.default: _to}


def _unchanged_cast(node: fx.Node) -> bool:
    """A conversion (`.to(dtype)`, `.type_as(x)`) to the type the value already has."""
    if node.target not in (aten.to.dtype, aten._to_copy.default, aten.type_as.default,
                           aten.to.dtype_layout):
        return False
    before, after = node.args[0].meta.get("val"), node.meta.get("val")
    return isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor) and \
        before.dtype == after.dtype and before.device == after.device


def _live(graph: fx.Graph) -> list[fx.Node]:
    """The nodes the output depends on, in order (and the placeholders)."""
    live: set[fx.Node] = set()
    todo = [n for n in graph.nodes if n.op == "output"]
    while todo:
        node = todo.pop()
        if node not in live:
            live.add(node)
            todo.extend(node.all_input_nodes)
    return [n for n in graph.nodes if n in live or n.op == "placeholder"]


def _stack_above(node: fx.Node, key: str) -> dict:
    """The node's module stack down to (not into) the layer of `key`."""
    stack = {}
    for k, value in (node.meta.get("nn_module_stack") or {}).items():
        if k == key:
            break
        stack[k] = value
    return stack


def _keep_meta(made: fx.Node, node: fx.Node) -> None:
    stack = node.meta.get("nn_module_stack") or {}
    if any(not isinstance(v, tuple) or v[0].startswith("_") for v in stack.values()):
        stack = {}  # a size read where export records no module
    made.meta["nn_module_stack"] = dict(stack)
    made.meta["stack_trace"] = node.meta.get("stack_trace")


def _name(node: fx.Node) -> str:
    return str(node.target)


def _where(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    paths = [v[0] for v in stack.values() if isinstance(v, tuple) and v[0]]
    return f"`{node.name}` in `{paths[-1] if paths else 'forward'}`{source_line(node)}"
