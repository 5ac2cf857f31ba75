"""The `archdsl` command line. The only module that touches files and the terminal."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from . import ir
from .arguments import build_parser, check_train_flags, parse_shape, parse_value, spec_options  # noqa: F401
from .backends.report_stats import (format_comparison, format_report, plot_format_of,
                                     report_stats, summary, summary_line)
from .compile import Compilation, CompileError, compile_file
from .diagnostics import SpecError, render_all, to_json
from .errors import UsageError
from .files import write_atomic
from .ir import dump

EXIT_OK, EXIT_SPEC_ERRORS, EXIT_USAGE, EXIT_MISSING_TOOL, EXIT_INTERNAL = 0, 1, 2, 3, 70

def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except UsageError as error:  # also a training run's bad data or checkpoint
        print(f"archdsl: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except CompileError as error:  # a spec with errors, met while training or evaluating
        print(error, file=sys.stderr)
        return EXIT_SPEC_ERRORS
    except OSError as error:  # an output path that cannot be written, a full disk, ...
        where = f" {error.filename}:" if error.filename else ""
        print(f"archdsl: error:{where} {error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug in archdsl: say so, exit with its own status
        if os.environ.get("ARCHDSL_DEBUG"):
            raise
        print(f"archdsl: internal error, please report it with the spec and command: "
              f"{type(error).__name__}: {error} (ARCHDSL_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


# ---- option parsing ---------------------------------------------------------------------


def network_target(argument: str) -> tuple[str, str | None]:
    """`FILE:NETWORK` as (FILE, NETWORK), as every command that takes one network reads
    it (diff, render, table, sweep); a plain FILE, even one whose name has a colon, as
    (FILE, None).

    >>> network_target("specs/cifar_resnet.arch:cifar_plain")
    ('specs/cifar_resnet.arch', 'cifar_plain')
    >>> network_target("specs/resnet18.arch")
    ('specs/resnet18.arch', None)
    """
    path, sep, network = argument.rpartition(":")
    if sep and network.isidentifier() and not Path(argument).exists():
        return path, network
    return argument, None


def pair_targets(a: str, b: str | None, set_b: list[str], what: str) -> tuple:
    """A and B as `diff` and `render --diff` name them: B defaults to A, so that one spec
    is compared at two settings, and --set-b applies to B only: ((A, []), (B, set_b))."""
    b = b or a
    if b == a and not set_b:
        raise UsageError(f"{what} needs two networks: a second FILE[:NETWORK], or --set-b "
                         "NAME=VALUE to compare A at another setting")
    return (a, []), (b, list(set_b))


def compile_or_report(path: str, args, fmt: str = "text",
                      network: str | None = None) -> Compilation:
    result = compile_file(path, **spec_options(args, network))
    if result.diagnostics and fmt == "text":
        print(render_all(result.diagnostics), file=sys.stderr)
        print(file=sys.stderr)
    return result


# ---- commands ---------------------------------------------------------------------------


def run_check(args) -> int:
    failed, unusable, report = False, False, []
    for path in args.files:
        try:
            result = compile_or_report(path, args, args.format)
        except UsageError as error:  # an unreadable file: say so, check the others
            print(f"archdsl: error: {error}", file=sys.stderr)
            unusable = True
            continue
        failed |= not result.ok
        if args.format == "json":
            networks = [summary(g) for g in result.graphs.values()] if result.ok else []
            diagnostics, members_ok = list(result.diagnostics), True
            for network in networks:
                survey = _survey_space(path, args, network["network"])
                if survey is not None:
                    network["space"] = survey.record()
                    diagnostics += survey.diagnostics()
                    members_ok &= survey.ok
            failed |= not members_ok
            report.append({"file": path, "ok": result.ok and members_ok, "networks": networks,
                           "diagnostics": [to_json(d) for d in diagnostics]})
        elif result.ok:
            for graph in result.graphs.values():
                print(f"{path}: {summary_line(graph)}")
                survey = _survey_space(path, args, ir.network(graph).name)
                if survey is not None:
                    if survey.diagnostics():
                        print(render_all(survey.diagnostics()), file=sys.stderr)
                    for line in survey.lines():
                        print(f"  {line}")
                    failed |= not survey.ok
            if not result.graphs:
                print(f"{path}: ok, {_no_networks(result)}")
        else:
            errors = sum(d.severity == "error" for d in result.diagnostics)
            print(f"{path}: {errors} error{'s' if errors != 1 else ''}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    return EXIT_USAGE if unusable else EXIT_SPEC_ERRORS if failed else EXIT_OK


def _survey_space(path: str, args, network: str):
    """`check` of a network with a search space: --sample members checked (None for a
    network without a space, or with --sample 0)."""
    from .explore import Family, Survey  # noqa: PLC0415
    options = spec_options(args, network)
    family = Family(path, network, options["settings"], options["inputs"], options["limits"])
    if not family.space or args.sample == 0:
        return None
    return Survey.of(family, args.sample, args.seed)


def _no_networks(result: Compilation) -> str:
    blocks = len(result.program.blocks) if result.program else 0
    return f"no networks ({blocks} block{'' if blocks == 1 else 's'})"


def require_networks(result: Compilation, path: str) -> None:
    if result.ok and not result.graphs:
        raise UsageError(f"{path} has {_no_networks(result)}: nothing to do")


def run_stats(args) -> int:
    if args.train:
        from .cli_memory import run_memory
        return run_memory(args)
    if args.measure:
        from .cli_measure import run_measure
        return run_measure(args)
    if args.depth is not None and args.depth < 1:
        raise UsageError("--depth must be at least 1")
    if args.depth is not None and len(args.files) > 1 and not args.plot:
        raise UsageError("--depth applies to the table of one file; several files are "
                         "compared by their totals (or drawn with --plot)")
    plot_format = plot_format_of(args.plot)
    reports, compiled, failed = [], [], False
    for path in args.files:
        result = compile_or_report(path, args)
        require_networks(result, path)
        failed |= not result.ok
        if result.ok:
            reports += [report_stats(g, args.depth, args.dtype) for g in result.graphs.values()]
            compiled += [(path, g) for g in result.graphs.values()]
    if failed:
        return EXIT_SPEC_ERRORS
    if args.plot:
        from .backends.plot_costs import plot_costs
        write_atomic(Path(args.plot), plot_costs(reports, plot_format, column=args.column,
                                                     layers=args.plot_layers))
        print(f"drew {', '.join(r.network for r in reports)} -> {args.plot}", file=sys.stderr)
    if len(args.files) > 1:
        print(format_comparison(reports, args.format), end="")
    else:
        print("\n".join(format_report(r, args.format) for r in reports), end="")
    if args.formula:
        _print_formulas(compiled, spec_options(args), args.dtype)
    return EXIT_OK


def _print_formulas(compiled, options: dict, dtype: str) -> None:
    """The formulas of each (path, network graph) stats has compiled."""
    from .formulas import file_formulas, format_formulas
    for path, graph in compiled:
        formulas = file_formulas(path, graph, options, dtype)
        print("\n" + (format_formulas(formulas) if formulas else
                      f"{ir.network(graph).name}: no input size is a symbol, so every "
                      "cost is one number (declare one: `input ids: L <= 2048`)\n"), end="")


def run_table(args) -> int:
    from .backends import report_table
    from .cli_table import compile_columns
    columns = compile_columns(args)
    if columns is None:
        return EXIT_SPEC_ERRORS
    graphs, headers = columns
    if args.format == "latex":
        text = report_table.format_latex(graphs, headers, args.notation, args.width)
    else:
        text = report_table.format_markdown(graphs, headers, args.notation)
    if args.output and args.output != "-":
        write_atomic(Path(args.output), text.encode())
        print(f"wrote the table of {', '.join(headers)} -> {args.output}", file=sys.stderr)
    else:
        print(text, end="")
    return EXIT_OK


def run_ast(args) -> int:
    from .compile import read_source
    from .lang.parse import parse
    from .lang.syntax import dump as dump_ast
    try:
        print(dump_ast(parse(read_source(args.file))))
    except SpecError as error:
        print(render_all([error.diagnostic]), file=sys.stderr)
        return EXIT_SPEC_ERRORS
    return EXIT_OK


def run_ir(args) -> int:
    result = compile_or_report(args.file, args)
    require_networks(result, args.file)
    for graph in result.graphs.values():
        print(dump(graph))
    return EXIT_OK if result.ok else EXIT_SPEC_ERRORS


def run_fmt(args) -> int:
    from .compile import read_source
    from .tools.fmt import format_source
    if args.output is not None and (len(args.files) != 1 or args.check):
        raise UsageError("-o takes one FILE and no --check: "
                         "`archdsl fmt -o - spec.arch` prints one formatted file")
    failed, unusable, changed = False, False, []
    for path in args.files:
        try:
            source = read_source(path)
            formatted = format_source(source.text, path)
        except UsageError as error:  # an unreadable file: say so, format the others
            print(f"archdsl: error: {error}", file=sys.stderr)
            unusable = True
            continue
        except SpecError as error:  # not UTF-8, or a syntax error: the file stays as it is
            print(render_all([error.diagnostic]), file=sys.stderr)
            failed = True
            continue
        if args.output == "-":
            sys.stdout.write(formatted)
        elif args.output is not None:
            write_atomic(Path(args.output), formatted.encode())
        elif formatted != source.text:
            changed.append(path)
            if not args.check:
                write_atomic(Path(path), formatted.encode())
    for path in changed:
        print(f"{'would reformat' if args.check else 'reformatted'} {path}", file=sys.stderr)
    if args.check and changed:
        failed = True
    return EXIT_USAGE if unusable else EXIT_SPEC_ERRORS if failed else EXIT_OK


def run_lsp(args) -> int:
    try:
        from .tools.lsp import serve
    except ImportError as error:
        if (error.name or "").split(".")[0] not in ("pygls", "lsprotocol"):
            raise
        print("archdsl: error: the language server needs pygls: pip install archdsl[lsp]",
              file=sys.stderr)
        return EXIT_USAGE
    serve()
    return EXIT_OK




def _later(module: str, name: str):
    """A command of another module of the command line, imported when it runs: `check`
    does not load what `render` or `train` need."""
    def run(args) -> int:
        import importlib
        return getattr(importlib.import_module(f".{module}", __package__), name)(args)
    return run


COMMANDS = {"check": run_check, "stats": run_stats, "table": run_table,
            "build": _later("cli_torch", "run_build"), "render": _later("cli_render", "run_render"),
            "train": _later("cli_torch", "run_train"), "eval": _later("cli_torch", "run_eval"),
            "run": _later("cli_torch", "run_predict"),
            "generate": _later("cli_torch", "run_generate"), "ast": run_ast, "ir": run_ir, "fmt": run_fmt,
            "lsp": run_lsp, "export": _later("cli_torch", "run_export"),
            "import": _later("cli_torch", "run_import"), "sweep": _later("cli_sweep", "run_sweep"),
            "diff": _later("cli_diff", "run_diff"), "debug": _later("cli_debug", "run_debug")}
