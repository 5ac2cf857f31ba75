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
function the rebuilt graph calls). Frequencies scaled as Llama 3 scales them (divided by
`factor` past a long wavelength, kept below a short one, blended linearly in 1/wavelength
in between) are `rope_llama3(theta, factor, low_freq_factor, high_freq_factor, original)`:
the factor is the ratio of the longest wavelengths' frequencies, the blend's line gives
the rest with `low_freq_factor = 1` (every choice on that line makes the same
frequencies), and each candidate is accepted only where all the frequencies it makes
equal the tables'. Tables of other frequencies stay tensors of forward()'s own, which
stop the import.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import fx

from .import_made import Made, ancestors

aten = torch.ops.aten
STD_BLOCKS = {"rope": "std.layers", "grn": "std.layers"}  # the library's blocks import writes
DEFAULT_THETA = 10000.0  # `rope`'s default in std.layers


def rotary(x: torch.Tensor, theta: float, scaling: tuple | None = None) -> torch.Tensor:
    """The language's `rope(theta)` on heads `x` (batch x heads x L x d): features i and
    i + d/2 of position t turned by t · θ^(-2i/d), the angles in float32; with `scaling`
    (factor, low_freq_factor, high_freq_factor, original), `rope_llama3`'s.

    >>> rotary(torch.ones(1, 1, 2, 2), 10000.0)[0, 0, 1]
    tensor([-0.3012,  1.3818])
    """
    inverse = frequencies(theta, x.shape[-1], scaling, x.device)
    cos, sin = rope_tables(inverse, x.shape[-2], x.dtype)
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def frequencies(theta: float, dim: int, scaling: tuple | None = None,
                device=None) -> torch.Tensor:
    """The d/2 inverse frequencies θ^(-2i/d), computed in float32 as std.layers'
    `rope_frequencies` computes them, and with `scaling` as `rope_llama3_frequencies`
    scales them.

    >>> frequencies(10000.0, 4)
    tensor([1.0000, 0.0100])
    >>> frequencies(10000.0, 4, (8.0, 1.0, 4.0, 64))  # 2π/0.01 past 64: divided by 8
    tensor([1.0000, 0.0012])
    """
    steps = torch.arange(dim // 2, device=device).to(torch.float32) * 2 / dim
    inverse = torch.pow(torch.tensor(theta, dtype=torch.float32, device=device),
                        steps).reciprocal()
    if scaling is None:
        return inverse
    factor, low_factor, high_factor, original = scaling
    wave = 2 * 3.141592653589793 / inverse
    llama = torch.where(wave > original / low_factor, inverse / factor, inverse)
    smooth = (original / wave - low_factor) / (high_factor - low_factor)
    blended = smooth * llama + (1 - smooth) * llama / factor
    inner = torch.where(wave <= original / low_factor, blended, llama)
    return torch.where(wave >= original / high_factor, inner, llama)


def rope_tables(inverse: torch.Tensor, length: int, dtype=torch.float32):
    """The cosines and sines (`length` x d) of t · inverse (d/2 frequencies, each twice),
    computed as std.layers' `cos_sin_table` computes them, cast to `dtype`."""
    angles = torch.outer(torch.arange(length, device=inverse.device).to(torch.float32),
                         inverse)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


@dataclass(frozen=True)
class Rotation:
    """One rotation found: the heads it turns, θ, and the operations of the program it
    replaces (its sum aside, which becomes `rotary`)."""
    x: fx.Node
    theta: float
    scaling: tuple | None  # Llama 3's (factor, low_freq_factor, high_freq_factor, original)
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
        found = _frequencies(made, cos, sin, x)
        if found is not None:
            return Rotation(x, *found, frozenset(parts))
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


def _frequencies(made: Made, cos: fx.Node, sin: fx.Node,
                 x: fx.Node) -> tuple[float, tuple | None] | None:
    """(θ, Llama 3's scaling or None) where the tables equal the language's for heads like
    `x` (batch x heads x L x d) at positions 0 .. L - 1, the same for every example;
    else None."""
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
    for theta, scaling in _candidates(made, cos, dim):
        expected = rope_tables(frequencies(theta, dim, scaling), length, tables[0].dtype)
        if all(torch.allclose(r[0], e, rtol=0, atol=1e-6) for r, e in zip(rows, expected)):
            return theta, scaling
    return None


def _candidates(made: Made, table: fx.Node, dim: int) -> list[tuple[float, tuple | None]]:
    """(θ, scaling) read from each vector of d/2 frequencies the table was made from (a
    buffer, or one made in forward(), repeated over the batch or not): θ^(-2/d) is the
    ratio of the first two (or, where those are scaled, of the last two), rounded to the
    fewest digits that give it; Llama 3's scaling where the longest wavelengths'
    frequencies are θ's divided by a factor."""
    found = []
    for node in ancestors(table):
        value = made.value(node) if node in made.nodes or node.op == "placeholder" else None
        if not isinstance(value, torch.Tensor) or not value.is_floating_point() or \
                value.dim() == 0 or value.shape[-1] != dim // 2:
            continue
        rows = value.reshape(-1, dim // 2)
        if (rows != rows[:1]).any() or not (rows > 0).all():
            continue
        row = rows[0].double()
        for raw in (float(row[1] / row[0]) ** (-dim / 2), float(row[-1] / row[-2]) ** (-dim / 2)):
            for theta in dict.fromkeys([float(f"{raw:.{d}g}") for d in range(1, 10)] + [raw]):
                found.append((theta, None))
                found += [(theta, s) for s in _scalings(row, theta, dim)]
    return list(dict.fromkeys(found))


def _scalings(inverse: torch.Tensor, theta: float, dim: int) -> list[tuple]:
    """Llama 3's (factor, low_freq_factor, high_freq_factor, original) that may have
    scaled θ's frequencies to `inverse`: the factor from the longest wavelength; the
    blend s = (original / wavelength - low) / (high - low), read from the frequencies
    between the two bounds as a line in 1/wavelength, with low = 1; where fewer than two
    lie between, the usual bounds (1, 4), (1, 2), (1, 8) with `original` solved from the
    one there, or the powers of two."""
    base = frequencies(theta, dim).double()
    ratio = inverse / base
    if float(ratio.min()) > 1 - 1e-6 or float(ratio.max()) > 1 + 1e-6:
        return []
    factor = float(f"{1 / float(ratio[-1]):.6g}")
    blend = (ratio - 1 / factor) / (1 - 1 / factor)  # s, where the frequency is blended
    inner = (blend > 1e-6) & (blend < 1 - 1e-6)
    per_wave = base / (2 * 3.141592653589793)  # 1 / wavelength
    if int(inner.sum()) >= 2:
        slope, cut = _line(per_wave[inner], blend[inner])
        high = 1 - 1 / cut
        return [(factor, 1.0, float(f"{high:.6g}"), round(-slope / cut))] if cut < 0 else []
    bounds = ((1.0, 4.0), (1.0, 2.0), (1.0, 8.0))
    if int(inner.sum()) == 1:
        s, w = float(blend[inner][0]), float(per_wave[inner][0])
        return [(factor, low, high, round((s * (high - low) + low) / w))
                for low, high in bounds]
    return [(factor, low, high, 2 ** k) for low, high in bounds for k in range(8, 21)]


def _line(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line through the points."""
    slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
    return slope, float(y.mean() - slope * x.mean())


def rope_text(theta: float, scaling: tuple | None = None) -> str:
    """The call of `rope` for θ: `rope`, or `rope(theta = 500000.0)`; with Llama 3's
    scaling, `rope_llama3(...)`."""
    from ..source import format_value
    if scaling is not None:
        factor, low, high, original = scaling
        return (f"rope_llama3(theta = {format_value(float(theta))}, factor = "
                f"{format_value(float(factor))}, low_freq_factor = {format_value(float(low))}, "
                f"high_freq_factor = {format_value(float(high))}, original = {original})")
    return "rope" if theta == DEFAULT_THETA else f"rope(theta = {format_value(float(theta))})"


def std_imports(nodes) -> str:
    """The `import` lines of the library blocks the rebuilt graph's nodes call."""
    used = sorted({STD_BLOCKS["rope"] for n in nodes if n.target is rotary} | {
        STD_BLOCKS[n.meta["read_as"][0]] for n in nodes
        if n.meta.get("read_as", ("",))[0] in STD_BLOCKS})
    return "".join(f"import {module}\n\n" for module in used)
