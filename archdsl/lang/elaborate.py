"""Pass: elaborate one network of a Program into the IR (a networkx.DiGraph).

Blocks are expanded at each call, repeats unrolled, branches laid side by side and
merged, residuals closed with an `add`. Every node gets its hierarchical name here:

* a label (`conv1: ...`) opens a naming scope; each iteration of a labelled `repeat`
  opens one more (`layer2.0`, `layer2.1`, ...);
* unlabelled statements that hold other statements (block calls, repeats, residuals,
  branches, groups) are transparent: what they contain is named in the enclosing scope;
* an unlabelled layer takes the next index of its scope (0, 1, 2, ...), as in
  torch.nn.Sequential; the merge a structure creates is named after its op (`add`).

Shapes are inferred as nodes are added, because expressions may read them
(`in.channels`). Errors are collected; a statement that fails yields a poisoned value,
and statements downstream of it stay quiet instead of repeating the same error.
"""
from __future__ import annotations

import difflib
import math
import re
import sys
from dataclasses import dataclass

import networkx as nx

from .. import ir
from . import syntax as ast
from ..diagnostics import Diagnostic, Label, Sink, SpecError
from ..passes.infer_shapes import infer_node
from .load import BUILTIN_FUNCTIONS, Program
from .names import is_reserved, reserved_help
from ..ops import MERGE_OPS, OPS, REQUIRED, Arg, Args, Derived, Op, show
from ..errors import UsageError
from ..ops.shapes import LAYOUTS, Shape, axis_name, default_axes, describe
from .source import Span

# A computed label may also hold `-`, as torchvision's RegNet names its blocks `block1-0`.
_COMPUTED_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*|[0-9]+")
MAX_BLOCK_DEPTH = 100  # nested block calls; deeper means a block calls itself without end
DEFAULT_MAX_NODES = 50_000  # far above any published network; reached in a few seconds
WORK_PER_NODE = 3
CONSTANTS = {"same": "same", "valid": "valid"}
AUX_ARGS = (Arg("weight", "float", 1.0, minimum=0), Arg("train_only", "bool", True))


@dataclass(frozen=True)
class Value:
    """A tensor in the graph: the output of the node with this name."""
    node: str


POISON = Value("")  # stands for the output of a statement that failed
UNKNOWN = object()  # stands for the value of a `let` or parameter that failed


class _Abort(Exception):
    """A statement failed; its diagnostic is already in the sink."""


class Env:
    """Names visible to expressions: parameters, lets, repeat indices and labelled values."""

    def __init__(self, parent: "Env | None" = None):
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

    def __init__(self, path: tuple[str, ...] = (), parent: "Scope | None" = None,
                 span: Span | None = None, kind: str = "network", iteration: int | None = None):
        self.path, self.parent, self.span = path, parent, span  # span: the label's, if any
        self.kind, self.iteration = kind, iteration
        self.calls: list[ir.Call] = []
        self.index = 0
        self.structural: dict[str, int] = {}

    def child(self, label: str, span: Span | None = None, kind: str = "group",
              iteration: int | None = None) -> "Scope":
        return Scope(self.path + (label,), self, span, kind, iteration)

    def record(self) -> ir.Scope:
        return ir.Scope(".".join(self.path), self.kind, self.span,
                        None if self.parent is None else ".".join(self.parent.path),
                        self.iteration, tuple(self.calls))

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
               train_only: bool | None = None, role: str | None = None) -> "Ctx":
        """This context with some fields changed (dataclasses.replace, but cheap: every
        statement of a body runs in a derived context)."""
        return Ctx(self.env if env is None else env, self.scope if scope is None else scope,
                   self.block_input, self.trace,
                   self.train_only if train_only is None else train_only,
                   self.role if role is None else role)


@dataclass(frozen=True)
class Limits:
    """How far a spec may expand: layers, and steps of work (statements run, block calls,
    repeat iterations; WORK_PER_NODE per layer allowed)."""
    max_nodes: int = DEFAULT_MAX_NODES

    @property
    def max_work(self) -> int:
        return WORK_PER_NODE * self.max_nodes


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


def elaborate(program: Program, network: ast.NetworkDef, sink: Sink, settings: dict | None = None,
              inputs: dict | None = None, limits: Limits = Limits()) -> nx.DiGraph:
    """Expand `network` into the IR. `settings` override network parameters by name;
    `inputs` override input shapes by input name.

    >>> from archdsl import compile_source
    >>> graph = compile_source('''
    ... block pair(c) { conv(c, 3, pad = 1); relu }
    ... network t { input x: 3 x 8 x 8; stage: repeat 2 { pair(4) } }''').graph
    >>> list(graph)
    ['x', 'stage.0.0', 'stage.0.1', 'stage.1.0', 'stage.1.1']
    """
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))
    try:
        elaborator = _Elaborator(program, sink, limits)
        return elaborator.network(network, settings or {}, inputs or {})
    except SpecError as error:
        sink.add(error.diagnostic)
        root = Scope(span=network.span).record()
        return ir.new_graph(ir.Network(network.name, network.span.source.path,
                                       scopes={"": root}, work=elaborator.work))
    finally:
        sys.setrecursionlimit(limit)


