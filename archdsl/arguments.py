"""What the `archdsl` command line accepts: its commands, their options and --help.
archdsl.cli turns the parsed arguments into calls of the library."""
from __future__ import annotations

import argparse
import math
import sys

from . import __version__
from .backends.layout import DOT_TIMEOUT
from .arguments_figures import add_render_command, add_stats_command, add_table_command
from .errors import UsageError
from .lang.elaborate import DEFAULT_MAX_NODES, Limits

EXIT_USAGE = 2

DESCRIPTION = """\
archdsl compiles .arch files, text descriptions of neural networks, into checked graphs,
cost tables, diagrams and PyTorch modules.

exit status: 0 ok, 1 errors in a spec, 2 wrong usage (bad flag, missing file,
unwritable output), 3 a needed program is missing (Graphviz's dot for diagrams),
70 an internal error in archdsl (please report it).
Every spec error is printed with its code (e.g. E0301); docs/errors.md explains each."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_spec_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", metavar="NAME=VALUE", action="append", default=[],
                        help="override a network parameter, e.g. --set classes=10, or give an "
                             "input size declared as a symbol (`input ids: L <= 2048 as "
                             "token_ids`), e.g. --set L=512 (repeatable)")
    parser.add_argument("--input", metavar="[NAME=]SIZES", action="append", default=[],
                        help="override input shapes, the sizes without the batch, as many "
                             "as the input declares: 3x227x227 sets every input, "
                             "image=3x64x64 one of them, 1x8000 a signal")
    parser.add_argument("--network", metavar="NAME",
                        help="only this network of the file (default: all of them)")
    parser.add_argument("--max-nodes", type=int, default=DEFAULT_MAX_NODES, metavar="N",
                        help=f"stop a spec that expands past N layers (default "
                             f"{DEFAULT_MAX_NODES:,}; also bounds the work, 3 steps a layer)")


def _add_zero_init(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--zero-init-residual", action="store_true",
                        help="start the last norm (or layer scale) of each residual body at "
                             "zero, so each block begins as the identity (torchvision's "
                             "zero_init_residual; Goyal et al. 2017)")


def _add_dot_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dot-timeout", type=float, default=DOT_TIMEOUT, metavar="SECONDS",
                        help=f"stop Graphviz's dot after this long (default {DOT_TIMEOUT:g})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="archdsl", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"archdsl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_check_command(commands)
    add_stats_command(commands, _add_spec_options)
    add_table_command(commands, _add_spec_options)
    _add_build_command(commands)
    add_render_command(commands, _add_spec_options, _add_dot_timeout)
    _add_train_command(commands)
    _add_eval_command(commands)
    _add_run_command(commands)
    _add_generate_command(commands)
    _add_ast_command(commands)
    _add_ir_command(commands)
    _add_fmt_command(commands)
    _add_lsp_command(commands)
    _add_export_command(commands)
    _add_import_command(commands)
    from .cli_debug import add_debug_command  # noqa: PLC0415
    from .cli_diff import add_diff_command  # noqa: PLC0415
    from .cli_sweep import add_sweep_command  # noqa: PLC0415
    add_sweep_command(commands, _add_spec_options)
    add_diff_command(commands, _add_spec_options)
    add_debug_command(commands, _add_spec_options)
    return parser


def _add_check_command(commands) -> None:
    check = commands.add_parser(
        "check", help="parse and check specs, print one line per network",
        description="Parse each FILE, expand its networks and infer every tensor shape. "
                    "Prints one line per network (layers, parameters, output shapes), or the "
                    "diagnostics that explain what is wrong.")
    check.add_argument("files", nargs="+", metavar="FILE", help=".arch files")
    check.add_argument("--format", choices=("text", "json"), default="text",
                       help="text for people (default), json for editors and scripts")
    check.add_argument("--sample", type=int, default=16, metavar="N",
                       help="a network with a search space (`choice(...)`, `int_range(...)` "
                            "in its parameters): check N of its members, drawn at random "
                            "(every member when there are no more), and print the range of "
                            "their costs; 0 checks the default member only (default 16)")
    check.add_argument("--seed", type=int, default=0, metavar="N",
                       help="the random draw of --sample (default 0)")
    _add_spec_options(check)


def _add_build_command(commands) -> None:
    build = commands.add_parser(
        "build", help="check, lower to a torch module, run it once, write the artifacts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Check the spec, lower each network to a torch.fx module, run one forward pass on a
dummy batch on the chosen device and verify every output's shape against the spec,
then write into DIR (default build/NETWORK/):

  weights.pt     the module's state_dict (torch.save); torchvision-compatible names
  forward.py     the generated forward code (gm.code)
  stats.md       the per-layer cost table (as `archdsl stats --format markdown`)
  diagram.svg    the default diagram (needs Graphviz's `dot`, or the packaged graphviz-pure;
                 when both are missing, or dot fails or runs past --dot-timeout, the rest
                 is written and a warning says why)

Nothing is written unless the check and the forward pass succeed. DIR must be new, empty
or an earlier build (its .archdsl-manifest.json lists what archdsl wrote); a DIR holding
any other file is refused, never overwritten. The new files replace the old set in one
step, so DIR holds the old build or the new one, never a mix.
Load the weights with `archdsl.load(FILE).load_state_dict(torch.load(".../weights.pt"))`.""")
    build.add_argument("file", metavar="FILE")
    build.add_argument("-o", "--output", metavar="DIR",
                       help="where to write (default build/NETWORK/; with several networks, "
                            "DIR/NETWORK/)")
    build.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where to run the check pass (auto: cuda if available)")
    build.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                       help="parameter and input dtype for the check pass (default fp32)")
    build.add_argument("--batch", type=int, default=2, metavar="N",
                       help="dummy batch size for the check pass (default 2)")
    _add_zero_init(build)
    _add_dot_timeout(build)
    _add_spec_options(build)


