"""What elaboration runs in: the values it makes, the names an expression sees (`Env`),
the naming scopes of layers (`Scope`), the context of each statement (`Ctx`), and how a
user error is reported (`Reporter.fail`, with the chain of block calls that led to it).

Shared by the elaborator (statements), the evaluator (expressions) and the argument
binder; `archdsl.lang.elaborate` re-exports the names its callers use.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import ir
from ..diagnostics import Diagnostic, Label, Sink
from ..ops import REQUIRED
from ..source import Span


@dataclass(frozen=True)
class Value:
    """A tensor in the graph: the output of the node with this name."""
    node: str


class Stack:
    """The values `push`ed onto a name in a network or block body, the last on top: what
    `let NAME = pop(STACK)` takes back (a U-Net's skip connections, kept on the way down
    and used in reverse order on the way up)."""

    def __init__(self, name: str, span: Span):
        self.name, self.span = name, span  # span: the first `push`
        self.values: list[Value] = []
        self.pushed = 0


POISON = Value("")  # stands for the output of a statement that failed
UNKNOWN = object()  # stands for the value of a `let` or parameter that failed


class Abort(Exception):
    """A statement failed; its diagnostic is already in the sink."""


class Env:
    """Names visible to expressions: parameters, lets, repeat indices and labelled values."""

    def __init__(self, parent: Env | None = None):
        self.vars: dict = {}
        self.parent = parent

    def lookup(self, name: str):
        env = self
        while env is not None:
            if name in env.vars:
                return env.vars[name]
            env = env.parent
        return REQUIRED

    def names(self) -> set[str]:
        env, names = self, set()
        while env is not None:
            names.update(env.vars)
            env = env.parent
        return names


class Scope:
    """A level of hierarchical names, with the counters for its unlabelled layers, and
    what the scope tree records of it (kind, repeat index, the block instances called in
    it) once a layer or a block call is made inside it."""

    def __init__(self, path: tuple[str, ...] = (), parent: Scope | None = None,
                 span: Span | None = None, kind: str = "network", iteration: int | None = None):
        self.path, self.parent, self.span = path, parent, span  # span: the label's, if any
        self.name = ".".join(path)  # as the IR names it
        self.kind, self.iteration = kind, iteration
        self.calls: list[ir.Call] = []
        self.declared: dict[str, Span] = {}  # `declare`d labels, in order, where declared
        self.index = 0
        self.structural: dict[str, int] = {}

    def child(self, label: str, span: Span | None = None, kind: str = "group",
              iteration: int | None = None) -> Scope:
        return Scope(self.path + (label,), self, span, kind, iteration)

    def record(self) -> ir.Scope:
        return ir.Scope(self.name, self.kind, self.span,
                        None if self.parent is None else self.parent.name,
                        self.iteration, tuple(self.calls), tuple(self.declared))

    def label_span(self, depth: int) -> Span | None:
        """Where the enclosing scope `depth` names long was opened, if by a label."""
        scope = self
        while scope is not None and len(scope.path) > depth:
            scope = scope.parent
        return scope.span if scope is not None and len(scope.path) == depth else None

    def next_index(self) -> tuple[str, ...]:
        self.index += 1
        return self.path + (str(self.index - 1),)

    def structural_name(self, op: str) -> tuple[str, ...]:
        count = self.structural.get(op, 0)
        self.structural[op] = count + 1
        return self.path + (op if count == 0 else f"{op}_{count}",)


@dataclass(frozen=True)
class Ctx:
    env: Env
    scope: Scope
    block_input: Value | None  # what `in` means here; None at network level
    trace: tuple[ir.Frame, ...] = ()
    train_only: bool = False
    role: str = ""  # "skip" inside a residual's projection

    def derive(self, *, env: Env | None = None, scope: Scope | None = None,
               train_only: bool | None = None, role: str | None = None) -> Ctx:
        """This context with some fields changed (dataclasses.replace, but cheap: every
        statement of a body runs in a derived context)."""
        return Ctx(self.env if env is None else env, self.scope if scope is None else scope,
                   self.block_input, self.trace,
                   self.train_only if train_only is None else train_only,
                   self.role if role is None else role)


def call_chain(trace: tuple[ir.Frame, ...], shown: int = 6) -> tuple[str, ...]:
    """The block calls that led here, innermost first; a run of nested calls of one block
    (a block calling itself) is folded into one line."""
    runs: list[list] = []
    for frame in reversed(trace):
        if runs and runs[-1][0].block == frame.block:
            runs[-1][1:] = [runs[-1][1] + 1, frame]
        else:
            runs.append([frame, 1, frame])
    lines = [f"{first}, itself inside {count - 1} more calls of `{first.block}` (the first at "
             f"{last.call})" if count > 1 else str(first) for first, count, last in runs[:shown]]
    if len(runs) > shown:
        lines.append(f"... and {sum(run[1] for run in runs[shown:])} calls further out")
    return tuple(lines)


class Reporter:
    """Reports user errors into a sink, each noting the block calls that led to it."""

    def __init__(self, sink: Sink):
        self.sink = sink

    def fail(self, code: str, message: str, span: Span, label: str, ctx: Ctx, *,
             secondary: tuple[Label, ...] = (), help: str | None = None, abort: bool = True):
        """Report an error at `span`; unless `abort` is false, give up the statement."""
        notes = call_chain(ctx.trace)
        self.sink.add(Diagnostic(code, message, Label(span, label), secondary, notes, help))
        if abort:
            raise Abort


def is_number(value) -> bool:
    return type(value) is int or type(value) is float  # not bool, a subclass of int


def is_int(value) -> bool:
    return type(value) is int


def describe_value(value) -> str:
    """A value as a diagnostic names it, e.g. "the integer 3" or "a 2-tuple"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value:g}"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, tuple):
        return f"a {len(value)}-tuple"
    if isinstance(value, Value):
        return f"the value `{value.node}`"
    if isinstance(value, Stack):
        return f"the stack `{value.name}`"
    return "a value"
