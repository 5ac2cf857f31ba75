"""`archdsl stats --train`: its options, and the calls they make into
backends.plan_memory and backends.report_memory (pure: no torch, no model built)."""
from __future__ import annotations

from .errors import UsageError

TRAIN_HELP = """\
instead of the forward pass, plan the memory of one training step at --batch-size (as
`archdsl train` runs it): per layer (or per scope with --depth) its weights, gradients,
optimizer state and the activations kept for the backward pass (in-place layers and
views share memory); the peak and where it is; with --memory, the largest batch that
fits"""


def add_memory_options(stats) -> None:
    """The options of `stats --train`, on the stats parser (--batch-size and --device
    are shared with --measure)."""
    stats.add_argument("--train", action="store_true", help=TRAIN_HELP)
    stats.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw",
                       help="with --train: AdamW keeps 2 float32 tensors per parameter, SGD "
                            "with momentum 1 (default adamw, as `archdsl train`)")
    stats.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none",
                       help="with --train: mixed precision (torch.autocast): matrix products "
                            "run and keep their operands in 16 bits (default none)")
    stats.add_argument("--checkpoint", metavar="SCOPES",
                       help="with --train: recompute these scopes in the backward pass "
                            "instead of keeping their activations (comma-separated stage or "
                            "block names: `layer3,layer4` or `bottleneck`)")
    stats.add_argument("--memory", metavar="SIZE",
                       help="with --train: also give the largest batch whose peak fits in "
                            "SIZE (24GiB, 80GB, 512MiB)")


def run_memory(args) -> int:
    from .backends.plan_memory import Setup
    from .backends.report_memory import (checkpoint_scopes, format_memory, memory_report,
                                         parse_memory)
    from .cli import EXIT_OK, EXIT_SPEC_ERRORS, compile_or_report, require_networks
    _check_options(args)
    if args.memory:
        parse_memory(args.memory)  # refused before anything is compiled
    result = compile_or_report(args.files[0], args)
    require_networks(result, args.files[0])
    if not result.ok:
        return EXIT_SPEC_ERRORS
    names = [n.strip() for n in (args.checkpoint or "").split(",") if n.strip()]
    texts = []
    for graph in result.graphs.values():
        setup = Setup(args.batch_size, args.optimizer, args.amp,
                      "cuda" if args.device == "cuda" else "cpu",
                      checkpoint_scopes(graph, names))
        texts.append(format_memory(memory_report(graph, setup, args.depth, args.memory),
                                   args.format))
    print("\n".join(texts), end="")
    return EXIT_OK


def _check_options(args) -> None:
    """Refuse what --train cannot do, before anything is compiled."""
    if len(args.files) > 1:
        raise UsageError("--train takes one FILE (choose its network with --network)")
    if args.measure:
        raise UsageError("--train plans memory, --measure times: give one of them")
    if args.formula:
        raise UsageError("--formula applies to the forward costs, not to --train")
    if args.plot:
        raise UsageError("--plot draws the forward costs; leave it out with --train")
    if args.depth is not None and args.depth < 1:
        raise UsageError("--depth must be at least 1")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.dtype != "fp32":
        raise UsageError("--dtype sets the forward table's element size; a training step "
                         "keeps float32 weights: use --amp bf16|fp16 for mixed precision")
