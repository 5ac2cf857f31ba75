"""Search spaces: network parameters whose default is a choice or a range.

`network net(depth = choice(20, 32, 44), width = int_range(16, 64, step = 16))` is a family
of networks, one member per assignment of its dimensions. A dimension is the whole default
of a network parameter, an item of a tuple default (`(16, choice(32, 64))`), or one of the
`each(n, ...)` tuple (`ops = each(6, choice("none", "conv3x3"))`: six dimensions `ops[0]`
to `ops[5]`, per repeat or per edge). Everything else in the spec reads the parameter as
an ordinary value; the spec alone (no `--set`) is its default member: the first option of
each choice and the low end of each range.

The functions and their arguments are plain literals, so that the space is data a
sampler can see without running the spec; `check_space_calls` reports any other use
(E0224), and `space_of` gives a network's space.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import random
from dataclasses import dataclass
from typing import Iterator, Mapping

from . import syntax as ast
from ..diagnostics import Diagnostic, Label, Sink
from ..source import Source, Span

RANGES = ("int_range", "float_range", "log_range")
SPACE_FUNCTIONS = ("choice", *RANGES, "each")
MAX_EACH = 1024


@dataclass(frozen=True)
class Dimension:
    """One independent choice: `name` is the parameter, or `param[i]` for a tuple item."""
    name: str
    param: str
    item: int | None
    kind: str  # "choice", "int", "float" or "log"
    options: tuple = ()
    low: float = 0
    high: float = 0
    step: int | None = None  # int ranges
    span: Span | None = None

    @property
    def size(self) -> int | None:
        """How many values it takes; None for a continuous range."""
        if self.kind == "choice":
            return len(self.options)
        if self.kind == "int":
            return int(self.high - self.low) // self.step + 1
        return None

    def values(self) -> tuple:
        if self.kind == "choice":
            return self.options
        if self.kind == "int":
            return tuple(range(int(self.low), int(self.high) + 1, self.step))
        raise ValueError(f"{self.name} is a continuous range")

    @property
    def default(self):
        return self.options[0] if self.kind == "choice" else self.low

    def draw(self, rng: random.Random):
        if self.kind in ("choice", "int"):
            return rng.choice(self.values())
        if self.kind == "log":
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{len(self.options)} choices: " + ", ".join(map(spec_text, self.options))
        step = f", step {self.step}" if self.kind == "int" and self.step != 1 else ""
        kind = {"int": "integers", "float": "numbers", "log": "numbers, log scale"}[self.kind]
        return f"{kind} {spec_text(self.low)} to {spec_text(self.high)}{step}"


@dataclass(frozen=True)
class Space:
    """The dimensions of one network's parameters, and the constant items of the tuple
    parameters that hold some."""
    network: str
    dimensions: tuple[Dimension, ...]
    tuples: Mapping[str, tuple]  # tuple parameter -> its items (dimensions' places: None)

    def __bool__(self) -> bool:
        return bool(self.dimensions)

    @property
    def size(self) -> int | None:
        """The number of members; None when a range is continuous."""
        sizes = [d.size for d in self.dimensions]
        return None if None in sizes else math.prod(sizes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def settings(self, values: Mapping[str, object]) -> dict:
        """The network parameters of a member: `values` by dimension name -> `--set`
        settings by parameter (tuple parameters rebuilt)."""
        settings, items = {}, {k: list(v) for k, v in self.tuples.items()}
        for dim in self.dimensions:
            value = values[dim.name]
            if dim.item is None:
                settings[dim.param] = value
            else:
                items[dim.param][dim.item] = value
        settings.update({k: tuple(v) for k, v in items.items()})
        return settings

    def default(self) -> dict:
        return {d.name: d.default for d in self.dimensions}

    def members(self) -> Iterator[dict]:
        """Every member, in grid order (the last dimension fastest)."""
        for combo in itertools.product(*(d.values() for d in self.dimensions)):
            yield dict(zip(self.names, combo))

    def sample(self, count: int, seed: int = 0) -> list[dict]:
        """`count` distinct members drawn at random (all of them when there are fewer),
        the default member first."""
        size = self.size
        if size is not None and size <= count:
            return list(self.members())
        rng, chosen, seen = random.Random(seed), [self.default()], set()
        seen.add(_key(chosen[0]))
        for _ in range(count * 50):
            if len(chosen) >= count:
                break
            member = {d.name: d.draw(rng) for d in self.dimensions}
            if _key(member) not in seen:
                seen.add(_key(member))
                chosen.append(member)
        return chosen

    def describe(self) -> str:
        """`search space (15,625 members): ops[0..5] each 5 choices: ...`: dimensions
        that are the items of one `each` (or alike) shown once."""
        size = self.size
        counted = "continuous" if size is None else f"{size:,} members"
        groups: list[list[Dimension]] = []
        for dim in self.dimensions:
            last = groups[-1][-1] if groups else None
            if last is not None and last.param == dim.param and last.item is not None \
                    and dim.item == last.item + 1 and last.describe() == dim.describe():
                groups[-1].append(dim)
            else:
                groups.append([dim])
        return f"search space ({counted}): " + "; ".join(
            f"{g[0].name} {g[0].describe()}" if len(g) == 1 else
            f"{g[0].param}[{g[0].item}..{g[-1].item}] each {g[0].describe()}" for g in groups)


def _key(member: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in member.items()))


def spec_text(value) -> str:
    """A value as the .arch literal that reads back as it: `true`, `"conv3x3"`, `(1, 2)`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "(" + ", ".join(map(spec_text, value)) + ")"
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    return str(value)


