"""How render_dot draws an encoder-decoder with cross skips (U-Net): as a U.

`u_shape` finds the U: the feature map shrinks along the main path and grows again, and
skips cross from before its smallest point to after it. In a portrait U (the default) the
decoder climbs back up beside the encoder and each skip runs level. `u_rows` lays the U
on its side for a page's width, as two rows: the encoder's levels left to right above,
the bottleneck at the right end, the decoder's levels right to left below, each level a
column, so that each skip runs straight down from its encoder level into its decoder
level, where the decoder's path, coming in from the right, meets it.

Pure: the boxes and arrows render_dot chose in, the layout's choices out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx

from .. import ir
from ..ops.shapes import spatial


@dataclass(frozen=True)
class UShape:
    """A U found among a diagram's boxes."""
    rising: frozenset[tuple[str, str]]  # arrows with both ends in the decoder
    pairs: tuple[tuple[str, str], ...]  # (encoder box, decoder box): one skip per level
    decoder: frozenset[str]  # the boxes after the main path's smallest feature map
    bottom: str = ""  # the box that makes that smallest feature map


@dataclass(frozen=True)
class Rows:
    """The U in two rows (`u_rows`)."""
    column: dict[str, int]  # each box's level, 0 the outermost; the bottleneck's after the last
    tops: tuple[tuple[str, ...], ...]  # boxes that share a rank: each row's level heads,
    # and each skip's end beside the first box of its decoder level
    back: frozenset[tuple[str, str]]  # arrows from one level to the next within a row
    slant: frozenset[tuple[str, str]]  # those of the decoder: labelled beside, not on them
    quiet: frozenset[tuple[str, str]]  # arrows whose value another arrow labels
    line: tuple[str, ...]  # the encoder's level heads, then the bottleneck: left to right
    outer: dict[str, int]  # the level of each top-level box or stage wholly in one level
    aside: frozenset[str]  # boxes off their level's straight line: those that lead on to
    # the next level of the encoder, and the decoder's first boxes beside the skips' ends


def u_shape(graph: nx.DiGraph, units: dict, edges: list) -> UShape | None:
    """The U of an encoder-decoder network with cross skips among `units` (render_dot's
    boxes, in the IR's order) and `edges` (its arrows); None for any other network.

    A U needs the feature map to shrink and grow again along the longest path through
    the network, and at least two skips that cross from before its smallest point to
    after it."""
    area = {}
    for unit, members in units.items():
        shape = ir.shape(graph, members[-1])
        sizes = [n for _, n in spatial(shape)] if shape is not None and len(shape) >= 3 else []
        if sizes:
            area[unit] = math.prod(sizes)
    flow = nx.DiGraph((tail, head) for tail, head, *_ in edges)
    path = [u for u in nx.dag_longest_path(flow) if u in area] if flow else []
    if len(path) < 3:
        return None
    smallest = min(area[u] for u in path)
    bottom = next(u for u in path if area[u] == smallest)
    if area[path[-1]] <= smallest or area[path[0]] <= smallest:
        return None
    order = {unit: index for index, unit in enumerate(units)}
    after = {u for u in units if order[u] > order[bottom]}
    skips = [(tail, head) for tail, head, *_ in edges
             if order[tail] < order[bottom] and head in after]
    if len(skips) < 2:
        return None
    rising = {(tail, head) for tail, head, *_ in edges if head in after
              and (tail in after or tail == bottom)}
    return UShape(frozenset(rising), tuple(_levels(skips, order)), frozenset(after), bottom)


def _levels(skips: list[tuple[str, str]], order: dict) -> list[tuple[str, str]]:
    """One skip per level to lay out level: from the encoder box nearest the bottom
    outwards, each to the first decoder box not yet paired (a level that sends skips to two
    decoder levels, as diffusers' U-Net does, is paired with the first).

    >>> order = {u: i for i, u in enumerate(["a", "b", "c", "d", "e"])}
    >>> _levels([("a", "d"), ("a", "e"), ("b", "d"), ("c", "d")], order)
    [('a', 'e'), ('c', 'd')]
    """
    heads: dict[str, list[str]] = {}
    for tail, head in skips:
        heads.setdefault(tail, []).append(head)
    paired, pairs = set(), []
    for tail in sorted(heads, key=order.get, reverse=True):
        free = sorted((h for h in heads[tail] if h not in paired), key=order.get)
        if free and all(order[free[0]] > order[h] for h in paired):
            paired.add(free[0])
            pairs.append((tail, free[0]))
    return sorted(pairs, key=lambda pair: order[pair[0]])


