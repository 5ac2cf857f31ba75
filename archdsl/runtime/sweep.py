"""`archdsl sweep`: explore a network's family on Optuna.

Each trial takes one member of the spec's search space (lang/space.py) or of `--set`
lists, compiles it, and before anything trains applies the static constraints
(--max-macs, --max-params, --max-memory: a member over one is *rejected*, a pruned trial
with the reason). The member is written as a concrete spec, OUT/trials/NNNN.arch, then
trained with the `train` loop into OUT/trials/NNNN/, reporting each epoch to the pruner.
Objectives come from training (val_acc, val_loss), from the spec (params, macs, memory)
and from a measurement (latency).

The study lives in Optuna storage: by default SQLite in OUT/study.db, so a sweep killed
at any point resumes by running the same command again; `--storage URL` (any Optuna RDB
URL, PostgreSQL for several machines) and `--study NAME` let workers started anywhere
join one study. Storages keep a heartbeat: a trial whose worker died is failed after the
grace period and queued again with the same parameters, so no member is lost. `--workers
N` runs N worker processes here.

`--no-train` costs members without a study: every member of a finite space (or --trials
of them), in parallel processes, with the Pareto front of the static objectives written
as concrete specs.
"""
from __future__ import annotations

import gc
import json
import math
import multiprocessing
import os
import random
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..backends.report_sweep import (DIRECTIONS, STATIC, format_csv, pareto_front, plot_axes,
                                     plot_front, value_of)
from ..errors import UsageError
from ..explore import Family, Member
from ..files import claim_directory, write_atomic
from ..lang.space import spec_text

SWEEP_FILES = ("study.db", "sweep.json", "trials.csv", "pareto.png", "pareto.svg",
               "pareto.pdf", "trials")
SAMPLERS = ("auto", "grid", "random", "tpe", "nsga2")
PRUNERS = ("median", "asha", "none")


@dataclass
class SweepConfig:
    spec: str
    network: str | None = None
    settings: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)  # --set NAME=A,B,C
    inputs: dict = field(default_factory=dict)
    out: str = ""
    objectives: tuple = ("val_acc",)
    trials: int | None = None
    sampler: str = "auto"
    pruner: str = "median"
    limits: dict = field(default_factory=dict)  # {"macs": 6e8, ...}: at most
    storage: str | None = None
    study: str | None = None
    workers: int = 1
    train: bool = True
    train_options: dict = field(default_factory=dict)  # TrainConfig fields
    seed: int = 0
    heartbeat: int = 20  # seconds; a trial is stale after twice this
    plot: str = "pareto.png"
    quiet: bool = False


def run_sweep(config: SweepConfig) -> dict:
    """Run (or resume) the sweep; returns what `sweep --show` summarises."""
    _check(config)
    out = Path(config.out)
    family = _family(config)
    if not family.space:
        raise UsageError(f"{config.spec}: `{family.network}` has no search space: give its "
                         "parameters a `choice(...)` or range, or --set NAME=A,B,C lists")
    try:
        claim_directory(out, "sweep", SWEEP_FILES)
    except FileExistsError as error:
        raise UsageError(f"--out {out}: {error.strerror}") from None
    if not config.train:
        return _survey(config, family, out)
    _need_optuna()
    config.study = config.study or family.network  # named, so that a shared database
    _record(config, out)  # holding several studies is read back by this name
    storage = _storage(config, out)  # creates the tables once, before the workers start
    _study(config, storage, family)
    if config.workers > 1:
        context = multiprocessing.get_context("spawn")
        others = [context.Process(target=work, args=(config, i)) for i in range(1, config.workers)]
        for process in others:
            process.start()
        work(config, 0)
        for process in others:
            process.join()
    else:
        work(config, 0)
    return write_results(config)


def _need_optuna() -> None:
    try:
        import optuna  # noqa: F401, PLC0415
    except ImportError:
        raise UsageError("sweeps with training run on Optuna, which is not installed: pip "
                         "install 'archdsl[sweep]' (or use --no-train)") from None


