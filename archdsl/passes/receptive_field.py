"""The receptive field of every layer: for each spatial axis of the input, how many input
positions one output position can see (its size) and how far apart, in input positions,
neighbouring outputs are (its jump, the product of the strides so far).

Each op says how far its outputs see (`Op.window` in the op table): a sliding window of
(kernel, stride, dilation) per axis, GLOBAL for layers that read the whole input (global
pooling, attention, a linear layer on flat features), or nothing for layers that read
one position (activations, norms, 1x1 work over channels). Then, per axis,

    size' = size + (kernel - 1) * dilation * jump        jump' = jump * stride

as in Araujo et al., "Computing Receptive Fields of Convolutional Neural Networks"
(Distill, 2019). Sizes include padding (they may exceed the input, as ResNet-50's 427 at
224). Axes are named as the input's (H, W, T, L), so they survive flattening and
permutes: a ViT token still has the receptive field of its patch. Merges take the
largest field of their operands. Transposed convs and upsampling have fractional jumps.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

import networkx as nx

from .. import ir
from ..ops import GLOBAL, OPS
from ..ops.shapes import spatial as _spatial

ONE = Fraction(1)


@dataclass(frozen=True)
class Reach:
    """What the outputs of a value see on one input axis: output u sees input positions
    `offset + u * jump` to `offset + u * jump + size - 1` (negative: padding)."""
    size: Fraction = ONE
    jump: Fraction = ONE
    offset: Fraction = Fraction(0)
    positions: int = 1  # outputs on this axis; kept once the axis is flattened away, so a
    # layer that reads everything knows how far everything reaches
    whole: bool = False  # a layer has read everything: a later one sees no more


Field = dict  # axis letter (H, W, T, L) -> Reach


def receptive_field(graph: nx.DiGraph, sink=None) -> nx.DiGraph:
    """Pass: give every node with a shape its `field`, {axis: Reach}. Listed in
    compile.ANALYSES: run by the backends that show it (`stats`), not by every `check`.

    >>> from archdsl import compile_source
    >>> graph = compile_source("network t { input x: 3 x 32 x 32; a: conv(8, 3); "
    ...                        "b: maxpool(2); c: conv(8, 3) }").graph
    >>> show_field(receptive_field(graph).nodes["c"]["field"])
    '8/2'
    """
    for name, field in _fields(graph).items():
        graph.nodes[name]["field"] = field
    return graph


def receptive_fields(graph: nx.DiGraph) -> dict[str, Field]:
    """{node name: {axis: Reach}} for every node with a shape, the pass run if it has
    not been.

    >>> from archdsl import compile_source
    >>> graph = compile_source("network t { input x: 3 x 32 x 32; a: conv(8, 3); "
    ...                        "b: maxpool(2); c: conv(8, 3) }").graph
    >>> {n: show_field(f) for n, f in receptive_fields(graph).items()}
    {'x': '1/1', 'a': '3/1', 'b': '4/2', 'c': '8/2'}
    """
    if not any("field" in data for _, data in graph.nodes(data=True)):
        receptive_field(graph)
    return {name: data["field"] for name, data in graph.nodes(data=True) if "field" in data}


def _fields(graph: nx.DiGraph) -> dict[str, Field]:
    fields: dict[str, Field] = {}
    for item in ir.nodes(graph):
        shape = ir.shape(graph, item.name)
        if shape is None or any(name not in fields for name in item.inputs):
            continue
        if item.op in ("parameter", "buffer"):  # not read from the input: sees nothing
            fields[item.name] = {}
        elif not item.inputs:
            fields[item.name] = {a: Reach(positions=n) for a, n in _spatial(shape)}
        else:
            ins = tuple(ir.shape(graph, name) for name in item.inputs)
            seen = _union([fields[name] for name in item.inputs])
            field = _apply(OPS[item.op].window(item.args, ins), seen, ins[0])
            present = dict(_spatial(shape))
            fields[item.name] = {axis: replace(r, positions=present.get(axis, r.positions))
                                 for axis, r in field.items()}
    return fields


def _union(fields: list[Field]) -> Field:
    """A merge sees what any operand sees."""
    merged: Field = {}
    for field in fields:
        for axis, r in field.items():
            old = merged.get(axis)
            merged[axis] = r if old is None else Reach(
                max(old.size, r.size), max(old.jump, r.jump), min(old.offset, r.offset),
                max(old.positions, r.positions), old.whole or r.whole)
    return merged


def _apply(window, seen: Field, shape) -> Field:
    if window is None:
        return seen
    if window == GLOBAL:
        return {axis: r if r.whole else Reach(r.size + (r.positions - 1) * r.jump, r.jump,
                                              r.offset, 1, True)
                for axis, r in seen.items()}
    out = dict(seen)
    for (axis, _), (kernel, stride, dilation, pad) in zip(_spatial(shape), window):
        r = seen.get(axis, Reach())
        out[axis] = replace(r, size=r.size + (Fraction(kernel) - 1) * dilation * r.jump,
                            jump=r.jump * stride, offset=r.offset - pad * r.jump)
    return out


def show_field(field: Field) -> str:
    """`11/4`: the size, then the jump, each one number where the axes agree (11x11 with a
    stride of 4 so far) and one per axis where they do not (`3x7x7/1x2x2`)."""
    if not field:
        return "-"
    sizes = [_number(r.size) for r in field.values()]
    jumps = [_number(r.jump) for r in field.values()]
    return f"{_agreed(sizes)}/{_agreed(jumps)}"


def _agreed(values: list[str]) -> str:
    return values[0] if len(set(values)) == 1 else "x".join(values)


def _number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{float(value):.3g}"
