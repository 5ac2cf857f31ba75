"""Binding a call's arguments to the parameters of an op, block, function or `aux`, and
checking each value against its parameter's kind (`_KINDS`, `_coerce`) and range.

A new argument kind is one entry in `_KINDS` (how errors name it) and one case in
`_coerce` (which values it accepts).
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Callable

from ..source import format_value
from ..diagnostics import Label, Sink
from ..ops import REQUIRED, Arg, Args, Derived, Op
from . import syntax as ast
from .context import Ctx, Reporter, describe_value, is_int, is_number


class ArgumentBinder(Reporter):
    """Matches arguments to parameters by position and keyword, evaluates them with
    `evaluate` (expression, Ctx -> value), and checks their kinds and ranges."""

    def __init__(self, sink: Sink, evaluate: Callable[[object, Ctx], object]):
        super().__init__(sink)
        self.evaluate = evaluate

    def match_args(self, specs: tuple[Arg, ...], args, call, ctx: Ctx, what: str) -> dict:
        """Match positional and keyword arguments to names: {name: expression}."""
        names = [s.name for s in specs]
        given, seen_keyword = {}, False
        for position, arg in enumerate(args):
            if isinstance(arg, ast.Keyword):
                seen_keyword = True
                if arg.name not in names:
                    close = difflib.get_close_matches(arg.name, names, n=1)
                    self.fail("E0202", f"{what} has no argument `{arg.name}`", arg.span,
                              "unknown keyword", ctx,
                              help=f"did you mean `{close[0]}`?" if close else
                              f"{what} takes: {', '.join(names) or 'no arguments'}")
                name, value = arg.name, arg.value
            else:
                if seen_keyword:
                    self.fail("E0201", "positional argument after a keyword argument", arg.span,
                              "positional", ctx, help="put positional arguments first")
                if position >= len(names):
                    self.fail("E0201", f"{what} takes {len(names)} positional argument"
                              f"{'' if len(names) == 1 else 's'}, but {len(args)} are given",
                              arg.span, "one too many", ctx,
                              help=f"{what} takes: {', '.join(names) or 'no arguments'}")
                name, value = names[position], arg
            if name in given:
                self.fail("E0204", f"argument `{name}` is given twice", arg.span, "again here",
                          ctx, secondary=(Label(given[name].span, "first here"),))
            given[name] = value
        for spec in specs:
            if spec.name not in given and spec.default is REQUIRED:
                self.fail("E0203", f"{what} needs its `{spec.name}` argument", call.span,
                          f"`{spec.name}` missing", ctx,
                          help=f"{what} takes: {', '.join(names)}")
        return given

    def bind_args(self, specs: tuple[Arg, ...], args, call, ctx: Ctx, what: str) -> Args:
        """Match, evaluate and check a call's arguments; unset ones take their defaults."""
        given = self.match_args(specs, args, call, ctx, what)
        values = {}
        for spec in specs:
            if spec.name in given:
                values[spec.name] = self.eval_as(spec, given[spec.name], ctx, what)
            elif isinstance(spec.default, Derived):
                values[spec.name] = values[spec.default.source]
            else:
                values[spec.name] = spec.default
        return Args(tuple(values.items()))

    def eval_as(self, spec: Arg, expr, ctx: Ctx, what: str = ""):
        """Evaluate `expr` as a value of `spec`'s kind, within its range."""
        value = self.evaluate(expr, ctx)
        checked = _coerce(spec, value)
        if checked is _BAD_TYPE:
            self.fail("E0205", f"`{spec.name}` must be {_KINDS[spec.kind]}, not "
                      f"{describe_value(value)}", expr.span, f"{describe_value(value)} given",
                      ctx, help=_type_help(spec, value))
        problem = _out_of_range(spec, checked)
        if problem:
            shown = format_value(checked)
            self.fail("E0206", f"`{spec.name}` {problem}" + (f" for {what}" if what else ""),
                      expr.span, f"{shown} given", ctx)
        return checked


