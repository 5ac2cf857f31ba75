"""Block instances expanded once, copied after: a labelled call of a block with the same
arguments on an input of the same shape makes the same layers, so the second and later
calls copy the first one's nodes and scopes under their own name instead of running its
statements again. A ResNet's repeated bottlenecks and the cells of a NAS space cost
a copy each, and a search space's members share the blocks they have in common.

Only calls whose effect is their layers are copied: arguments that are plain values (no
tensors), a fresh naming scope (a labelled call), and a first expansion that reported
nothing and declared no output, tie or label outside its layers. Anything else is expanded as usual.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from .. import ir
from .context import POISON, Scope, Value

_INPUT = "\0in"  # an input that is the block's own input
MAX_RECORDINGS = 2048  # a memo shared by many elaborations forgets the least used then


@dataclass(frozen=True)
class Recording:
    calls: tuple  # the ir.Calls the expansion added to the call's scope
    scopes: tuple  # (relative path, relative parent path, kind, span, iteration, calls)
    nodes: tuple  # (Node with names relative to the call's scope, its other data)
    output: str | None  # relative name of the block's output; None: its input
    work: int


@dataclass(frozen=True)
class Mark:
    """What the elaboration holds before the first expansion, to see what it added."""
    nodes: int
    scopes: int
    calls: int
    work: int
    side_effects: tuple


class BlockMemo:
    """Recordings by (block, arguments, input shape, context); may be shared by the
    elaborations of one program (the members of a search space)."""

    def __init__(self):
        self.recordings: OrderedDict = OrderedDict()

    def expand(self, elaborator, call: tuple, record: ir.Call, run):
        """A block call: `record` (its ir.Call) into its scope and `run()` its body, or a
        copy of the same call's recorded expansion. `call` is (block, argument values,
        input, ctx, whether the call has a scope of its own)."""
        block, values, cur, ctx, fresh = call
        key = self.key(block, values, cur, ctx, elaborator.builder.graph, fresh)
        if key is not None and key in self.recordings:
            self.recordings.move_to_end(key)  # used now: the last to be forgotten
            return self.replay(self.recordings[key], elaborator.builder, cur, ctx)
        mark = self.mark(elaborator, ctx) if key is not None else None
        ctx.scope.calls.append(record)
        elaborator.builder.use_scope(ctx.scope)
        out = run()
        if mark is not None:
            self.record(key, mark, elaborator, ctx, cur, out)
        return out

    def key(self, block, values: dict, cur, ctx, graph, fresh: bool):
        if not fresh or not isinstance(cur, Value) or cur is POISON or not ctx.scope.name:
            return None
        if not all(_plain(v) for v in values.values()):
            return None
        shape = ir.shape(graph, cur.node)
        if shape is None:
            return None
        return (id(block), tuple(values.items()), tuple(shape), shape.axes, shape.dtype,
                shape.follows, ctx.train_only, ctx.role)

    def mark(self, elaborator, ctx) -> Mark:
        builder = elaborator.builder
        return Mark(len(builder.log), len(builder.opened), len(ctx.scope.calls), builder.work,
                    _side_effects(elaborator))

    def record(self, key, mark: Mark, elaborator, ctx, cur: Value, out) -> None:
        """Keep what the first expansion made, if it can be copied."""
        if out is POISON or not isinstance(out, Value) \
                or _side_effects(elaborator) != mark.side_effects:
            return
        builder, prefix = elaborator.builder, ctx.scope.name
        scopes = list(builder.opened.items())[mark.scopes:]
        recorded_scopes = []
        for name, scope in scopes:
            if name == prefix or not name or prefix.startswith(name + "."):
                continue  # the call's scope and those around it: opened again by use_scope
            rel = _relative(name, prefix)
            if rel is None or scope.declared:
                return
            parent = _relative(scope.parent.name, prefix) if scope.parent else None
            if parent is None:
                return
            recorded_scopes.append((tuple(rel.split(".")), tuple(parent.split(".")) if parent
                                    else (), scope.kind, scope.span, scope.iteration,
                                    tuple(scope.calls)))
        depth, nodes, inside = len(ctx.trace), [], set()
        for name in builder.log[mark.nodes:]:
            data = dict(builder.graph.nodes[name])
            node = data.pop("node")
            rel, scope = _relative(name, prefix), _relative(node.scope, prefix)
            inputs = tuple(_INPUT if i == cur.node else _relative(i, prefix) if i in inside
                           else None for i in node.inputs)
            if rel is None or scope is None or None in inputs or node.trace[:depth] != ctx.trace:
                return
            inside.add(name)
            nodes.append((replace(node, name=rel, inputs=inputs, trace=node.trace[depth:],
                                  scope=scope), data))
        output = None if out.node == cur.node else _relative(out.node, prefix)
        if out.node != cur.node and out.node not in inside:
            return
        if len(self.recordings) >= MAX_RECORDINGS:  # the least recently used goes
            self.recordings.popitem(last=False)
        self.recordings[key] = Recording(tuple(ctx.scope.calls[mark.calls:]),
                                         tuple(recorded_scopes), tuple(nodes), output,
                                         builder.work - mark.work)

    def replay(self, recording: Recording, builder, cur: Value, ctx) -> Value:
        """The recorded expansion again, named under this call's scope, reading `cur`."""
        prefix = ctx.scope.name
        ctx.scope.calls.extend(recording.calls)
        builder.use_scope(ctx.scope)
        made = {(): ctx.scope}
        for rel, parent, kind, span, iteration, calls in recording.scopes:
            scope = Scope(ctx.scope.path + rel, made[parent], span, kind, iteration)
            scope.calls = list(calls)
            made[rel] = scope
            builder.opened[scope.name] = scope
        for node, data in recording.nodes:  # (ir.Node's fields, in order)
            builder.add_copy(ir.Node(
                _join(prefix, node.name), node.op, node.args,
                tuple(cur.node if i == _INPUT else _join(prefix, i) for i in node.inputs),
                node.span, ctx.trace + node.trace, node.train_only, node.role, node.condition,
                _join(prefix, node.scope)), data, ctx)
        builder.charge_many(recording.work, ctx)
        return cur if recording.output is None else Value(_join(prefix, recording.output))


def _side_effects(elaborator) -> tuple:
    """Counters of everything an expansion may do besides adding layers and scopes (its
    stacks are its own: they live in the block's environment)."""
    sink = elaborator.sink
    return (sink.reported, len(sink.items), len(elaborator.outputs),
            len(elaborator.main_outputs), len(elaborator.ties), len(elaborator.declarations),
            len(elaborator.inputs), len(elaborator.captions))


def _plain(value) -> bool:
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _relative(name: str, prefix: str) -> str | None:
    if name == prefix:
        return ""
    return name[len(prefix) + 1:] if name.startswith(prefix + ".") else None


def _join(prefix: str, rel: str) -> str:
    return f"{prefix}.{rel}" if rel else prefix
