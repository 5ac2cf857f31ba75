"""The front-end pipeline, in order: load (parse + imports) -> elaborate (with shapes)
-> the graph passes in GRAPH_PASSES. One place lists the passes; nothing here imports
torch, so checking a spec stays fast.

With ARCHDSL_LINT=1 in the environment (the test suite sets it), the IR's invariants are
checked after every pass (`ir.lint`): a broken one is a bug in archdsl, not in the spec.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

import networkx as nx

from . import ir
from .lang import syntax as ast
from .diagnostics import Diagnostic, Sink, SpecError, render_all
from .errors import UsageError
from .lang.elaborate import Limits, elaborate
from .lang.load import Program, load
from .lang.replay import BlockMemo
from .lang.read import UnreadableSource
from .lang.read import read_source as read_spec_file
from .source import Source
from .passes.check_dead_values import check_dead_values
from .passes.check_indices import check_indices
from .passes.check_sizes import check_sizes
from .passes.count_costs import count_costs
from .passes.receptive_field import receptive_field


@dataclass(frozen=True)
class Pass:
    """A pass over one network's IR: `run(graph, sink) -> graph`, diagnostics to the sink."""
    run: Callable[[nx.DiGraph, Sink], nx.DiGraph]
    on_errors: bool  # runs on a network that already has errors (render --partial draws it)


# After elaboration (which infers shapes as it adds layers), in this order:
GRAPH_PASSES = (
    Pass(check_dead_values, on_errors=False),  # a value no output needs is an error
    Pass(check_indices, on_errors=False),  # indices made inside stay within what they pick
    Pass(count_costs, on_errors=True),  # parameters, MACs, activations of every node
)
# Analyses that only some backends show, run on a checked IR when first asked for
# (passes.receptive_field.receptive_fields), so `check` does not pay for them:
ANALYSES = (
    Pass(receptive_field, on_errors=True),  # how far each layer sees (stats' field column)
)


class CompileError(Exception):
    """A spec has errors; `diagnostics` holds them, str() renders them."""

    def __init__(self, diagnostics: list[Diagnostic]):
        super().__init__(render_all(diagnostics))
        self.diagnostics = diagnostics


@dataclass
class Compilation:
    """What compiling one file produced: a graph per network, and every diagnostic."""
    source: Source
    program: Program | None
    graphs: dict[str, nx.DiGraph] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)

    @property
    def graph(self) -> nx.DiGraph:
        """The IR of the file's last network (the one a file usually exists for)."""
        if not self.graphs:
            raise UsageError(f"{self.source.path} defines no network")
        return list(self.graphs.values())[-1]


def compile_source(text: str, path: str = "<string>", *, network: str | None = None,
                   settings: dict | None = None, inputs: dict | None = None,
                   limits: Limits = Limits()) -> Compilation:  # noqa: B008 (frozen)
    """Compile .arch text. `settings` override network parameters, `inputs` input shapes.

    >>> result = compile_source("network t { input x: 3 x 32 x 32; conv(8, 3); relu }")
    >>> result.ok, result.graph.nodes["1"]["shape"]
    (True, (8, 30, 30))
    """
    source = Source(path, text)
    sink = Sink()
    program = load(source, sink)
    result = Compilation(source, program)
    if program is not None:
        for definition in selected_networks(program, network, settings or {}):
            result.graphs[definition.name] = compile_network(
                program, definition, sink, settings_for(definition, settings), inputs, limits)
        _check_input_names(inputs or {}, result.graphs.values(), program.networks)
    result.diagnostics = sink.items
    return result


