"""The `archdsl` commands that need torch: build, train, eval, run, export and import.
Each turns its arguments into a call of archdsl.runtime (or archdsl.tools.import_torch)
and prints; torch is imported only when one of them runs, and its absence is a usage
error that names the fix."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from . import ir
from .arguments import check_train_flags, parse_input, spec_options
from .backends.report_stats import summary_line
from .cli import (EXIT_INTERNAL, EXIT_OK, EXIT_SPEC_ERRORS, compile_or_report,
                  require_networks)
from .diagnostics import render_all
from .errors import UsageError
from .figures import FigureOptions
from .files import write_atomic, write_directory


def with_torch(module: str, what: str):
    """archdsl.MODULE, which imports torch: a usage error naming the fix where torch is
    not installed (the front end runs without it)."""
    import importlib
    try:
        return importlib.import_module(f".{module}", __package__)
    except ModuleNotFoundError as error:
        if error.name != "torch":
            raise
        raise UsageError(f"{what} needs PyTorch: pip install torch") from None


def run_build(args) -> int:
    if args.batch < 1:
        raise UsageError("--batch must be at least 1")
    FigureOptions(dot_timeout=args.dot_timeout).check()
    if args.output == "-":
        raise UsageError("-o -: a build writes several files; give a directory")
    builder = with_torch("runtime.build", "`archdsl build`")
    result = compile_or_report(args.file, args)
    require_networks(result, args.file)
    if not result.ok:
        return EXIT_SPEC_ERRORS
    from .runtime.device import pick_device
    device = pick_device(args.device)
    for name, graph in result.graphs.items():
        if args.output:
            out = Path(args.output) / name if len(result.graphs) > 1 else Path(args.output)
        else:
            out = Path("build") / name
        if out.exists() and not out.is_dir():
            raise UsageError(f"-o {out}: exists and is not a directory")
        try:
            artifacts = builder.build(graph, device, args.dtype, args.batch, args.dot_timeout,
                                      args.zero_init_residual)
        except builder.BuildError as error:
            print(f"archdsl: internal error, please report it: {error}", file=sys.stderr)
            return EXIT_INTERNAL
        written = builder.write_artifacts(out, artifacts.files)
        print(f"{args.file}: built {name} on {device} ({args.dtype}), "
              f"forward pass {artifacts.seconds * 1000:.0f} ms, outputs "
              + ", ".join(f"{k} {v}" for k, v in artifacts.outputs.items()))
        for path in written:
            print(f"  wrote {path}")
        for note in artifacts.notes:
            print(f"archdsl: warning: {note}", file=sys.stderr)
    return EXIT_OK


def _training():
    return with_torch("runtime.train", "training")


def run_train(args) -> int:
    train = _training()
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch(args.nproc)
    check_train_flags(args)
    options = spec_options(args)
    chosen = {f.name: getattr(args, f.name) for f in dataclasses.fields(train.TrainConfig)
              if hasattr(args, f.name)}
    chosen.update(spec=args.file, out=args.out or "", log=tuple(args.log),
                  progress=not args.quiet, settings=options["settings"],
                  inputs=options["inputs"])
    config = train.TrainConfig(**chosen)
    train.train(config)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # a worker of --nproc / torchrun leaves without interpreter finalisation: there,
        # gloo's threads can still free tensors they hold and abort the process (SIGABRT)
        # after the run has finished and its files are written
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_OK)
    return EXIT_OK


def _launch(nproc: int) -> int:
    """Re-run this command under torch.distributed.run with N processes."""
    argv, skip = [], False
    for item in sys.argv[1:]:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            argv.append(item)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "archdsl", *argv]
    return subprocess.call(command)


def _prediction():
    _training()
    from .runtime import predict
    return predict


def _labels(args, classes, count: int):
    """Class names: --labels, else the checkpoint's, else None."""
    if not args.labels:
        return classes
    from .runtime.data import read_labels
    return read_labels(args.labels, classes, count)