def gather_axes(op: Op, call: ast.Call) -> ast.Call:
    """`permute(1, 2, 0)`, `mean(1, 2, keep = true)`: an op with a list of axes (or sizes)
    takes every positional argument from that list's place on as one tuple; the arguments
    after it are given by keyword."""
    first = next((i for i, a in enumerate(op.args) if a.kind in ("axes", "dims")), None)
    if first is None:
        return call
    positional = [a for a in call.args if not isinstance(a, ast.Keyword)]
    if len(positional) <= first + 1:
        return call
    rest = positional[first:]
    items = ast.TupleExpr(tuple(rest), rest[0].span.to(rest[-1].span))
    keywords = tuple(a for a in call.args if isinstance(a, ast.Keyword))
    return ast.Call(call.name, tuple(positional[:first]) + (items,) + keywords, call.span,
                    call.name_span)


_BAD_TYPE = object()
_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false",
          "pair": "an integer or a pair `(h, w)`", "str": "a string",
          "sizes": "an integer, or one per spatial axis: `(h, w)`, `(t, h, w)`",
          "pad": "an integer, one per spatial axis (`(h, w)`), `same` or `valid`",
          "axis": "an axis: a number (0 the first after the batch, -1 the last) or a name "
                  "(`\"H\"`)",
          "axes": "axes: `1, 2, 0` or `\"H\", \"W\"`", "dims": "sizes: `196, 768` (one may be -1)",
          "any": "a value"}


def _coerce(spec: Arg, value):
    """`value` as `spec`'s kind holds it (a `float` turns an integer into a float), or
    _BAD_TYPE."""
    kind = spec.kind
    if kind == "any":
        return value
    if kind == "axis":
        return value if is_int(value) or isinstance(value, str) else _BAD_TYPE
    if kind == "int":
        return value if is_int(value) else _BAD_TYPE
    if kind == "float":
        return float(value) if is_number(value) else _BAD_TYPE
    if kind == "bool":
        return value if isinstance(value, bool) else _BAD_TYPE
    if kind == "str":
        return value if isinstance(value, str) else _BAD_TYPE
    if kind == "pad" and value in ("same", "valid"):
        return value
    if kind == "axes":
        items = value if isinstance(value, tuple) else (value,)
        return items if items and all(is_int(v) or isinstance(v, str) for v in items) \
            else _BAD_TYPE
    if kind == "dims":
        items = value if isinstance(value, tuple) else (value,)
        return items if items and all(is_int(v) for v in items) else _BAD_TYPE
    if is_int(value):
        return value
    lengths = (2,) if kind == "pair" else (1, 2, 3)
    if isinstance(value, tuple) and len(value) in lengths and all(is_int(v) for v in value):
        return value
    return _BAD_TYPE


def _out_of_range(spec: Arg, value) -> str | None:
    if spec.choices and value not in spec.choices:
        return "must be one of " + ", ".join(f'"{c}"' for c in spec.choices)
    numbers = value if isinstance(value, tuple) else (value,)
    if not all(is_number(n) for n in numbers):
        return None
    if not all(math.isfinite(n) for n in numbers):
        return "must be a finite number"
    if spec.minimum is not None and any(n < spec.minimum for n in numbers):
        return f"must be at least {format_value(spec.minimum)}"
    if spec.maximum is not None and any(n > spec.maximum for n in numbers):
        return f"must be at most {format_value(spec.maximum)}"
    if spec.below is not None and any(n >= spec.below for n in numbers):
        return f"must be less than {format_value(spec.below)}"
    if spec.above is not None and any(n <= spec.above for n in numbers):
        return f"must be more than {format_value(spec.above)}"
    return None


def _type_help(spec: Arg, value) -> str | None:
    if spec.kind == "int" and isinstance(value, float):
        return "use `//` for integer division, or write a whole number"
    if spec.kind == "str":
        return "choose one of: " + ", ".join(f'"{c}"' for c in spec.choices)
    if spec.name == "dimension":
        return "write an input as C x H x W, e.g. `input image: 3 x 224 x 224`"
    return None
