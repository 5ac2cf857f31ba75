"""The command line of the commands that make what goes into a paper: `stats`, `table`
and `render` (their options and --help). archdsl.arguments assembles the whole parser."""
from __future__ import annotations

import argparse

from .backends.layout import FORMATS as RENDER_FORMATS
from .backends.render_dot import DIRECTIONS, STYLES
from .backends.render_view import MERGES
from .backends.report_stats import DTYPE_BYTES, FORMATS
from .errors import UsageError


def add_stats_command(commands, add_spec_options) -> None:
    stats = commands.add_parser(
        "stats", help="per-layer shapes, parameters, MACs and memory; compare networks",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Count, from the spec alone (no model is built, torch is not imported), each layer's
output shape, activation memory, parameters and multiply-accumulates, and the totals.
With several FILEs, print their totals side by side with ratios against the first.
With --train, plan the memory of a training step instead (also from the spec alone);
with --measure, build the model and time each layer (needs PyTorch).

conventions:
  MACs       multiply-adds of conv and linear layers for one image; one fused
             multiply-add = 1; bias additions not counted (the figure torchvision
             quotes as GFLOPS). FLOPs, where shown, are 2 x MACs. Element-wise,
             pooling and normalisation work is counted separately under "other ops".
  units      MACs and ops in decimal units (1G = 1e9). Memory in binary units:
             1 KiB = 1024 bytes, 1 MiB = 1024 KiB; bytes per element from --dtype.
  memory     activation memory is each layer's output for one image. The training
             step line is the planned peak of an AdamW step: fixed + per image
             (--train gives the whole plan).
  shared     a tensor tied to another (`tie`) is counted once, and the tables say so.
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
    stats.add_argument("--formula", action="store_true",
                       help="also give each total as a formula in the input sizes declared as "
                            "symbols (`input ids: L <= 2048`): 12,288·L² + 1,769,472·L")
    stats.add_argument("--plot", metavar="OUT",
                       help="also draw per-layer bars of memory, parameters and MACs, the "
                            "networks side by side (OUT.svg, .pdf or .png; needs matplotlib)")
    stats.add_argument("--column", choices=("single", "double"),
                       help="with --plot: make the plot exactly as wide as a paper's column "
                            "(3.28 in) or its text (6.875 in), to include unscaled")
    stats.add_argument("--plot-layers", choices=("cost", "all"), default="cost",
                       help="with --plot: draw the layers that carry MACs (conv, linear, "
                            "attention's products; default) or every row (all)")
    from .cli_measure import add_measure_options  # noqa: PLC0415
    from .cli_memory import add_memory_options  # noqa: PLC0415
    add_measure_options(stats)
    add_memory_options(stats)
    add_spec_options(stats)


def add_table_command(commands, add_spec_options) -> None:
    table = commands.add_parser(
        "table", help="the architecture table of papers, for one network or a family",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
The table papers print (ResNet's Table 1, VGG's Table 1): one column per network, one row
per feature-map size with the layers that work at that size, a repeated layer or block as
`[1×1, 64; 3×3, 64; 1×1, 256] ×3`, then parameters and MACs, each row in one unit (one
network of branched modules: GoogLeNet's Table 1, a row per layer or module).
Norms, activations and skip projections are left out, as papers leave them out (LRN is
kept). In LaTeX a row the same in every column spans them all.

A column is FILE, FILE:NETWORK, and optionally ?NAME=VALUE&NAME=VALUE: settings of that
column only (after --set, which applies to all), so one spec gives several columns:

  archdsl table specs/resnet18.arch specs/resnet34.arch specs/resnet50.arch \\
                specs/resnet101.arch specs/resnet152.arch --format latex --width text
  archdsl table 'specs/cifar_resnet.arch:cifar_resnet?depth=20' \\
                'specs/cifar_resnet.arch:cifar_resnet?depth=56' --headers 20-layer,56-layer""")
    table.add_argument("files", nargs="+", metavar="FILE[:NETWORK][?NAME=VALUE&...]",
                       help="one column each (quote it: the shell reads ? and &)")
    table.add_argument("--format", choices=("markdown", "latex"), default="markdown",
                       help="markdown (default) or a LaTeX booktabs table (needs amsmath)")
    table.add_argument("--headers", metavar="A,B,...", help="the column headers, one per "
                       "column (default: the network, and the column's ?settings)")
    table.add_argument("--notation", choices=("auto", "bracket", "vgg", "branched"),
                       default="auto", help="bracket: ResNet's `[3×3, 64] ×2`; vgg: VGG's "
                       "`conv3-64`; branched: GoogLeNet's Table 1 (one network); auto "
                       "(default): branched for one network with branched modules, else bracket")
    table.add_argument("--width", choices=("natural", "column", "text"), default="natural",
                       help="latex: shrink the table to \\columnwidth or \\textwidth where it "
                            "is wider (needs graphicx; table* for text in two columns)")
    add_caption_option(table)
    table.add_argument("-o", "--output", metavar="OUT", help="write to OUT (default: stdout)")
    add_spec_options(table)


def add_render_command(commands, add_spec_options, add_dot_timeout) -> None:
    render = commands.add_parser(
        "render", help="draw a diagram of a network (SVG, PDF, PNG, TikZ or DOT)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Draw the network as the papers draw it: repeated blocks once with their count
(`bottleneck ×36`), one cluster per named stage, parallel branches side by side,
residual skips as arcs beside the body, whose main chain runs straight (solid: identity;
dashed: projection, as He et al. draw them; --merges plain joins them box to box),
auxiliary heads as dashed side branches, tensor shapes on the edges (a
length symbol by its name, `L×768`). A conv and the batch norm, activation and dropout
after it are one box ("3x3 conv, 64, /2"), and identical convs in a row one box ("3x3
conv, 64 ×2"); --show draws them apart. Blocks are named by their captions (`block
mha(h) as "Multi-Head Attention"`), else by their names.

Layout needs Graphviz's `dot`; without it, the packaged port of dot (`pip install
graphviz-pure`, part of archdsl[diagrams]) draws SVG, PNG and TikZ. With neither,
--format dot still works, and other formats write the .dot file and explain how to
install Graphviz (exit status 3).

--format tikz (or -o FIGURE.tex) writes a LaTeX document for pdflatex whose tikzpicture
has the SVG's layout, written to be edited: one \\tikzset block of styles (archconv,
archnorm, ..., archedge, archidentity, archprojection), each box a named node, each arrow
drawn between node names, so that moving a box (its `at (x,y)`) moves its arrows; paste
the picture into a paper that loads tikz and \\usetikzlibrary{arrows.meta}.""")
    render.add_argument("files", nargs="+", metavar="FILE[:NETWORK]",
                        help="a spec; several specs draw their networks side by side in one "
                             "figure, at one scale, aligned where each reaches a new feature "
                             "map size (as ResNet's Figure 3); FILE:NETWORK takes one network "
                             "of a file that has several")
    render.add_argument("--side-by-side", action="store_true",
                        help="one figure of every network drawn, even from a single file "
                             "(a file with several networks otherwise gives a file each)")
    render.add_argument("--diff", action="store_true",
                        help="FILES are A and B, as for `archdsl diff` (B defaults to A): "
                             "draw B beside A, what differs marked (changed, added, removed)")
    render.add_argument("--set-b", metavar="NAME=VALUE", action="append", default=[],
                        help="with --diff: a network parameter of B only (repeatable)")
    render.add_argument("-o", "--output", metavar="OUT",
                        help="output file (default NETWORK.FORMAT in the current directory); "
                             "- for standard output")
    render.add_argument("--format", choices=RENDER_FORMATS, default=None,
                        help="default: from OUT's extension (.tex is tikz), else svg; tikz is "
                             "a standalone LaTeX document with the SVG's layout, for pdflatex")
    render.add_argument("--depth", type=int, metavar="N",
                        help="open blocks N levels deep (1: one box per stage)")
    render.add_argument("--expand", action="append", default=[], metavar="NAME",
                        help="open the stage or block instance with this name, as `archdsl ir` lists "
                             "names (layer3, layer3.1), or every instance of a block (bottleneck); "
                             "repeatable; `all` opens everything down to one box per layer")
    render.add_argument("--show", metavar="WHAT", default="",
                        help="comma-separated: norm, act, reg (dropout), stacks (each of identical "
                             "convs in a row), impl (flatten, transpose, dropout 0, no-op pools), or "
                             "all: draw these as boxes (default: norm, act, reg folded into the conv "
                             "before them, impl left out, as papers do)")
    _add_figure_options(render)
    add_dot_timeout(render)
    add_spec_options(render)


def _add_figure_options(render) -> None:
    """render's options for the look of the figure."""
    render.add_argument("--title", action=argparse.BooleanOptionalAction, default=True,
                        help="the network's name above the diagram (default on)")
    render.add_argument("--legend", action="store_true", help="a key to the box colours and skip lines")
    render.add_argument("--dpi", type=int, default=300, help="PNG resolution (default 300, for print)")
    render.add_argument("--direction", choices=DIRECTIONS, default="TB",
                        help="top to bottom (default), left to right, or bottom to top (GoogLeNet)")
    render.add_argument("--frames", action=argparse.BooleanOptionalAction, default=True,
                        help="outlines and titles around open blocks (default on)")
    render.add_argument("--merges", choices=MERGES, default="marked",
                        help="how a residual skip joins the main path: marked (default): into "
                             "a \"+\" circle, the ReLU after it a box, as He et al.'s figures "
                             "of one block (2 and 5); plain: box to box, the add and the ReLU "
                             "after it folded into the join, as their Figure 3 of a network")
    render.add_argument("--shapes", action=argparse.BooleanOptionalAction, default=True,
                        help="tensor shapes on edges (default on)")
    render.add_argument("--style", choices=STYLES, default="paper",
                        help="paper: captions only; detailed: names, parameters and MACs")
    render.add_argument("--column", choices=("single", "double"),
                        help="scale the figure down to fit one column (3.28 in) or the full "
                             "width (6.875 in) of a two-column paper, and --max-height; if its "
                             "text would print below 6 pt, the other direction and the chain "
                             "snaked into 2-4 columns are tried, and a warning says what helps "
                             "when none fits; a note gives the printed size and point size")
    render.add_argument("--max-height", type=float, metavar="IN",
                        help="with --column: the figure's greatest height in inches (default "
                             "8: a text block of 8.875 in less room for the caption)")
    add_caption_option(render)
    render.add_argument("--partial", action="store_true",
                        help="for a spec with a shape error, draw everything up to the failing "
                             "layer, highlighted")


def add_caption_option(command) -> None:
    """--caption NAME=TEXT: the author's words from the command line, over the spec's."""
    command.add_argument("--caption", metavar="NAME=TEXT", action="append", default=[],
                         help="the words figures and tables print for NAME, over the spec's "
                              "`as \"...\"`: the network's name sets its title (and table "
                              "header), a stage's name its frame or row (layer1=conv2_x), a "
                              "layer's name its box text (repeatable)")


def parse_captions(given: list[str]) -> tuple[tuple[str, str], ...]:
    """`["layer1=conv2_x"]` as (("layer1", "conv2_x"),); a usage error for text without =."""
    pairs = []
    for item in given:
        name, equals, text = item.partition("=")
        if not equals or not name.strip():
            raise UsageError(f"--caption {item}: write NAME=TEXT, e.g. --caption "
                             "layer1=conv2_x or --caption resnet18=18-layer")
        pairs.append((name.strip(), text))
    return tuple(pairs)