def _trained(predict, args):
    """(model, class names, graph, preprocessing) of FILE with the weights of --weights."""
    options = spec_options(args)
    return predict.load_trained(args.file, args.weights, options["settings"],
                                options["inputs"], args.network, args.preprocess)


def run_eval(args) -> int:
    predict = _prediction()
    from .runtime import data
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    model, classes, graph, preprocess = _trained(predict, args)
    shape = graph.nodes[ir.network(graph).inputs[0]]["shape"]
    _, split = data.open_source(args.data, shape, args.seed)
    preprocess = preprocess or split.preprocess  # bare weights: as the data source trains
    if split.tokens:  # a language model: per-token figures, and perplexity
        result = predict.evaluate(model, split, "cpu", args.batch_size)
        print(f"{ir.network(graph).name} on {args.data}: perplexity {result['perplexity']:.3f}, "
              f"loss {result['loss']:.4f} per token, next-token accuracy "
              f"{result['accuracy']:.4f} (top-5 {result['top5']:.4f}; {result['images']:,} "
              "tokens)")
        return EXIT_OK
    names = _labels(args, classes or split.classes, len(split.classes))
    result = predict.evaluate(model, split, "cpu", args.batch_size, preprocess=preprocess)
    print(f"{ir.network(graph).name} on {args.data}: accuracy {result['accuracy']:.4f} (top-1), "
          f"top-5 {result['top5']:.4f}, loss {result['loss']:.4f} ({result['images']} images)")
    if len(names) <= 30:
        print("per class: " + ", ".join(f"{name} {share:.3f}" for name, share
                                        in zip(names, result["per_class"])))
    if args.confusion:
        write_atomic(Path(args.confusion), predict.confusion_png(result["confusion"], names))
        print(f"wrote {args.confusion}")
    return EXIT_OK


def run_predict(args) -> int:
    predict = _prediction()
    if args.top_k < 1:
        raise UsageError("--top-k must be at least 1")
    model, classes, graph, preprocess = _trained(predict, args)
    outputs = graph.nodes[next(o for o in ir.network(graph).outputs if not o.train_only).node]["shape"]
    names = _labels(args, classes, outputs[0]) if args.labels else classes
    results = predict.predict(model, graph, args.images, args.top_k,
                              preprocess or predict.PLAIN)
    for path, top in zip(args.images, results):
        print(path)
        for probability, index in top:
            name = names[index] if names else f"class {index}"
            print(f"  {probability:6.1%}  {name}")
    return EXIT_OK


def run_generate(args) -> int:
    _training()
    from .runtime.generate import (generate, prompt_ids, text_of, within_length,
                                   within_vocabulary)
    prompt = prompt_ids(args.prompt) if args.text is None else list(args.text.encode())
    if args.weights:
        options = spec_options(args)
        model, _, graph, _ = _prediction().load_trained(
            args.file, args.weights, options["settings"], options["inputs"], args.network, "plain")
    else:
        result = compile_or_report(args.file, args)
        require_networks(result, args.file)
        if not result.ok:
            return EXIT_SPEC_ERRORS
        graph = result.graph
        from . import lower
        model = lower(graph)
        print("archdsl: warning: no --weights: the network's fresh initialisation generates",
              file=sys.stderr)
    within_length(graph, len(prompt) + args.max_new_tokens)
    if args.text is not None:
        within_vocabulary(graph, prompt)
    result = generate(model, prompt, args.max_new_tokens, temperature=args.temperature,
                      top_k=args.top_k, seed=args.seed)
    if args.text is not None:
        print(args.text + text_of(result.tokens[0]))
    else:
        print(" ".join(map(str, result.tokens[0])))
    return EXIT_OK