def u_rows(graph: nx.DiGraph, units: dict, edges: list, shape: UShape) -> Rows:
    """The U as two rows, each level a column: the encoder's level heads (the boxes its
    skips leave) share the top rank, left to right, then the bottleneck, and each decoder
    level's first box a rank below them, beside its skip's end where it feeds it (U-Net's
    up-convolution, beside the crop), so the decoder runs back leftwards under the skips.
    An arrow from one level to the next within a row runs against the ranks; in the
    decoder its label goes beside it (`xlabel`: a label on it would widen the gap between
    levels). A value that two arrows from one box carry is labelled on one only: a level
    head's on its skip, the long arrow down its column, not across.
    """
    column = _columns(graph, units, shape)
    heads = tuple(tail for tail, _ in shape.pairs)
    firsts: dict[int, str] = {}
    for unit in units:
        if unit in shape.decoder and column[unit] < len(shape.pairs):
            firsts.setdefault(column[unit], unit)
    end = len(shape.pairs)  # the bottleneck's column
    back = {(t, h) for t, h, *_ in edges if column[t] != column[h] and end not in (
        column[t], column[h]) and (t in shape.decoder) == (h in shape.decoder)}
    arrows = {(t, h) for t, h, *_ in edges}
    beside = tuple((head, firsts[column[head]]) for _, head in shape.pairs
                   if (firsts.get(column[head]), head) in arrows)
    quiet = _quiet(graph, edges, set(shape.pairs), {(first, head) for head, first in beside})
    bottleneck = [u for u in units if column[u] == end]
    spans: dict[str, set[int]] = {}
    for unit in units:
        spans.setdefault(ir.outermost(graph, unit), set()).add(column[unit])
    aside = {t for t, h in back if h not in shape.decoder} | {first for _, first in beside}
    return Rows(column, (heads, tuple(firsts[c] for c in sorted(firsts)), *beside),
                frozenset(back), frozenset(a for a in back if a[1] in shape.decoder),
                frozenset(quiet), heads + tuple(bottleneck[:1]),
                {item: min(levels) for item, levels in spans.items() if len(levels) == 1},
                frozenset(aside))


def _quiet(graph: nx.DiGraph, edges: list, skips: set, beside: set) -> set[tuple[str, str]]:
    """The arrows left unlabelled, so that the levels stay narrow: a value's arrows but
    one (the `skips` first: they have room beside them), an arrow whose sizes another
    arrow into the same box states (U-Net's crop and up-convolution into their
    concatenation), and the arrows `beside`, from a decoder level's first box into its
    skip's end (the crop, which makes the sizes it has)."""
    labelled, stated, quiet = set(), set(), set(beside)
    for tail, head, _, _, producer in sorted(edges, key=lambda e: (e[0], e[1]) not in skips):
        sizes = (head, tuple(ir.shape(graph, producer) or ()))
        if (tail, producer) in labelled or sizes in stated:
            quiet.add((tail, head))
        if (tail, head) not in beside:
            labelled.add((tail, producer))
            stated.add(sizes)
    return quiet


def _columns(graph: nx.DiGraph, units: dict, shape: UShape) -> dict[str, int]:
    """Each box's level: on the encoder side, the level of the first head (the box its
    skip leaves) at or after it in the same stage, else the last at or before it, and one
    past the last from the bottleneck on; on the decoder side, the level of the outermost
    scope around it that holds one skip's decoder box, else the box's before it (the
    bottleneck's, before the first)."""
    order = {unit: index for index, unit in enumerate(units)}
    tails = [order[tail] for tail, _ in shape.pairs]
    owners: dict[str, set[int]] = {}
    for level, (_, head) in enumerate(shape.pairs):
        for scope in _holders(graph, head):
            owners.setdefault(scope, set()).add(level)
    stages = [ir.outermost(graph, tail) for tail, _ in shape.pairs]
    bottom = ir.outermost(graph, shape.bottom)  # the bottleneck's stage
    column, previous = {}, len(shape.pairs)
    for unit in units:
        if unit not in shape.decoder:
            past = order[unit] > max(tails) and (order[unit] >= order[shape.bottom]
                                                 or ir.outermost(graph, unit) == bottom)
            level = sum(t < order[unit] for t in tails)  # the next head's
            same = level < len(tails) and ir.outermost(graph, unit) == stages[level]
            column[unit] = len(tails) if past else level if same else max(level - 1, 0)
            continue
        held = [owners[s] for s in _holders(graph, unit) if len(owners.get(s, ())) == 1]
        column[unit] = previous = min(held[0]) if held else previous
    return column


def _holders(graph: nx.DiGraph, unit: str) -> tuple[str, ...]:
    """The scopes around a box and the box itself, outermost first."""
    return ir.ancestors(graph, ir.parent(graph, unit)) + (unit,)