def _check(config: SweepConfig) -> None:
    for name in config.objectives:
        if name not in DIRECTIONS:
            raise UsageError(f"--objective {name}: choose from {', '.join(DIRECTIONS)}")
        if not config.train and name not in STATIC:
            raise UsageError(f"--objective {name} is measured by training: with --no-train "
                             f"the objectives are the static costs ({', '.join(STATIC)})")
    if len(set(config.objectives)) != len(config.objectives):
        raise UsageError("an --objective is given twice")
    if config.workers < 1 or (config.trials is not None and config.trials < 1):
        raise UsageError("--workers and --trials must be at least 1")
    if config.heartbeat < 1:
        raise UsageError("--heartbeat must be at least 1 second")
    if config.plot and (Path(config.plot).name != config.plot
                        or Path(config.plot).suffix not in (".png", ".svg", ".pdf")):
        raise UsageError(f"--plot {config.plot}: a file name in OUT ending .png, .svg or .pdf")
    if config.sampler not in SAMPLERS or config.pruner not in PRUNERS:
        raise UsageError(f"--sampler: {', '.join(SAMPLERS)}; --pruner: {', '.join(PRUNERS)}")


def _family(config: SweepConfig) -> Family:
    family = Family(config.spec, config.network, config.settings, config.inputs,
                    grid=config.grid)
    if family.definition is None:
        from ..compile import CompileError, compile_file  # noqa: PLC0415
        raise CompileError(compile_file(config.spec))
    return family


# ---- storage and study ----------------------------------------------------------------


def _storage(config: SweepConfig, out: Path):
    import optuna  # noqa: PLC0415
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    url = config.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    for attempt in range(6):
        try:
            return _storage_class()(
                url, heartbeat_interval=config.heartbeat, grace_period=2 * config.heartbeat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=3), engine_kwargs=_engine_options(url))
        except (ImportError, ModuleNotFoundError) as error:
            raise UsageError(f"--storage {url}: {error}; install its driver (PostgreSQL: pip "
                             "install 'psycopg[binary]', or archdsl[sweep-postgres])") from None
        except Exception as error:  # sqlalchemy's errors: no server, a bad password, or
            # another worker creating the tables at the same moment (then try again)
            if "unique" not in str(error).lower() or attempt == 5:
                raise UsageError(f"--storage {url}: cannot open: "
                                 f"{str(error).splitlines()[0]}") from None
            time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")


def _storage_class():
    """Optuna's RDB storage, where a running trial that never beat (its worker died between
    starting it and the first heartbeat) is also stale once the grace period is over:
    otherwise nothing would ever retry it, and workers would wait for it for ever."""
    import datetime  # noqa: PLC0415

    import optuna  # noqa: PLC0415
    from optuna.storages._rdb import models  # noqa: PLC0415
    from optuna.trial import TrialState  # noqa: PLC0415

    class Storage(optuna.storages.RDBStorage):
        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            stale = list(super()._get_stale_trial_ids(study_id))
            grace = datetime.timedelta(seconds=self.grace_period or 2 * self.heartbeat_interval)
            now = datetime.datetime.now()
            session = self.scoped_session()
            try:
                beating = {row.trial_id for row in session.query(models.TrialHeartbeatModel)}
            finally:
                session.close()
            for trial in self.get_all_trials(study_id, deepcopy=False,
                                             states=(TrialState.RUNNING,)):
                if trial._trial_id not in beating and trial._trial_id not in stale \
                        and trial.datetime_start is not None \
                        and now - trial.datetime_start > grace:
                    stale.append(trial._trial_id)
            return stale

    return Storage


def _engine_options(url: str) -> dict:
    # SQLite: several worker processes write one file; wait for the lock, not fail
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}


def _study(config: SweepConfig, storage, family: Family):
    import optuna  # noqa: PLC0415
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    directions = [DIRECTIONS[o] for o in config.objectives]
    name = config.study or family.network
    study = optuna.create_study(storage=storage, study_name=name, directions=directions,
                                sampler=_sampler(config, family), pruner=_pruner(config),
                                load_if_exists=True)
    if [d.name.lower() for d in study.directions] != directions:
        raise UsageError(f"study `{name}` in {config.storage or 'study.db'} has other "
                         f"objectives; choose another --study or --out")
    return study


