"""The graph an elaboration builds: each node added under a name that no other layer or
scope holds, its shape inferred at once (expressions may read it), the scopes holding
layers or block calls recorded in the scope tree, and the work done counted against the
limits, so that any spec ends.
"""
from __future__ import annotations

import networkx as nx

from .. import ir
from ..diagnostics import Diagnostic, Label, Sink, SpecError
from ..ops import Args, Op
from ..passes.infer_shapes import infer_node
from .context import Ctx, Reporter, Scope, Value, call_chain
from ..source import Span


class GraphBuilder(Reporter):
    """Adds the nodes of one network, at most `max_nodes` of them in `max_work` steps."""

    def __init__(self, sink: Sink, max_nodes: int, max_work: int):
        super().__init__(sink)
        self.max_nodes, self.max_work = max_nodes, max_work
        self.graph: nx.DiGraph = None  # made once the network's parameters are known
        self.work = 0  # statements, block calls and repeat iterations so far: see charge()
        self.scopes: dict[str, str] = {}  # each name that holds layers -> its first layer
        self.opened: dict[str, Scope] = {}  # the scope tree: scopes holding layers or calls
        self.log: list[str] = []  # the names of the nodes, in the order added

    def add(self, path: tuple[str, ...], op: Op, args: Args, inputs: tuple[str, ...], span: Span,
            ctx: Ctx, role: str = "", condition: Span | None = None) -> Value:
        name = ".".join(path)
        self.check_unique(name, span, ctx)
        self.check_size(span, len(self.graph) + 1)
        scope = ctx.scope
        while len(scope.path) >= len(path):  # a labelled layer is named as its label's scope
            scope = scope.parent
        self.use_scope(scope)
        node = ir.Node(name, op.name, args, inputs, span, ctx.trace, ctx.train_only,
                       role or ctx.role, condition, ".".join(scope.path))
        ir.add_node(self.graph, node)
        self.log.append(name)
        infer_node(self.graph, node, self.sink)
        return Value(name)

    def add_copy(self, node: ir.Node, data: dict, ctx: Ctx) -> None:
        """A node copied from a recorded expansion of a block (lang/replay.py): its shape
        and other data come with it."""
        self.check_unique(node.name, node.span, ctx)
        self.check_size(node.span, len(self.graph) + 1)
        ir.add_node(self.graph, node)
        self.graph.nodes[node.name].update(data)
        self.log.append(node.name)

    def check_unique(self, name: str, span: Span, ctx: Ctx) -> None:
        """A name is one layer or one scope of layers, never both: `s.weight` would be a
        module inside the layer `s`."""
        prefixes = [name[:i] for i, char in enumerate(name) if char == "."]
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

    def use_scope(self, scope: Scope) -> None:
        """Record `scope` and the scopes around it in the scope tree, parents first."""
        chain = []
        while scope is not None and scope.name not in self.opened:
            chain.append(scope)
            scope = scope.parent
        for opened in reversed(chain):
            self.opened[opened.name] = opened

    def scope_tree(self) -> dict[str, ir.Scope]:
        return {path: scope.record() for path, scope in self.opened.items()}

    def check_size(self, span: Span, count: int) -> None:
        """Stop elaborating if the network is to hold `count` layers, past the limit."""
        if count > self.max_nodes:
            raise SpecError(Diagnostic(
                "E0403", f"the network expands to {count:,} layers or more, past the limit of "
                f"{self.max_nodes:,}", Label(span, "limit reached here"),
                help="check repeat counts; raise the limit with `--max-nodes N`"))

    def charge_many(self, steps: int, ctx: Ctx) -> None:
        """The steps a recorded expansion took, counted again for its copy."""
        self.work += steps - 1
        self.charge(ctx.scope.span or Span(None, 0, 0), ctx)

    def charge(self, span: Span, ctx: Ctx) -> None:
        """Count one step of work (a statement, a block call, a repeat iteration): a spec
        that adds no layers, such as a block calling itself twice, still ends."""
        self.work += 1
        if self.work > self.max_work:
            raise SpecError(Diagnostic(
                "E0404", f"elaboration stopped after {self.max_work:,} steps (statements, "
                "block calls and repeat iterations)", Label(span, "still working here"),
                notes=call_chain(ctx.trace),
                help="look for a block that calls itself more than once, or repeat counts far "
                     "larger than meant; `--max-nodes N` raises both limits"))