def _add_train_command(commands) -> None:
    train = commands.add_parser(
        "train", help="train a network (built-in shapes data, image folders, CIFAR-10)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Train the network of FILE. A header (device, parameters, MACs, data sizes, batch),
progress (a bar on a terminal, a plain line every 30 s in a log), a validation pass per
epoch, step and epoch rows in OUT/metrics.jsonl, epoch rows in OUT/metrics.csv,
OUT/curves.png at the end, OUT/best.pt (best epoch by --best-metric) and OUT/last.pt
(each carries the spec, settings, input shape, preprocessing and class names:
archdsl.load_checkpoint(PATH) rebuilds the model), OUT/model.pt (final state_dict) and
OUT/checkpoint.pt, written atomically every epoch and every --checkpoint-every steps.
--resume continues exactly where a run stopped. A spec parameter `classes` that is not
set is taken from the data.

data sources (--data):
  shapes[:N]     made here, no download: six geometric shapes on noisy backgrounds,
                 at the network's input size; N training images (default 10000); for
                 a C x T x H x W input, clips in which the shape moves
  waves[:N]      made here: six waveforms with noise, for a `C x L as signal` input
                 (or `L x C as tokens`); N training signals (default 10000)
  folder:PATH    one sub-folder of images per class (PATH/train + PATH/val if present:
                 the ImageNet layout); ImageNet mean/std, resize + centre crop
  cifar10:PATH   the CIFAR-10 python batches
  text[:FILE]    byte-level language modelling for an `L as token_ids` network: windows
                 of L bytes of FILE (default: a shipped Tiny Shakespeare excerpt), each
                 labelled with the next byte; per-token loss and accuracy, and perplexity;
                 a `vocab_size` parameter that is not set becomes 256

augmentation (--augment, default per source: basic for folder and cifar10, none for the
shapes and waves made here): basic = random-resized crop + horizontal flip, trivial =
basic + TrivialAugment; --mixup/--cutmix ALPHA mix images within a batch.

several processes: `--nproc N` (or torchrun --nproc-per-node N -m archdsl train ...)
runs DistributedDataParallel (NCCL on GPUs, gloo on CPU); --batch-size is the global
batch, split evenly; rank 0 logs and writes.""")
    train.add_argument("file", metavar="FILE")
    _add_train_options(train)
    _add_train_recipe_options(train)
    _add_zero_init(train)
    _add_spec_options(train)


def _add_eval_command(commands) -> None:
    evaluate = commands.add_parser(
        "eval", help="accuracy of trained weights on a data source's validation split",
        description="Load FILE's network with the weights in CKPT (best.pt, last.pt, "
                    "checkpoint.pt or model.pt from `archdsl train`, or torchvision's weights) "
                    "and print its top-1 and top-5 accuracy, loss and per-class accuracy on the "
                    "validation split of --data, preprocessed as in training.")
    evaluate.add_argument("file", metavar="FILE")
    evaluate.add_argument("--weights", required=True, metavar="CKPT")
    evaluate.add_argument("--data", default="shapes", metavar="SOURCE",
                          help="shapes[:N] (default), waves[:N], folder:PATH, cifar10:PATH or "
                               "text[:FILE]")
    evaluate.add_argument("--batch-size", type=int, default=128)
    evaluate.add_argument("--seed", type=int, default=0, help="the seed the shapes data used")
    evaluate.add_argument("--confusion", metavar="PNG",
                          help="also write the confusion matrix as a PNG image")
    _add_inference_options(evaluate)
    _add_spec_options(evaluate)


def _add_run_command(commands) -> None:
    predict = commands.add_parser(
        "run", help="classify images with trained weights",
        description="Print the top-k classes of each IMAGE, preprocessed as the weights were "
                    "trained: a checkpoint's own preprocessing; ImageNet's (resize 256, centre "
                    "crop 224, ImageNet mean/std) for torchvision's weights files or with "
                    "--preprocess imagenet; otherwise stretched to the input.")
    predict.add_argument("file", metavar="FILE")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--weights", required=True, metavar="CKPT")
    predict.add_argument("--top-k", type=int, default=5)
    _add_inference_options(predict)
    _add_spec_options(predict)


def _add_generate_command(commands) -> None:
    generate = commands.add_parser(
        "generate", help="continue token ids with a language model (KV cache)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Build FILE's network (a causal language model: token ids in, logits out), load
--weights, and continue --prompt by --max-new-tokens tokens, one per step, each step
reading the earlier tokens' keys and values from a KV cache. Greedy by default; with
--temperature, sampled (among the --top-k likeliest), reproducibly with --seed.
Prints the new token ids; with --text (a byte-level model, as `archdsl train --data
text` trains one), the text prompt continued.

examples:
  archdsl generate specs/gpt2.arch --weights model.pt --prompt "464 3290 318"
  archdsl generate specs/gpt2.arch --weights runs/gpt2/best.pt --text "ROMEO:" \
      --max-new-tokens 200 --temperature 0.8 --seed 0
  archdsl generate specs/llama.arch --set num_hidden_layers=2 --prompt "1 2 3" \\
      --max-new-tokens 8 --temperature 0.8 --top-k 50 --seed 0""")
    generate.add_argument("file", metavar="FILE")
    prompt = generate.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", metavar="IDS",
                        help="the prompt's token ids, separated by spaces or commas")
    prompt.add_argument("--text", metavar="TEXT",
                        help="a text prompt for a byte-level model: its UTF-8 bytes are the "
                             "ids, and the new bytes are printed as text after it")
    generate.add_argument("--weights", metavar="CKPT",
                          help="a state_dict (model.pt) or checkpoint of `archdsl train`; "
                               "without it, the network's fresh initialisation (a smoke test)")
    generate.add_argument("--max-new-tokens", type=int, default=16, metavar="N",
                          help="how many tokens to add (default 16)")
    generate.add_argument("--temperature", type=float, default=0.0,
                          help="0 (default): greedy; above 0: sample from softmax(logits / T)")
    generate.add_argument("--top-k", type=int, metavar="K",
                          help="sample among the K likeliest tokens only")
    generate.add_argument("--seed", type=int, help="the sampling generator's seed")
    _add_spec_options(generate)


