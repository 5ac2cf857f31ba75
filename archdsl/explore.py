"""A network's family: the members of its search space, each compiled and costed from the
spec alone, and written out as a concrete spec.

`Family` loads a file once and compiles members on demand (a few milliseconds each, no
torch): `check` surveys a space with it, `sweep` prunes members by static cost before
training any, and every member can be written as a `.arch` file with its choices fixed.
Dimensions come from the spec (`choice`, `int_range`, ... in parameter defaults, see
lang/space.py) and from `--set NAME=A,B,C` lists (a grid on the command line).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import networkx as nx

from .backends.report_stats import forward_activation_bytes
from .compile import selected_networks, settings_for, compile_network, read_source
from .diagnostics import Diagnostic, Sink
from .errors import UsageError
from .lang import syntax as ast
from .lang.elaborate import Limits
from .lang.load import load
from .lang.replay import BlockMemo
from .lang.space import Dimension, Space, space_of, spec_text
from .passes.count_costs import total

COSTS = ("params", "macs", "memory")  # what a member costs, statically
LABELS = {"params": "params", "macs": "MACs", "memory": "memory"}  # as `check` prints them


@dataclass
class Member:
    """One network of the family: its dimensions' values and what checking it found."""
    values: dict
    settings: dict
    diagnostics: list[Diagnostic] = field(default_factory=list)
    graph: nx.DiGraph | None = None
    costs: dict = field(default_factory=dict)  # params, macs, memory (forward activation
    # bytes of one input, fp32): the totals `stats` prints

    @property
    def ok(self) -> bool:
        return self.graph is not None

    def describe(self) -> str:
        return ", ".join(f"{k} = {spec_text(v)}" for k, v in self.values.items())


class Family:
    """One network of a spec file with its search space. `settings` fix parameters (and
    so drop their dimensions); `grid` gives parameters a list of values to take."""

    def __init__(self, path: str | Path, network: str | None = None,
                 settings: dict | None = None, inputs: dict | None = None,
                 limits: Limits = Limits(), grid: dict | None = None):  # noqa: B008 (frozen)
        self.path = str(path)
        self.source = read_source(path)
        sink = Sink()
        self.program = load(self.source, sink)
        self.load_errors = [d for d in sink.items if d.severity == "error"]
        if self.program is None or self.load_errors:
            self.definition, self.space = None, Space("", (), {})
            return
        chosen = selected_networks(self.program, network, {**(settings or {}), **(grid or {})})
        if len(chosen) != 1:
            names = ", ".join(d.name for d in chosen)
            raise UsageError(f"{path} defines several networks ({names}): choose one with "
                             "FILE:NETWORK or --network NAME")
        self.definition = chosen[0]
        self.settings = settings_for(self.definition, settings)
        self.inputs, self.limits = inputs or {}, limits
        self.memo = BlockMemo()  # block expansions the members share
        self.space = _with_grid(_without(space_of(self.definition), self.settings),
                                self.definition, grid or {})

    @property
    def network(self) -> str:
        return self.definition.name

    def member(self, values: dict) -> Member:
        """Compile and cost the member with these dimension values."""
        settings = {**self.settings, **self.space.settings(values)}
        sink = Sink()
        graph = compile_network(self.program, self.definition, sink, settings, self.inputs,
                                self.limits, self.memo)
        errors = [d for d in sink.items if d.severity == "error"]
        result = Member(dict(values), settings, sink.items)
        if not errors:
            result.graph = graph
            result.costs = member_costs(graph)
        return result

    def concrete_text(self, member: Member, header: str = "") -> str:
        """The spec file with this network's parameters fixed to the member's values: it
        checks, builds and trains on its own. Relative imports are made absolute."""
        text, edits = self.source.text, []
        for param in self.definition.params:
            if param.name not in member.settings:
                continue
            value = spec_text(member.settings[param.name])
            if param.default is None:
                edits.append((param.span.end, param.span.end, f" = {value}"))
            else:
                edits.append((param.default.span.start, param.default.span.end, value))
        for definition in self.program.root.definitions:
            if isinstance(definition, ast.ImportFile) and not Path(definition.path).is_absolute():
                where = (Path(self.path).parent / definition.path).resolve()
                quoted = definition.span.text
                start = definition.span.start + quoted.index('"')
                edits.append((start, start + len(definition.path) + 2, f'"{where}"'))
        for start, end, new in sorted(edits, reverse=True):
            text = text[:start] + new + text[end:]
        lines = [f"# {line}".rstrip() for line in header.splitlines()]
        return "\n".join(lines) + "\n\n" + text if lines else text


