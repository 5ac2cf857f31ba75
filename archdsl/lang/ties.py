"""`tie TARGET = SOURCE`: weight tying. Both paths name a learned tensor, relative to the
scope of the statement: a layer's label and its tensor's key (`lm_head.weight`, as the
state_dict names it), or a `param` by its label alone. They are resolved once the whole
network exists, so a tie may name layers defined after it. The two tensors must be of
one shape; the target then is the source (one tensor, both keys in the state_dict,
counted once), as transformers ties a language model's head to its embedding.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from .. import ir
from ..diagnostics import Label
from ..ops import OPS, numel
from . import syntax as ast
from .context import Ctx, Reporter


@dataclass(frozen=True)
class Pending:
    """A `tie` statement and the scope it was written in."""
    stmt: ast.Tie
    scope: tuple[str, ...]
    ctx: Ctx


def _tensor(graph: nx.DiGraph, path: str) -> tuple[str, str, tuple[int, ...], str, str] | str:
    """(owner node, key, shape, holding module's path, attribute) of the tensor at
    `path`, or why there is none."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        owner = ".".join(parts[:cut])
        if owner not in graph:
            continue
        item = ir.node(graph, owner)
        op = OPS[item.op]
        if op.tensors is None:
            return f"`{owner}` ({item.op}) holds no tensor a tie can join"
        ins = tuple(ir.shape(graph, name) for name in item.inputs)
        tensors = op.tensors(item.args, ins)
        name = ".".join(parts[cut:])
        if name not in tensors:
            keys = ", ".join(f"`{owner}.{k}`" if k else f"`{owner}`" for k in tensors)
            return f"`{owner}` ({item.op}) has no tensor `{name}`: its tensors are {keys}"
        holder, attribute = (owner, name) if name else (
            ".".join(ir.labels(graph, owner)[:-1]), ir.labels(graph, owner)[-1])
        return owner, path, tuple(tensors[name]), holder, attribute
    return f"no layer or param is named `{parts[0]}`" if len(parts) == 1 else \
        f"no layer or param is named `{path}` or a prefix of it"


def _source_of(ties: list[ir.Tie], target: str) -> str:
    return next(t.source for t in ties if t.target == target)


def resolve_ties(graph: nx.DiGraph, pending: list[Pending], reporter: Reporter) -> tuple[ir.Tie, ...]:
    """The ties of the network, each checked; E0314 for one that joins no two tensors."""
    ties: list[ir.Tie] = []
    tied: dict[str, ast.Tie] = {}
    for item in pending:
        stmt = item.stmt
        found = []
        for path, span in ((stmt.tied, stmt.tied_span), (stmt.to, stmt.to_span)):
            full = ".".join(item.scope + (path,))
            tensor = _tensor(graph, full)
            if isinstance(tensor, str):
                reporter.fail("E0314", f"tie names `{path}`, but {tensor}", span,
                              "no tensor here", item.ctx, abort=False,
                              help="name a layer's tensor as the state_dict does "
                                   "(`lm_head.weight`) or a `param` by its label")
                break
            found.append(tensor)
        if len(found) < 2:
            continue
        (owner, target, shape, holder, attribute), (_, source, other, _, _) = found
        problem = ("it is the source" if target == source else
                   f"it is tied already (line {tied[target].span.line})" if target in tied else
                   f"it is {'x'.join(map(str, shape))}, the source "
                   f"{'x'.join(map(str, other))}" if shape != other else
                   "other tensors are tied to it" if any(t.source == target for t in ties) else
                   f"the source is tied to `{_source_of(ties, source)}`: tie to that"
                   if source in tied else None)
        if problem is not None:
            holders = tuple(Label(ir.node(graph, o).span, f"`{key}` is {'x'.join(map(str, s))}")
                            for o, key, s, _, _ in found) if shape != other else ()
            reporter.fail("E0314", f"`{target}` cannot be tied to `{source}`: {problem}",
                          stmt.span, "tied here", item.ctx, abort=False, secondary=holders,
                          help="tie tensors of one shape, each target once, to a source "
                               "that is no tie's target")
            continue
        tied[target] = stmt
        ties.append(ir.Tie(target, owner, source, numel(shape), holder, attribute))
    return tuple(ties)