def compile_network(program: Program, definition, sink: Sink, settings: dict,
                    inputs: dict | None = None, limits: Limits = Limits(),  # noqa: B008
                    memo: BlockMemo | None = None) -> nx.DiGraph:
    """One network of a loaded program, elaborated with `settings` and checked by every
    pass; its diagnostics go to `sink`. A search space compiles each member this way,
    sharing `memo`, the block expansions already made (lang/replay.py)."""
    first_new, reported = len(sink.items), sink.reported
    graph = _run_passes(elaborate(program, definition, sink, settings, inputs, limits, memo),
                        sink, reported)
    if sink.reported == reported and ir.network(graph).sizes:
        check_sizes(graph, partial(_elaborate_at, program, definition, settings, inputs,
                                   limits), sink)
    _note_overrides(sink, first_new, settings, inputs)
    return graph


def _elaborate_at(program, definition, settings, inputs, limits, sizes: dict,
                  sink: Sink) -> nx.DiGraph:
    """The network elaborated again with other input sizes, its diagnostics in `sink`."""
    return elaborate(program, definition, sink, settings | sizes, inputs, limits)


def _run_passes(graph: nx.DiGraph, sink: Sink, reported: int) -> nx.DiGraph:
    for pass_ in GRAPH_PASSES:
        if pass_.on_errors or sink.reported == reported:
            graph = pass_.run(graph, sink)
            if os.environ.get("ARCHDSL_LINT") == "1":
                ir.lint(graph)
    return graph


def _note_overrides(sink: Sink, first_new: int, settings: dict, inputs: dict | None) -> None:
    """Errors found with --set / --input in force say so: the spec alone may be fine."""
    given = [f"--set {k}={v}" for k, v in settings.items()]
    given += [f"--input {'' if k == '*' else k + '='}{'x'.join(map(str, v))}"
              for k, v in (inputs or {}).items()]
    if given:
        note = "checked with " + " ".join(given)
        sink.items[first_new:] = [replace(d, notes=d.notes + (note,))
                                  for d in sink.items[first_new:]]


def _check_input_names(inputs: dict, graphs, networks) -> None:
    known = {name for graph in graphs for name in ir.network(graph).inputs}
    for name in inputs:
        if name != "*" and name not in known and networks:
            raise UsageError(f"--input {name}=...: no input is called `{name}` "
                             f"(inputs: {', '.join(sorted(known)) or 'none'})")


def compile_file(path: str | Path, **options) -> Compilation:
    """Read and compile a .arch file; raises UsageError if it cannot be read. A file that
    is not UTF-8 compiles to its E0104 diagnostic."""
    try:
        source = read_source(path)
    except SpecError as error:
        return Compilation(error.diagnostic.primary.span.source, None,
                           diagnostics=[error.diagnostic])
    return compile_source(source.text, str(path), **options)


def read_source(path: str | Path) -> Source:
    """The text of a spec file, or UsageError saying why it cannot be one."""
    try:
        return read_spec_file(path)
    except UnreadableSource as error:
        if str(error) == "no such file":
            raise UsageError(f"no such file: {path}") from None
        raise UsageError(f"cannot read {path}: {error}") from None


def selected_networks(program: Program, network: str | None, settings: dict):
    if network is not None:
        if network not in program.networks:
            known = ", ".join(program.networks) or "none"
            raise UsageError(f"no network `{network}` in {program.root.source.path} "
                             f"(networks: {known})")
        chosen = [program.networks[network]]
    else:
        chosen = list(program.networks.values())
    for name in settings:
        if not any(name in _settable(n) for n in chosen):
            params = sorted(set().union(*(_settable(n) for n in chosen)))
            raise UsageError(f"--set {name}: no network here has a parameter or input size "
                             f"`{name}` (parameters and sizes: {', '.join(params) or 'none'})")
    return chosen


def _settable(definition) -> set[str]:
    """What --set may give a value: network parameters, and input sizes declared as
    symbols (`input ids: L <= 2048 as token_ids`)."""
    return {p.name for p in definition.params} | ast.size_symbols(definition)


def settings_for(definition, settings: dict | None) -> dict:
    names = _settable(definition)
    return {k: v for k, v in (settings or {}).items() if k in names}
