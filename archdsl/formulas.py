"""Costs as formulas in the input sizes a spec declares as symbols (`input ids: L <= 2048
as token_ids`, `input image: 3 x H x W`): `archdsl stats --formula`.

Every cost archdsl counts is, for sizes that the network's strides divide, a polynomial
in the sizes: parameters do not change with them (or grow linearly, with a position
table), MACs and memory grow with each size and attention with its square. So the
network is checked at a grid of multiples of a power of two `step`, the largest that
leaves room for the grid under each symbol's bound, and the polynomial of degree at most
DEGREE in each symbol through those points is solved for exactly (in fractions). It is
accepted only if it also gives every cost at further points it was not fitted to; else
the costs are no such polynomial there (a stride that does not divide the step, a size
clamped by `min`), and the report says so instead of printing a wrong formula.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import networkx as nx

from . import ir
from .backends.report_stats import report_stats

DEGREE = 2  # the highest power of one size in any cost: attention over L tokens is L²
QUANTITIES = (("parameters", "params"), ("MACs", "macs"), ("other ops", "other_ops"),
              ("activation bytes", "activation_bytes"))


@dataclass(frozen=True)
class Formula:
    """A polynomial: (coefficient, the power of each symbol) per term."""
    terms: tuple[tuple[Fraction, tuple[int, ...]], ...]

    def at(self, values: tuple[int, ...]) -> Fraction:
        return sum((c * _monomial(powers, values) for c, powers in self.terms), Fraction(0))

    def show(self, symbols: tuple[str, ...]) -> str:
        """`12,288·L² + 1,769,472·L`: highest powers first, no zero terms.

        >>> Formula(((Fraction(3), (1,)), (Fraction(5, 2), (0,)))).show(("L",))
        '3·L + 5/2'
        """
        parts = []
        for coefficient, powers in sorted(self.terms, key=lambda t: (-sum(t[1]), t[1])):
            if coefficient == 0:
                continue
            factors = "·".join(s + ("" if p == 1 else _SUPERSCRIPT[p])
                               for s, p in zip(symbols, powers) if p)
            number = _number(abs(coefficient))
            term = factors if factors and number == "1" else \
                "·".join(x for x in (number, factors) if x)
            parts.append(("- " if coefficient < 0 else "+ ") + term)
        text = " ".join(parts) or "+ 0"
        return text[2:] if text.startswith("+ ") else "-" + text[2:]


@dataclass(frozen=True)
class Formulas:
    network: str
    symbols: tuple[str, ...]
    step: int  # the formulas hold at multiples of `step` within the bounds
    costs: dict[str, Formula] | None  # by QUANTITIES' words; None: no polynomial fits
    reason: str = ""


_SUPERSCRIPT = {2: "²", 3: "³", 4: "⁴"}


def _number(value: Fraction) -> str:
    return f"{value.numerator:,}" if value.denominator == 1 else \
        f"{value.numerator:,}/{value.denominator:,}"


def _monomial(powers: tuple[int, ...], values: tuple[int, ...]) -> int:
    result = 1
    for p, v in zip(powers, values):
        result *= v ** p
    return result


def _step(bounds: list[int]) -> int:
    """The largest power of two that fits DEGREE + 2 multiples under every bound."""
    room = min(bounds) // (DEGREE + 2)
    step = 1
    while step * 2 <= room:
        step *= 2
    return step


def cost_formulas(graph: nx.DiGraph, compile_at: Callable[[dict[str, int]], nx.DiGraph | None],
                  dtype: str = "fp32") -> Formulas | None:
    """The costs of `graph`'s network as formulas in its size symbols, or None where it
    has none. `compile_at(sizes)` is the network checked at other values of the symbols
    (None where it does not check there)."""
    sizes = ir.network(graph).sizes
    if not sizes:
        return None
    name, symbols = ir.network(graph).name, tuple(sizes)
    bounds = [bound if bound is not None else value for value, bound in sizes.values()]
    step = _step(bounds)
    if step < 1 or min(bounds) < DEGREE + 2:
        return Formulas(name, symbols, step, None, "the bounds leave no room for "
                        f"{DEGREE + 2} sizes per symbol")
    fitted = [tuple(step * (i + 1) for i in combo)
              for combo in itertools.product(range(DEGREE + 1), repeat=len(symbols))]
    extra = list(dict.fromkeys([tuple(step * (DEGREE + 2) for _ in symbols),
                                tuple(step * (DEGREE + 2 - (i % 2)) for i in range(len(symbols)))]))
    measured = {}
    for values in fitted + extra:
        other = compile_at(dict(zip(symbols, values)))
        if other is None:
            return Formulas(name, symbols, step, None,
                            f"the network does not check at {_at(symbols, values)}")
        totals = report_stats(other, dtype=dtype).totals
        measured[values] = {word: getattr(totals, field) for word, field in QUANTITIES}
    powers = list(itertools.product(range(DEGREE + 1), repeat=len(symbols)))
    costs = {}
    for word, _ in QUANTITIES:
        formula = _solve(powers, fitted, [measured[v][word] for v in fitted])
        for values in extra:
            if formula.at(values) != measured[values][word]:
                return Formulas(name, symbols, step, None,
                                f"its {word} are not a polynomial of degree {DEGREE} or less "
                                f"in each size at multiples of {step} (at "
                                f"{_at(symbols, values)} they are {measured[values][word]:,}, "
                                f"the polynomial through the other sizes gives "
                                f"{_number(formula.at(values))})")
        costs[word] = formula
    return Formulas(name, symbols, step, costs)


def _at(symbols, values) -> str:
    return ", ".join(f"{s} = {v}" for s, v in zip(symbols, values))


def _solve(powers, points, results) -> Formula:
    """The polynomial with these monomials through these points, exactly (Gaussian
    elimination in fractions; the grid's Vandermonde matrix is invertible)."""
    rows = [[Fraction(_monomial(p, values)) for p in powers] + [Fraction(result)]
            for values, result in zip(points, results)]
    n = len(powers)
    for col in range(n):
        pivot = next(r for r in range(col, n) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(n):
            if r != col and rows[r][col] != 0:
                factor = rows[r][col] / rows[col][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col])]
    return Formula(tuple((rows[i][n] / rows[i][i], powers[i]) for i in range(n)))


def format_formulas(formulas: Formulas) -> str:
    """The formulas as stats prints them after the table."""
    symbols = ", ".join(formulas.symbols)
    if formulas.costs is None:
        return f"{formulas.network}: no cost formulas in {symbols}: {formulas.reason}\n"
    lines = [f"{formulas.network}: costs in {symbols} (exact where each is a multiple of "
             f"{formulas.step}, up to its bound)"]
    width = max(len(word) for word, _ in QUANTITIES)
    lines += [f"  {word:<{width}}  {formula.show(formulas.symbols)}"
              for word, formula in formulas.costs.items()]
    return "\n".join(lines) + "\n"


def file_formulas(path: str, graph: nx.DiGraph, options: dict,
                  dtype: str = "fp32") -> Formulas | None:
    """`cost_formulas` of one network of a .arch file, compiled with `options` (those of
    compile_file: settings, inputs, limits) at each size it needs."""
    from .compile import compile_file
    name = ir.network(graph).name

    def compile_at(sizes: dict[str, int]) -> nx.DiGraph | None:
        other = compile_file(path, **(options | {"settings": options.get("settings", {}) | sizes,
                                                 "network": name}))
        return other.graphs.get(name) if other.ok else None
    return cost_formulas(graph, compile_at, dtype)