class _Elaborator:
    def __init__(self, program: Program, sink: Sink, limits: Limits):
        self.program, self.sink, self.limits = program, sink, limits
        self.graph: nx.DiGraph = None
        self.input_overrides: dict = {}
        self.outputs: list[ir.Output] = []
        self.main_outputs: list[ir.Output] = []
        self.declared_input = False
        self.work = 0  # statements, block calls and repeat iterations so far: see charge()
        self.function_depth = 0  # nested calls of `def` functions
        self.scopes: dict[str, str] = {}  # each name that holds layers -> its first layer
        self.opened: dict[str, Scope] = {}  # the scope tree: scopes holding layers or calls
        self.inputs: list[str] = []
        self.params: dict = {}
        self.block_args: dict[int, tuple[Arg, ...]] = {}  # id(BlockDef) -> its parameters

    # ---- network ------------------------------------------------------------------

    def network(self, net: ast.NetworkDef, settings: dict, inputs: dict) -> nx.DiGraph:
        env = Env()
        ctx = Ctx(env, Scope(span=net.span), None)
        self.use_scope(ctx.scope)
        params = {}
        for param in net.params:
            if param.name in settings:
                value = settings[param.name]
            elif param.default is not None:
                value = self.try_eval(param.default, ctx)
            else:
                self.fail("E0203", f"network parameter `{param.name}` has no default",
                          param.span, "needs a value", ctx,
                          help=f"give it a default (`{param.name} = ...`) or pass "
                               f"`--set {param.name}=VALUE`", abort=False)
                value = UNKNOWN
            params[param.name] = value
            env.vars[param.name] = value
        self.params = {k: v for k, v in params.items() if v is not UNKNOWN}
        self.graph = ir.new_graph(ir.Network(net.name, net.span.source.path, self.params))
        self.input_overrides = inputs
        final = self.body(net.body, None, ctx)
        return self.finish(net, final)

    def finish(self, net: ast.NetworkDef, final) -> nx.DiGraph:
        if not self.declared_input:
            self.sink.add(Diagnostic("E0215", f"network `{net.name}` has no input",
                                     Label(net.name_span, "declared here"),
                                     help="declare one first: `input image: 3 x 224 x 224`"))
        if not self.main_outputs and final is not None and final is not POISON:
            clash = next((o for o in self.outputs if o.name == "out"), None)
            if clash is not None:
                self.sink.add(Diagnostic(
                    "E0216", "output `out` is declared twice: a head is called `out`, the name "
                    "of the main output", Label(clash.span, "this head"),
                    help="rename the head, or name the main output: `output NAME`"))
            self.main_outputs.append(ir.Output("out", final.node, net.body.span))
        scopes = {path: scope.record() for path, scope in self.opened.items()}
        ir.set_network(self.graph, ir.Network(
            net.name, net.span.source.path, self.params, tuple(self.inputs),
            tuple(self.main_outputs + self.outputs), scopes, self.work))
        return self.graph

    def use_scope(self, scope: Scope) -> None:
        """Record `scope` and the scopes around it in the scope tree, parents first."""
        chain = []
        while scope is not None and ".".join(scope.path) not in self.opened:
            chain.append(scope)
            scope = scope.parent
        for opened in reversed(chain):
            self.opened[".".join(opened.path)] = opened

    # ---- statements -----------------------------------------------------------------

    def body(self, body: ast.Body, cur, ctx: Ctx):
        for stmt in body.stmts:
            cur = self.stmt(stmt, cur, ctx)
        return cur

    def stmt(self, stmt, cur, ctx: Ctx):
        self.charge(stmt.span, ctx)
        try:
            if isinstance(stmt, ast.Labelled):
                return self.labelled(stmt, cur, ctx)
            if isinstance(stmt, ast.Let):
                ctx.env.vars[stmt.name] = self.try_eval(stmt.value, ctx)
                return cur
            if isinstance(stmt, ast.InputDecl):
                return self.input_decl(stmt, ctx)
            if isinstance(stmt, ast.ParamDecl):
                self.param_decl(stmt, ctx)
                return cur
            if isinstance(stmt, ast.Output):
                return self.output(stmt, cur, ctx)
            if isinstance(stmt, ast.IfStmt):
                return self.if_stmt(stmt, cur, ctx)
            if isinstance(stmt, ast.FromValue):
                return self.value_of(ast.Name(stmt.name, stmt.span), ctx)
            return self.action(stmt, cur, ctx, labelled=False)
        except _Abort:
            return POISON

    def labelled(self, stmt: ast.Labelled, cur, ctx: Ctx):
        label = stmt.label
        try:
            label = self.label_text(stmt, ctx)
            kind = self.scope_kind(stmt.action)
            inner = ctx.derive(scope=self.labelled_scope(label, stmt.label_span, ctx, kind))
            out = self.action(stmt.action, cur, inner, labelled=True)
        except _Abort:
            ctx.env.vars[label] = POISON  # its readers stay quiet: the error is reported
            raise
        if isinstance(out, Value) and out is not POISON and not isinstance(stmt.action, ast.Aux):
            ctx.env.vars[label] = out
        return out

    def label_text(self, stmt: ast.Labelled, ctx: Ctx) -> str:
        """The label as a name: a computed label's expressions are filled in."""
        if stmt.template is None:
            return stmt.label
        pieces = []
        for part in stmt.template.parts:
            value = self.eval(part, ctx)
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                self.fail("E0221", f"a label is made of text and integers, not "
                          f"{_describe(value)}", part.span, "not text or an integer", ctx,
                          help="compute an integer, e.g. `{i + 1}` or `{c // 2}`")
            pieces.append(str(value))
        label = "".join(pieces)
        if not _COMPUTED_LABEL.fullmatch(label):
            self.fail("E0221", f'the computed label "{label}" is neither a name nor a number',
                      stmt.label_span, "computed here", ctx,
                      help="a computed label is letters, digits, `_` and `-`, not starting "
                           "with a digit, or a number")
        return label

    def scope_kind(self, action) -> str:
        """What a labelled statement's scope holds, for the scope tree."""
        if isinstance(action, ast.Call):
            return "block" if action.name in self.program.blocks else "group"
        return _SCOPE_KINDS.get(type(action), "group")

    def labelled_scope(self, label: str, span: Span, ctx: Ctx, kind: str = "group") -> Scope:
        """The naming scope a label opens: `_` takes the scope's next index, as an
        unlabelled layer would; a number sets the index; labels that torch uses itself are
        refused."""
        if label == "_":
            return Scope(ctx.scope.next_index(), ctx.scope, span, kind)
        if label.isdigit():
            ctx.scope.index = max(ctx.scope.index, int(label) + 1)
            return ctx.scope.child(str(int(label)), span, kind)
        if is_reserved(label):
            self.fail("E0219", f"`{label}` cannot be a label: the torch module uses the name "
                      "itself", span, "reserved name", ctx, help=reserved_help(label))
        return ctx.scope.child(label, span, kind)

    def action(self, action, cur, ctx: Ctx, labelled: bool):
        if isinstance(action, ast.Call):
            return self.call(action, cur, ctx, ctx.scope.path if labelled else None)
        if isinstance(action, ast.Repeat):
            return self.repeat(action, cur, ctx, labelled)
        if isinstance(action, ast.Residual):
            return self.residual(action, cur, ctx)
        if isinstance(action, ast.Branches):
            return self.branches(action, cur, ctx)
        if isinstance(action, ast.Group):
            return self.body(action.body, cur, ctx.derive(env=Env(ctx.env)))
        if isinstance(action, ast.Aux):
            return self.aux(action, cur, ctx, ctx.scope.path[-1] if labelled else None)
        raise TypeError(f"unknown statement {action!r}")

    def input_decl(self, stmt: ast.InputDecl, ctx: Ctx):
        if ctx.trace:
            self.fail("E0214", "`input` is only allowed in a network", stmt.span,
                      "inside a block", ctx, help="declare inputs in the network; a block "
                      "receives the value flowing into it as `in`")
        self.declared_input = True
        shape = self.declared_shape(stmt, "an input", ctx)
        dims = self.input_overrides.get(stmt.name, self.input_overrides.get("*", shape))
        if len(dims) != len(shape):
            given = "x".join(map(str, dims))
            raise UsageError(f"--input {given}: {len(dims)} sizes, but input `{stmt.name}` is "
                             f"declared with {len(shape)} ({describe(shape)}, at "
                             f"{stmt.span}); give {len(shape)} sizes, e.g. "
                             f"{'x'.join(map(str, shape))}")
        if not isinstance(dims, Shape):
            dims = Shape(dims, shape.axes)
        value = self.add((stmt.name,), OPS["input"], Args((("shape", dims),)), (), stmt.span, ctx)
        self.inputs.append(value.node)
        ctx.env.vars[stmt.name] = value
        return value

    def declared_shape(self, stmt, what: str, ctx: Ctx) -> Shape:
        """The size and layout written in an `input` or `param` declaration."""
        dims = tuple(self.eval_as(Arg("dimension", "int", minimum=1), d, ctx) for d in stmt.dims)
        if stmt.layout is None:
            if len(dims) == 2 and isinstance(stmt, ast.InputDecl):
                self.fail("E0206", "a 2-dimensional input needs its layout: tokens (L x C) or "
                          "a signal (C x L)", stmt.span, "which axis is which?", ctx,
                          help=f"write `as tokens` or `as signal` after the sizes; an image "
                               f"needs its channels: `1 x {dims[0]} x {dims[1]}`")
            if len(dims) not in _RANKS:
                self.fail("E0206", f"{what} has 1 to 4 dimensions (features, tokens, an image or "
                          f"a volume), not {len(dims)}", stmt.span, f"{len(dims)} dimensions", ctx,
                          help="the batch dimension is implicit: `input image: 3 x 224 x 224`")
            return Shape(dims)
        axes = LAYOUTS.get(stmt.layout.name)
        if axes is None:
            close = difflib.get_close_matches(stmt.layout.name, LAYOUTS, n=1)
            self.fail("E0206", f"`{stmt.layout.name}` is not a layout", stmt.layout.span,
                      "unknown layout", ctx, help=(f"did you mean `{close[0]}`? " if close else "")
                      + "layouts: " + ", ".join(f"{n} ({' x '.join(a)})" for n, a in LAYOUTS.items()))
        if len(axes) != len(dims):
            self.fail("E0206", f"a {stmt.layout.name} value has {len(axes)} dimensions "
                      f"({' x '.join(axes)}), not {len(dims)}", stmt.layout.span,
                      f"{len(dims)} dimensions given", ctx,
                      help=f"write {len(axes)} sizes: {' x '.join(axes)}")
        return Shape(dims, axes)

    def param_decl(self, stmt: ast.ParamDecl, ctx: Ctx) -> None:
        """A learned value, named like a labelled layer; the current value flows past it."""
        shape = self.declared_shape(stmt, "a parameter", ctx)
        init = stmt.init or ast.Call("zeros", (), stmt.span, stmt.span)
        specs = _PARAM_INITS.get(init.name)
        if specs is None:
            close = difflib.get_close_matches(init.name, _PARAM_INITS, n=1)
            self.fail("E0205", f"`{init.name}` is not a parameter initialisation",
                      init.name_span, "unknown", ctx,
                      help=(f"did you mean `{close[0]}`? " if close else "") + "choose one of: "
                      + ", ".join(f"`{n}`" for n in _PARAM_INITS))
        given = self.bind_args(specs, init.args, init, ctx, f"`{init.name}`")
        args = Args((("shape", shape), ("init", init.name),
                     ("std", given.get("std", 1.0)), ("mean", given.get("mean", 0.0))))
        scope = self.labelled_scope(stmt.name, stmt.name_span, ctx)
        ctx.env.vars[stmt.name] = self.add(scope.path, OPS["parameter"], args, (), stmt.span, ctx)

    def output(self, stmt: ast.Output, cur, ctx: Ctx):
        value = self.current(cur, stmt.span, ctx, "output")
        self.record_output(ir.Output(stmt.name, value.node, stmt.span), ctx, self.main_outputs)
        return cur

    def record_output(self, out: ir.Output, ctx: Ctx, into: list) -> None:
        for other in self.main_outputs + self.outputs:
            if other.name == out.name:
                self.fail("E0216", f"output `{out.name}` is declared twice", out.span,
                          "declared again here", ctx, secondary=(Label(other.span, "first here"),),
                          help="give each output its own name")
        into.append(out)

    # ---- layers and blocks ----------------------------------------------------------

    def call(self, call: ast.Call, cur, ctx: Ctx, path: tuple[str, ...] | None):
        if call.name in OPS and call.name not in ir.SOURCE_OPS:
            return self.layer(OPS[call.name], call, cur, ctx, path)
        if call.name in self.program.blocks:
            return self.block_call(self.program.blocks[call.name], call, cur, ctx)
        known = [n for n in OPS if n not in ir.SOURCE_OPS] + list(self.program.blocks)
        close = difflib.get_close_matches(call.name, known, n=1)
        if self.program.failed_imports:  # likelier than a typo that happens to be near
            hint = "it may be defined in an import that failed (see the error above)"
        elif close:
            hint = f"did you mean `{close[0]}`?"
        else:
            hint = f"define it with `block {call.name}(...) {{ ... }}`, or import the file that does"
        self.fail("E0200", f"unknown layer or block `{call.name}`", call.name_span,
                  "not a layer or a block", ctx, help=hint)

    def layer(self, op: Op, call: ast.Call, cur, ctx: Ctx, path):
        if op.merge:
            keywords = tuple(a for a in call.args if isinstance(a, ast.Keyword))
            args = self.bind_args(op.args, keywords, call, ctx, f"`{op.name}`")
            inputs = self.operands(op, _without(call, keywords), ctx)
        else:
            call = _gather(op, call)
            args = self.bind_args(op.args, call.args, call, ctx, f"`{op.name}`")
            inputs = (self.current(cur, call.span, ctx, op.name).node,)
        if POISON.node in inputs:
            raise _Abort
        return self.add(path or ctx.scope.next_index(), op, args, inputs, call.span, ctx)

    def operands(self, op: Op, call: ast.Call, ctx: Ctx) -> tuple[str, ...]:
        if op.operands is not None and len(call.args) != op.operands:
            self.fail("E0203", f"`{op.name}` takes {op.operands} values, not {len(call.args)}",
                      call.span, f"{len(call.args)} given", ctx,
                      help=f"`{op.name}(a, b)`: " + op.rule.split(": ", 1)[-1])
        if len(call.args) < 2 or any(isinstance(a, ast.Keyword) for a in call.args):
            self.fail("E0203", f"`{op.name}` needs two or more values to merge", call.span,
                      "nothing to merge", ctx,
                      help=f"name them, `{op.name}(a, b)`, or give branches: "
                           f"`{op.name} {{ {{ ... }}; {{ ... }} }}`")
        return tuple(self.value_of(arg, ctx).node for arg in call.args)

    def block_call(self, block: ast.BlockDef, call: ast.Call, cur, ctx: Ctx):
        self.charge(call.span, ctx)
        if len(ctx.trace) >= MAX_BLOCK_DEPTH:
            raise SpecError(Diagnostic(
                "E0402", f"block calls nest more than {MAX_BLOCK_DEPTH} deep",
                Label(call.name_span, "called again here"), (Label(block.name_span, "defined here"),),
                notes=call_chain(ctx.trace),
                help="a block that calls itself needs a condition that stops it"))
        if cur is None:
            self.current(cur, call.span, ctx, block.name)
        env = Env()
        inner = Ctx(env, ctx.scope, cur, ctx.trace + (ir.Frame(block.name, call.span),),
                    ctx.train_only, ctx.role)
        specs = self.block_args.get(id(block))
        if specs is None:
            specs = self.block_args[id(block)] = tuple(
                Arg(p.name, "any", REQUIRED if p.default is None else p.default)
                for p in block.params)
        given = self.match_args(specs, call.args, call, ctx, f"block `{block.name}`")
        for param in block.params:
            if param.name in given:
                env.vars[param.name] = self.eval(given[param.name], ctx)
            else:  # defaults see the earlier parameters and `in`
                env.vars[param.name] = self.eval(param.default, inner)
        ctx.scope.calls.append(ir.Call(block.name, tuple(
            (p.name, _recorded(env.vars[p.name])) for p in block.params), call.span))
        self.use_scope(ctx.scope)
        return self.body(block.body, cur, inner)

    def add(self, path: tuple[str, ...], op: Op, args: Args, inputs: tuple[str, ...], span: Span,
            ctx: Ctx, role: str = "", condition: Span | None = None) -> Value:
        name = ".".join(path)
        self.check_unique(name, span, ctx)
        if len(self.graph) >= self.limits.max_nodes:
            raise SpecError(self.too_large(span, len(self.graph) + 1))
        scope = ctx.scope
        while len(scope.path) >= len(path):  # a labelled layer is named as its label's scope
            scope = scope.parent
        self.use_scope(scope)
        node = ir.Node(name, op.name, args, inputs, span, ctx.trace, ctx.train_only,
                       role or ctx.role, condition, ".".join(scope.path))
        ir.add_node(self.graph, node)
        infer_node(self.graph, node, self.sink)
        return Value(name)

    def check_unique(self, name: str, span: Span, ctx: Ctx) -> None:
        """A name is one layer or one scope of layers, never both: `s.weight` would be a
        module inside the layer `s`."""
        prefixes = [".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)]
        clash = next((p for p in prefixes if p in self.graph), None)
        if name in self.graph:
            message, first = f"two layers are named `{name}`", name
        elif name in self.scopes:
            message, first = f"`{name}` names both a layer and a group of layers", self.scopes[name]
        elif clash is not None:
            message, first = f"`{clash}` names both a layer and a group of layers", clash
            span = ctx.scope.label_span(clash.count(".") + 1) or span
        else:
            for prefix in prefixes:
                self.scopes.setdefault(prefix, name)
            return
        self.fail("E0209", message, span, "second one here", ctx,
                  secondary=(Label(ir.node(self.graph, first).span, "first one here"),),
                  help="give one of them its own label, e.g. `other: ...`")

    def too_large(self, span: Span, count: int) -> Diagnostic:
        return Diagnostic("E0403", f"the network expands to {count:,} layers or more, past the "
                          f"limit of {self.limits.max_nodes:,}", Label(span, "limit reached here"),
                          help="check repeat counts; raise the limit with `--max-nodes N`")

    def charge(self, span: Span, ctx: Ctx) -> None:
        """Count one step of work (a statement, a block call, a repeat iteration): a spec
        that adds no layers, such as a block calling itself twice, still ends."""
        self.work += 1
        if self.work > self.limits.max_work:
            raise SpecError(Diagnostic(
                "E0404", f"elaboration stopped after {self.limits.max_work:,} steps (statements, "
                "block calls and repeat iterations)", Label(span, "still working here"),
                notes=call_chain(ctx.trace),
                help="look for a block that calls itself more than once, or repeat counts far "
                     "larger than meant; `--max-nodes N` raises both limits"))

    # ---- structure ------------------------------------------------------------------

    def repeat(self, stmt: ast.Repeat, cur, ctx: Ctx, labelled: bool):
        count = self.eval_as(Arg("count", "int", minimum=0), stmt.count, ctx)
        for i in range(count):
            self.charge(stmt.span, ctx)
            env = Env(ctx.env)
            if stmt.index:
                env.vars[stmt.index] = i
            scope = ctx.scope.child(str(i), stmt.span, "iteration", i) if labelled else ctx.scope
            before = len(self.graph)
            cur = self.body(stmt.body, cur, ctx.derive(env=env, scope=scope))
            made = len(self.graph) - before
            if stmt.index is None and made == 0:
                break  # without an index every iteration does the same: nothing
            expected = len(self.graph) + made * (count - i - 1)
            if stmt.index is None and expected > self.limits.max_nodes:
                raise SpecError(self.too_large(stmt.span, expected))
        return cur

    def residual(self, stmt: ast.Residual, cur, ctx: Ctx):
        start = self.current(cur, stmt.span, ctx, "residual")
        if stmt.when is not None and not self.eval_as(Arg("when", "bool"), stmt.when, ctx):
            return self.body(stmt.body, start, ctx.derive(env=Env(ctx.env)))  # no shortcut
        body_out = self.body(stmt.body, start, ctx.derive(env=Env(ctx.env)))
        skip_out, skipped = start, None
        skip = stmt.skip
        if skip is not None and (skip.when is None or self.eval_as(
                Arg("when", "bool"), skip.when, ctx)):
            scope = (self.labelled_scope(skip.label, skip.span, ctx, "skip") if skip.label
                     else ctx.scope)
            skip_out = self.body(skip.body, start,
                                 ctx.derive(env=Env(ctx.env), scope=scope, role="skip"))
        elif skip is not None:
            skipped = skip.when.span  # a mismatch then says to fix this condition
        if POISON in (body_out, skip_out):
            raise _Abort
        keyword = Span(stmt.span.source, stmt.span.start, stmt.span.start + len("residual"))
        return self.add(ctx.scope.structural_name("add"), OPS["add"], Args(()),
                        (body_out.node, skip_out.node), keyword, ctx, role="residual",
                        condition=skipped)

    def if_stmt(self, stmt: ast.IfStmt, cur, ctx: Ctx):
        chosen = stmt.then if self.eval_as(Arg("if", "bool"), stmt.test, ctx) else stmt.otherwise
        if isinstance(chosen, ast.IfStmt):
            return self.if_stmt(chosen, cur, ctx)
        return cur if chosen is None else self.body(chosen, cur, ctx.derive(env=Env(ctx.env)))

    def branches(self, stmt: ast.Branches, cur, ctx: Ctx):
        if stmt.op in ("else", "skip"):
            self.fail("E0213", f"`{stmt.op}` must follow `}}` on the same line", stmt.op_span,
                      "read as a new statement", ctx,
                      help=f"write `}} {stmt.op} ...` with the closing brace on the same line")
        if stmt.op not in MERGE_OPS:
            self.fail("E0213", f"`{stmt.op} {{ ... }}` is not a merge", stmt.op_span,
                      "only merge ops take branches", ctx,
                      help="branches are merged by " + ", ".join(f"`{m}`" for m in MERGE_OPS))
        start = self.current(cur, stmt.span, ctx, stmt.op)
        outs = []
        for branch in stmt.branches:
            scope = (self.labelled_scope(branch.label, branch.span, ctx, "branch")
                     if branch.label else ctx.scope)
            inner = ctx.derive(env=Env(ctx.env), scope=scope)
            if isinstance(branch.body, ast.Body):
                outs.append(self.body(branch.body, start, inner))
            else:
                path = scope.path if branch.label else None
                outs.append(self.stmt_call(branch.body, start, inner, path))
        if POISON in outs:
            raise _Abort
        defaults = Args(tuple((arg.name, arg.default) for arg in OPS[stmt.op].args))
        return self.add(ctx.scope.structural_name(stmt.op), OPS[stmt.op], defaults,
                        tuple(o.node for o in outs), stmt.op_span, ctx)

    def stmt_call(self, call: ast.Call, cur, ctx: Ctx, path):
        try:
            return self.call(call, cur, ctx, path)
        except _Abort:
            return POISON

    def aux(self, stmt: ast.Aux, cur, ctx: Ctx, label: str | None):
        given = self.bind_args(AUX_ARGS, stmt.args, stmt, ctx, "`aux`")
        start = self.current(cur, stmt.span, ctx, "aux")
        name = label or f"aux{len(self.outputs) + 1}"
        inner = ctx.derive(env=Env(ctx.env), train_only=ctx.train_only or given["train_only"])
        out = self.body(stmt.body, start, inner)
        if out is not POISON:
            self.record_output(ir.Output(name, out.node, stmt.span, given["train_only"],
                                         given["weight"]), ctx, self.outputs)
        return cur

    def current(self, cur, span: Span, ctx: Ctx, what: str) -> Value:
        if cur is None:
            self.fail("E0211", f"`{what}` has no incoming value", span, "nothing flows in here",
                      ctx, help="declare an input first: `input image: 3 x 224 x 224`")
        if cur is POISON:
            raise _Abort
        return cur

    # ---- arguments ------------------------------------------------------------------

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
        value = self.eval(expr, ctx)
        checked = _coerce(spec, value)
        if checked is _BAD_TYPE:
            self.fail("E0205", f"`{spec.name}` must be {_KINDS[spec.kind]}, not "
                      f"{_describe(value)}", expr.span, f"{_describe(value)} given", ctx,
                      help=_type_help(spec, value))
        problem = _out_of_range(spec, checked)
        if problem:
            shown = f'"{checked}"' if isinstance(checked, str) else _format(checked)
            self.fail("E0206", f"`{spec.name}` {problem}" + (f" for {what}" if what else ""),
                      expr.span, f"{shown} given", ctx)
        return checked

    # ---- expressions ----------------------------------------------------------------

    def try_eval(self, expr, ctx: Ctx):
        try:
            return self.eval(expr, ctx)
        except _Abort:
            return UNKNOWN

    def value_of(self, expr, ctx: Ctx) -> Value:
        value = self.eval(expr, ctx)
        if not isinstance(value, Value):
            self.fail("E0218", f"`{expr.span.text}` is {_describe(value)}, not a value in the "
                      "network", expr.span, "not a layer's output", ctx,
                      help="label a statement to name its output: `features: conv(64, 3)`")
        if value is POISON:
            raise _Abort
        return value

    def eval(self, expr, ctx: Ctx):
        method = _EVALUATORS[type(expr)]
        value = method(self, expr, ctx)
        if value is UNKNOWN:
            raise _Abort
        return value

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
        shape = ir.shape(self.graph, value.node)
        if shape is None:
            raise _Abort  # the layer that made it already has an error
        axes = getattr(shape, "axes", default_axes(len(shape)))
        attributes = {} if axes == "C" else {axis_name(a): i for i, a in enumerate(axes)}
        if expr.attr in attributes:
            return shape[attributes[expr.attr]]
        if expr.attr == "features":
            return math.prod(shape)
        known = ", ".join(list(attributes) + ["features"])
        self.fail("E0217", f"a {show(shape)} value has no `{expr.attr}`", expr.span,
                  "unknown attribute", ctx, help=f"available: {known}")

    def eval_index(self, expr: ast.Index, ctx: Ctx):
        items = self.eval(expr.value, ctx)
        if not isinstance(items, tuple):
            self.type_error(expr, f"only a tuple has items, not {_describe(items)}", ctx)
        at = self.eval(expr.index, ctx)
        if not _is_int(at):
            self.type_error(expr.index, f"an index is an integer, not {_describe(at)}", ctx)
        if not -len(items) <= at < len(items):
            self.fail("E0212", f"index {at} is outside a {len(items)}-tuple", expr.index.span,
                      "no such item", ctx, help=f"items are numbered 0 to {len(items) - 1} "
                      "(or -1 for the last)")
        return items[at]

    def eval_tuple(self, expr: ast.TupleExpr, ctx: Ctx):
        return tuple(self.eval(item, ctx) for item in expr.items)

    def eval_conditional(self, expr: ast.Conditional, ctx: Ctx):
        test = self.eval_as(Arg("condition", "bool"), expr.test, ctx)
        return self.eval(expr.then if test else expr.otherwise, ctx)

    def eval_unary(self, expr: ast.Unary, ctx: Ctx):
        operand = self.eval(expr.operand, ctx)
        if expr.op == "not":
            if isinstance(operand, bool):
                return not operand
        elif _is_number(operand):
            return -operand
        self.type_error(expr, f"`{expr.op}` cannot apply to {_describe(operand)}", ctx)

    def eval_binary(self, expr: ast.Binary, ctx: Ctx):
        left = self.eval(expr.left, ctx)
        if expr.op in ("and", "or"):
            if not isinstance(left, bool):
                self.type_error(expr, f"`{expr.op}` needs true or false, not {_describe(left)}", ctx)
            if left == (expr.op == "or"):
                return left
            right = self.eval(expr.right, ctx)
            if not isinstance(right, bool):
                self.type_error(expr, f"`{expr.op}` needs true or false, not {_describe(right)}",
                                ctx)
            return right
        right = self.eval(expr.right, ctx)
        if expr.op in ("==", "!="):
            return (left == right and type(left) is type(right)) == (expr.op == "==")
        if not (_is_number(left) and _is_number(right)):
            self.type_error(expr, f"`{expr.op}` cannot combine {_describe(left)} and "
                            f"{_describe(right)}", ctx)
        if expr.op in ("/", "//", "%") and right == 0:
            self.fail("E0212", "division by zero", expr.right.span, "is zero", ctx)
        result = _ARITHMETIC[expr.op](left, right)
        if isinstance(result, int) and abs(result) > 10 ** 15:
            self.fail("E0212", "number too large", expr.span, f"about {float(result):.3g}", ctx)
        return result

    def eval_func_call(self, expr: ast.FuncCall, ctx: Ctx):
        self.charge(expr.span, ctx)
        if expr.name in BUILTIN_FUNCTIONS:
            return self.builtin(expr, ctx)
        function = self.program.functions.get(expr.name)
        if function is None:
            known = list(BUILTIN_FUNCTIONS) + list(self.program.functions)
            close = difflib.get_close_matches(expr.name, known, n=1)
            self.fail("E0207", f"`{expr.name}` is not a function", expr.name_span,
                      "not defined", ctx, help=f"did you mean `{close[0]}`?" if close else
                      f"define it: `def {expr.name}(x) = ...`; built in: "
                      + ", ".join(BUILTIN_FUNCTIONS))
        if self.function_depth >= MAX_BLOCK_DEPTH:
            self.fail("E0402", f"function calls nest more than {MAX_BLOCK_DEPTH} deep",
                      expr.name_span, "called again here", ctx,
                      secondary=(Label(function.name_span, "defined here"),),
                      help="a function that calls itself needs a condition that stops it")
        specs = tuple(Arg(p.name, "any", REQUIRED if p.default is None else p.default)
                      for p in function.params)
        given = self.match_args(specs, expr.args, expr, ctx, f"function `{function.name}`")
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
            self.fail("E0203", f"`{name}` takes " + ("two or more numbers" if many else
                      "one number") + f", not {len(expr.args)}", expr.span, "here", ctx,
                      help=f"`{name}(a, b)`" if many else f"`{name}(x)`")
        values = [self.eval(a, ctx) for a in expr.args]
        for arg, value in zip(expr.args, values):
            if not _is_number(value) or not math.isfinite(value):
                self.type_error(arg, f"`{name}` needs a finite number, not {_describe(value)}",
                                ctx)
        return _BUILTINS[name](*values)

    def type_error(self, expr, message: str, ctx: Ctx):
        self.fail("E0212", message, expr.span, "in this expression", ctx)

    # ---- diagnostics ----------------------------------------------------------------

    def fail(self, code: str, message: str, span: Span, label: str, ctx: Ctx, *,
             secondary: tuple[Label, ...] = (), help: str | None = None, abort: bool = True):
        notes = call_chain(ctx.trace)
        self.sink.add(Diagnostic(code, message, Label(span, label), secondary, notes, help))
        if abort:
            raise _Abort


_EVALUATORS = {
    ast.Literal: _Elaborator.eval_literal, ast.Name: _Elaborator.eval_name,
    ast.InputRef: _Elaborator.eval_input, ast.Attribute: _Elaborator.eval_attribute,
    ast.TupleExpr: _Elaborator.eval_tuple, ast.Conditional: _Elaborator.eval_conditional,
    ast.Unary: _Elaborator.eval_unary, ast.Binary: _Elaborator.eval_binary,
    ast.FuncCall: _Elaborator.eval_func_call, ast.Index: _Elaborator.eval_index,
}

# As Python's: `int` truncates towards zero, `round` halves to even (`round(2.5)` is 2);
# `int`, `round`, `floor` and `ceil` give integers, `min`, `max` and `abs` keep the type.
_BUILTINS = {"int": int, "round": round, "floor": math.floor, "ceil": math.ceil,
             "min": min, "max": max, "abs": abs}
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

# ---- argument types ---------------------------------------------------------------------

_RANKS = (1, 2, 3, 4)
_INIT_ARGS = (Arg("std", "float", 1.0, minimum=0), Arg("mean", "float", 0.0))
_PARAM_INITS = {"zeros": (), "ones": (), "normal": _INIT_ARGS, "trunc_normal": _INIT_ARGS}


_SCOPE_KINDS = {ast.Repeat: "repeat", ast.Residual: "residual", ast.Branches: "merge",
                ast.Aux: "aux", ast.Group: "group"}


def _recorded(value):
    """A block argument as the scope tree keeps it: a value in the network by its node."""
    return value.node if isinstance(value, Value) else value


def _without(call: ast.Call, keywords) -> ast.Call:
    return ast.Call(call.name, tuple(a for a in call.args if a not in keywords), call.span,
                    call.name_span)


def _gather(op: Op, call: ast.Call) -> ast.Call:
    """`permute(1, 2, 0)`: an op whose last argument is a list of axes takes the trailing
    positional arguments as one tuple."""
    if not op.args or op.args[-1].kind not in ("axes", "dims"):
        return call
    first = len(op.args) - 1
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
          "axis": "an axis number (0 the first after the batch, -1 the last)",
          "axes": "axis numbers: `1, 2, 0`", "dims": "sizes: `196, 768` (one may be -1)",
          "any": "a value"}


