"""`archdsl sweep`: its options, and the calls they make into runtime.sweep."""
from __future__ import annotations

import argparse
import csv
import math
import re
from pathlib import Path

from .errors import UsageError

HELP = """\
Explore a network's family: every member of the spec's search space (parameters whose
default is `choice(...)`, `int_range(...)`, `float_range(...)`, `log_range(...)` or
`each(n, ...)`), or of --set lists (`--set depth=20,32,44` is a grid). Each trial checks
its member, rejects it when a static limit (--max-macs, --max-params, --max-memory) is
exceeded, writes it as a concrete spec OUT/trials/NNNN.arch, trains it with the `train`
loop into OUT/trials/NNNN/ (bad trials pruned from their epoch metrics), and records its
objectives. At the end: OUT/trials.csv, OUT/pareto.png and the table of trials.

objectives (--objective, repeatable; maximised or minimised as named):
  val_acc, val_loss   from training (the best epoch)
  params, macs        from the spec: parameters, multiply-accumulates of one input
  memory              forward activations of one input (bytes)
  latency             measured: median forward time at batch 1 (ms) on --device

samplers: grid (every member; the default for a finite space that --trials does not cut),
random, tpe (the default for one objective), nsga2 (the default for several).
pruners: median (default), asha (successive halving), none; one objective only.

storage: the study is Optuna's, in OUT/study.db (SQLite) unless --storage gives a URL
(postgresql://user:password@host/db, or any Optuna RDB URL): start the same command on
several machines with --storage and --study to share one study. A trial whose worker
died is failed after 2 x --heartbeat seconds and run again with the same member. Running
the command again with the same --out resumes the study: nothing done is lost.
--workers N runs N worker processes here (one per GPU where there are several).

--no-train costs members without training or a study: every member of a finite space (or
--trials drawn), in parallel; the Pareto front of the static objectives (default params
and macs) is written as specs. --show prints a sweep's trials, also while it runs."""


def add_sweep_command(commands, spec_options) -> None:
    sweep = commands.add_parser(
        "sweep", help="explore a search space: static limits, training, Pareto front (Optuna)",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=HELP)
    sweep.add_argument("file", metavar="FILE[:NETWORK]", nargs="?",
                       help="the spec (not needed with --show)")
    sweep.add_argument("--objective", action="append", default=[], metavar="NAME",
                       help="what to optimise (repeatable): val_acc (default), val_loss, "
                            "params, macs, memory, latency")
    sweep.add_argument("--max-macs", metavar="N", help="reject members over N MACs "
                       "(600M, 1.5G, 2e9) before training")
    sweep.add_argument("--max-params", metavar="N", help="reject members over N parameters")
    sweep.add_argument("--max-memory", metavar="SIZE",
                       help="reject members whose forward activations of one input exceed "
                            "SIZE (bytes, or 512KiB, 10MiB, 1GiB)")
    sweep.add_argument("--trials", type=int, metavar="N",
                       help="trials to finish (default: every member of a finite space, "
                            "else 20)")
    sweep.add_argument("--sampler", default="auto",
                       choices=("auto", "grid", "random", "tpe", "nsga2"))
    sweep.add_argument("--pruner", default="median", choices=("median", "asha", "none"))
    sweep.add_argument("--workers", type=int, default=1, metavar="N",
                       help="worker processes on this machine (default 1)")
    sweep.add_argument("--storage", metavar="URL",
                       help="an Optuna RDB URL shared by workers on several machines "
                            "(default: OUT/study.db)")
    sweep.add_argument("--study", metavar="NAME", help="the study's name (default: the network's)")
    sweep.add_argument("--heartbeat", type=int, default=20, metavar="SECONDS",
                       help="how often a running trial says it is alive (default 20); one "
                            "silent for twice this is retried")
    sweep.add_argument("--no-train", dest="train", action="store_false",
                       help="cost members only (static objectives), no study")
    sweep.add_argument("--show", action="store_true",
                       help="print the trials of the sweep in --out and stop")
    sweep.add_argument("--out", default="", metavar="DIR",
                       help="the sweep's folder (default runs/sweep-NETWORK): new, empty or "
                            "a sweep's; a folder of other files is refused")
    sweep.add_argument("--plot", default="pareto.png", metavar="NAME",
                       help="the front's figure in OUT: pareto.png (default), .svg or .pdf")
    sweep.add_argument("--quiet", action="store_true", help="only the final table")
    add_trial_training_options(sweep)
    spec_options(sweep)


TRAIN_OPTIONS = ("data", "epochs", "batch_size", "lr", "optimizer", "schedule",
                 "weight_decay", "device", "amp")


def add_trial_training_options(sweep) -> None:
    from .arguments import add_recipe_options  # noqa: PLC0415
    group = sweep.add_argument_group("training of each trial (as `archdsl train`)")
    add_recipe_options(group, epochs=3)
    group.add_argument("--seed", type=int, default=0, help="samplers and training (default 0)")


