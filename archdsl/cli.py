"""The `archdsl` command line. The only module that touches files and the terminal."""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from . import ir
from . import __version__
from .compile import Compilation, CompileError, compile_file
from .errors import UsageError
from .passes.count_costs import total
from .diagnostics import SpecError, render_all, to_json
from .lang.elaborate import DEFAULT_MAX_NODES, Limits
from .files import write_atomic, write_directory
from .ir import dump
from .ops import show
from .backends.render_dot import (DIRECTIONS, DOT_TIMEOUT, MIN_TEXT_POINTS, SHOW, STYLES,
                                  LayoutError, can_layout, format_of, instances, layout,
                                  render_dot, render_many, suffix_of, text_points)
from .backends.render_dot import FORMATS as RENDER_FORMATS
from .backends.report_stats import DTYPE_BYTES, FORMATS, format_comparison, format_report, report_stats

EXIT_OK, EXIT_SPEC_ERRORS, EXIT_USAGE, EXIT_MISSING_TOOL, EXIT_INTERNAL = 0, 1, 2, 3, 70

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
                        help="override a network parameter, e.g. --set classes=10 (repeatable)")
    parser.add_argument("--input", metavar="[NAME=]CxHxW", action="append", default=[],
                        help="override input shapes: 3x227x227 sets every input, "
                             "image=3x64x64 one of them")
    parser.add_argument("--network", metavar="NAME",
                        help="only this network of the file (default: all of them)")
    parser.add_argument("--max-nodes", type=int, default=DEFAULT_MAX_NODES, metavar="N",
                        help=f"stop a spec that expands past N layers (default {DEFAULT_MAX_NODES:,}; also bounds the work, 3 steps a layer)")