def member_costs(graph: nx.DiGraph) -> dict:
    """The static costs of a checked network: parameters and MACs of inference, and the
    forward activation memory of one input in bytes (fp32), as `stats` totals them."""
    inference = total(graph, train=False)
    return {"params": inference.params, "macs": inference.macs,
            "memory": forward_activation_bytes(graph)}


def _without(space: Space, settings: dict) -> Space:
    """The space with the dimensions of parameters given by --set removed."""
    kept = tuple(d for d in space.dimensions if d.param not in settings)
    tuples = {k: v for k, v in space.tuples.items() if k not in settings}
    return replace(space, dimensions=kept, tuples=tuples)


def _with_grid(space: Space, definition, grid: dict) -> Space:
    """`--set depth=20,32,44`: the parameter becomes a choice (replacing any the spec
    declares for it)."""
    if not grid:
        return space
    kept = tuple(d for d in space.dimensions if d.param not in grid)
    added = tuple(Dimension(name, name, None, "choice", options=tuple(values))
                  for name, values in grid.items())
    tuples = {k: v for k, v in space.tuples.items() if k not in grid}
    for name in grid:
        if name not in {p.name for p in definition.params}:
            raise UsageError(f"--set {name}=...: a list of values needs a network parameter, "
                             f"and `{definition.name}` has none called `{name}`")
    return replace(space, dimensions=kept + added, tuples=tuples)


def survey(family: Family, count: int, seed: int = 0) -> list[Member]:
    """`count` members of the family checked (every member when there are no more),
    the default member first."""
    return [family.member(values) for values in family.space.sample(count, seed)]


def cost_range(members: list[Member]) -> dict:
    """(low, high) of each static cost over the members that checked."""
    ok = [m for m in members if m.ok]
    return {name: (min(m.costs[name] for m in ok), max(m.costs[name] for m in ok))
            for name in COSTS} if ok else {}


@dataclass
class Survey:
    """What `check` says of a space: its members checked, as lines or as data."""
    space: Space
    members: list[Member]

    @classmethod
    def of(cls, family: Family, count: int, seed: int = 0) -> Survey:
        return cls(family.space, survey(family, count, seed))

    @property
    def ok(self) -> bool:
        return all(m.ok for m in self.members)

    @property
    def every(self) -> bool:
        return self.space.size is not None and len(self.members) == self.space.size

    def diagnostics(self) -> list[Diagnostic]:
        return [d for m in self.members if not m.ok for d in m.diagnostics]

    def lines(self) -> list[str]:
        """The space's dimensions and size, then the cost range over the members."""
        lines = [self.space.describe()]
        count = len(self.members)
        over = f"all {count:,} members" if self.every else \
            f"{count:,} sampled members (--sample N for more)"
        if any(m.ok for m in self.members):
            lines.append(f"costs over {over}: " + ", ".join(
                f"{LABELS[name]} {_human(name, low)} to {_human(name, high)}"
                for name, (low, high) in cost_range(self.members).items()))
        failed = sum(not m.ok for m in self.members)
        if failed:
            lines.append(f"{failed} of {over} do not check (errors above)")
        return lines

    def record(self) -> dict:
        """`check --format json`: the space and the members checked."""
        return {"size": self.space.size, "dimensions": [
                    {"name": d.name, "kind": d.kind, "values": list(d.options) if d.options
                     else None, "low": None if d.options else d.low,
                     "high": None if d.options else d.high, "step": d.step}
                    for d in self.space.dimensions],
                "checked": len(self.members), "every_member": self.every,
                "failed": [m.values for m in self.members if not m.ok],
                "costs": {k: list(v) for k, v in cost_range(self.members).items()}}


def _human(name: str, value: int) -> str:
    from .backends.report_stats import human_bytes, human_count  # noqa: PLC0415
    return human_bytes(value) if name == "memory" else human_count(value)