def _is_number(value) -> bool:
    return type(value) is int or type(value) is float  # not bool, a subclass of int


def _is_int(value) -> bool:
    return type(value) is int


def _coerce(spec: Arg, value):
    kind = spec.kind
    if kind == "any":
        return value
    if kind in ("int", "axis"):
        return value if _is_int(value) else _BAD_TYPE
    if kind == "float":
        return float(value) if _is_number(value) else _BAD_TYPE
    if kind == "bool":
        return value if isinstance(value, bool) else _BAD_TYPE
    if kind == "str":
        return value if isinstance(value, str) else _BAD_TYPE
    if kind == "pad" and value in ("same", "valid"):
        return value
    if kind in ("axes", "dims"):
        items = value if isinstance(value, tuple) else (value,)
        return items if items and all(_is_int(v) for v in items) else _BAD_TYPE
    if _is_int(value):
        return value
    lengths = (2,) if kind == "pair" else (1, 2, 3)
    if isinstance(value, tuple) and len(value) in lengths and all(_is_int(v) for v in value):
        return value
    return _BAD_TYPE


def _out_of_range(spec: Arg, value) -> str | None:
    if spec.choices and value not in spec.choices:
        return "must be one of " + ", ".join(f'"{c}"' for c in spec.choices)
    numbers = value if isinstance(value, tuple) else (value,)
    if not all(_is_number(n) for n in numbers):
        return None
    if not all(math.isfinite(n) for n in numbers):
        return "must be a finite number"
    if spec.minimum is not None and any(n < spec.minimum for n in numbers):
        return f"must be at least {_format(spec.minimum)}"
    if spec.maximum is not None and any(n > spec.maximum for n in numbers):
        return f"must be at most {_format(spec.maximum)}"
    if spec.below is not None and any(n >= spec.below for n in numbers):
        return f"must be less than {_format(spec.below)}"
    return None


def _type_help(spec: Arg, value) -> str | None:
    if spec.kind == "int" and isinstance(value, float):
        return "use `//` for integer division, or write a whole number"
    if spec.kind == "str":
        return "choose one of: " + ", ".join(f'"{c}"' for c in spec.choices)
    if spec.name == "dimension":
        return "write an input as C x H x W, e.g. `input image: 3 x 224 x 224`"
    return None


def _format(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else str(value)
    return str(value)


def _describe(value) -> str:
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
    return "a value"
