"""`archdsl render`: a spec's diagram written where it was asked for. The drawing itself,
and the choice of a legible layout for a paper's column, are archdsl.figures'; this module
turns the options into a FigureOptions and writes the file. Imported when render runs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import figures, ir
from .arguments_figures import parse_captions
from .backends.layout import LayoutError, format_of, layout, suffix_of
from .cli import (EXIT_MISSING_TOOL, EXIT_OK, EXIT_SPEC_ERRORS, Compilation, compile_or_report,
                  network_target, pair_targets, require_networks)
from .errors import UsageError
from .files import write_atomic


def run_render(args) -> int:
    options = _figure_options(args)
    if args.diff:
        return _render_diff(args, options)
    if args.set_b:
        raise UsageError("--set-b sets a parameter of B in --diff A [B]; add --diff")
    if len(args.files) > 1 or args.side_by_side:
        return _render_side_by_side(args, options)
    path, network = network_target(args.files[0])
    result = compile_or_report(path, args, network=network or args.network)
    require_networks(result, path)
    options.check(result.graphs.values())
    _check_output(args, path, result)
    if not result.ok and not args.partial:
        return EXIT_SPEC_ERRORS
    for name, graph in result.graphs.items():
        out = _diagram_path(args, name, len(result.graphs))
        drawing = figures.draw(graph, options)
        _print_notes(drawing)
        if not _write_diagram(drawing.dot, _format(args), out, Path(f"{name}.dot"), args):
            return EXIT_MISSING_TOOL
        if out is not None:
            print(f"{path}: drew {name} -> {out}")
    return EXIT_OK if result.ok else EXIT_SPEC_ERRORS


def _figure_options(args) -> figures.FigureOptions:
    show = tuple(w.strip() for w in args.show.split(",") if w.strip())
    if not 10 <= args.dpi <= 2400:
        raise UsageError("--dpi must be between 10 and 2400")
    options = figures.FigureOptions(args.depth, tuple(args.expand), args.direction, args.shapes,
                            args.style, args.partial, args.column, show, args.title,
                            args.legend, args.dot_timeout, args.max_height, args.frames,
                            parse_captions(args.caption), merges=args.merges)
    options.check()
    return options


def _diagram_path(args, name: str, networks: int) -> Path | None:
    """Where one network's diagram goes (None: standard output)."""
    if args.output == "-":
        return None
    fmt = _format(args)
    out = Path(args.output) if args.output else Path(f"{name}.{suffix_of(fmt)}")
    if networks > 1 and args.output:
        out = out.with_name(f"{out.stem}_{name}{out.suffix}")
    if out.resolve().is_dir():
        raise UsageError(f"-o {out}: is a directory; give a file name such as "
                         f"{out / (name + '.' + suffix_of(fmt))}")
    return out


def _print_notes(drawing) -> None:
    for note in drawing.notes:
        print(note, file=sys.stderr)


def _write_diagram(source: str, fmt: str, out: Path | None, dot_path: Path, args) -> bool:
    """Lay out and write the diagram (to standard output when `out` is None). Without a
    layout program, write the DOT source beside it, say so, and return False."""
    try:
        data = layout(source, fmt, args.dot_timeout, dpi=args.dpi)
    except LayoutError as error:
        dot_path = dot_path if out is None else out.with_suffix(".dot")
        write_atomic(dot_path, source.encode())
        print(f"archdsl: error: cannot make {fmt.upper()}: {error}\n"
              f"The diagram's DOT source is in {dot_path}.", file=sys.stderr)
        return False
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        write_atomic(out, data)
    return True