def _add_ast_command(commands) -> None:
    show_ast = commands.add_parser(
        "ast", help="print the syntax tree of a file (for debugging specs and archdsl)",
        description="Parse FILE and print its syntax tree, one node per line, without "
                    "source positions. Imports are not followed.")
    show_ast.add_argument("file", metavar="FILE")


def _add_ir_command(commands) -> None:
    show_ir = commands.add_parser(
        "ir", help="print the elaborated IR of a spec",
        description="Print the IR, one line per layer: name, op, arguments, inputs, output "
                    "shape and the source location (with the block calls it came through).")
    show_ir.add_argument("file", metavar="FILE")
    _add_spec_options(show_ir)


def _add_export_command(commands) -> None:
    export = commands.add_parser(
        "export", help="write a network for use without archdsl: PyTorch source, ONNX, .pt2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Check the spec and write its network in a form that needs no archdsl:

  pytorch       DIR/NETWORK.py, one readable file: an nn.Module class whose __init__
                builds plain torch.nn modules at the spec's names (the state_dict keys
                of `archdsl build`) and whose forward() is plain torch, with the source of
                any module torch.nn lacks copied in; and DIR/weights.pt, its weights.
                Needs only torch:  model = NETWORK(); model.load_state_dict(
                torch.load("weights.pt")). DIR defaults to export/NETWORK/; it must
                be new, empty or an earlier export (a DIR with other files is refused).
  onnx          OUT (default NETWORK.onnx), through torch.onnx.export, batch size
                dynamic; needs the onnx package (archdsl[onnx]).
  torch-export  OUT (default NETWORK.pt2), through torch.export.save, batch size
                dynamic; load it with torch.export.load(OUT).module().