def _sampler(config: SweepConfig, family: Family, worker: int = 0):
    import optuna  # noqa: PLC0415
    space, seed = family.space, config.seed + worker
    kind = config.sampler
    if kind == "auto":
        finite = space.size is not None and (config.trials is None or config.trials >= space.size)
        kind = "grid" if finite else "tpe" if len(config.objectives) == 1 else "nsga2"
    if kind == "grid":
        if space.size is None:
            raise UsageError("--sampler grid needs a finite space: a continuous range has "
                             "no grid (use random, tpe or nsga2)")
        return optuna.samplers.GridSampler(  # every worker the same seed: the seed
            {d.name: [_encode(v) for v in d.values()] for d in space.dimensions},  # orders
            seed=config.seed)  # the grid, and a grid point must be one member for all
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.samplers.NSGAIISampler(seed=seed)


def _pruner(config: SweepConfig):
    import optuna  # noqa: PLC0415
    if config.pruner == "none" or len(config.objectives) > 1 \
            or config.objectives[0] in STATIC:
        return optuna.pruners.NopPruner()
    if config.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)


def _encode(value):
    """A choice as Optuna stores it: numbers, strings and booleans as they are, a tuple as
    its spec text."""
    return spec_text(value) if isinstance(value, tuple) else value


def _suggest(trial, family: Family) -> dict:
    values = {}
    for dim in family.space.dimensions:
        if dim.kind == "choice":
            encoded = trial.suggest_categorical(dim.name, [_encode(v) for v in dim.options])
            values[dim.name] = dim.options[[_encode(v) for v in dim.options].index(encoded)]
        elif dim.kind == "int":
            values[dim.name] = trial.suggest_int(dim.name, dim.low, dim.high, step=dim.step)
        else:
            values[dim.name] = trial.suggest_float(dim.name, dim.low, dim.high,
                                                   log=dim.kind == "log")
    return values


# ---- a worker -------------------------------------------------------------------------


def work(config: SweepConfig, worker: int) -> None:
    """One worker: trials of the shared study until it has --trials finished (complete,
    pruned or rejected) or its grid is done."""
    import optuna  # noqa: PLC0415
    from optuna.study import MaxTrialsCallback  # noqa: PLC0415
    from optuna.trial import TrialState  # noqa: PLC0415
    family = _family(config)
    _fit_classes(config, family)
    storage = _storage(config, Path(config.out))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=config.study or family.network, storage=storage,
                              sampler=_sampler(config, family, worker), pruner=_pruner(config))
    trials = config.trials or family.space.size or 20
    _gpu_of(worker)
    callbacks = [MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED))]
    if not config.quiet:
        callbacks.append(lambda study, trial: print(trial_line(trial, config), flush=True))
    objective = lambda trial: _objective(trial, config, family)  # noqa: E731
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    left = trials - len(study.get_trials(deepcopy=False, states=finished))
    if left > 0:  # a resumed study runs only what it lacks
        study.optimize(objective, n_trials=left, callbacks=callbacks, catch=(Exception,),
                       gc_after_trial=True)
    # Trials other workers still run may belong to a worker that died: wait until each
    # ends or goes stale (no heartbeat for the grace period), then run the retries queued
    # for the stale ones. So the study is complete when any worker returns.
    while True:
        optuna.storages.fail_stale_trials(study)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        waiting = states.count(TrialState.WAITING)
        if waiting:
            study.optimize(objective, n_trials=waiting, callbacks=callbacks,
                           catch=(Exception,), gc_after_trial=True)
        elif TrialState.RUNNING in states:
            time.sleep(min(config.heartbeat, 5))
        else:
            return


def trial_line(trial, config: SweepConfig) -> str:
    """`trial 3 complete: depth = 14, width = 16: val_acc 0.2650, macs 26.40M (1.8 s)`."""
    from ..backends.report_sweep import show_value  # noqa: PLC0415
    attrs = trial.user_attrs
    state = attrs.get("state") or trial.state.name.lower()
    values = ", ".join(f"{k} = {v}" for k, v in trial.params.items())
    record = {"costs": attrs.get("costs", {}), "metrics": attrs.get("metrics", {})}
    shown = ", ".join(f"{o} {show_value(o, value_of(record, o))}" for o in config.objectives
                      if value_of(record, o) is not None)
    note = attrs.get("note") or (f"{trial.system_attrs.get('fail_reason', '')}"
                                 if trial.state.name == "FAIL" else "")
    seconds = attrs.get("seconds")
    return (f"trial {trial.number} {state}: {values}" + (f": {shown}" if shown else "")
            + (f" ({seconds:.1f} s)" if seconds else "") + (f"; {note}" if note else ""))