def _add_dot_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dot-timeout", type=float, default=DOT_TIMEOUT, metavar="SECONDS",
                        help=f"stop Graphviz's dot after this long (default {DOT_TIMEOUT:g})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="archdsl", description=DESCRIPTION,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"archdsl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    check = commands.add_parser(
        "check", help="parse and check specs, print one line per network",
        description="Parse each FILE, expand its networks and infer every tensor shape. "
                    "Prints one line per network (layers, parameters, output shapes), or the "
                    "diagnostics that explain what is wrong.")
    check.add_argument("files", nargs="+", metavar="FILE", help=".arch files")
    check.add_argument("--format", choices=("text", "json"), default="text",
                       help="text for people (default), json for editors and scripts")
    _add_spec_options(check)
    check.set_defaults(run=run_check)

    stats = commands.add_parser(
        "stats", help="per-layer shapes, parameters, MACs and memory; compare networks",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Count, from the spec alone (no model is built, torch is not imported), each layer's
output shape, activation memory, parameters and multiply-accumulates, and the totals.
With several FILEs, print their totals side by side with ratios against the first.

conventions:
  MACs       multiply-accumulates of conv and linear layers for one image; one fused
             multiply-add = 1; bias additions not counted. This is the figure
             torchvision quotes as GFLOPS. Element-wise, pooling and normalisation
             work is counted separately under "other ops".
  units      MACs and ops in decimal units (1G = 1e9). Memory in binary units:
             1 KiB = 1024 bytes, 1 MiB = 1024 KiB; bytes per element from --dtype.
  memory     activation memory is each layer's output for one image. Training
             memory = fixed (weights, gradients, SGD momentum) + per image (every
             activation kept for backward, plus its gradient).
  train-only layers (auxiliary heads) are marked [train] and left out of the
             inference totals.""")
    stats.add_argument("files", nargs="+", metavar="FILE", help=".arch files")
    stats.add_argument("--depth", type=int, metavar="N",
                       help="roll rows up to N levels of names (1: `layer3` as one row)")
    stats.add_argument("--format", choices=FORMATS, default="table",
                       help="table for the terminal (default), markdown for papers, csv/json "
                            "for scripts")
    stats.add_argument("--dtype", choices=tuple(DTYPE_BYTES), default="fp32",
                       help="bytes per element for memory figures (default fp32)")
    stats.add_argument("--plot", metavar="OUT",
                       help="also draw per-layer bars of memory, parameters and MACs, the "
                            "networks side by side (OUT.svg, .pdf or .png; needs matplotlib)")
    _add_spec_options(stats)
    stats.set_defaults(run=run_stats)

    table = commands.add_parser(
        "table", help="the architecture table of papers, for one network or a family",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
The table papers print (ResNet's Table 1, VGG's Table 1): one column per network, one row
per feature-map size with the layers that work at that size, a repeated block as
`[1×1, 64; 3×3, 64; 1×1, 256] ×3`, then parameters and MACs. Norms, activations and
skip projections are left out, as papers leave them out.

  archdsl table specs/resnet18.arch specs/resnet34.arch specs/resnet50.arch \\
                specs/resnet101.arch specs/resnet152.arch --format latex""")
    table.add_argument("files", nargs="+", metavar="FILE", help=".arch files, one column each")
    table.add_argument("--format", choices=("markdown", "latex"), default="markdown",
                       help="markdown (default) or a LaTeX booktabs table (needs amsmath)")
    table.add_argument("-o", "--output", metavar="OUT", help="write to OUT (default: stdout)")
    _add_spec_options(table)
    table.set_defaults(run=run_table)

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
    _add_dot_timeout(build)
    _add_spec_options(build)
    build.set_defaults(run=run_build)

    render = commands.add_parser(
        "render", help="draw a diagram of a network (SVG, PDF, PNG, TikZ or DOT)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Draw the network as the papers draw it: repeated blocks once with their count
(`bottleneck ×36`), one cluster per named stage, parallel branches side by side,
residual skips as arcs beside the body (dashed: identity; solid: projection),
auxiliary heads as dashed side branches, tensor shapes on the edges. A conv and the
batch norm, activation and dropout after it are one box ("3x3 conv, 64, /2"), and
identical convs in a row one box ("3x3 conv, 64 ×2"); --show draws them apart.

Layout needs Graphviz's `dot`; without it, the packaged port of dot (`pip install
graphviz-pure`, part of archdsl[diagrams]) draws SVG, PNG and TikZ. With neither,
--format dot still works, and other formats write the .dot file and explain how to
install Graphviz (exit status 3).

--format tikz (or -o FIGURE.tex) writes a LaTeX document for pdflatex whose tikzpicture
has the SVG's layout; paste the picture into a paper that loads tikz.""")
    render.add_argument("files", nargs="+", metavar="FILE[:NETWORK]",
                        help="a spec; several specs draw their networks side by side in one "
                             "figure, at one scale, aligned where each reaches a new feature "
                             "map size (as ResNet's Figure 3); FILE:NETWORK takes one network "
                             "of a file that has several")
    render.add_argument("--side-by-side", action="store_true",
                        help="one figure of every network drawn, even from a single file "
                             "(a file with several networks otherwise gives a file each)")
    render.add_argument("-o", "--output", metavar="OUT",
                        help="output file (default NETWORK.FORMAT in the current directory); "
                             "- for standard output")
    render.add_argument("--format", choices=RENDER_FORMATS, default=None,
                        help="default: from OUT's extension (.tex is tikz), else svg; tikz is "
                             "a standalone LaTeX document with the SVG's layout, for pdflatex")
    render.add_argument("--depth", type=int, metavar="N",
                        help="open blocks N levels deep (1: one box per stage)")
    render.add_argument("--expand", action="append", default=[], metavar="NAME",
                        help="open the stage or block instance with this name, as `archdsl ir` "
                             "lists names (layer3, layer3.1), or every instance of a block "
                             "(bottleneck); repeatable; `all` opens everything down to one box "
                             "per layer")
    render.add_argument("--show", metavar="WHAT", default="",
                        help="comma-separated: norm, act, reg (dropout), stacks (each of "
                             "identical convs in a row), or all: draw these as boxes of their "
                             "own (default: folded into the conv before them, as papers do)")
    render.add_argument("--title", action=argparse.BooleanOptionalAction, default=True,
                        help="the network's name above the diagram (default on)")
    render.add_argument("--legend", action="store_true",
                        help="a key to the box colours (convolution, normalisation, ...)")
    render.add_argument("--dpi", type=int, default=300,
                        help="resolution of PNG output (default 300, for print)")
    render.add_argument("--direction", choices=DIRECTIONS, default="TB",
                        help="top to bottom (default) or left to right")
    render.add_argument("--shapes", action=argparse.BooleanOptionalAction, default=True,
                        help="tensor shapes on edges (default on)")
    render.add_argument("--style", choices=STYLES, default="paper",
                        help="paper: captions only; detailed: names, parameters and MACs")
    render.add_argument("--column", choices=("single", "double"),
                        help="scale the figure down to fit one column (3.3 in) or the full "
                             "width (6.9 in) of a two-column paper, 9 in tall at most; if its "
                             "text would print below 6 pt, the other direction and the chain "
                             "snaked into 2-4 columns are tried, and a warning says what helps "
                             "when none fits")
    render.add_argument("--partial", action="store_true",
                        help="for a spec with a shape error, draw everything up to the failing "
                             "layer, highlighted")
    _add_dot_timeout(render)
    _add_spec_options(render)
    render.set_defaults(run=run_render)

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

augmentation (--augment, default per source: basic for folder and cifar10, none for the
shapes and waves made here): basic = random-resized crop + horizontal flip, trivial =
basic + TrivialAugment; --mixup/--cutmix ALPHA mix images within a batch.

several processes: `--nproc N` (or torchrun --nproc-per-node N -m archdsl train ...)
runs DistributedDataParallel (NCCL on GPUs, gloo on CPU); --batch-size is the global
batch, split evenly; rank 0 logs and writes.""")
    train.add_argument("file", metavar="FILE")
    train.add_argument("--data", default="shapes", metavar="SOURCE",
                       help="shapes[:N] (default), waves[:N], folder:PATH or cifar10:PATH")
    train.add_argument("--epochs", type=int, default=10, help="default 10")
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
    _add_train_recipe_options(train)
    _add_spec_options(train)
    train.set_defaults(run=run_train)

    evaluate = commands.add_parser(
        "eval", help="accuracy of trained weights on a data source's validation split",
        description="Load FILE's network with the weights in CKPT (best.pt, last.pt, "
                    "checkpoint.pt or model.pt from `archdsl train`, or torchvision's weights) "
                    "and print its top-1 and top-5 accuracy, loss and per-class accuracy on the "
                    "validation split of --data, preprocessed as in training.")
    evaluate.add_argument("file", metavar="FILE")
    evaluate.add_argument("--weights", required=True, metavar="CKPT")
    evaluate.add_argument("--data", default="shapes", metavar="SOURCE",
                          help="shapes[:N] (default), waves[:N], folder:PATH or cifar10:PATH")
    evaluate.add_argument("--batch-size", type=int, default=128)
    evaluate.add_argument("--seed", type=int, default=0, help="the seed the shapes data used")
    evaluate.add_argument("--confusion", metavar="PNG",
                          help="also write the confusion matrix as a PNG image")
    _add_inference_options(evaluate)
    _add_spec_options(evaluate)
    evaluate.set_defaults(run=run_eval)

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
    predict.set_defaults(run=run_predict)

    show_ast = commands.add_parser(
        "ast", help="print the syntax tree of a file (for debugging specs and archdsl)",
        description="Parse FILE and print its syntax tree, one node per line, without "
                    "source positions. Imports are not followed.")
    show_ast.add_argument("file", metavar="FILE")
    show_ast.set_defaults(run=run_ast)

    show_ir = commands.add_parser(
        "ir", help="print the elaborated IR of a spec",
        description="Print the IR, one line per layer: name, op, arguments, inputs, output "
                    "shape and the source location (with the block calls it came through).")
    show_ir.add_argument("file", metavar="FILE")
    _add_spec_options(show_ir)
    show_ir.set_defaults(run=run_ir)
    _add_fmt_command(commands)
    _add_lsp_command(commands)

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
    export.set_defaults(run=run_export)

    importer = commands.add_parser(
        "import", help="write a .arch spec of a PyTorch model (traced with torch.fx)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Call FACTORY from a Python module (MODULE:FACTORY, e.g. torchvision.models:resnet50) or
file (path/to/model.py:FACTORY), trace the model it returns with torch.fx, and write a
spec: torch.nn layers become archdsl layers labelled with the model's attribute names
(so the spec's state_dict keys are the model's), residual adds become
`residual { } skip { }`, concatenations `concat { }`, module instances of one class that
differ only in numbers one `block`, and runs of identical calls `repeat`s. The spec is
checked before it is written. A layer archdsl has no equivalent for is named with its
module path and type (exit status 1).

  archdsl import torchvision.models:resnet50 -o resnet50.arch""")
    importer.add_argument("factory", metavar="MODULE:FACTORY",
                          help="a function (or class) that returns the nn.Module")
    importer.add_argument("-o", "--output", metavar="OUT.arch",
                          help="write the spec here (default: standard output)")
    importer.add_argument("--input", default="3x224x224", metavar="CxHxW",
                          help="the input shape to trace with, batch excluded (default "
                               "3x224x224)")
    importer.set_defaults(run=run_import)
    return parser


def _add_lsp_command(commands) -> None:
    lsp = commands.add_parser(
        "lsp", help="a language server for editors (diagnostics, hover, definitions, ...)",
        description="Run a Language Server on standard input and output, for editors: "
                    "the diagnostics of `check` as you type, hover with a layer's output "
                    "shape, parameters and MACs, go to the definition of blocks and "
                    "imports, completion of layers, blocks and keyword arguments, document "
                    "symbols and formatting (as `fmt`). Editors start it themselves "
                    "(docs/editors.md); it needs pygls: pip install archdsl[lsp].")
    lsp.set_defaults(run=run_lsp)


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
    fmt.set_defaults(run=run_fmt)


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


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.run(args)
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


def parse_value(text: str):
    """A --set value: integer, number, true/false, a tuple `(6,12,24,16)` of these, or
    else a string.

    >>> parse_value("(6, 12, 24.5)")
    (6, 12, 24.5)
    """
    inner = text.strip()
    if inner.startswith("(") and inner.endswith(")") and "," in inner:
        items = [item.strip() for item in inner[1:-1].split(",")]
        return tuple(parse_value(item) for item in items if item)
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text)


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        dims = ()
    if not dims or min(dims) < 1:
        raise UsageError(f"bad shape `{text}`: write the sizes without the batch, joined by "
                         "x: 3x224x224 (an image), 1x16000 (a signal), 4096 (features)")
    return dims


def spec_options(args) -> dict:
    settings = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--set {item}: write NAME=VALUE, e.g. --set classes=10")
        settings[name.strip()] = parse_value(value.strip())
    inputs = {}
    for item in args.input:
        name, sep, value = item.rpartition("=")
        if sep and not name.strip():
            raise UsageError(f"--input {item}: write NAME=CxHxW or just CxHxW")
        inputs[name.strip() if sep else "*"] = parse_shape(value)
    if args.max_nodes < 1:
        raise UsageError("--max-nodes must be at least 1")
    return dict(settings=settings, inputs=inputs, network=args.network,
                limits=Limits(max_nodes=args.max_nodes))


def compile_or_report(path: str, args, fmt: str = "text") -> Compilation:
    result = compile_file(path, **spec_options(args))
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
            report.append({"file": path, "ok": result.ok,
                           "networks": [_summary_json(g) for g in result.graphs.values()]
                           if result.ok else [],
                           "diagnostics": [to_json(d) for d in result.diagnostics]})
        elif result.ok:
            for graph in result.graphs.values():
                print(f"{path}: {_summary_line(graph)}")
            if not result.graphs:
                print(f"{path}: ok, {_no_networks(result)}")
        else:
            errors = len(result.diagnostics)
            print(f"{path}: {errors} error{'s' if errors != 1 else ''}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(report, indent=2))
    return EXIT_USAGE if unusable else EXIT_SPEC_ERRORS if failed else EXIT_OK


def _no_networks(result: Compilation) -> str:
    blocks = len(result.program.blocks) if result.program else 0
    return f"no networks ({blocks} block{'' if blocks == 1 else 's'})"


def _require_networks(result: Compilation, path: str) -> None:
    if result.ok and not result.graphs:
        raise UsageError(f"{path} has {_no_networks(result)}: nothing to do")


def _outputs(graph) -> list[tuple[str, str, bool]]:
    return [(o.name, show(graph.nodes[o.node]["shape"]), o.train_only)
            for o in ir.network(graph).outputs]


def _summary_line(graph) -> str:
    layers = len(graph) - len(ir.network(graph).inputs)
    outs = ", ".join(f"{name} {shape}" + (" (train)" if train else "")
                     for name, shape, train in _outputs(graph))
    params, inference = total(graph).params, total(graph, train=False).params
    without = f" ({inference:,} without train-only heads)" if inference != params else ""
    return (f"{ir.network(graph).name}: {layers} layers, {params:,} parameters{without}, "
            f"outputs {outs}")


def _summary_json(graph) -> dict:
    return {"network": ir.network(graph).name, "layers": len(graph) - len(ir.network(graph).inputs),
            "parameters": total(graph).params,
            "outputs": [{"name": n, "shape": s, "train_only": t} for n, s, t in _outputs(graph)]}


def run_stats(args) -> int:
    if args.depth is not None and args.depth < 1:
        raise UsageError("--depth must be at least 1")
    if args.depth is not None and len(args.files) > 1 and not args.plot:
        raise UsageError("--depth applies to the table of one file; several files are "
                         "compared by their totals (or drawn with --plot)")
    plot_format = _plot_format(args.plot)
    reports, failed = [], False
    for path in args.files:
        result = compile_or_report(path, args)
        _require_networks(result, path)
        failed |= not result.ok
        if result.ok:
            reports += [report_stats(g, args.depth, args.dtype) for g in result.graphs.values()]
    if failed:
        return EXIT_SPEC_ERRORS
    if args.plot:
        from .backends.plot_costs import plot_costs
        write_atomic(Path(args.plot), plot_costs(reports, plot_format))
        print(f"drew {', '.join(r.network for r in reports)} -> {args.plot}", file=sys.stderr)
    if len(args.files) > 1:
        print(format_comparison(reports, args.format), end="")
    else:
        print("\n".join(format_report(r, args.format) for r in reports), end="")
    return EXIT_OK


def run_table(args) -> int:
    from .backends import report_table
    graphs = []
    for path in args.files:
        result = compile_or_report(path, args)
        _require_networks(result, path)
        if not result.ok:
            return EXIT_SPEC_ERRORS
        graphs += result.graphs.values()
    text = {"markdown": report_table.format_markdown,
            "latex": report_table.format_latex}[args.format](graphs)
    if args.output and args.output != "-":
        write_atomic(Path(args.output), text.encode())
        print(f"wrote the table of {', '.join(ir.network(g).name for g in graphs)} -> "
              f"{args.output}", file=sys.stderr)
    else:
        print(text, end="")
    return EXIT_OK


def _plot_format(path: str | None) -> str | None:
    """The format of --plot OUT, from its extension; refused early if matplotlib is missing."""
    if path is None:
        return None
    fmt = Path(path).suffix.lstrip(".").lower()
    if fmt not in ("svg", "pdf", "png"):
        raise UsageError(f"--plot {path}: give a file ending in .svg, .pdf or .png")
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        raise UsageError("--plot needs matplotlib: pip install matplotlib "
                         "(or archdsl[train])") from None
    return fmt


def _with_torch(module: str, what: str):
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
    _check_timeout(args)
    if args.output == "-":
        raise UsageError("-o -: a build writes several files; give a directory")
    builder = _with_torch("runtime.build", "`archdsl build`")
    result = compile_or_report(args.file, args)
    _require_networks(result, args.file)
    if not result.ok:
        return EXIT_SPEC_ERRORS
    device = builder.pick_device(args.device)
    for name, graph in result.graphs.items():
        if args.output:
            out = Path(args.output) / name if len(result.graphs) > 1 else Path(args.output)
        else:
            out = Path("build") / name
        if out.exists() and not out.is_dir():
            raise UsageError(f"-o {out}: exists and is not a directory")
        try:
            artifacts = builder.build(graph, device, args.dtype, args.batch, args.dot_timeout)
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


def run_render(args) -> int:
    if args.depth is not None and args.depth < 1:
        raise UsageError("--depth must be at least 1")
    _check_timeout(args)
    if len(args.files) > 1 or args.side_by_side:
        return _render_side_by_side(args)
    args.file, network = _network_of(args.files[0])
    args.network = network or args.network
    result = compile_or_report(args.file, args)
    _require_networks(result, args.file)
    _check_render_options(args, result)
    if not result.ok and not args.partial:
        return EXIT_SPEC_ERRORS
    status = EXIT_OK if result.ok else EXIT_SPEC_ERRORS
    to_stdout = args.output == "-"
    for name, graph in result.graphs.items():
        fmt = args.format or _format_from(args.output)
        out = Path(args.output) if args.output else Path(f"{name}.{suffix_of(fmt)}")
        if len(result.graphs) > 1 and args.output:
            out = out.with_name(f"{out.stem}_{name}{out.suffix}")
        if not to_stdout and out.resolve().is_dir():
            raise UsageError(f"-o {out}: is a directory; give a file name such as "
                             f"{out / (name + '.' + suffix_of(fmt))}")
        source = _legible(args, fmt, lambda direction, columns: render_dot(
            graph, depth=args.depth, expand=args.expand, direction=direction,
            shapes=args.shapes, style=args.style, partial=args.partial, column=args.column,
            show=args.show, title=args.title, legend=args.legend, columns=columns), name)
        dot_path = Path(f"{name}.dot") if to_stdout else out.with_suffix(".dot")
        if not _write_diagram(source, fmt, None if to_stdout else out, dot_path, args):
            return EXIT_MISSING_TOOL
        if not to_stdout:
            print(f"{args.file}: drew {name} -> {out}")
    return status


def _legible(args, fmt: str, draw, name: str) -> str:
    """The DOT source as asked, unless --column would print its text below 6 pt: then
    the other direction, or the chain snaked into 2-4 columns side by side, whichever
    prints largest, and a note saying so. When none reaches 6 pt, a warning says what
    would."""
    source = draw(args.direction, 1)
    if not args.column or fmt == "dot" or not can_layout("svg"):
        return source
    try:
        points = text_points(source, layout(source, "svg", args.dot_timeout))
        if points >= MIN_TEXT_POINTS:
            return source
        other = "LR" if args.direction == "TB" else "TB"
        tried = [(f"laid out {other}", draw(other, 1))]
        tried += [(f"snaked into {k} columns", draw(args.direction, k)) for k in (2, 3, 4)]
        best, best_points, how = source, points, ""
        for words, candidate in tried:
            if candidate == source:
                continue  # no place to cut the chain
            candidate_points = text_points(candidate, layout(candidate, "svg", args.dot_timeout))
            if candidate_points > best_points:
                best, best_points, how = candidate, candidate_points, words
            if best_points >= MIN_TEXT_POINTS:
                break
    except LayoutError:
        return source  # the layout proper reports it
    if how:
        print(f"note: {name} {how} so that its text prints at {best_points:.1f} pt in a "
              f"{args.column} column (as asked: {points:.1f} pt)", file=sys.stderr)
    if best_points < MIN_TEXT_POINTS:
        print(f"warning: at --column {args.column}, {name}'s smallest text prints at "
              f"{best_points:.1f} pt, below {MIN_TEXT_POINTS:g} pt: draw fewer boxes (--depth "
              "1, no --expand), --no-shapes"
              + (", or --column double" if args.column == "single" else ""), file=sys.stderr)
    return best


def _write_diagram(source: str, fmt: str, out: Path | None, dot_path: Path, args) -> bool:
    """Lay out and write the diagram (to standard output when `out` is None). Without a
    layout program, write the DOT source to `dot_path`, say so, and return False."""
    try:
        data = layout(source, fmt, args.dot_timeout, dpi=args.dpi)
    except LayoutError as error:
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


def _network_of(argument: str) -> tuple[str, str | None]:
    """FILE:NETWORK as (FILE, NETWORK); a plain FILE (even one whose name has a colon) as
    (FILE, None)."""
    path, sep, network = argument.rpartition(":")
    if sep and path.endswith(".arch") and network.isidentifier() and not Path(argument).exists():
        return path, network
    return argument, None


def _render_side_by_side(args) -> int:
    """Several networks in one figure: every network of each FILE (--network picks one
    by name), or the one FILE:NETWORK names."""
    graphs, chosen = [], args.network
    for argument in args.files:
        path, network = _network_of(argument)
        args.file, args.network = path, network or chosen
        result = compile_or_report(path, args)
        _require_networks(result, path)
        if not result.ok:
            return EXIT_SPEC_ERRORS
        if len(result.graphs) > 1 and not args.side_by_side:
            raise UsageError(f"{path} has {len(result.graphs)} networks ("
                             f"{', '.join(result.graphs)}); name one as {path}:NETWORK, or "
                             "draw them all with --side-by-side")
        _check_render_options(args, result)
        graphs += result.graphs.values()
    if args.partial:
        raise UsageError("--partial draws one network; give one file")
    fmt = args.format or _format_from(args.output)
    out = Path(args.output) if args.output else Path(
        "_".join(ir.network(g).name for g in graphs) + f".{suffix_of(fmt)}")
    source = render_many(graphs, depth=args.depth, expand=args.expand,
                         direction=args.direction, shapes=args.shapes, style=args.style,
                         column=args.column, show=args.show, title=args.title,
                         legend=args.legend)
    to_stdout = args.output == "-"
    dot_path = Path("networks.dot") if to_stdout else out.with_suffix(".dot")
    if not _write_diagram(source, fmt, None if to_stdout else out, dot_path, args):
        return EXIT_MISSING_TOOL
    if not to_stdout:
        print(f"drew {', '.join(ir.network(g).name for g in graphs)} side by side -> {out}")
    return EXIT_OK


def _check_timeout(args) -> None:
    if not (math.isfinite(args.dot_timeout) and args.dot_timeout > 0):
        raise UsageError("--dot-timeout must be a positive number of seconds")


def _check_render_options(args, result: Compilation) -> None:
    for prefix in args.expand:
        if prefix != "all" and not any(instances(g, prefix) for g in result.graphs.values()):
            raise UsageError(f"--expand {prefix}: no layer, stage or block has that name "
                             "(`archdsl ir FILE` lists the names)")
    show = args.show if isinstance(args.show, tuple) else tuple(
        w.strip() for w in args.show.split(",") if w.strip())
    unknown = [w for w in show if w not in SHOW]
    if unknown:
        raise UsageError(f"--show {unknown[0]}: choose from {', '.join(SHOW)}")
    args.show = show
    if not 10 <= args.dpi <= 2400:
        raise UsageError("--dpi must be between 10 and 2400")
    if args.output == "-" and len(result.graphs) > 1:
        raise UsageError(f"-o - writes one diagram, but {args.file} has "
                         f"{len(result.graphs)} networks; choose one with --network NAME")
    asked = format_of(args.output) if args.output else None
    if args.format and asked and asked != args.format:
        raise UsageError(f"-o {args.output} asks for {asked.upper()} but --format is "
                         f"{args.format}; make them agree")


def _format_from(output: str | None) -> str:
    return (format_of(output) if output else None) or "svg"


def _training():
    return _with_torch("runtime.train", "training")


def run_train(args) -> int:
    train = _training()
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch(args.nproc)
    _check_train_flags(args)
    options = spec_options(args)
    config = train.TrainConfig(
        args.file, data=args.data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        optimizer=args.optimizer, schedule=args.schedule, weight_decay=args.weight_decay,
        device=args.device, amp=args.amp, channels_last=args.channels_last,
        compile=args.compile, workers=args.workers, seed=args.seed,
        out=args.out or "", resume=args.resume, checkpoint_every=args.checkpoint_every,
        settings=options["settings"], inputs=options["inputs"], network=args.network,
        progress=not args.quiet, augment=args.augment, mixup=args.mixup, cutmix=args.cutmix,
        warmup=args.warmup, label_smoothing=args.label_smoothing, clip_grad=args.clip_grad,
        ema=args.ema, decay_all=args.decay_all, sync_bn=args.sync_bn,
        best_metric=args.best_metric, early_stop=args.early_stop, log=tuple(args.log),
        labels=args.labels, init=args.init)
    train.train(config)
    return EXIT_OK


def _check_train_flags(args) -> None:
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


def _inference():
    _training()
    from .runtime import infer
    return infer


def _labels(args, classes, count: int):
    """Class names: --labels, else the checkpoint's, else None."""
    if not args.labels:
        return classes
    from .runtime.data import read_labels
    return read_labels(args.labels, classes, count)


def run_eval(args) -> int:
    infer = _inference()
    from .runtime import data
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    options = spec_options(args)
    model, classes, graph, preprocess = infer.load_trained(
        args.file, args.weights, options["settings"], options["inputs"], args.network,
        args.preprocess)
    shape = graph.nodes[ir.network(graph).inputs[0]]["shape"]
    _, split = data.open_source(args.data, shape, args.seed)
    preprocess = preprocess or split.preprocess  # bare weights: as the data source trains
    names = _labels(args, classes or split.classes, len(split.classes))
    result = infer.evaluate(model, split, "cpu", args.batch_size, preprocess=preprocess)
    print(f"{ir.network(graph).name} on {args.data}: accuracy {result['accuracy']:.4f} (top-1), "
          f"top-5 {result['top5']:.4f}, loss {result['loss']:.4f} ({result['images']} images)")
    if len(names) <= 30:
        print("per class: " + ", ".join(f"{name} {share:.3f}" for name, share
                                        in zip(names, result["per_class"])))
    if args.confusion:
        write_atomic(Path(args.confusion), infer.confusion_png(result["confusion"], names))
        print(f"wrote {args.confusion}")
    return EXIT_OK


def run_predict(args) -> int:
    infer = _inference()
    if args.top_k < 1:
        raise UsageError("--top-k must be at least 1")
    options = spec_options(args)
    model, classes, graph, preprocess = infer.load_trained(
        args.file, args.weights, options["settings"], options["inputs"], args.network,
        args.preprocess)
    outputs = graph.nodes[next(o for o in ir.network(graph).outputs if not o.train_only).node]["shape"]
    names = _labels(args, classes, outputs[0]) if args.labels else classes
    results = infer.predict(model, graph, args.images, args.top_k, preprocess or infer.PLAIN)
    for path, top in zip(args.images, results):
        print(path)
        for probability, index in top:
            name = names[index] if names else f"class {index}"
            print(f"  {probability:6.1%}  {name}")
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
    _require_networks(result, args.file)
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


def run_export(args) -> int:
    exporter = _with_torch("runtime.export", "`archdsl export`")
    if args.output == "-":
        raise UsageError("-o -: export writes files; give a path")
    result = compile_or_report(args.file, args)
    _require_networks(result, args.file)
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
    import_torch = _with_torch("tools.import_torch", "`archdsl import`")
    from .compile import compile_source
    shape = parse_shape(args.input)
    if args.output and Path(args.output).is_dir():
        raise UsageError(f"-o {args.output}: is a directory; give a file such as "
                         f"{Path(args.output) / 'model.arch'}")
    sys.path.insert(0, os.getcwd())  # MODULE may be a module of the current directory
    try:
        model, factory = import_torch.load_factory(args.factory)
        name = "".join(c if c.isalnum() else "_" for c in factory.lower())
        text = import_torch.import_torch(model, shape, name)
    except import_torch.ImportFailure as error:
        print(f"archdsl: error: cannot import {args.factory}: {error}", file=sys.stderr)
        return EXIT_SPEC_ERRORS
    finally:
        sys.path.remove(os.getcwd())
    result = compile_source(text, args.output or "<import>")
    if not result.ok:
        print(render_all(result.diagnostics), file=sys.stderr)
        print(f"archdsl: internal error: the spec imported from {args.factory} does not check "
              "(please report it)", file=sys.stderr)
        return EXIT_INTERNAL
    if args.output:
        write_atomic(Path(args.output), text.encode())
        print(f"{args.factory}: {_summary_line(result.graph)} -> {args.output}",
              file=sys.stderr)
    else:
        print(text, end="")
    return EXIT_OK
