"""Pass: infer the output shape of every node, and report shapes that cannot work.

Shape rules live in the op table (archdsl.ops); this pass applies them, and turns a
rule's ShapeError into a diagnostic that points at the layer that rejected the value
and at the layers that produced it. Elaboration calls `infer_node` as it adds each node,
because a spec may steer its structure by shape (`when in.channels != width * 4`).
"""
from __future__ import annotations

from dataclasses import replace

import networkx as nx

from .. import ir
from ..diagnostics import Diagnostic, Label, Sink
from ..ops import OPS, ShapeError, normalise_axes, numel, show
from ..ops.shapes import DTYPE_WORDS, as_shape, describe, dtype_of


def infer_shapes(graph: nx.DiGraph, sink: Sink) -> nx.DiGraph:
    """Give every node of `graph` its shape, in topological order.

    >>> from archdsl import compile_source
    >>> ir_graph = compile_source("network t { input x: 3 x 32 x 32; conv(8, 3, stride = 2) }").graph
    >>> ir_graph.nodes["0"]["shape"]
    (8, 15, 15)
    """
    for item in ir.nodes(graph):
        infer_node(graph, item, sink)
    return graph


MAX_DIMENSION = 2 ** 31 - 1  # torch's kernels index some dimensions with 32-bit integers
MAX_ELEMENTS = 2 ** 40  # per image: 4 TiB in fp32, far past any accelerator


def infer_node(graph: nx.DiGraph, node: ir.Node, sink: Sink):
    """Set and return the node's shape; None (silently) when an input is already broken.
    Axis arguments are normalised here, once, and the node keeps the normalised ones."""
    inputs = tuple(ir.shape(graph, name) for name in node.inputs)
    result = None
    if all(s is not None for s in inputs):
        try:
            op = OPS[node.op]
            args = normalise_axes(op, node.args, inputs)
            if args != node.args:
                graph.nodes[node.name]["node"] = node = replace(node, args=args)
            if node.role == "residual" and len(set(inputs)) > 1:  # `add` broadcasts;
                raise ShapeError("E0301", "residual operands differ")  # a residual never
            dtype = _dtype(op, args, inputs)
            rule = op.shape(args, inputs)
            result = _bounded(as_shape(rule, inputs[0] if inputs else None)).with_dtype(dtype)
        except ShapeError as error:
            sink.add(_diagnose(graph, node, inputs, error))
    graph.nodes[node.name]["shape"] = result
    return result


_READ_HELP = {"int": "embed token ids first: `embedding(vocab, width)`",
              "bool": "a mask selects between values: `where(mask, a, b)`"}


def _dtype(op, args, inputs) -> str:
    """The element type the op makes; E0306 where it reads one it does not take."""
    dtypes = tuple(dtype_of(s) for s in inputs)
    for shape, dtype in zip(inputs, dtypes):
        if dtype not in op.accepts:
            takes = " or ".join(DTYPE_WORDS[d] for d in op.accepts)
            raise ShapeError("E0306", f"`{op.name}` reads {takes}, not {describe(shape)}",
                             f"{dtype} values read here", help=_READ_HELP.get(dtype))
    if callable(op.gives):
        return op.gives(args, inputs)
    if op.gives is not None:
        return op.gives
    if len(set(dtypes)) > 1:
        raise ShapeError("E0300", f"`{op.name}` operands differ in element type: "
                         + " vs ".join(describe(s) for s in inputs), "joined here",
                         help="join values of one element type")
    return dtypes[0] if dtypes else "float"


def _bounded(shape):
    """The shape, if a tensor of it can exist: sizes beyond these are typos (a repeat of
    upsamples, an input of 1e15 pixels) that would overflow every figure downstream."""
    if any(d > MAX_DIMENSION for d in shape) or numel(shape) > MAX_ELEMENTS:
        size = " x ".join(f"{d:.3g}" if d > 10 ** 6 else str(d) for d in shape)
        raise ShapeError("E0308", f"a tensor of {size} is too large: at most {MAX_DIMENSION:,} "
                         f"per dimension and {MAX_ELEMENTS:,} elements per image",
                         "makes a tensor too large",
                         help="check the sizes and scale factors that lead here")
    return shape


def _diagnose(graph, node: ir.Node, inputs, error: ShapeError) -> Diagnostic:
    code, message, label, help_text = error.code, error.message, error.label, error.help
    extra: tuple[Label, ...] = ()
    if node.role == "residual":
        code, message, help_text = _residual(inputs, node.condition)
        label = "body and skip are added here"
        if node.condition is not None:
            extra = (Label(node.condition, "false here, so the projection is skipped"),)
    if code == "E0302":
        secondary = _size_makers(graph, node)
    else:
        producers = [ir.node(graph, name) for name in dict.fromkeys(node.inputs)]
        secondary = tuple(Label(p.span, f"{_who(p)} gives {show(ir.shape(graph, p.name))}")
                          for p in producers)
    notes = tuple(str(frame) for frame in reversed(node.trace))
    return Diagnostic(code, message, Label(node.span, label), secondary + extra, notes, help_text)


def _who(producer: ir.Node) -> str:
    if producer.op == "input":
        return f"input `{producer.name}`"
    return f"`{producer.name}` ({producer.op})"


def _size_makers(graph, node: ir.Node) -> tuple[Label, ...]:
    """For operands that differ in height and width: the layer that last changed each
    operand's size (a 5x5 conv without padding), not the ReLU that happens to end it."""
    makers: dict[str, int] = {}
    for name in node.inputs:
        maker = ir.node(graph, name)
        while len(maker.inputs) == 1 and _spatial(graph, maker.inputs[0]) == _spatial(graph, maker.name):
            maker = ir.node(graph, maker.inputs[0])
        makers[maker.name] = makers.get(maker.name, 0) + 1
    labels = []
    for name, operands in makers.items():
        maker = ir.node(graph, name)
        size = "x".join(map(str, _spatial(graph, name))) or "flat"
        kept = f" ({operands} operands keep it)" if operands > 1 else ""
        if len(maker.inputs) == 1:
            before = "x".join(map(str, _spatial(graph, maker.inputs[0]))) or "flat"
            labels.append(Label(maker.span, f"{_who(maker)} makes {size} from {before}{kept}"))
        else:
            labels.append(Label(maker.span, f"{_who(maker)} gives {size}{kept}"))
    return tuple(labels)


def _spatial(graph, name: str) -> tuple[int, ...]:
    return tuple(ir.shape(graph, name)[1:])


def _residual(inputs, condition):
    body, skip = inputs[0], inputs[-1]
    message = f"residual operands differ: body gives {show(body)}, skip gives {show(skip)}"
    if condition is not None:
        return "E0301", message, (f"the projection is skipped because `{condition.text}` is "
                                  "false here; fix the condition so that it holds whenever "
                                  "the body changes the shape")
    if len(body) != 3 or len(skip) != 3 or skip[1] % body[1]:
        return "E0301", message, "make the body end with the shape it starts with"
    stride = skip[1] // body[1]
    stride_arg = f", stride = {stride}" if stride != 1 else ""
    return "E0301", message, (f"add a projection: `skip {{ conv({body[0]}, 1{stride_arg}, "
                              f"bias = false); batchnorm }}`")