# ---- reading the spec ----------------------------------------------------------------


class SpaceMisuse(Exception):
    def __init__(self, span: Span, message: str, label: str, help: str):
        super().__init__(message)
        self.diagnostic = Diagnostic("E0224", message, Label(span, label), help=help)


def space_of(network: ast.NetworkDef) -> Space:
    """The search space of a network's parameters (empty when it has none). Assumes
    `check_space_calls` found nothing wrong."""
    dimensions, tuples = [], {}
    for param in network.params:
        default = param.default
        if default is None or not _has_space(default):
            continue
        if isinstance(default, ast.FuncCall) and default.name == "each":
            count, inner = _each(default)
            tuples[param.name] = (None,) * count
            dimensions += [_dimension(inner, param.name, i) for i in range(count)]
        elif isinstance(default, ast.TupleExpr):
            tuples[param.name] = tuple(None if _has_space(item) else literal(item)
                                       for item in default.items)
            dimensions += [_dimension(item, param.name, i) for i, item in
                           enumerate(default.items) if _has_space(item)]
        else:
            dimensions.append(_dimension(default, param.name, None))
    return Space(network.name, tuple(dimensions), tuples)


def default_value(call: ast.FuncCall):
    """What a space function stands for in the default member (the evaluator's value)."""
    if call.name == "each":
        count, inner = _each(call)
        return (default_value(inner),) * count
    return _dimension(call, "", None).default


def check_space_calls(module: ast.Module, sink: Sink) -> None:
    """E0224 for a space function anywhere but a network parameter's default (whole, or a
    tuple item), or with arguments that are not literals of the right kind."""
    allowed = set()
    for definition in module.definitions:
        if isinstance(definition, ast.NetworkDef):
            for param in definition.params:
                allowed |= _allowed_calls(param.default)
    for call in sorted(_space_calls(module), key=lambda c: c.span.start):
        try:
            if id(call) not in allowed:
                raise SpaceMisuse(call.span, f"`{call.name}` makes a search dimension, which "
                              "only a network parameter's default can be", "not a "
                              "parameter's default",
                              "declare a network parameter, `network net(width = "
                              "choice(32, 64))`, and use its name here")
            if call.name == "each":
                _each(call)
            else:
                _dimension(call, "", None)
        except SpaceMisuse as misuse:
            sink.add(misuse.diagnostic)


def _allowed_calls(default) -> set[int]:
    if isinstance(default, ast.FuncCall) and default.name in SPACE_FUNCTIONS:
        inner = [a for a in default.args if isinstance(a, ast.FuncCall)]
        nested = {id(a) for a in inner if a.name != "each"} if default.name == "each" else set()
        return {id(default)} | nested
    if isinstance(default, ast.TupleExpr):
        return {id(item) for item in default.items
                if isinstance(item, ast.FuncCall) and item.name in SPACE_FUNCTIONS[:-1]}
    return set()


def _space_calls(node) -> Iterator[ast.FuncCall]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, (Span, Source)):
            if isinstance(item, ast.FuncCall) and item.name in SPACE_FUNCTIONS:
                yield item
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))


def _has_space(expr) -> bool:
    return next(_space_calls(expr), None) is not None


