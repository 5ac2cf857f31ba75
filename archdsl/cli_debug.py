"""`archdsl debug`: its options, and the calls they make into runtime.debug and
backends.report_debug."""
from __future__ import annotations

import argparse
import importlib

from .errors import UsageError

HELP = """\
Run a few batches of --data through FILE's network, forward and backward, with hooks on
every layer, and report per layer of the spec: the mean, std, largest |value| and share
of zeros of its output and of the gradient that reaches it; the ReLU units that gave zero
for every example of the run (dead units); and where the first NaN or infinite value
appeared, located like a diagnostic: the .arch line and column of the layer, the layers
that fed it, the chain of block calls, and the torch operations inside it that made it.
A value that is finite forward but whose gradient is not (sqrt at 0) is located at the
layer whose backward made it. The run stops at the batch that made the first one.

The weights are not changed: the network as built (torch's seeded initialisation), or
with --weights (a checkpoint of `archdsl train`, or a state_dict), in training mode
(batch statistics, dropout) unless --eval. `archdsl train --debug` checks every step and
stops at the first non-finite loss or gradient with the same located report.

  archdsl debug specs/resnet18.arch --data shapes:64 --input 3x64x64
  archdsl debug net.arch --weights runs/net/last.pt --amp fp16

exit status: 0 the report was made (with --check: and found only finite values), 1 with
--check a non-finite value was found, 2 wrong usage (bad options, data or weights)."""


def add_debug_command(commands, spec_options) -> None:
    debug = commands.add_parser(
        "debug", help="per-layer activation and gradient statistics, dead units, and where "
                      "the first NaN or inf appears",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=HELP)
    debug.add_argument("file", metavar="FILE")
    debug.add_argument("--data", default="shapes:256", metavar="SOURCE",
                       help="shapes[:N] (default shapes:256), waves[:N], folder:PATH, "
                            "cifar10:PATH or text[:FILE]; batches of its training split")
    debug.add_argument("--weights", metavar="CKPT",
                       help="a checkpoint or state_dict (default: fresh initialisation)")
    debug.add_argument("--batches", type=int, default=4, metavar="N",
                       help="batches to run (default 4)")
    debug.add_argument("--batch-size", type=int, default=16, help="default 16")
    debug.add_argument("--seed", type=int, default=0,
                       help="weights (without --weights) and data order (default 0)")
    debug.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    debug.add_argument("--amp", choices=("bf16", "fp16", "off"), default="off",
                       help="run under autocast in this precision, as `train --amp` does")
    debug.add_argument("--eval", action="store_true",
                       help="evaluation mode: running batch-norm statistics, no dropout")
    debug.add_argument("--check", action="store_true",
                       help="exit 1 when a non-finite value was found (for scripts)")
    debug.add_argument("--format", choices=("text", "json"), default="text")
    spec_options(debug)


def run_debug(args) -> int:
    from .arguments import spec_options  # noqa: PLC0415
    from .backends.report_debug import debug_json, format_debug  # noqa: PLC0415
    runtime = _runtime()
    options = spec_options(args)
    config = runtime.DebugConfig(args.file, data=args.data, weights=args.weights,
                                 batches=args.batches, batch_size=args.batch_size,
                                 seed=args.seed, device=args.device, amp=args.amp,
                                 eval=args.eval, settings=options["settings"],
                                 inputs=options["inputs"], network=options["network"])
    graph, report = runtime.debug(config)
    if args.format == "json":
        print(debug_json(graph, report))
    else:
        print(format_debug(graph, report), end="")
    return 1 if args.check and report.fault is not None else 0



def _runtime():
    """archdsl.runtime.debug, which imports torch: a usage error naming the fix where
    torch is not installed."""
    try:
        return importlib.import_module(".runtime.debug", __package__)
    except ModuleNotFoundError as error:
        if error.name != "torch":
            raise
        raise UsageError("`archdsl debug` needs PyTorch: pip install torch") from None