def _gpu_of(worker: int) -> None:
    """With several GPUs, worker i trains on GPU i (mod their number)."""
    try:
        import torch  # noqa: PLC0415
        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001 (no torch or no driver: the CPU)
        return
    if count > 1:
        torch.cuda.set_device(worker % count)


def _fit_classes(config: SweepConfig, family: Family) -> None:
    """A `classes` parameter that is not set takes the data's class count, as `train`
    does, so that costs and the written specs are those of the network trained."""
    names = {p.name for p in family.definition.params}
    if "classes" not in names or "classes" in family.settings:
        return
    from .data import open_source  # noqa: PLC0415
    graph = family.member(family.space.default()).graph
    if graph is None:
        return
    from .. import ir  # noqa: PLC0415
    shape = graph.nodes[ir.network(graph).inputs[0]]["shape"]
    train, _ = open_source(config.train_options.get("data", "shapes"), shape, config.seed)
    if train.classes and not train.tokens:
        family.settings["classes"] = len(train.classes)


def _objective(trial, config: SweepConfig, family: Family):
    import optuna  # noqa: PLC0415
    start = time.perf_counter()
    values = _suggest(trial, family)
    earlier = _taken(trial)
    if earlier is not None:  # two workers drew one member at once: the first runs it
        trial.set_user_attr("state", "duplicate")
        trial.set_user_attr("note", f"the member of trial {earlier}")
        raise DuplicateTrial(f"the member of trial {earlier}")
    member = family.member(values)
    if not member.ok:
        errors = [d for d in member.diagnostics if d.severity == "error"]
        trial.set_user_attr("state", "invalid")
        trial.set_user_attr("note", f"does not check: {errors[0].code} {errors[0].message}")
        raise optuna.TrialPruned()
    trial.set_user_attr("costs", member.costs)
    over = over_limits(member, config.limits)
    if over:
        trial.set_user_attr("state", "rejected")
        trial.set_user_attr("note", over)
        raise optuna.TrialPruned()
    spec = write_member(config, family, member, trial.number)
    trial.set_user_attr("spec", str(spec))
    metrics = {}
    if any(o not in STATIC and o != "latency" for o in config.objectives):
        metrics.update(_train(trial, config, family, spec))
    if "latency" in config.objectives:
        metrics["latency"] = measure_latency(member, config.train_options.get("device", "auto"))
    trial.set_user_attr("metrics", metrics)
    trial.set_user_attr("seconds", time.perf_counter() - start)
    result = [member.costs[o] if o in STATIC else metrics[o] for o in config.objectives]
    return result[0] if len(result) == 1 else tuple(result)


class DuplicateTrial(Exception):
    """A trial whose member an earlier trial of the study runs or ran (it fails, so that it
    is neither counted nor retried)."""


def _taken(trial) -> int | None:
    """The number of an earlier trial with the same member that is queued, running or
    finished (not failed), if any."""
    from optuna.trial import TrialState  # noqa: PLC0415
    states = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)
    for other in trial.study.get_trials(deepcopy=False, states=states):
        if other.number < trial.number and other.params == trial.params:
            return other.number
    return None


def over_limits(member: Member, limits: dict) -> str:
    """Which static limit the member exceeds ('' if none)."""
    for name, limit in limits.items():
        if limit is not None and member.costs[name] > limit:
            return f"{name} {member.costs[name]:,} > --max-{name} {limit:,.0f}"
    return ""


def write_member(config: SweepConfig, family: Family, member: Member, number: int) -> Path:
    """OUT/trials/NNNN.arch: the spec with the member's choices fixed."""
    folder = Path(config.out) / "trials"
    folder.mkdir(exist_ok=True)
    path = folder / f"{number:04d}.arch"
    header = (f"Trial {number} of the sweep of `{family.network}` in {family.path}:\n"
              f"{member.describe()}")
    write_atomic(path, family.concrete_text(member, header).encode())
    return path