The weights are freshly initialised, as `archdsl build` makes them. ONNX and .pt2 hold
the eval-mode network (train-only heads left out). --fold-bn folds every batch norm
that follows a conv into that conv, for inference: fewer layers, same outputs within
rounding, and the file is for eval mode only.

  archdsl export specs/resnet18.arch --to pytorch -o resnet18_torch""")
    export.add_argument("file", metavar="FILE")
    export.add_argument("--to", choices=("pytorch", "onnx", "torch-export"), default="pytorch",
                        help="pytorch (default): NETWORK.py and weights.pt; onnx; torch-export")
    export.add_argument("-o", "--output", metavar="OUT",
                        help="directory for pytorch (default export/NETWORK/), file otherwise "
                             "(default NETWORK.onnx or NETWORK.pt2)")
    export.add_argument("--fold-bn", action="store_true",
                        help="fold batch norms into the convs before them (inference only)")
    _add_spec_options(export)


def _add_import_command(commands) -> None:
    importer = commands.add_parser(
        "import", help="write a .arch spec of a PyTorch model (torch.fx or torch.export)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Call FACTORY from a Python module (MODULE:FACTORY, e.g. torchvision.models:resnet50) or
file (path/to/model.py:FACTORY), trace the model it returns with torch.fx (or, where
torch.fx cannot trace it, capture it with torch.export: --capture), and write a
spec: torch.nn layers become archdsl layers labelled with the model's attribute names
(so the spec's state_dict keys are the model's), residual adds become
`residual { } skip { }`, concatenations `concat { }`, module instances of one class that
differ only in numbers one `block`, and runs of identical calls `repeat`s. The spec is
checked before it is written. A layer archdsl has no equivalent for is named with its
module path and type (exit status 1).

One --input for each argument of the model's forward(), in its order, or named as its
parameter (NAME=SIZES); `as token_ids` for an argument of token ids. The spec declares
an input for each, named as forward()'s parameters.

  archdsl import torchvision.models:resnet50 -o resnet50.arch
  archdsl import model.py:gpt --input "16 as token_ids" -o gpt.arch
  archdsl import model.py:bert --input "input_ids=16 as token_ids" \\
      --input "token_type_ids=16 as token_ids" -o bert.arch""")
    importer.add_argument("factory", metavar="MODULE:FACTORY",
                          help="a function (or class) that returns the nn.Module")
    importer.add_argument("-o", "--output", metavar="OUT.arch",
                          help="write the spec here (default: standard output)")
    importer.add_argument("--input", action="append", default=[],
                          metavar="[NAME=]SIZES",
                          help="an input's sizes to trace with, batch excluded (default "
                               "3x224x224), once for each argument of forward(): in its "
                               "order, or NAME= its parameter; `L as token_ids` for token "
                               "ids, \"16 as token_ids\" (\"ids=16 as token_ids\")")
    importer.add_argument("--capture", choices=("auto", "fx", "export"), default="auto",
                          help="torch.fx, torch.export (non-strict), or auto (default): "
                               "torch.export where torch.fx cannot trace the model")


