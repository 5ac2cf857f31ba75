"""Backend: what differs between two checked networks, by the names they share.

The units compared are the block instances of the scope tree (a scope in which a block
was called: `layer1.0` calling `bottleneck(...)`) and the layers outside any instance
(`fc`). A unit is *changed* when its block, its arguments, or any layer inside it (op,
arguments, output shape) differs; *added* or *removed* when only one network has it. A
unit inside a changed, added or removed one is not listed again. Costs are compared per
stage (the top-level names: `layer1`, `fc`) and in total: parameters counting a tied
tensor once (the table says so where either network ties one), MACs as multiply-adds.

Pure: two IR graphs in, a Diff out; text and JSON from it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import networkx as nx

from .. import ir
from ..ops import OPS, show
from ..passes.count_costs import Cost
from ..lang.space import spec_text
from .report_stats import (SHARED_NOTE, forward_activation_bytes, human_bytes, is_tied,
                           shared_tensors)

COSTS = ("params", "macs", "memory")


@dataclass(frozen=True)
class Change:
    kind: str  # "changed", "added", "removed"
    name: str  # the scope or layer
    what: str  # "block" or "layer"
    before: str  # `bottleneck(width=64, stride=1)`, `linear(1000) -> 1000`; "" if added
    after: str


@dataclass(frozen=True)
class Diff:
    a: str  # network names as shown: `resnet50 (specs/resnet50.arch)`
    b: str
    changes: tuple[Change, ...]
    stages: tuple[tuple[str, dict, dict], ...]  # (stage, costs of a, costs of b), where any differ
    totals: tuple[dict, dict]
    ties: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # each network's tied tensors,
    # counted once: `lm_head.weight = wte.weight (38,597,376)`

    @property
    def same(self) -> bool:
        return not self.changes and self.totals[0] == self.totals[1]


def diff_graphs(a: nx.DiGraph, b: nx.DiGraph, a_name: str = "", b_name: str = "") -> Diff:
    units_a, units_b = _units(a), _units(b)
    changes, within = [], {}
    for name in _ordered(units_a, units_b):
        before, after = units_a.get(name), units_b.get(name)
        if before is not None and after is not None and before[1] == after[1]:
            continue
        kind = "added" if before is None else "removed" if after is None else "changed"
        unit = after if before is None else before
        shown = _shown_calls(before, after) if kind == "changed" and unit[0] == "block" \
            else (before[2] if before else "", after[2] if after else "")
        changes.append(Change(kind, name, unit[0], *shown))
        within[name] = unit[3]
    listed = {c.name for c in changes}
    changes = [c for c in changes if not listed & set(within[c.name])]
    stages_a, stages_b = _stage_costs(a), _stage_costs(b)
    stages = tuple((s, stages_a.get(s, _zero()), stages_b.get(s, _zero()))
                   for s in _ordered(stages_a, stages_b)
                   if stages_a.get(s, _zero()) != stages_b.get(s, _zero()))
    return Diff(a_name or ir.network(a).name, b_name or ir.network(b).name, tuple(changes),
                stages, (_total(a), _total(b)),
                (tuple(shared_tensors(a)), tuple(shared_tensors(b))))


def _units(graph: nx.DiGraph) -> dict[str, tuple]:
    """name -> (block or layer, what must be equal, how it is shown, the scopes around
    it), in graph order."""
    scopes = ir.network(graph).scopes
    instances = {path for path, scope in scopes.items() if scope.calls and path}
    members: dict[str, list] = {path: [] for path in instances}
    units: dict[str, tuple] = {}
    for node in ir.nodes(graph):
        owner = _owner(graph, node.name, instances)
        signature = (node.op, node.args, show(ir.shape(graph, node.name) or ()),
                     tuple(i if _owner(graph, i, instances) == owner else ""
                           for i in node.inputs), is_tied(graph, node.name))
        if owner is None:
            if node.op not in ir.SOURCE_OPS:
                units[node.name] = ("layer", signature, _layer_text(graph, node),
                                    ir.scopes_of(graph, node.name))
        else:
            if owner not in units:
                units[owner] = None  # its place in order: its first layer's
            members[owner].append((node.name[len(owner) + 1:], signature))
    for path in instances:
        calls = scopes[path].calls
        units[path] = ("block", (tuple((c.block, c.args) for c in calls),
                                 tuple(members[path])),
                       "; ".join(map(_call_text, calls)), ir.ancestors(graph, path)[:-1])
    return units


def _call_text(call) -> str:
    return f"{call.block}({', '.join(f'{k} = {spec_text(v)}' for k, v in call.args)})"


def _shown_calls(before, after) -> tuple[str, str]:
    """A changed instance's calls as text; of several calls in one scope (blocks called
    unlabelled in a group), only those that differ, by position."""
    calls_a, calls_b = before[1][0], after[1][0]
    texts_a, texts_b = before[2].split("; "), after[2].split("; ")
    if len(calls_a) == len(calls_b) > 1 and len(texts_a) == len(calls_a) == len(texts_b):
        pairs = [(i, a, b) for i, (a, b) in enumerate(zip(texts_a, texts_b)) if a != b]
        if pairs:
            return ("; ".join(f"[{i}] {a}" for i, a, _ in pairs),
                    "; ".join(f"[{i}] {b}" for i, _, b in pairs))
    return before[2], after[2]


def _owner(graph: nx.DiGraph, name: str, instances: set[str]) -> str | None:
    """The outermost block instance holding the layer `name`."""
    return next((path for path in ir.scopes_of(graph, name) if path in instances), None)


def _layer_text(graph: nx.DiGraph, node: ir.Node) -> str:
    shape = ir.shape(graph, node.name)
    tied = " (tied)" if is_tied(graph, node.name) else ""
    return f"{OPS[node.op].describe(node.args)}{tied} -> {show(shape) if shape else '?'}"


def _ordered(first: dict, second: dict) -> list[str]:
    """The keys of both, in the first's order, the second's new ones after the key they
    follow."""
    order = list(first)
    for index, key in enumerate(second):
        if key not in first:
            before = list(second)[:index]
            anchor = max((order.index(k) for k in before if k in order), default=-1)
            order.insert(anchor + 1, key)
    return order


def _stage_costs(graph: nx.DiGraph) -> dict[str, dict]:
    stages: dict[str, dict] = {}
    for node in ir.nodes(graph):
        if node.train_only:  # inference, as `stats` totals it
            continue
        stage = ir.outermost(graph, node.name)
        cost = graph.nodes[node.name].get("cost", Cost())
        into = stages.setdefault(stage, _zero())
        into["params"] += cost.params
        into["macs"] += cost.macs
        into["memory"] += forward_activation_bytes(graph, names=(node.name,))
    return stages


def _zero() -> dict:
    return {name: 0 for name in COSTS}


def _total(graph: nx.DiGraph) -> dict:
    stages = _stage_costs(graph).values()
    return {name: sum(s[name] for s in stages) for name in COSTS}


# ---- formatting ------------------------------------------------------------------------


def _signed(name: str, value: int) -> str:
    sign = "+" if value > 0 else "−" if value < 0 else "±"
    return sign + (human_bytes(abs(value)) if name == "memory" else f"{abs(value):,}")


def _plain(name: str, value: int) -> str:
    return human_bytes(value) if name == "memory" else f"{value:,}"


def format_diff(diff: Diff) -> str:
    lines = [f"--- {diff.a}", f"+++ {diff.b}"]
    if diff.same:
        return "\n".join(lines + ["no differences"])
    marks = {"changed": "~", "added": "+", "removed": "-"}
    for change in diff.changes:
        if change.kind == "changed":
            lines.append(f"~ {change.name}: {change.before}")
            lines.append(f"  {' ' * len(change.name)}  {change.after}")
        else:
            lines.append(f"{marks[change.kind]} {change.name}: "
                         f"{change.after or change.before}")
    if diff.changes:
        counts = {k: sum(c.kind == k for c in diff.changes) for k in marks}
        lines.append(", ".join(f"{n} {k}" for k, n in counts.items() if n))
    rows = [["", "parameters", "MACs (multiply-adds)", "memory"]]
    for stage, before, after in (*diff.stages, ("total", *diff.totals)):
        rows.append([stage] + [
            f"{_plain(n, before[n])} → {_plain(n, after[n])}"
            + (f" ({_signed(n, after[n] - before[n])})" if after[n] != before[n] else "")
            for n in COSTS])
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines.append("")
    lines += ["  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in
                                                        zip(row[1:], widths[1:])]).rstrip()
              for row in rows]
    return "\n".join(lines + _shared_lines(diff))


def _shared_lines(diff: Diff) -> list[str]:
    """The ties the parameter counts hold once; each network's where they differ; none
    without ties."""
    a, b = diff.ties
    if a == b:
        lines = [f"{SHARED_NOTE}: {tie}" for tie in a]
    else:
        lines = [f"{SHARED_NOTE}, in {name}: {tie}" for name, ties in ((diff.a, a), (diff.b, b))
                 for tie in ties]
    return ["", *lines] if lines else []


def diff_json(diff: Diff) -> str:
    record = asdict(diff)
    record["same"] = diff.same
    record["stages"] = [{"stage": s, "a": a, "b": b} for s, a, b in diff.stages]
    record["totals"] = {"a": diff.totals[0], "b": diff.totals[1],
                        "delta": {n: diff.totals[1][n] - diff.totals[0][n] for n in COSTS}}
    return json.dumps(record, indent=2)
