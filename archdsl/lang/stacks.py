"""Stacks of values: `push NAME` puts the current value on the stack NAME of the network
or block body it runs in (made by its first push, whichever group, branch or repeat
iteration pushes), and `let x = pop(NAME)` takes the value last pushed back off it. A
U-Net keeps its encoder's outputs this way on the way down and joins them to the
decoder's, last first, on the way up, as diffusers' UNet2DModel keeps
`down_block_res_samples`. Both run once, in statement order, while the network is
elaborated: no layer is made.
"""
from __future__ import annotations

from . import syntax as ast
from ..diagnostics import Label, Sink
from .context import POISON, Abort, Ctx, Reporter, Stack, Value, describe_value


def is_pop(expr, program) -> bool:
    """`pop(...)`, unless the program defines a function of that name."""
    return isinstance(expr, ast.FuncCall) and expr.name == "pop" and \
        "pop" not in program.functions


class Stacks(Reporter):
    """Runs `push` and `pop`, counting them (`ops`): a repeat whose iterations make no
    layer but push or pop is still run to the end."""

    def __init__(self, sink: Sink, evaluator):
        super().__init__(sink)
        self.evaluator = evaluator
        self.ops = 0

    def push(self, stmt: ast.Push, value: Value, ctx: Ctx) -> None:
        root = ctx.env
        while root.parent is not None:
            root = root.parent
        stack = ctx.env.lookup(stmt.name)
        if not isinstance(stack, Stack):
            if stmt.name in ctx.env.names():
                self.fail("E0208", f"`{stmt.name}` is already {describe_value(stack)}, so it "
                          "cannot be a stack", stmt.name_span, "a name in use", ctx,
                          help=f"push onto a name of its own, e.g. `push {stmt.name}_stack`")
            stack = root.vars[stmt.name] = Stack(stmt.name, stmt.name_span)
        stack.values.append(value)
        stack.pushed += 1
        self.ops += 1

    def pop(self, call: ast.FuncCall, ctx: Ctx) -> Value:
        """The value last pushed onto the stack `call` names, taken off it (POISON, and
        the error reported, where there is none)."""
        try:
            if len(call.args) != 1 or not isinstance(call.args[0], ast.Name):
                self.fail("E0203", "`pop` takes the name of one stack", call.span,
                          "pop what?", ctx, help="`let skip = pop(skips)`, after `push skips`")
            name = call.args[0]
            stack = self.evaluator.eval(name, ctx)
            if not isinstance(stack, Stack):
                self.fail("E0218", f"`{name.id}` is {describe_value(stack)}, not a stack",
                          name.span, "not pushed onto", ctx,
                          help=f"push values first: `push {name.id}` puts the current value "
                               "on the stack")
            if not stack.values:
                self.fail("E0223", f"the stack `{stack.name}` is empty: its {stack.pushed} "
                          f"value{'' if stack.pushed == 1 else 's'} pushed so far "
                          f"{'was' if stack.pushed == 1 else 'were'} all popped",
                          call.span, "nothing left to pop", ctx,
                          secondary=(Label(stack.span, "pushed here"),),
                          help="push as many values as are popped, in the order they are "
                               "used back (the last pushed is popped first)")
            self.ops += 1
            return stack.values.pop()
        except Abort:
            return POISON