def _add_lsp_command(commands) -> None:
    commands.add_parser(
        "lsp", help="a language server for editors (diagnostics, hover, definitions, ...)",
        description="Run a Language Server on standard input and output, for editors: "
                    "the diagnostics of `check` as you type, hover with a layer's output "
                    "shape, parameters and MACs, go to the definition of blocks and "
                    "imports, completion of layers, blocks and keyword arguments, document "
                    "symbols and formatting (as `fmt`). Editors start it themselves "
                    "(docs/editors.md); it needs pygls: pip install archdsl[lsp].")


def _add_fmt_command(commands) -> None:
    fmt = commands.add_parser(
        "fmt", help="rewrite specs in the one canonical layout (--check for CI)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Rewrite each FILE in place in archdsl's canonical layout: four spaces "
                    "per brace,\none space between tokens, labels and actions aligned in "
                    "columns as in the shipped\nspecs. Line breaks and comments stay where "
                    "they are, and the result always parses\nto the same spec (docs/editors.md "
                    "gives the rules). A file with a syntax error gets\nits diagnostic and "
                    "is left as it is.\n\nexamples:\n  archdsl fmt specs/*.arch\n"
                    "  archdsl fmt --check specs/*.arch     # exit 1 if any would change\n"
                    "  archdsl fmt -o - spec.arch           # print the formatted text")
    fmt.add_argument("files", nargs="+", metavar="FILE", help=".arch files")
    fmt.add_argument("--check", action="store_true",
                     help="write nothing; list the files that would change and exit 1 if any")
    fmt.add_argument("-o", "--output", metavar="PATH",
                     help="write the formatted text here instead of in place (`-` for "
                          "standard output; one FILE only)")


