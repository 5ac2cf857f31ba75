"""`archdsl diff`: its options, and the calls they make into the front end and
backends.report_diff."""
from __future__ import annotations

import argparse
import sys

from .errors import UsageError

HELP = """\
What differs between two networks: the block instances (a scope in which a block was
called, `layer1.0`) and the layers outside them that were changed (another block, other
arguments, or any layer inside with another op, arguments or output shape), added or
removed, matched by name; then parameters, MACs and forward activation memory per stage
(the top-level names) and in total, before -> after (delta).

A and B are FILE or FILE:NETWORK; B defaults to A, so that one spec can be compared at two
settings: --set applies to both, --set-b to B only (after --set):

  archdsl diff specs/resnet50.arch specs/resnext50_32x4d.arch
  archdsl diff specs/cifar_resnet.arch:cifar_resnet --set-b depth=56

exit status, as diff's: 0 no differences, 1 differences, 2 trouble (a spec with errors
is reported as by check, with exit status 2)."""


def add_diff_command(commands, spec_options) -> None:
    diff = commands.add_parser(
        "diff", help="the blocks and layers two networks differ in, and the cost deltas",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=HELP)
    diff.add_argument("a", metavar="A", help="FILE or FILE:NETWORK")
    diff.add_argument("b", metavar="B", nargs="?", help="FILE or FILE:NETWORK (default: A)")
    diff.add_argument("--set-b", metavar="NAME=VALUE", action="append", default=[],
                      help="a network parameter of B only (repeatable)")
    diff.add_argument("--format", choices=("text", "json"), default="text")
    spec_options(diff)


def run_diff(args) -> int:
    from .arguments import spec_options  # noqa: PLC0415
    from .backends.report_diff import diff_graphs, diff_json, format_diff  # noqa: PLC0415
    from .cli import network_target, pair_targets  # noqa: PLC0415
    from .compile import compile_file  # noqa: PLC0415
    from .diagnostics import render_all  # noqa: PLC0415
    graphs = []
    for which, (target, extra) in zip("AB", pair_targets(args.a, args.b, args.set_b, "diff")):
        path, network = network_target(target)
        args_for = argparse.Namespace(**{**vars(args), "set": [*args.set, *extra]})
        options = spec_options(args_for, network or None)
        result = compile_file(path, **options)
        if not result.ok:
            print(render_all(result.diagnostics), file=sys.stderr)
            raise UsageError(f"{which} ({target}) has errors: nothing to compare")
        if len(result.graphs) != 1 and not network:
            names = ", ".join(result.graphs)
            raise UsageError(f"{target} has several networks ({names}): name one, "
                             f"{path}:NETWORK")
        settings = " ".join(f"--set {item}" for item in args_for.set)
        graph = result.graph
        graphs.append((graph, f"{target} ({_name(graph)}){' ' + settings if settings else ''}"))
    diff = diff_graphs(graphs[0][0], graphs[1][0], graphs[0][1], graphs[1][1])
    print(diff_json(diff) if args.format == "json" else format_diff(diff))
    return 0 if diff.same else 1


def _name(graph) -> str:
    from . import ir  # noqa: PLC0415
    return ir.network(graph).name