def run_export(args) -> int:
    exporter = with_torch("runtime.export", "`archdsl export`")
    if args.output == "-":
        raise UsageError("-o -: export writes files; give a path")
    result = compile_or_report(args.file, args)
    require_networks(result, args.file)
    if not result.ok:
        return EXIT_SPEC_ERRORS
    if len(result.graphs) > 1:
        raise UsageError(f"{args.file} has {len(result.graphs)} networks; choose one with "
                         "--network NAME")
    graph = result.graph
    name = ir.network(graph).name
    try:
        files = exporter.export_files(graph, args.to, fold_bn=args.fold_bn)
    except exporter.ExportFailure as error:
        other = " or ".join(f"--to {t}" for t in exporter.TARGETS if t != args.to)
        print(f"archdsl: error: cannot export {name} to {args.to}: {error} (try {other})",
              file=sys.stderr)
        return EXIT_SPEC_ERRORS
    if args.to == "pytorch":
        out = Path(args.output) if args.output else Path("export") / name
        written = write_directory(out, files, kind="export")
    else:
        out = Path(args.output) if args.output else Path(next(iter(files)))
        if out.is_dir():
            raise UsageError(f"-o {out}: is a directory; give a file such as "
                             f"{out / next(iter(files))}")
        written = [write_atomic(out, next(iter(files.values())))]
    folded = " (batch norms folded)" if args.fold_bn else ""
    print(f"{args.file}: exported {name} to {args.to}{folded}")
    for path in written:
        print(f"  wrote {path}")
    return EXIT_OK


def run_import(args) -> int:
    import_torch = with_torch("tools.import_torch", "`archdsl import`")
    from .compile import compile_source
    inputs, token_ids = _import_inputs(args.input)
    if args.output and Path(args.output).is_dir():
        raise UsageError(f"-o {args.output}: is a directory; give a file such as "
                         f"{Path(args.output) / 'model.arch'}")
    sys.path.insert(0, os.getcwd())  # MODULE may be a module of the current directory
    try:
        model, factory = import_torch.load_factory(args.factory)
        name = "".join(c if c.isalnum() else "_" for c in factory.lower())
        imported = import_torch.import_model(model, inputs, name, args.capture, token_ids)
    except import_torch.ImportFailure as error:
        print(f"archdsl: error: cannot import {args.factory}: {error}", file=sys.stderr)
        return EXIT_SPEC_ERRORS
    finally:
        sys.path.remove(os.getcwd())
    text = imported.text
    if imported.capture == "export":
        print(f"{args.factory}: captured with torch.export ({imported.why})", file=sys.stderr)
    result = compile_source(text, args.output if args.output not in (None, "-") else "<import>")
    if not result.ok:
        print(render_all(result.diagnostics), file=sys.stderr)
        print(f"archdsl: internal error: the spec imported from {args.factory} does not check "
              "(please report it)", file=sys.stderr)
        return EXIT_INTERNAL
    if args.output and args.output != "-":  # `-o -`: standard output, as without -o
        write_atomic(Path(args.output), text.encode())
        print(f"{args.factory}: {summary_line(result.graph)} -> {args.output}",
              file=sys.stderr)
    else:
        print(text, end="")
    return EXIT_OK


def _import_inputs(items: list[str]) -> tuple[list, list[bool]]:
    """The `--input`s of `archdsl import` (`3x224x224`, `"ids=16 as token_ids"`): the
    inputs as import_torch takes them (a shape, or a (name, shape) pair) and which hold
    token ids."""
    inputs, token_ids = [], []
    for item in items or ["3x224x224"]:
        name, shape, layout = parse_input(item)
        if layout not in (None, "token_ids"):
            raise UsageError(f"--input {item}: import reads `as token_ids` (int64 ids, one "
                             "axis), or sizes alone for float values")
        if layout and len(shape) != 1:
            raise UsageError(f"--input {item}: token ids have one axis, the length: \"16 as "
                             "token_ids\"")
        inputs.append(shape if name is None else (name, shape))
        token_ids.append(layout is not None)
    return inputs, token_ids