def run_sweep(args) -> int:
    from .arguments import spec_options  # noqa: PLC0415
    from .backends.report_sweep import format_trials  # noqa: PLC0415
    from .runtime import sweep  # noqa: PLC0415
    if args.show:
        return _show(args)
    if args.file is None:
        raise UsageError("sweep needs a FILE (or --show with --out)")
    from .cli import network_target  # noqa: PLC0415
    path, network = network_target(args.file)
    if not Path(path).exists():
        raise UsageError(f"no such file: {path}")
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1")
    if not (math.isfinite(args.lr) and args.lr > 0) or not args.weight_decay >= 0:
        raise UsageError("--lr must be a positive number, --weight-decay zero or more")
    settings, grid = _split_grid(args.set)
    args.set = settings
    options = spec_options(args, network or None)
    objectives = tuple(args.objective) or (("val_acc",) if args.train else ("params", "macs"))
    config = sweep.SweepConfig(
        spec=path, network=options["network"], settings=options["settings"], grid=grid,
        inputs=options["inputs"], objectives=objectives, trials=args.trials,
        sampler=args.sampler, pruner=args.pruner, storage=args.storage, study=args.study,
        workers=args.workers, train=args.train, seed=args.seed, heartbeat=args.heartbeat,
        plot=args.plot, quiet=args.quiet,
        limits={"macs": _amount(args.max_macs, "--max-macs"),
                "params": _amount(args.max_params, "--max-params"),
                "memory": _amount(args.max_memory, "--max-memory", binary=True)},
        train_options={k: getattr(args, k) for k in TRAIN_OPTIONS})
    config.limits = {k: v for k, v in config.limits.items() if v is not None}
    config.out = args.out or _default_out(config)
    result = sweep.run_sweep(config)
    trials, front = result["trials"], result["front"]
    print(format_trials(front if not args.train else trials, list(objectives), front, limit=40))
    print()
    _summary(config, result)
    return 0


def _summary(config, result) -> None:
    trials, front = result["trials"], result["front"]
    states = {}
    for trial in trials:
        states[trial["state"]] = states.get(trial["state"], 0) + 1
    counted = ", ".join(f"{n:,} {s}" for s, n in sorted(states.items()))
    if "seconds" in result:
        print(f"{len(trials):,} members costed in {result['seconds']:.1f} s "
              f"({result['processes']} process{'es' if result['processes'] > 1 else ''}): "
              f"{counted}")
    else:
        print(f"{len(trials):,} trials: {counted}")
    if front:
        label = "Pareto front" if len(front) > 1 or len(config.objectives) > 1 else "best"
        numbers = ", ".join(str(t["trial"]) for t in front[:20])
        more = f" and {len(front) - 20} more" if len(front) > 20 else ""
        against = f" against {result['axes'][0]}" if len(config.objectives) == 1 \
            and "seconds" not in result else ""
        print(f"{label} ({', '.join(result['objectives'])}{against}): "
              f"trial{'s' if len(front) > 1 else ''} {numbers}{more} (marked *; specs in "
              f"{Path(config.out) / 'trials'})")
    plot = Path(config.out) / config.plot
    if plot.exists():
        print(f"figure: {plot}")
    print(f"table: {Path(config.out) / 'trials.csv'}")


def _show(args) -> int:
    from .backends.report_sweep import format_trials, pareto_front  # noqa: PLC0415
    from .runtime import sweep  # noqa: PLC0415
    if not args.out:
        raise UsageError("--show reads the sweep in --out DIR: give it")
    config = sweep.load_record(args.out)
    if config.train:
        trials = sweep.trial_records(config)
    else:
        trials = _read_csv(Path(args.out) / "trials.csv")
    objectives = list(config.objectives)
    done = [t for t in trials if t["state"] == "complete"]
    front = pareto_front(done, objectives) if len(objectives) > 1 else \
        sorted(done, key=lambda t: _sort_key(t, objectives[0]))[:1]
    print(format_trials(trials, objectives, front, limit=None if config.train else 40))
    running = sum(t["state"] == "running" for t in trials)
    print(f"\n{len(trials):,} trials, {len(done):,} complete, {running} running; front: "
          + ", ".join(str(t["trial"]) for t in front[:20]))
    return 0


def _sort_key(trial, objective):
    from .backends.report_sweep import DIRECTIONS, value_of  # noqa: PLC0415
    value = value_of(trial, objective)
    return -value if DIRECTIONS[objective] == "maximize" else value


def _read_csv(path: Path) -> list[dict]:
    from .backends.report_sweep import STATIC  # noqa: PLC0415
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    fixed = {"trial", "state", "seconds", "spec", "note", *STATIC}
    return [{"trial": int(r["trial"]), "state": r["state"],
             "values": {k: v for k, v in r.items() if k not in fixed},
             "costs": {c: int(r[c]) for c in STATIC if r.get(c)}, "metrics": {},
             "note": r.get("note"), "spec": r.get("spec") or None, "seconds": None}
            for r in rows]


def _split_grid(items: list[str]) -> tuple[list[str], dict]:
    """--set NAME=A,B,C (commas outside parentheses) is a grid; other --set are fixed."""
    from .arguments import parse_value  # noqa: PLC0415
    fixed, grid = [], {}
    for item in items:
        name, sep, value = item.partition("=")
        parts = _top_level_split(value)
        if sep and len(parts) > 1:
            grid[name.strip()] = tuple(parse_value(p.strip()) for p in parts)
        else:
            fixed.append(item)
    return fixed, grid


def _top_level_split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_BINARY = {"b": 1, "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40,
           "kb": 1e3, "mb": 1e6, "gb": 1e9}


def _amount(text: str | None, flag: str, binary: bool = False) -> float | None:
    """600M, 1.5G, 2e9 (decimal) or, for memory, 10MiB, 512KiB, 2GB, bytes."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9.]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    units = {**_UNITS, **_BINARY} if binary else _UNITS
    if not match or match.group(2).lower() not in units:
        example = "10MiB, 512KiB or a number of bytes" if binary else "600M, 1.5G or 2e9"
        raise UsageError(f"{flag} {text}: write a number such as {example}")
    return float(match.group(1)) * units[match.group(2).lower()]


def _default_out(config) -> str:
    from .explore import Family  # noqa: PLC0415
    name = config.network or Family(config.spec).network
    return str(Path("runs") / f"sweep-{name}")