def _train(trial, config: SweepConfig, family: Family, spec: Path) -> dict:
    import optuna  # noqa: PLC0415
    from .config import TrainConfig  # noqa: PLC0415
    from .train import train  # noqa: PLC0415
    measured = [o for o in config.objectives if o in ("val_acc", "val_loss")]
    first = measured[0] if measured else None
    single = len(config.objectives) == 1

    def report(metrics: dict) -> None:
        if first is None or not single:
            return
        trial.report(metrics[first], metrics["epoch"])
        if trial.should_prune():
            trial.set_user_attr("note", f"pruned after epoch {metrics['epoch']}: "
                                f"{first} {metrics[first]:.4f}")
            trial.set_user_attr("metrics", {first: metrics[first]})
            raise optuna.TrialPruned()

    run = TrainConfig(spec=str(spec), network=family.network, progress=False,
                      out=str(Path(config.out) / "trials" / f"{trial.number:04d}"),
                      seed=config.seed, on_epoch=report, **config.train_options)
    history = train(run)
    return {name: (max if DIRECTIONS[name] == "maximize" else min)(h[name] for h in history)
            for name in measured}


def measure_latency(member: Member, device: str = "auto") -> float:
    """The median time of one forward pass at batch 1, in milliseconds (after warm-up)."""
    import torch  # noqa: PLC0415
    from ..backends.lower_fx import lower_fx  # noqa: PLC0415
    from .device import pick_device, require_memory  # noqa: PLC0415
    from .inputs import example_inputs  # noqa: PLC0415
    where = pick_device(device)
    require_memory(member.graph, "timing", batch=1)
    module = lower_fx(member.graph).eval().to(where)
    inputs = [x.to(where) for x in example_inputs(member.graph, batch=1)]
    def timed() -> float:
        if where.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        module(*inputs)
        if where.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1000

    with torch.no_grad():  # warm-up: 5 runs and 0.3 s at least (the process's first
        runs, warm = 0, time.perf_counter()  # model also pays the kernels' set-up)
        while runs < 5 or time.perf_counter() - warm < 0.3:
            timed()
            runs += 1
        return statistics.median([timed() for _ in range(15)])


# ---- results --------------------------------------------------------------------------


def _record(config: SweepConfig, out: Path) -> None:
    """OUT/sweep.json: what `--show` needs to read the study back."""
    record = {k: v for k, v in asdict(config).items() if k != "train_options"}
    record["train_options"] = {k: v for k, v in config.train_options.items()
                               if isinstance(v, (int, float, str, bool, type(None)))}
    write_atomic(out / "sweep.json", (json.dumps(record, indent=2, default=str) + "\n").encode())


def load_record(out: str | Path) -> SweepConfig:
    path = Path(out) / "sweep.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record["objectives"] = tuple(record["objectives"])
        return SweepConfig(**record)
    except (OSError, ValueError, TypeError, KeyError):
        raise UsageError(f"{out}: not a sweep's folder (no readable sweep.json); give the "
                         "--out of a sweep") from None


def trial_records(config: SweepConfig) -> list[dict]:
    """Every trial of the study as report_sweep's records, also while it runs."""
    _need_optuna()
    import optuna  # noqa: PLC0415
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out = Path(config.out)
    url = config.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    name = config.study or _study_name(url)
    study = optuna.load_study(study_name=name, storage=url)
    records = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        state = attrs.get("state") if trial.state.name in ("PRUNED", "FAIL") else None
        records.append({"trial": trial.number,
                        "state": state or _STATES.get(trial.state.name, trial.state.name),
                        "values": dict(trial.params), "costs": attrs.get("costs", {}),
                        "metrics": attrs.get("metrics", {}), "note": attrs.get("note"),
                        "spec": attrs.get("spec"), "seconds": attrs.get("seconds")})
    return records


_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed",
           "RUNNING": "running", "WAITING": "waiting"}


def _study_name(url: str) -> str:
    import optuna  # noqa: PLC0415
    names = optuna.study.get_all_study_names(storage=url)
    if len(names) != 1:
        raise UsageError(f"{url} holds {len(names)} studies: name one with --study")
    return names[0]


