"""Rotary position embeddings (RoPE) in an exported program, as transformers applies them
(`LlamaRotaryEmbedding`, `apply_rotary_pos_emb`): a table of cosines and a table of sines
that forward() makes from the positions and a vector of frequencies, and, on queries or
keys split into heads, `x * cos + rotate_half(x) * sin`, where `rotate_half(x)` is
`cat(-x2, x1)` of the two halves of each head's features.

The tables are read by their values (archdsl.tools.import_made): they are the language's
rope tables where, for some θ, they equal the cosines and sines of t · θ^(-2i/d) at the
input's positions t, computed as `std.layers` computes them. θ is read back from the
frequencies the tables were made from (`inv_freq[i] = θ^(-2i/d)`) and checked against
every entry. Such a sum is the language's `rope(theta)` on the heads (`rotary` here, the
function the rebuilt graph calls); tables of other frequencies (Llama 3's scaling) stay
tensors of forward()'s own, which stop the import.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx

from .import_made import Made, ancestors

aten = torch.ops.aten
STD_BLOCKS = {"rope": "std.layers", "grn": "std.layers"}  # the library's blocks import writes
DEFAULT_THETA = 10000.0  # `rope`'s default in std.layers


def rotary(x: torch.Tensor, theta: float) -> torch.Tensor:
    """The language's `rope(theta)` on heads `x` (batch x heads x L x d): features i and
    i + d/2 of position t turned by t · θ^(-2i/d), the angles in float32.

    >>> rotary(torch.ones(1, 1, 2, 2), 10000.0)[0, 0, 1]
    tensor([-0.3012,  1.3818])
    """
    cos, sin = rope_tables(theta, x.shape[-1], x.shape[-2], x.dtype, x.device)
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def rope_tables(theta: float, dim: int, length: int, dtype=torch.float32, device=None):
    """The cosines and sines (`length` x `dim`) of t · θ^(-2i/d), computed as std.layers'
    `rope_frequencies` and `cos_sin_table` compute them, cast to `dtype`."""
    steps = torch.arange(dim // 2, device=device).to(torch.float32) * 2 / dim
    inverse = torch.pow(theta, steps).reciprocal()
    angles = torch.outer(torch.arange(length, device=device).to(torch.float32), inverse)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


@dataclass(frozen=True)
class Rotation:
    """One rotation found: the heads it turns, θ, and the operations of the program it
    replaces (its sum aside, which becomes `rotary`)."""
    x: fx.Node
    theta: float
    parts: frozenset[fx.Node]


def rotations(graph: fx.Graph, made: Made) -> dict[fx.Node, Rotation]:
    """{sum: its rotation} for each `x * cos + rotate_half(x) * sin` of `graph` whose
    tables are made tensors equal to the language's rope tables for some θ."""
    found = {}
    for node in graph.nodes:
        if node.op == "call_function" and node.target is aten.add.Tensor and \
                len(node.args) == 2 and all(isinstance(a, fx.Node) for a in node.args):
            rotation = _rotation(node, made)
            if rotation is not None:
                found[node] = rotation
    return found


def _rotation(node: fx.Node, made: Made) -> Rotation | None:
    for straight, turned in (node.args, node.args[::-1]):
        x, cos = _product(straight, made)
        half, sin = _product(turned, made)
        if x is None or half is None:
            continue
        y, parts = _rotated_half(half)
        parts |= {straight, turned}
        if y is not x or any(user not in parts and user is not node
                             for p in parts for user in p.users):
            continue  # not x's halves, or a part read elsewhere too
        theta = _theta(made, cos, sin, x)
        if theta is not None:
            return Rotation(x, theta, frozenset(parts))
    return None


def _product(node: fx.Node, made: Made) -> tuple[fx.Node | None, fx.Node | None]:
    """(value, table) of `value * table`, the table made in forward(); else Nones."""
    if node.op != "call_function" or node.target is not aten.mul.Tensor or \
            len(node.args) != 2:
        return None, None
    a, b = node.args
    for value, table in ((a, b), (b, a)):
        if isinstance(value, fx.Node) and value not in made.nodes and table in made.nodes:
            return value, table
    return None, None