def _add_train_recipe_options(train) -> None:
    """train's options beyond the basics: augmentation, recipe, checkpoints, logging."""
    train.add_argument("--augment", choices=("auto", "none", "basic", "trivial"), default="auto",
                       help="training augmentation (default auto: the data source's)")
    train.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                       help="mixup with Beta(ALPHA, ALPHA) ratios (0: off, e.g. 0.2)")
    train.add_argument("--cutmix", type=float, default=0.0, metavar="ALPHA",
                       help="cutmix with Beta(ALPHA, ALPHA) areas (0: off, e.g. 1.0)")
    train.add_argument("--warmup", type=float, default=0.0, metavar="EPOCHS",
                       help="linear learning-rate warm-up over EPOCHS (may be fractional)")
    train.add_argument("--label-smoothing", type=float, default=0.0, metavar="EPS",
                       help="cross-entropy label smoothing (0: off, e.g. 0.1)")
    train.add_argument("--clip-grad", type=float, default=0.0, metavar="NORM",
                       help="clip the gradient norm to NORM (0: off)")
    train.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                       help="keep an exponential moving average of the weights (e.g. 0.999); "
                            "it is what is validated and saved")
    train.add_argument("--decay-all", action="store_true",
                       help="also apply weight decay to norm scales and biases (default: not)")
    train.add_argument("--sync-bn", action="store_true",
                       help="batch norm over the global batch under --nproc / torchrun")
    train.add_argument("--best-metric", choices=("val_acc", "val_loss"), default="val_acc",
                       help="what makes OUT/best.pt the best epoch (default val_acc)")
    train.add_argument("--early-stop", type=int, default=0, metavar="PATIENCE",
                       help="stop after PATIENCE epochs without a better --best-metric")
    train.add_argument("--log", action="append", choices=("tensorboard",), default=[],
                       help="also write TensorBoard event files to OUT/tensorboard")
    train.add_argument("--labels", metavar="FILE",
                       help="class names: one per line in class order, or `FOLDER NAME` lines")
    train.add_argument("--init", metavar="WEIGHTS",
                       help="fine-tune: start from these weights (torchvision's, a model.pt or "
                            "best.pt); tensors that do not fit (a new head) start fresh")


def _add_inference_options(command) -> None:
    command.add_argument("--preprocess", choices=("auto", "imagenet", "plain"), default="auto",
                         help="auto (default): the checkpoint's; ImageNet's for torchvision "
                              "weights files (NAME-HASH.pth); imagenet: resize 256, centre "
                              "crop 224, ImageNet mean/std; plain: stretch, (x - 0.5) / 0.25")
    command.add_argument("--labels", metavar="FILE",
                         help="class names, one per line in class order (e.g. the ImageNet "
                              "class list)")


def add_recipe_options(train, epochs: int = 10) -> None:
    """How a network trains: data, epochs, batch, optimizer, schedule, device, precision
    (the options of `train`, and of each trial of a sweep)."""
    train.add_argument("--data", default="shapes", metavar="SOURCE",
                       help="shapes[:N] (default), waves[:N], folder:PATH, cifar10:PATH or "
                            "text[:FILE]")
    train.add_argument("--epochs", type=int, default=epochs, help=f"default {epochs}")
    train.add_argument("--batch-size", type=int, default=64, help="global batch (default 64)")
    train.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    train.add_argument("--optimizer", choices=("sgd", "adamw"), default="adamw",
                       help="adamw (default) or sgd (momentum 0.9, Nesterov)")
    train.add_argument("--schedule", choices=("cosine", "step", "none"), default="cosine",
                       help="per-step cosine to zero (default); step: x0.1 at 50%% and 75%%")
    train.add_argument("--weight-decay", type=float, default=0.05, help="default 0.05")
    train.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    train.add_argument("--amp", choices=("bf16", "fp16", "off"), default="off",
                       help="autocast dtype (fp16 uses a gradient scaler)")


def _add_train_options(train) -> None:
    """train's basic options: data, schedule, device, output, resuming."""
    add_recipe_options(train)
    train.add_argument("--channels-last", action="store_true")
    train.add_argument("--compile", action="store_true", help="torch.compile the model")
    train.add_argument("--workers", type=int, default=0,
                       help="data loading processes (default 0: in the training process)")
    train.add_argument("--seed", type=int, default=0, help="weights, data and data order "
                                                           "(default 0)")
    train.add_argument("--out", default="", metavar="DIR",
                       help="the run's folder (default runs/NETWORK): new, empty or a run's; "
                            "a folder of other files is refused")
    train.add_argument("--resume", nargs="?", const="last", default=None, metavar="CKPT",
                       help="continue the run in --out (or from CKPT)")
    train.add_argument("--checkpoint-every", type=int, default=100, metavar="N",
                       help="also checkpoint every N steps (0: only at epoch ends)")
    train.add_argument("--nproc", type=int, default=1, metavar="N",
                       help="launch N data-parallel processes on this machine")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.add_argument("--debug", action="store_true",
                       help="check every step for a non-finite loss or gradient and stop at "
                            "the first with its place in the spec (as `archdsl debug`)")


