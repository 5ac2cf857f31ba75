"""`archdsl stats --measure`: its options, and the calls they make into
archdsl.runtime.measure (which imports torch, only when a measurement runs) and
backends.report_measure."""
from __future__ import annotations

import sys
from pathlib import Path

from .errors import UsageError

MEASURE_HELP = """\
instead of counting, measure a training step (forward and backward of a mean loss) on
a random batch with torch's profiler: per layer (or per scope with --depth) the median
forward and backward ms, MACs for the batch, achieved MAC/s, arithmetic intensity (MACs
per byte of inputs, output and parameters) and the fraction of the device's peak, which
is measured first (a large matmul and a large copy); then the whole step against the sum
of the layers. With --plot OUT, a roofline. Needs PyTorch"""


def add_measure_options(stats) -> None:
    """The options of `stats --measure`, on the stats parser."""
    stats.add_argument("--measure", action="store_true", help=MEASURE_HELP)
    stats.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="with --measure: where to run (auto: cuda if available); with "
                            "--train: the device planned for (cuda or, by default, cpu)")
    stats.add_argument("--batch-size", type=int, default=8, metavar="N",
                       help="with --measure or --train: images (or sequences) per step "
                            "(default 8)")
    stats.add_argument("--steps", type=int, default=5, metavar="N",
                       help="with --measure: profiled steps, of which the median is shown "
                            "(default 5)")
    stats.add_argument("--warmup", type=int, default=2, metavar="N",
                       help="with --measure: steps run first and not counted (default 2)")
    stats.add_argument("--threads", type=int, metavar="N",
                       help="with --measure on the CPU: torch's threads (default: its own "
                            "choice, one per core); 1 gives steadier figures on a busy machine")


def run_measure(args) -> int:
    from .backends.report_measure import MEASURE_FORMATS, format_measure, measure_report
    from .backends.report_stats import plot_format_of
    from .cli import EXIT_OK, EXIT_SPEC_ERRORS, compile_or_report, require_networks
    from .cli_torch import with_torch
    from .files import write_atomic
    _check_options(args, MEASURE_FORMATS)
    plot_format = plot_format_of(args.plot)
    runtime = with_torch("runtime.measure", "`archdsl stats --measure`")
    device = runtime.pick_device(args.device)
    runtime.check_dtype(args.dtype, device)
    if args.threads is not None:
        runtime.use_threads(args.threads)
    result = compile_or_report(args.files[0], args)
    require_networks(result, args.files[0])
    if not result.ok:
        return EXIT_SPEC_ERRORS
    print(f"measuring the peak of {device} ...", file=sys.stderr)
    roofs = runtime.measure_roofs(device, args.dtype)
    reports = []
    for graph in result.graphs.values():
        print(f"measuring {args.files[0]} on {device}: {args.warmup} warm-up and "
              f"{args.steps} profiled steps ...", file=sys.stderr)
        measured = runtime.measure(graph, device, args.dtype, args.batch_size, args.steps,
                                   args.warmup, roofs)
        reports.append(measure_report(graph, measured, args.depth))
    if args.plot:
        from .backends.plot_roofline import plot_roofline
        write_atomic(Path(args.plot), plot_roofline(reports, plot_format, column=args.column))
        print(f"drew the roofline of {', '.join(r.network for r in reports)} -> {args.plot}",
              file=sys.stderr)
    print("\n".join(format_measure(r, args.format) for r in reports), end="")
    return EXIT_OK


def _check_options(args, formats) -> None:
    """Refuse what --measure cannot do, before anything is built."""
    if len(args.files) > 1:
        raise UsageError("--measure takes one FILE (choose its network with --network)")
    if args.format not in formats:
        raise UsageError(f"--format {args.format}: --measure prints {', '.join(formats)}")
    if args.formula:
        raise UsageError("--formula counts, --measure times: give one of them")
    if args.depth is not None and args.depth < 1:
        raise UsageError("--depth must be at least 1")
    for name, value, least in (("--batch-size", args.batch_size, 1), ("--steps", args.steps, 1),
                               ("--warmup", args.warmup, 0), ("--threads", args.threads or 1, 1)):
        if value < least:
            raise UsageError(f"{name} must be at least {least}")


