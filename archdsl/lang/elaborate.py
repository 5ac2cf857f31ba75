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

This module runs the statements; expressions are evaluated in `evaluate`, call arguments
bound and checked in `arguments`, nodes added (under unique names, within the limits) in
`builder`, and the types they share (`Value`, `Env`, `Scope`, `Ctx`) live in `context`;
`replay` copies a block expansion made before instead of running it again.
"""
from __future__ import annotations

import dataclasses

import difflib
import re
import sys
from dataclasses import dataclass

import networkx as nx

from .. import ir
from ..diagnostics import Diagnostic, Label, Sink, SpecError
from ..ops import MERGE_OPS, OPS, REQUIRED, Arg, Args, Op
from .replay import BlockMemo
from .stacks import Stacks, is_pop
from .ties import Pending, resolve_ties
from . import syntax as ast
from .arguments import gather_axes
from .builder import GraphBuilder
from .context import (POISON, UNKNOWN, Abort, Ctx, Env, Scope, Value, call_chain,
                      describe_value, is_number)
from .declarations import Declarations
from .evaluate import Evaluator
from .load import Program
from .names import is_reserved, reserved_help
from ..source import Span

# A computed label may also hold `-`, as torchvision's RegNet names its blocks `block1-0`.
_COMPUTED_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*|[0-9]+")
MAX_BLOCK_DEPTH = 100  # nested block calls; deeper means a block calls itself without end
DEFAULT_MAX_NODES = 50_000  # far above any published network; reached in a few seconds
WORK_PER_NODE = 3
AUX_ARGS = (Arg("weight", "float", 1.0, minimum=0), Arg("train_only", "bool", True))


@dataclass(frozen=True)
class Limits:
    """How far a spec may expand: layers, and steps of work (statements run, block calls,
    repeat iterations; WORK_PER_NODE per layer allowed)."""
    max_nodes: int = DEFAULT_MAX_NODES

    @property
    def max_work(self) -> int:
        return WORK_PER_NODE * self.max_nodes


def elaborate(program: Program, network: ast.NetworkDef, sink: Sink, settings: dict | None = None,
              inputs: dict | None = None, limits: Limits = Limits(),
              memo: BlockMemo | None = None) -> nx.DiGraph:
    """Expand `network` into the IR. `settings` override network parameters by name;
    `inputs` override input shapes by input name. `memo` holds the block expansions other
    elaborations of this program recorded (a search space's members share one).

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
        elaborator = _Elaborator(program, sink, limits, memo)
        return elaborator.network(network, settings or {}, inputs or {})
    except SpecError as error:
        sink.add(error.diagnostic)
        root = Scope(span=network.span).record()
        return ir.new_graph(ir.Network(network.name, network.span.source.path,
                                       scopes={"": root}, work=elaborator.builder.work))
    finally:
        sys.setrecursionlimit(limit)


class _Elaborator(Declarations):
    """Runs the statements of a network and of the blocks it calls: one handler per
    statement. Nodes are added by the builder, expressions evaluated by the evaluator,
    call arguments bound by its binder (`arguments`)."""

    def __init__(self, program: Program, sink: Sink, limits: Limits,
                 memo: BlockMemo | None = None):
        super().__init__(sink)
        self.program = program
        self.memo = memo if memo is not None else BlockMemo()
        self.builder = GraphBuilder(sink, limits.max_nodes, limits.max_work)
        self.evaluator = Evaluator(program, sink, self.builder.charge,
                                   lambda node: ir.shape(self.builder.graph, node))
        self.arguments = self.evaluator.arguments
        self.input_overrides: dict = {}
        self.outputs: list[ir.Output] = []
        self.main_outputs: list[ir.Output] = []
        self.declared_input = False
        self.declarations: list = []  # (scope, label, span, ctx) of each `declare`d label
        self.ties: list[Pending] = []  # the `tie` statements, resolved once all layers exist
        self.size_values: dict = {}  # --set values of input size symbols
        self.sizes: dict = {}  # size symbol -> (value, bound, span) as the inputs declare
        self.inputs: list[str] = []
        self.params: dict = {}
        self.captions: dict[str, str] = {}  # name -> the author's words (`as "conv2_x"`)
        self.block_args: dict[int, tuple[Arg, ...]] = {}  # id(BlockDef) -> its parameters
        self.stacks = Stacks(sink, self.evaluator)

    # ---- network ------------------------------------------------------------------

    def network(self, net: ast.NetworkDef, settings: dict, inputs: dict) -> nx.DiGraph:
        self.errors_before = self.sink.reported
        env = Env()
        ctx = Ctx(env, Scope(span=net.span), None)
        self.builder.use_scope(ctx.scope)
        params = {}
        names = {p.name for p in net.params}
        self.size_values = {k: v for k, v in settings.items() if k not in names}
        for param in net.params:
            if param.name in settings:
                value = settings[param.name]
            elif param.default is not None:
                value = self.evaluator.try_eval(param.default, ctx)
            else:
                self.fail("E0203", f"network parameter `{param.name}` has no default",
                          param.span, "needs a value", ctx,
                          help=f"give it a default (`{param.name} = ...`) or pass "
                               f"`--set {param.name}=VALUE`", abort=False)
                value = UNKNOWN
            params[param.name] = value
            env.vars[param.name] = value
        self.params = {k: v for k, v in params.items() if v is not UNKNOWN}
        self.builder.graph = ir.new_graph(ir.Network(net.name, net.span.source.path, self.params))
        self.input_overrides = inputs
        title = self.caption_text(net.caption, ctx) if net.caption else None
        final = self.body(net.body, None, ctx)
        self.check_declarations()
        return self.finish(net, final, title)

    def finish(self, net: ast.NetworkDef, final, title: str | None = None) -> nx.DiGraph:
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
        graph = self.builder.graph
        ir.set_network(graph, ir.Network(
            net.name, net.span.source.path, self.params, tuple(self.inputs),
            tuple(self.main_outputs + self.outputs), self.builder.scope_tree(), self.builder.work,
            {name: (value, bound) for name, (value, bound, _) in self.sizes.items()},
            caption=title, captions=dict(self.captions)))
        if self.ties and self.sink.reported == self.errors_before:  # on the finished tree: a
            # tie may name layers defined after it (not after errors: its layer may be missing)
            ties = resolve_ties(graph, self.ties, self)
            ir.set_network(graph, dataclasses.replace(ir.network(graph), ties=ties))
        return graph

    # ---- statements -----------------------------------------------------------------

    def body(self, body: ast.Body, cur, ctx: Ctx):
        for stmt in body.stmts:
            cur = self.stmt(stmt, cur, ctx)
        return cur

    def stmt(self, stmt, cur, ctx: Ctx):
        self.builder.charge(stmt.span, ctx)
        try:
            if isinstance(stmt, ast.Labelled):
                return self.labelled(stmt, cur, ctx)
            if isinstance(stmt, ast.Let):
                ctx.env.vars[stmt.name] = (
                    self.stacks.pop(stmt.value, ctx) if is_pop(stmt.value, self.program)
                    else self.evaluator.try_eval(stmt.value, ctx))
                return cur
            if isinstance(stmt, ast.Push):
                value = cur if cur is POISON else self.current(cur, stmt.span, ctx, "push")
                self.stacks.push(stmt, value, ctx)
                return cur
            if isinstance(stmt, ast.InputDecl):
                return self.input_decl(stmt, ctx)
            if isinstance(stmt, (ast.ParamDecl, ast.BufferDecl)):
                ctx.env.vars[stmt.name] = POISON  # its readers stay quiet if it fails
                (self.param_decl if isinstance(stmt, ast.ParamDecl) else self.buffer_decl)(
                    stmt, ctx)
                return cur
            if isinstance(stmt, ast.Output):
                return self.output(stmt, cur, ctx)
            if isinstance(stmt, ast.IfStmt):
                return self.if_stmt(stmt, cur, ctx)
            if isinstance(stmt, ast.Declare):
                self.declare(stmt, ctx)
                return cur
            if isinstance(stmt, ast.Tie):
                self.ties.append(Pending(stmt, ctx.scope.path, ctx))
                return cur
            if isinstance(stmt, ast.FromValue):
                source = ast.InputRef(stmt.span) if stmt.name == "in" else ast.Name(stmt.name,
                                                                                    stmt.span)
                return self.evaluator.value_of(source, ctx)
            return self.action(stmt, cur, ctx, labelled=False)
        except Abort:
            return POISON

    def labelled(self, stmt: ast.Labelled, cur, ctx: Ctx):
        label = stmt.label
        try:
            label = self.label_text(stmt, ctx)
            kind = self.scope_kind(stmt.action)
            *groups, last = label.split(".")
            outer = ctx
            for part in groups:  # `"resnets.{j}"`: inside the group `resnets`, shared by the
                # statements that name it, as transformers' and diffusers' ModuleLists are
                outer = outer.derive(scope=self.labelled_scope(part, stmt.label_span, outer))
            inner = ctx.derive(scope=self.labelled_scope(last, stmt.label_span, outer, kind))
            if stmt.caption is not None:
                self.captions[inner.scope.name] = self.caption_text(stmt.caption, ctx)
            out = self.action(stmt.action, cur, inner, labelled=True)
        except Abort:
            ctx.env.vars[label] = POISON  # its readers stay quiet: the error is reported
            raise
        if out is POISON:
            ctx.env.vars[label] = POISON  # its readers stay quiet: the error is reported
        elif isinstance(out, Value) and not isinstance(stmt.action, ast.Aux) and "." not in label:
            ctx.env.vars[label] = out
        return out

    def caption_text(self, caption: ast.Caption, ctx: Ctx) -> str:
        """A caption's words, its {expressions} filled in (text and numbers)."""
        return self.filled(caption.template, ctx, (int, float, str),
                           ("a caption is made of text and numbers", "not text or a number",
                            'fill in a number or text, e.g. `as "conv{i + 2}_x"`'))

    def filled(self, template: ast.Template, ctx: Ctx, kinds: tuple, refusal: tuple) -> str:
        """A template's text, its expressions evaluated; E0221 with `refusal` (message,
        label, help) for a value that is none of `kinds`."""
        pieces = []
        for part in template.parts:
            value = self.evaluator.eval(part, ctx)
            if isinstance(value, bool) or not isinstance(value, kinds):
                message, label, help = refusal
                self.fail("E0221", f"{message}, not {describe_value(value)}", part.span, label,
                          ctx, help=help)
            pieces.append(format(value, "g") if isinstance(value, float) else str(value))
        return "".join(pieces)

    def label_text(self, stmt: ast.Labelled, ctx: Ctx) -> str:
        """The label as a name: a computed label's expressions are filled in."""
        if stmt.template is None:
            return stmt.label
        label = self.filled(stmt.template, ctx, (int, str),
                            ("a label is made of text and integers", "not text or an integer",
                             "compute an integer, e.g. `{i + 1}` or `{c // 2}`"))
        if not all(_COMPUTED_LABEL.fullmatch(part) for part in label.split(".")):
            self.fail("E0221", f'the computed label "{label}" is neither a name nor a number',
                      stmt.label_span, "computed here", ctx,
                      help="a computed label is letters, digits, `_` and `-`, not starting "
                           "with a digit, or a number; a path of them, `resnets.{j}`, puts "
                           "the layer inside a group")
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
        if isinstance(action, ast.IfStmt):  # a labelled `if`: the chosen body in its scope
            return self.if_stmt(action, cur, ctx)
        raise TypeError(f"unknown statement {action!r}")

    def declare(self, stmt: ast.Declare, ctx: Ctx) -> None:
        """Reserve the state_dict places of labels defined later in this scope."""
        for name, span in zip(stmt.names, stmt.name_spans):
            if name in ctx.scope.declared:
                self.fail("E0208", f"`{name}` is declared twice", span, "again here", ctx,
                          secondary=(Label(ctx.scope.declared[name], "first here"),),
                          abort=False)
                continue
            ctx.scope.declared[name] = span
            self.declarations.append((ctx.scope, name, span, ctx))
        self.builder.use_scope(ctx.scope)

    def check_declarations(self) -> None:
        """Every declared label is defined in its scope, by a layer or a group of them
        (unless an error came first: the statement that would define it may have failed)."""
        if self.sink.reported != self.errors_before:
            return
        for scope, name, span, ctx in self.declarations:
            path = ".".join(scope.path + (name,))
            if path not in self.builder.graph and path not in self.builder.scopes:
                self.fail("E0222", f"`{name}` is declared but nothing in its scope defines it",
                          span, "declared here", ctx, abort=False,
                          help=f"define it after the declaration, `{name}: ...`, in the same "
                               "block or group, or remove it from `declare`")

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
        if call.name in self.program.blocks:  # a block of the spec shadows a layer (W0200)
            return self.block_call(self.program.blocks[call.name], call, cur, ctx, path is not None)
        if call.name in OPS and call.name not in ir.SOURCE_OPS:
            return self.layer(OPS[call.name], call, cur, ctx, path)
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
            inputs, args = self.operands(op, call, cur, ctx)
        else:
            call = gather_axes(op, call)
            args = self.arguments.bind_args(op.args, call.args, call, ctx, f"`{op.name}`")
            inputs = (self.current(cur, call.span, ctx, op.name).node,)
        if POISON.node in inputs:
            raise Abort
        return self.builder.add(path or ctx.scope.next_index(), op, args, inputs, call.span, ctx)

    def operands(self, op: Op, call: ast.Call, cur, ctx: Ctx) -> tuple[tuple[str, ...], Args]:
        """A merge's values and arguments. Its required arguments come first by position
        (einsum's equation), the rest by keyword; a number may stand for one operand of an
        op that takes `constants` (`sub(1, x)`), and one operand alone of such an op or of
        one that takes two values is taken with the current value as the first (`add(1e-6)`,
        `div(norm)`, `cast_like(in)`, `matmul(w)`)."""
        positional = [a for a in call.args if not isinstance(a, ast.Keyword)]
        keywords = tuple(a for a in call.args if isinstance(a, ast.Keyword))
        leading = sum(1 for a in op.args if a.default is REQUIRED)
        args = self.arguments.bind_args(op.args, tuple(positional[:leading]) + keywords, call,
                                        ctx, f"`{op.name}`")
        given = positional[leading:]
        values, numbers = [], []
        if op.constants and args["constant"] is not None:  # `add(x, constant = 1)`
            numbers.append((len(given) if not args["constant_first"] else 0, args["constant"]))
        for position, expr in enumerate(given):
            if op.constants and is_number(self.evaluator.eval(expr, ctx)):
                numbers.append((position, self.arguments.eval_as(_CONSTANT, expr, ctx)))
            else:
                values.append(self.evaluator.value_of(expr, ctx).node)
        if len(given) == 1 and (op.constants or op.operand_counts == (2,)):
            values.insert(0, self.current(cur, call.span, ctx, op.name).node)
            numbers = [(1, n) for _, n in numbers]
        self.count_operands(op, call, ctx, len(values), len(numbers))
        if numbers:
            (position, number), = numbers
            if max(op.operand_counts or (2,)) > 2 and position != len(given) - 1:
                self.fail("E0203", f"a number may stand only for the last operand of "
                          f"`{op.name}`", call.span, "a number here", ctx,
                          help=f"`{op.name}`: " + op.rule.split(": ", 1)[0])
            args = Args(tuple((k, number if k == "constant" else position == 0
                               if k == "constant_first" else v) for k, v in args))
        return tuple(values), args

    def count_operands(self, op: Op, call: ast.Call, ctx: Ctx, values: int, numbers: int):
        if numbers > 1:
            self.fail("E0203", f"`{op.name}` takes one number at most, not {numbers}",
                      call.span, f"{numbers} numbers", ctx,
                      help="combine the numbers first: `let c = a * b`")
        given = values + numbers
        counts = op.operand_counts
        if counts is not None and given not in counts:
            self.fail("E0203", f"`{op.name}` takes {' or '.join(map(str, counts))} values, "
                      f"not {given}",
                      call.span, f"{given} given", ctx,
                      help=f"`{op.name}(a, b)`: " + op.rule.split(": ", 1)[-1])
        if given < 2 or not values:
            alone = f", or one, taken with the current value: `{op.name}(b)`" \
                if op.constants or op.operand_counts == (2,) else ""
            self.fail("E0203", f"`{op.name}` needs two or more values to merge", call.span,
                      "nothing to merge", ctx,
                      help=f"name them, `{op.name}(a, b)`{alone}, or give branches: "
                           f"`{op.name} {{ {{ ... }}; {{ ... }} }}`")

    def block_call(self, block: ast.BlockDef, call: ast.Call, cur, ctx: Ctx, fresh=False):
        """Expand a block call (`fresh`: labelled, in a scope of its own; see replay)."""
        self.builder.charge(call.span, ctx)
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
        given = self.arguments.match_args(specs, call.args, call, ctx, f"block `{block.name}`")
        for param in block.params:
            if param.name in given:
                env.vars[param.name] = self.evaluator.eval(given[param.name], ctx)
            else:  # defaults see the earlier parameters and `in`
                env.vars[param.name] = self.evaluator.eval(param.default, inner)
        record = ir.Call(block.name, tuple((p.name, _recorded(env.vars[p.name]))
                                           for p in block.params), call.span, block.caption)
        return self.memo.expand(self, (block, env.vars, cur, ctx, fresh), record,
                                lambda: self.body(block.body, cur, inner))

    # ---- structure ------------------------------------------------------------------

    def repeat(self, stmt: ast.Repeat, cur, ctx: Ctx, labelled: bool):
        count = self.arguments.eval_as(Arg("count", "int", minimum=0), stmt.count, ctx)
        for i in range(count):
            self.builder.charge(stmt.span, ctx)
            env = Env(ctx.env)
            if stmt.index:
                env.vars[stmt.index] = i
            scope = ctx.scope.child(str(i), stmt.span, "iteration", i) if labelled else ctx.scope
            before, stacked = len(self.builder.graph), self.stacks.ops
            cur = self.body(stmt.body, cur, ctx.derive(env=env, scope=scope))
            made = len(self.builder.graph) - before
            if stmt.index is None and made == 0 and stacked == self.stacks.ops:
                break  # without an index every iteration does the same: nothing
            expected = len(self.builder.graph) + made * (count - i - 1)
            if stmt.index is None:
                self.builder.check_size(stmt.span, expected)
        return cur

    def residual(self, stmt: ast.Residual, cur, ctx: Ctx):
        start = self.current(cur, stmt.span, ctx, "residual")
        when = Arg("when", "bool")
        if stmt.when is not None and not self.arguments.eval_as(when, stmt.when, ctx):
            return self.body(stmt.body, start, ctx.derive(env=Env(ctx.env)))  # no shortcut
        body_out = self.body(stmt.body, start, ctx.derive(env=Env(ctx.env)))
        skip_out, skipped = start, None
        skip = stmt.skip
        if skip is not None and (skip.when is None or
                                 self.arguments.eval_as(when, skip.when, ctx)):
            scope = (self.labelled_scope(skip.label, skip.span, ctx, "skip") if skip.label
                     else ctx.scope)
            skip_out = self.body(skip.body, start,
                                 ctx.derive(env=Env(ctx.env), scope=scope, role="skip"))
        elif skip is not None:
            skipped = skip.when.span  # a mismatch then says to fix this condition
        if POISON in (body_out, skip_out):
            raise Abort
        keyword = Span(stmt.span.source, stmt.span.start, stmt.span.start + len("residual"))
        return self.builder.add(ctx.scope.structural_name("add"), OPS["add"], OPS["add"].defaults(),
                                (body_out.node, skip_out.node), keyword, ctx, role="residual",
                                condition=skipped)

    def if_stmt(self, stmt: ast.IfStmt, cur, ctx: Ctx):
        test = self.arguments.eval_as(Arg("if", "bool"), stmt.test, ctx)
        chosen = stmt.then if test else stmt.otherwise
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
            raise Abort
        defaults = Args(tuple((arg.name, arg.default) for arg in OPS[stmt.op].args))
        return self.builder.add(ctx.scope.structural_name(stmt.op), OPS[stmt.op], defaults,
                                tuple(o.node for o in outs), stmt.op_span, ctx)

    def stmt_call(self, call: ast.Call, cur, ctx: Ctx, path):
        try:
            return self.call(call, cur, ctx, path)
        except Abort:
            return POISON

    def aux(self, stmt: ast.Aux, cur, ctx: Ctx, label: str | None):
        given = self.arguments.bind_args(AUX_ARGS, stmt.args, stmt, ctx, "`aux`")
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
            raise Abort
        return cur


# ---- tables and helpers -----------------------------------------------------------------

_CONSTANT = Arg("constant", "float")  # a number standing for an operand: `sub(1, x)`


_SCOPE_KINDS = {ast.Repeat: "repeat", ast.Residual: "residual", ast.Branches: "merge",
                ast.Aux: "aux", ast.Group: "group"}


def _recorded(value):
    """A block argument as the scope tree keeps it: a value in the network by its node."""
    return value.node if isinstance(value, Value) else value