def _rotated_half(node: fx.Node) -> tuple[fx.Node | None, set[fx.Node]]:
    """(x, the operations from x) of `cat((-x[..., d/2:], x[..., :d/2]), -1)`; else None."""
    value = node.meta.get("val")
    if node.target is not aten.cat.default or len(node.args[0]) != 2 or \
            not isinstance(value, torch.Tensor) or \
            (node.args[1] if len(node.args) > 1 else 0) % value.dim() != value.dim() - 1:
        return None, set()
    negated, first = node.args[0]
    if getattr(negated, "target", None) is not aten.neg.default:
        return None, set()
    half = value.shape[-1] // 2
    x, parts = _sliced(first, 0, half)
    other, more = _sliced(negated.args[0], half, 2 * half)
    return (x if x is other else None), {node, negated} | parts | more


def _sliced(node, start: int, end: int) -> tuple[fx.Node | None, set[fx.Node]]:
    """(x, the slices) of `x[..., start:end]` over the last axis, through slices that
    keep their whole axis (`x[:, :, :, a:b]` captured dynamic); else None."""
    if getattr(node, "target", None) is not aten.slice.Tensor:
        return None, set()
    x, dim, begin, stop, step = (tuple(node.args) + (0, None, None, 1)[len(node.args) - 1:])[:5]
    size = x.meta["val"].shape[-1]
    stop = size if stop is None or (isinstance(stop, int) and stop >= size) else stop
    if dim % x.meta["val"].dim() != x.meta["val"].dim() - 1 or (begin or 0, stop, step) != \
            (start, end, 1):
        return None, set()
    parts = {node}
    while _keeps_all(x):
        parts.add(x)  # `:` on another axis
        x = x.args[0]
    return x, parts


def _keeps_all(node) -> bool:
    """A slice that keeps its whole axis."""
    if getattr(node, "target", None) is not aten.slice.Tensor:
        return False
    start, step = (node.args[2] if len(node.args) > 2 else 0), (
        node.args[4] if len(node.args) > 4 else 1)
    return start in (0, None) and step == 1 and \
        str(node.meta["val"].shape) == str(node.args[0].meta["val"].shape)


def _theta(made: Made, cos: fx.Node, sin: fx.Node, x: fx.Node) -> float | None:
    """θ where the tables equal the language's for heads like `x` (batch x heads x L x
    d) at positions 0 .. L - 1, the same for every example; else None."""
    tables = [made.value(cos), made.value(sin)]
    heads = x.meta.get("val")
    if not all(isinstance(t, torch.Tensor) and t.is_floating_point() and t.dim() >= 2
               for t in tables) or not isinstance(heads, torch.Tensor) or heads.dim() != 4:
        return None
    length, dim = tables[0].shape[-2:]
    if dim != heads.shape[-1] or dim % 2 or dim < 4 or \
            any(t.shape[-2:] != (length, dim) for t in tables):
        return None
    rows = [t.reshape(-1, length, dim) for t in tables]
    if any((r != r[:1]).any() for r in rows):
        return None  # not the same table for every example
    for theta in _candidates(made, cos, dim):
        expected = rope_tables(theta, dim, length, tables[0].dtype)
        if all(torch.allclose(r[0], e, rtol=0, atol=1e-6) for r, e in zip(rows, expected)):
            return theta
    return None


def _candidates(made: Made, table: fx.Node, dim: int) -> list[float]:
    """θ read from each vector of d/2 frequencies the table was made from (a buffer, or
    one made in forward(), repeated over the batch or not): θ^(-2/d) is the second,
    rounded to the fewest digits that give it."""
    found = []
    for node in ancestors(table):
        value = made.value(node) if node in made.nodes or node.op == "placeholder" else None
        if not isinstance(value, torch.Tensor) or not value.is_floating_point() or \
                value.dim() == 0 or value.shape[-1] != dim // 2:
            continue
        rows = value.reshape(-1, dim // 2)
        if (rows != rows[:1]).any() or not (rows > 0).all():
            continue
        raw = float(rows[0, 1].double()) ** (-dim / 2)
        found += [float(f"{raw:.{digits}g}") for digits in range(1, 10)] + [raw]
    return list(dict.fromkeys(found))


def rope_text(theta: float) -> str:
    """The call of `rope` for θ: `rope`, or `rope(theta = 500000.0)`."""
    from ..source import format_value
    return "rope" if theta == DEFAULT_THETA else f"rope(theta = {format_value(float(theta))})"


def std_imports(nodes) -> str:
    """The `import` lines of the library blocks the rebuilt graph's nodes call."""
    used = sorted({STD_BLOCKS["rope"] for n in nodes if n.target is rotary} | {
        STD_BLOCKS[n.meta["read_as"][0]] for n in nodes
        if n.meta.get("read_as", ("",))[0] in STD_BLOCKS})
    return "".join(f"import {module}\n\n" for module in used)