# ---- reading the options ------------------------------------------------------------


def parse_value(text: str):
    """A --set value: integer, number, true/false, a tuple `(6,12,24,16)` of these, or
    else a string (in double quotes or not: `"conv3x3"` is `conv3x3`).

    >>> parse_value("(6, 12, 24.5)")
    (6, 12, 24.5)
    """
    inner = text.strip()
    if inner.startswith("(") and inner.endswith(")") and "," in inner:
        items = [item.strip() for item in inner[1:-1].split(",")]
        return tuple(parse_value(item) for item in items if item)
    if len(inner) >= 2 and inner[0] == inner[-1] == '"':
        return inner[1:-1]  # a string written as the spec writes it: "conv3x3"
    for convert in (int, float):
        try:
            return convert(inner)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(inner, inner)


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        dims = ()
    if not dims or min(dims) < 1:
        raise UsageError(f"bad shape `{text}`: write the sizes without the batch, joined by "
                         "x: 3x224x224 (an image), 1x16000 (a signal), 4096 (features)")
    return dims


def parse_input(item: str) -> tuple[str | None, tuple[int, ...], str | None]:
    """An `--input [NAME=]SIZES[ as LAYOUT]`: (NAME or None, the sizes, LAYOUT or None).

    >>> parse_input("token_type_ids=16 as token_ids")
    ('token_type_ids', (16,), 'token_ids')
    >>> parse_input("3x64x64")
    (None, (3, 64, 64), None)
    """
    text, as_, layout = item.partition(" as ")
    name, sep, sizes = text.rpartition("=")
    if sep and not name.strip():
        raise UsageError(f"--input {item}: write NAME=SIZES or just SIZES, e.g. 3x64x64")
    return name.strip() if sep else None, parse_shape(sizes.strip()), \
        layout.strip() if as_ else None


def spec_options(args, network: str | None = None) -> dict:
    """The compile options of the spec flags (--set, --input, --network, --max-nodes);
    `network` (from FILE:NETWORK) overrides --network."""
    settings = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--set {item}: write NAME=VALUE, e.g. --set classes=10")
        settings[name.strip()] = parse_value(value.strip())
    inputs = {}
    for item in args.input:
        name, shape, layout = parse_input(item)
        if layout is not None:
            raise UsageError(f"--input {item}: the spec declares its inputs' layouts; give "
                             "NAME=SIZES or just SIZES, e.g. 3x64x64")
        inputs[name or "*"] = shape
    if args.max_nodes < 1:
        raise UsageError("--max-nodes must be at least 1")
    return dict(settings=settings, inputs=inputs, network=network or args.network,
                limits=Limits(max_nodes=args.max_nodes))


def check_train_flags(args) -> None:
    for name, value, least in (("--epochs", args.epochs, 1), ("--batch-size", args.batch_size, 1),
                               ("--nproc", args.nproc, 1), ("--workers", args.workers, 0),
                               ("--checkpoint-every", args.checkpoint_every, 0),
                               ("--early-stop", args.early_stop, 0)):
        if value < least:
            raise UsageError(f"{name} must be at least {least}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError("--lr must be a positive number")
    for name, value, low, high in (("--weight-decay", args.weight_decay, 0, math.inf),
                                   ("--warmup", args.warmup, 0, args.epochs + 1),
                                   ("--label-smoothing", args.label_smoothing, 0, 1),
                                   ("--clip-grad", args.clip_grad, 0, math.inf),
                                   ("--ema", args.ema, 0, 1),
                                   ("--mixup", args.mixup, 0, math.inf),
                                   ("--cutmix", args.cutmix, 0, math.inf)):
        if not (math.isfinite(value) and low <= value < high):
            bound = "zero or positive" if high == math.inf else f"in [{low}, {high:g})"
            raise UsageError(f"{name} must be {bound}, not {value:g}")