def write_results(config: SweepConfig) -> dict:
    """trials.csv and the Pareto plot in OUT; returns the summary."""
    trials = trial_records(config)
    objectives = list(config.objectives)
    out = Path(config.out)
    write_atomic(out / "trials.csv", format_csv(trials, objectives).encode())
    done = [t for t in trials if t["state"] == "complete"]
    axes = plot_axes(objectives)
    if done and config.plot:
        _plot(out / config.plot, done, axes)
    return {"trials": trials, "front": pareto_front(done, list(axes) if len(objectives) == 1
                                                    else objectives),
            "objectives": objectives, "axes": axes}


def _plot(path: Path, trials: list[dict], axes: tuple[str, str]) -> None:
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        return
    fmt = path.suffix.lstrip(".") or "png"
    write_atomic(path, plot_front(trials, *axes, fmt=fmt))


# ---- --no-train: the static survey -----------------------------------------------------

_FAMILY: Family | None = None
_COSTED = 0


def _survey(config: SweepConfig, family: Family, out: Path) -> dict:
    """Cost every member (or --trials drawn at random) in parallel processes; the front
    of the static objectives written as specs."""
    space = family.space
    every = space.size is not None and (config.trials is None or config.trials >= space.size)
    if not every and space.size is None and config.trials is None:
        raise UsageError("a continuous space has no end: give --trials N")
    values = list(space.members()) if every else space.sample(config.trials, config.seed)
    start = time.perf_counter()
    costed = _cost_all(config, values)
    seconds = time.perf_counter() - start
    trials = []
    for number, (value, costs, note) in enumerate(costed):
        state = "invalid" if note else "complete"
        if not note:
            over = over_limits(Member(value, {}, costs=costs), config.limits)
            state, note = ("rejected", over) if over else (state, note)
        trials.append({"trial": number, "state": state, "values": value, "costs": costs,
                       "metrics": {}, "note": note or None, "spec": None, "seconds": None})
    done = [t for t in trials if t["state"] == "complete"]
    axes = plot_axes(list(config.objectives))
    front = pareto_front(done, list(config.objectives)) if len(config.objectives) > 1 else \
        sorted(done, key=lambda t: value_of(t, config.objectives[0]))[:1]
    for trial in front:
        member = family.member(trial["values"])
        trial["spec"] = str(write_member(config, family, member, trial["trial"]))
    _record(config, out)
    write_atomic(out / "trials.csv", format_csv(trials, list(config.objectives)).encode())
    if done and config.plot and len(config.objectives) > 1:
        _plot(out / config.plot, done, axes)
    return {"trials": trials, "front": front, "objectives": list(config.objectives),
            "axes": axes, "seconds": seconds, "processes": _processes(config, len(values))}


def _processes(config: SweepConfig, count: int) -> int:
    return max(1, min(config.workers if config.workers > 1 else os.cpu_count() or 1,
                      math.ceil(count / 64)))


def _cost_all(config: SweepConfig, values: list[dict]) -> list:
    processes = _processes(config, len(values))
    if processes == 1:
        _start_worker(config)
        try:
            return [_cost_one(v) for v in values]
        finally:
            gc.enable()
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with context.Pool(processes, initializer=_start_worker, initargs=(config,)) as pool:
        return pool.map(_cost_one, values, chunksize=max(1, len(values) // (processes * 8)))


def _start_worker(config: SweepConfig) -> None:
    global _FAMILY
    _FAMILY = _family(config)
    # The block expansions members share stay alive for the whole survey: scanning them
    # at every automatic collection would cost more than the costing itself, so collect
    # now and then instead (each member's graph is freed by _cost_one).
    gc.disable()


def _cost_one(values: dict):
    global _COSTED
    _COSTED += 1
    if _COSTED % 1000 == 0:
        gc.collect()
    member = _FAMILY.member(values)
    if member.graph is not None:  # networkx caches views that point back at the graph: a
        member.graph.__dict__.clear()  # cycle; broken here, so the graph goes at once
    if member.ok:
        return values, member.costs, None
    errors = [d for d in member.diagnostics if d.severity == "error"]
    return values, {}, f"does not check: {errors[0].code} {errors[0].message}"