def _each(call: ast.FuncCall) -> tuple[int, ast.FuncCall]:
    args = _positional(call, 2, "`each(6, choice(\"skip\", \"conv3x3\"))`")
    count, inner = args
    if not (isinstance(count, ast.Literal) and type(count.value) is int
            and 1 <= count.value <= MAX_EACH):
        raise SpaceMisuse(count.span, "`each` takes a count of 1 to "
                      f"{MAX_EACH} dimensions, written as an integer", "not such an integer",
                      "`each(6, choice(\"skip\", \"conv3x3\"))`")
    if not (isinstance(inner, ast.FuncCall) and inner.name in SPACE_FUNCTIONS[:-1]):
        raise SpaceMisuse(inner.span, "`each` repeats one choice or range", "not a choice or "
                      "range", "`each(6, choice(\"skip\", \"conv3x3\"))`")
    return count.value, inner


def _dimension(call: ast.FuncCall, param: str, item: int | None) -> Dimension:
    name = param if item is None else f"{param}[{item}]"
    if call.name == "choice":
        if any(isinstance(a, ast.Keyword) for a in call.args) or not call.args:
            raise SpaceMisuse(call.span, "`choice` takes one or more values, no keywords",
                          "here", "`choice(32, 64, 128)`")
        options = tuple(literal(a) for a in call.args)
        if len(set(map(repr, options))) != len(options):
            raise SpaceMisuse(call.span, "`choice` lists a value twice", "here",
                          "list each value once")
        return Dimension(name, param, item, "choice", options=options, span=call.span)
    return _range(call, name, param, item)


def _range(call: ast.FuncCall, name: str, param: str, item: int | None) -> Dimension:
    example = {"int_range": "`int_range(2, 8)` or `int_range(16, 64, step = 16)`",
               "float_range": "`float_range(0.0, 0.5)`",
               "log_range": "`log_range(1e-4, 1e-2)`"}[call.name]
    step_arg = [a for a in call.args if isinstance(a, ast.Keyword)]
    if any(k.name != "step" or call.name != "int_range" for k in step_arg):
        raise SpaceMisuse(step_arg[0].span, f"`{call.name}` takes no keyword "
                      f"`{step_arg[0].name}`", "here", example)
    low, high = (literal(a) for a in _positional(call, 2, example, keywords=len(step_arg)))
    step = literal(step_arg[0].value) if step_arg else 1
    integers = call.name == "int_range"
    for value in (low, high, step):
        if isinstance(value, bool) or not isinstance(value, int if integers else (int, float)):
            raise SpaceMisuse(call.span, f"`{call.name}` takes "
                          f"{'integers' if integers else 'numbers'}", "here", example)
    if not low < high or step < 1 or (call.name == "log_range" and low <= 0):
        raise SpaceMisuse(call.span, f"`{call.name}({spec_text(low)}, {spec_text(high)})` is "
                      "empty or unbounded: the low end must be below the high end"
                      + (", and above 0 on a log scale" if call.name == "log_range" else "")
                      + (", the step at least 1" if integers else ""), "here", example)
    kind = {"int_range": "int", "float_range": "float", "log_range": "log"}[call.name]
    return Dimension(name, param, item, kind, low=low, high=high,
                     step=step if integers else None, span=call.span)


def _positional(call: ast.FuncCall, count: int, example: str, keywords: int = 0) -> list:
    args = [a for a in call.args if not isinstance(a, ast.Keyword)]
    if len(args) != count or len(call.args) != count + keywords:
        raise SpaceMisuse(call.span, f"`{call.name}` takes {count} values", "here", example)
    return args


def literal(expr):
    """The value of a literal: a number (possibly negated), string, boolean, or a tuple of
    these; anything else is E0224 (a space is data, read without running the spec)."""
    if isinstance(expr, ast.Literal):
        return expr.value
    if isinstance(expr, ast.Unary) and expr.op == "-" and isinstance(expr.operand, ast.Literal) \
            and isinstance(expr.operand.value, (int, float)) \
            and not isinstance(expr.operand.value, bool):
        return -expr.operand.value
    if isinstance(expr, ast.TupleExpr):
        return tuple(literal(item) for item in expr.items)
    raise SpaceMisuse(expr.span, "a search dimension's values are written out: numbers, "
                  "strings, true/false or tuples of these", "computed",
                  "write the value itself (`64`, not `2 * 32`)")