def _render_side_by_side(args, options: figures.FigureOptions) -> int:
    """Several networks in one figure: every network of each FILE (--network picks one
    by name), or the one FILE:NETWORK names."""
    graphs = []
    for argument in args.files:
        path, network = network_target(argument)
        result = compile_or_report(path, args, network=network or args.network)
        require_networks(result, path)
        if not result.ok:
            return EXIT_SPEC_ERRORS
        if len(result.graphs) > 1 and not args.side_by_side:
            raise UsageError(f"{path} has {len(result.graphs)} networks ("
                             f"{', '.join(result.graphs)}); name one as {path}:NETWORK, or "
                             "draw them all with --side-by-side")
        _check_output(args, path, result)
        graphs += result.graphs.values()
    options.check(graphs)
    drawing = figures.draw_side_by_side(graphs, options)
    _print_notes(drawing)
    names = [ir.network(g).name for g in graphs]
    out = None if args.output == "-" else Path(args.output or "_".join(names) + "."
                                                  + suffix_of(_format(args)))
    if not _write_diagram(drawing.dot, _format(args), out, Path("networks.dot"), args):
        return EXIT_MISSING_TOOL
    if out is not None:
        print(f"drew {', '.join(names)} side by side -> {out}")
    return EXIT_OK


def _render_diff(args, options: figures.FigureOptions) -> int:
    """`render --diff A [B]`: B beside A, with what `archdsl diff` finds marked."""
    from .backends.render_diff import render_diff  # noqa: PLC0415
    from .backends.report_diff import diff_graphs  # noqa: PLC0415
    for flag, given in (("--side-by-side", args.side_by_side), ("--partial", args.partial)):
        if given:
            raise UsageError(f"--diff draws A and B side by side, each whole; drop {flag}")
    pair = _diff_pair(args)
    if pair is None:
        return EXIT_SPEC_ERRORS
    options.check(pair)
    pair = tuple(ir.recaptioned(g, dict(options.captions)) for g in pair)
    diff = diff_graphs(*pair)
    if diff.same:
        print("archdsl: note: no differences between A and B; drawn side by side, nothing "
              "marked", file=sys.stderr)
    source = render_diff(*pair, diff, depth=options.depth, expand=options.expand,
                         direction=options.direction, shapes=options.shapes,
                         style=options.style, column=options.size(), show=options.show,
                         title=options.title, legend=options.legend, frames=options.frames,
                         merges=options.merges)
    names = [ir.network(g).name for g in pair]
    _print_notes(figures.draw_given(source, options, " and ".join(names)))
    stem = "_vs_".join(names) if names[0] != names[1] else f"{names[0]}_diff"
    out = None if args.output == "-" else Path(args.output or f"{stem}.{suffix_of(_format(args))}")
    if not _write_diagram(source, _format(args), out, Path(f"{stem}.dot"), args):
        return EXIT_MISSING_TOOL
    if out is not None:
        print(f"drew {names[1]} beside {names[0]}, what differs marked -> {out}")
    return EXIT_OK


def _diff_pair(args) -> tuple | None:
    """The graphs of A and B as `archdsl diff` names them: B defaults to A, --set applies
    to both and --set-b to B only; None when either has errors (they are printed)."""
    if len(args.files) > 2:
        raise UsageError(f"--diff compares two networks, A and B; {len(args.files)} given")
    graphs = []
    b = args.files[1] if len(args.files) > 1 else None
    for target, extra in pair_targets(args.files[0], b, args.set_b, "--diff"):
        path, network = network_target(target)
        settings = argparse.Namespace(**{**vars(args), "set": [*args.set, *extra]})
        result = compile_or_report(path, settings, network=network or args.network)
        require_networks(result, path)
        if not result.ok:
            return None
        if len(result.graphs) > 1:
            raise UsageError(f"{target} has several networks ({', '.join(result.graphs)}): "
                             f"name one, {path}:NETWORK")
        _check_output(args, path, result)
        graphs.append(result.graph)
    return tuple(graphs)


def _check_output(args, path: str, result: Compilation) -> None:
    if args.output == "-" and len(result.graphs) > 1:
        raise UsageError(f"-o - writes one diagram, but {path} has "
                         f"{len(result.graphs)} networks; choose one with --network NAME")
    asked = format_of(args.output) if args.output else None
    if args.format and asked and asked != args.format:
        raise UsageError(f"-o {args.output} asks for {asked.upper()} but --format is "
                         f"{args.format}; make them agree")


def _format(args) -> str:
    return args.format or (format_of(args.output) if args.output else None) or "svg"
