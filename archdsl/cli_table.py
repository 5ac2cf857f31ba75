"""`archdsl table`: which networks become columns, at which settings, under which headers.

A column is `FILE`, `FILE:NETWORK` (as every command reads it: cli.network_target) and optionally
`?NAME=VALUE&NAME=VALUE`, settings of that column only, read as --set reads them (after
the --set flags, which apply to every column), so one parameterised spec gives several
columns:

    archdsl table 'specs/cifar_resnet.arch:cifar_resnet?depth=20' \\
                  'specs/cifar_resnet.arch:cifar_resnet?depth=56'
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from . import ir
from .arguments import spec_options
from .arguments_figures import parse_captions
from .cli import network_target
from .compile import compile_file
from .figures import check_captions
from .diagnostics import render_all
from .errors import UsageError


@dataclass(frozen=True)
class Column:
    """One `table` argument: a file, maybe one of its networks, maybe settings."""
    text: str  # as written, for messages
    path: str
    network: str | None
    settings: tuple[str, ...]  # NAME=VALUE items, as --set takes them


def parse_column(text: str) -> Column:
    """`FILE[:NETWORK][?NAME=VALUE&NAME=VALUE...]`.

    >>> parse_column("specs/cifar_resnet.arch:cifar_resnet?depth=56&width=32")
    Column(text='specs/cifar_resnet.arch:cifar_resnet?depth=56&width=32', \
path='specs/cifar_resnet.arch', network='cifar_resnet', settings=('depth=56', 'width=32'))
    """
    target, has_query, query = text.partition("?")
    path, network = network_target(target)
    settings = tuple(item.strip() for item in query.split("&")) if has_query else ()
    for item in settings:
        name, sep, _ = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{text}: write the settings as ?NAME=VALUE&NAME=VALUE, e.g. "
                             f"{path}{':' + network if network else ''}?depth=56")
    if not path:
        raise UsageError(f"{text}: no file: write FILE[:NETWORK][?NAME=VALUE&...]")
    return Column(text, path, network or None, settings)


def compile_columns(args) -> tuple[list, list[str]] | None:
    """(graphs, headers), one per column in order (a FILE without :NETWORK gives each of
    its networks); None when a spec has errors, after printing them all."""
    graphs, headers, settings, failed = [], [], [], False
    captions = parse_captions(getattr(args, "caption", []))
    for column in map(parse_column, args.files):
        result = _compile(column, args)
        if not result.ok:
            print(render_all(result.diagnostics), file=sys.stderr)
            failed = True
            continue
        if not result.graphs:
            raise UsageError(f"{column.text} has no networks: nothing to tabulate")
        for graph in result.graphs.values():
            graphs.append(ir.recaptioned(graph, dict(captions)))
            headers.append(_header(graphs[-1], column))
            settings.append(column.settings)
    if failed:
        return None
    headers = [f"{h} ({', '.join(s)})" if s and headers.count(h) > 1 and ir.network(g).caption
               else h for h, s, g in zip(headers, settings, graphs)]  # one caption, two settings
    check_captions(captions, graphs)
    if getattr(args, "notation", "") == "branched" and len(graphs) != 1:
        raise UsageError(f"--notation branched tabulates one network, and {len(graphs)} "
                         f"were given: {', '.join(headers)}")
    return graphs, _chosen_headers(args.headers, headers)


def _compile(column: Column, args):
    """The column's compilation: the --set flags, then its own settings."""
    options = argparse.Namespace(**{**vars(args), "set": [*args.set, *column.settings]})
    try:
        return compile_file(column.path, **spec_options(options, column.network))
    except UsageError as error:  # an unknown network or parameter: say which column
        if column.text == column.path:
            raise
        raise UsageError(f"{column.text}: {error}") from None


def _header(graph, column: Column) -> str:
    """`cifar_resnet (depth=56)`: the network, and the column's own settings; or the
    network's caption (`as "{depth}-layer"`), which says them in the author's words."""
    record = ir.network(graph)
    if record.caption:
        return record.caption
    return f"{record.name} ({', '.join(column.settings)})" if column.settings else record.name


def _chosen_headers(given: str | None, headers: list[str]) -> list[str]:
    if given is None:
        return headers
    chosen = [item.strip() for item in given.split(",")]
    if len(chosen) != len(headers):
        raise UsageError(f"--headers names {len(chosen)} column{'s' * (len(chosen) != 1)}, "
                         f"the table has {len(headers)}: {', '.join(headers)}")
    return chosen
