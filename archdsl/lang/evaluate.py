"""Expression evaluation: an expression of the AST to a Python value (an integer, number,
bool, string or tuple) or a `Value`, a tensor in the network.

One evaluator per kind of expression, listed in `_EVALUATORS`. Arithmetic is Python's,
except that `/` keeps an exact division of integers an integer and `//` always gives one.
An expression that fails reports its error and aborts the statement that holds it.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Callable

from ..diagnostics import Label, Sink
from ..ops import REQUIRED, Arg, show
from ..ops.shapes import axis_name, default_axes
from . import syntax as ast
from .arguments import ArgumentBinder
from .space import SPACE_FUNCTIONS, SpaceMisuse, default_value
from .context import (POISON, UNKNOWN, Abort, Ctx, Env, Reporter, Value, describe_value, is_int,
                      is_number)
from .load import BUILTIN_FUNCTIONS, Program
from .stacks import is_pop
from ..source import Span

MAX_FUNCTION_DEPTH = 100  # nested calls of `def` functions, as deep as block calls may nest
CONSTANTS = {"same": "same", "valid": "valid"}


class Evaluator(Reporter):
    """Evaluates expressions in a statement's context; `arguments` binds the arguments of
    calls with it."""

    def __init__(self, program: Program, sink: Sink, charge: Callable[[Span, Ctx], None],
                 shape_of: Callable[[str], object]):
        super().__init__(sink)
        self.program = program
        self.charge = charge  # counts a function call as a step of work
        self.shape_of = shape_of  # a node's name -> its shape (None if unknown): `x.channels`
        self.function_depth = 0  # nested calls of `def` functions
        self.arguments = ArgumentBinder(sink, self.eval)

    def eval(self, expr, ctx: Ctx):
        method = _EVALUATORS[type(expr)]
        value = method(self, expr, ctx)
        if value is UNKNOWN:
            raise Abort
        return value

    def try_eval(self, expr, ctx: Ctx):
        """The value of `expr`, or UNKNOWN where it fails (the error is reported)."""
        try:
            return self.eval(expr, ctx)
        except Abort:
            return UNKNOWN

    def value_of(self, expr, ctx: Ctx) -> Value:
        """`expr` as a tensor in the network, such as a label or `in`."""
        value = self.eval(expr, ctx)
        if not isinstance(value, Value):
            self.fail("E0218", f"`{expr.span.text}` is {describe_value(value)}, not a value in "
                      "the network", expr.span, "not a layer's output", ctx,
                      help="label a statement to name its output: `features: conv(64, 3)`")
        if value is POISON:
            raise Abort
        return value

    # ---- one evaluator per kind of expression ----------------------------------------

    def eval_literal(self, expr: ast.Literal, ctx: Ctx):
        return expr.value

    def eval_name(self, expr: ast.Name, ctx: Ctx):
        value = ctx.env.lookup(expr.id)
        if value is not REQUIRED:
            return value
        if expr.id in CONSTANTS:
            return CONSTANTS[expr.id]
        close = difflib.get_close_matches(expr.id, sorted(ctx.env.names()), n=1)
        self.fail("E0207", f"`{expr.id}` is not defined", expr.span, "undefined", ctx,
                  help=f"did you mean `{close[0]}`?" if close else
                  "names come from parameters, `let`, `repeat ... as`, and labels")

    def eval_input(self, expr: ast.InputRef, ctx: Ctx):
        if ctx.block_input is None:
            self.fail("E0211", "`in` is only defined inside a block", expr.span,
                      "no block input here", ctx,
                      help="at network level, refer to a value by its label or input name")
        return ctx.block_input

    def eval_attribute(self, expr: ast.Attribute, ctx: Ctx):
        value = self.value_of(expr.value, ctx)
        shape = self.shape_of(value.node)
        if shape is None:
            raise Abort  # the layer that made it already has an error
        axes = getattr(shape, "axes", default_axes(len(shape)))
        attributes = {} if axes == "C" else {axis_name(a): i for i, a in enumerate(axes)}
        if expr.attr in attributes:
            return shape[attributes[expr.attr]]
        if expr.attr == "features":
            return math.prod(shape)
        if expr.attr == "shape":  # every size, in order: `in.shape[-1]` is the last
            return tuple(shape)
        known = ", ".join(list(attributes) + ["features", "shape"])
        self.fail("E0217", f"a {show(shape)} value has no `{expr.attr}`", expr.span,
                  "unknown attribute", ctx, help=f"available: {known}")

    def eval_index(self, expr: ast.Index, ctx: Ctx):
        items = self.eval(expr.value, ctx)
        if not isinstance(items, tuple):
            self.type_error(expr, f"only a tuple has items, not {describe_value(items)}", ctx)
        at = self.eval(expr.index, ctx)
        if not is_int(at):
            self.type_error(expr.index, f"an index is an integer, not {describe_value(at)}", ctx)
        if not -len(items) <= at < len(items):
            self.fail("E0212", f"index {at} is outside a {len(items)}-tuple", expr.index.span,
                      "no such item", ctx, help=f"items are numbered 0 to {len(items) - 1} "
                      "(or -1 for the last)")
        return items[at]

    def eval_tuple(self, expr: ast.TupleExpr, ctx: Ctx):
        return tuple(self.eval(item, ctx) for item in expr.items)

    def eval_conditional(self, expr: ast.Conditional, ctx: Ctx):
        test = self.arguments.eval_as(Arg("condition", "bool"), expr.test, ctx)
        return self.eval(expr.then if test else expr.otherwise, ctx)

    def eval_unary(self, expr: ast.Unary, ctx: Ctx):
        operand = self.eval(expr.operand, ctx)
        if expr.op == "not":
            if isinstance(operand, bool):
                return not operand
        elif is_number(operand):
            return -operand
        self.type_error(expr, f"`{expr.op}` cannot apply to {describe_value(operand)}", ctx)

    def eval_binary(self, expr: ast.Binary, ctx: Ctx):
        left = self.eval(expr.left, ctx)
        if expr.op in ("and", "or"):  # on bools only; the right side only if it decides
            if not isinstance(left, bool):
                self.type_error(expr, f"`{expr.op}` needs true or false, not "
                                f"{describe_value(left)}", ctx)
            if left == (expr.op == "or"):
                return left
            right = self.eval(expr.right, ctx)
            if not isinstance(right, bool):
                self.type_error(expr, f"`{expr.op}` needs true or false, not "
                                f"{describe_value(right)}", ctx)
            return right
        right = self.eval(expr.right, ctx)
        if expr.op in ("==", "!="):
            return (left == right and type(left) is type(right)) == (expr.op == "==")
        if not (is_number(left) and is_number(right)):
            self.type_error(expr, f"`{expr.op}` cannot combine {describe_value(left)} and "
                            f"{describe_value(right)}", ctx)
        if expr.op in ("/", "//", "%") and right == 0:
            self.fail("E0212", "division by zero", expr.right.span, "is zero", ctx)
        result = _ARITHMETIC[expr.op](left, right)
        if isinstance(result, int) and abs(result) > 10 ** 15:
            self.fail("E0212", "number too large", expr.span, f"about {float(result):.3g}", ctx)
        return result

    def eval_func_call(self, expr: ast.FuncCall, ctx: Ctx):
        self.charge(expr.span, ctx)
        if is_pop(expr, self.program):  # taken off a stack only by a `let` (elaborate)
            self.fail("E0214", "`pop` takes a value off a stack only as the whole value of a "
                      "`let`", expr.span, "inside an expression", ctx,
                      help="pop it first, `let skip = pop(skips)`, then use `skip`")
        if expr.name in BUILTIN_FUNCTIONS:
            return self.builtin(expr, ctx)
        if expr.name in SPACE_FUNCTIONS:  # checked when loaded (E0224): the default member
            try:
                return default_value(expr)
            except SpaceMisuse:
                raise Abort from None
        function = self.program.functions.get(expr.name)
        if function is None:
            known = list(BUILTIN_FUNCTIONS) + list(self.program.functions)
            close = difflib.get_close_matches(expr.name, known, n=1)
            self.fail("E0207", f"`{expr.name}` is not a function", expr.name_span,
                      "not defined", ctx, help=f"did you mean `{close[0]}`?" if close else
                      f"define it: `def {expr.name}(x) = ...`; built in: "
                      + ", ".join(BUILTIN_FUNCTIONS))
        if self.function_depth >= MAX_FUNCTION_DEPTH:
            self.fail("E0402", f"function calls nest more than {MAX_FUNCTION_DEPTH} deep",
                      expr.name_span, "called again here", ctx,
                      secondary=(Label(function.name_span, "defined here"),),
                      help="a function that calls itself needs a condition that stops it")
        specs = tuple(Arg(p.name, "any", REQUIRED if p.default is None else p.default)
                      for p in function.params)
        given = self.arguments.match_args(specs, expr.args, expr, ctx,
                                          f"function `{function.name}`")
        env = Env()
        inner = Ctx(env, ctx.scope, None, ctx.trace)  # sees its parameters and functions
        for param in function.params:
            env.vars[param.name] = (self.eval(given[param.name], ctx) if param.name in given
                                    else self.eval(param.default, inner))
        self.function_depth += 1
        try:
            return self.eval(function.value, inner)
        finally:
            self.function_depth -= 1

    def builtin(self, expr: ast.FuncCall, ctx: Ctx):
        name = expr.name
        if any(isinstance(a, ast.Keyword) for a in expr.args):
            self.fail("E0202", f"`{name}` takes no keyword arguments", expr.span,
                      "keyword given", ctx)
        many = name in ("min", "max")
        if (len(expr.args) < 2) if many else (len(expr.args) != 1):
            wanted = "two or more numbers" if many else "one tuple" if name == "len" else \
                "one number"
            self.fail("E0203", f"`{name}` takes {wanted}, not {len(expr.args)}", expr.span,
                      "here", ctx,
                      help=f"`{name}(a, b)`" if many else f"`{name}(x)`")
        values = [self.eval(a, ctx) for a in expr.args]
        if name == "len":
            if not isinstance(values[0], tuple):
                self.type_error(expr.args[0], f"`len` counts the items of a tuple, not "
                                f"{describe_value(values[0])}", ctx)
            return len(values[0])
        for arg, value in zip(expr.args, values):
            if not is_number(value) or not math.isfinite(value):
                self.type_error(arg, f"`{name}` needs a finite number, not "
                                f"{describe_value(value)}", ctx)
        if name in _DOMAINS and not _DOMAINS[name][0](values[0]):
            self.type_error(expr.args[0], f"`{name}` needs {_DOMAINS[name][1]}, not "
                            f"{describe_value(values[0])}", ctx)
        result = _BUILTINS[name](*values)
        if not math.isfinite(result):
            self.fail("E0212", "number too large", expr.span, f"`{name}` overflows", ctx)
        return result

    def type_error(self, expr, message: str, ctx: Ctx):
        self.fail("E0212", message, expr.span, "in this expression", ctx)


_EVALUATORS = {
    ast.Literal: Evaluator.eval_literal, ast.Name: Evaluator.eval_name,
    ast.InputRef: Evaluator.eval_input, ast.Attribute: Evaluator.eval_attribute,
    ast.TupleExpr: Evaluator.eval_tuple, ast.Conditional: Evaluator.eval_conditional,
    ast.Unary: Evaluator.eval_unary, ast.Binary: Evaluator.eval_binary,
    ast.FuncCall: Evaluator.eval_func_call, ast.Index: Evaluator.eval_index,
}

# As Python's: `int` truncates towards zero, `round` halves to even (`round(2.5)` is 2);
# `int`, `round`, `floor` and `ceil` give integers, `min`, `max` and `abs` keep the type;
# `log` (natural), `exp` and `sqrt` give floats; `len` counts a tuple's items.
_BUILTINS = {"int": int, "round": round, "floor": math.floor, "ceil": math.ceil,
             "min": min, "max": max, "abs": abs, "len": len, "log": math.log,
             "exp": lambda x: math.exp(x) if x < 710 else math.inf, "sqrt": math.sqrt}
_DOMAINS = {"log": (lambda x: x > 0, "a positive number"),
            "sqrt": (lambda x: x >= 0, "a number of at least 0")}
assert set(_BUILTINS) == set(BUILTIN_FUNCTIONS)


def _true_divide(a, b):
    if isinstance(a, int) and isinstance(b, int) and a % b == 0:
        return a // b  # exact division of integers stays an integer: `width / 2`
    return a / b


def _floor_divide(a, b):
    """Always an integer, on numbers too: `64 * 0.75 // 8` is a channel count (6)."""
    result = a // b
    return int(result) if isinstance(result, float) and math.isfinite(result) else result


_ARITHMETIC = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": _true_divide, "//": _floor_divide, "%": lambda a, b: a % b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
