"""`archdsl table`: the architecture tables of papers, from the shipped specs. ResNet's
Table 1 (the five ResNets) and VGG's Table 1 (VGG-11 to VGG-19) as golden files, in
Markdown and LaTeX; columns chosen as FILE:NETWORK?NAME=VALUE; one unit per totals row;
rows every column shares span them all; the LaTeX fits a CVPR page where pdflatex is
installed."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from archdsl import compile_file, compile_source, ir
from archdsl.arguments import build_parser
from archdsl.backends.report_table import format_latex, format_markdown, table_rows
from archdsl.backends.report_table_branched import branched_rows
from archdsl.cli import main
from archdsl.cli_table import compile_columns

from conftest import ROOT, check_golden

RESNETS = [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
VGGS = [f"vgg{d}" for d in (11, 13, 16, 19)]
CIFAR = [f"specs/cifar_resnet.arch:cifar_resnet?depth={d}" for d in (20, 56)]
LRN_SPEC = """network vgg_a(lrn = false) {
    input image: 3 x 32 x 32
    conv(8, 3, pad = 1); relu
    if lrn { lrn(5) }
    maxpool(2)
    conv(16, 3, pad = 1); relu; conv(16, 3, pad = 1); relu
    global_avgpool; flatten; linear(10)
}"""


def graphs(names):
    return [compile_file(ROOT / "specs" / f"{n}.arch").graph for n in names]


def columns(*argv):
    """(graphs, headers) as `archdsl table ARGV` chooses them."""
    return compile_columns(build_parser().parse_args(["table", *argv]))


@pytest.mark.parametrize("family,names", [("resnet", RESNETS), ("vgg", VGGS)])
@pytest.mark.parametrize("fmt,formatter", [("md", format_markdown), ("tex", format_latex)])
def test_golden_tables(family, names, fmt, formatter):
    check_golden(ROOT / "tests" / "golden" / f"table_{family}.{fmt}", formatter(graphs(names)))


def test_golden_columns_of_one_spec(in_root):
    """Two depths of one parameterised spec, in VGG's notation, sized to a column."""
    found, headers = columns(*CIFAR)
    assert headers == ["ResNet-20", "ResNet-56"]  # `as "ResNet-{depth}"`, filled in per column
    check_golden(ROOT / "tests" / "golden" / "table_cifar_columns.tex",
                 format_latex(found, headers, "vgg", "column"))


def test_resnet_table_reads_as_the_papers():
    """He et al. 2016, Table 1: blocks per stage 2/2/2/2, 3/4/6/3, 3/4/23/3, 3/8/36/3."""
    text = format_markdown(graphs(RESNETS))
    assert "[3×3, 64; 3×3, 64] ×2" in text and "[1×1, 256; 3×3, 256; 1×1, 1024] ×36" in text
    assert "[1×1, 256; 3×3, 256; 1×1, 1024] ×23" in text
    assert "| conv3_x | 28×28 |" in text and "3×3 max pool, /2" in text  # the paper's words
    assert "| stage | output size | 18-layer | 34-layer | 50-layer |" in text
    assert "batch norm" not in text and "ReLU" not in text  # left out, as papers do


def test_vgg_table_counts_the_stacked_convs():
    rows = table_rows(graphs(["vgg19"])[0])
    sizes = [size for size, _, _ in rows]
    assert sizes == [(224, 224), (112, 112), (56, 56), (28, 28), (14, 14), (7, 7)]
    convs = [[(e.lines, e.count) for e in entries if e.lines[0].startswith("3×3,")]
             for _, _, entries in rows[:5]]
    assert convs == [[(("3×3, 64",), 2)], [(("3×3, 128",), 2)], [(("3×3, 256",), 4)],
                     [(("3×3, 512",), 4)], [(("3×3, 512",), 4)]]


def test_a_repeat_is_never_read_as_channels():
    """`3×3, 64 ×2` reads as 128 channels: a repeated layer is bracketed, or (VGG's
    notation) written out on a line each."""
    text = format_markdown(graphs(["vgg13"]))
    assert "[3×3, 64] ×2" in text and not re.search(r"\d ×\d", text.replace("] ×", ""))
    vgg = format_markdown(graphs(["vgg13"]), notation="vgg")
    assert "conv3-64<br>conv3-64" in vgg and "maxpool<br>conv3-128<br>conv3-128" in vgg
    assert "FC-4096<br>FC-4096<br>FC-1000" in vgg
    assert "[conv1-64; conv3-64; conv1-256] ×3" in format_markdown(graphs(["resnet50"]),
                                                                   notation="vgg")


def test_lrn_is_kept():
    """VGG's A and A-LRN differ by one LRN layer, and so do their columns."""
    plain, lrn = (compile_source(LRN_SPEC, settings={"lrn": on}).graph for on in (False, True))
    text = format_markdown([plain, lrn], ["A", "A-LRN"], notation="vgg")
    assert "| 32×32 | conv3-8 | conv3-8<br>LRN |" in text
    assert "local response norm" in format_markdown([lrn])


def test_totals_rows_use_one_unit():
    text = format_markdown(graphs(RESNETS))
    assert "| parameters (×10^6) | | 11.7 | 21.8 | 25.6 | 44.5 | 60.2 |" in text
    macs = next(line for line in text.splitlines() if line.startswith("| MACs"))
    assert macs.startswith("| MACs (multiply-adds, ×10^9) | | 1.8 | 3.7 |") and "×10" not in \
        macs.split("| |")[1]
    assert r"MACs (multiply-adds, $\times 10^{9}$)" in format_latex(graphs(RESNETS))


def test_shared_rows_span_the_columns():
    tex = format_latex(graphs(RESNETS))
    assert r"conv1 & 112$\times$112 & \multicolumn{5}{c}{7$\times$7, 64} \\" in tex
    # ResNet's Table 1: the max pool spans, the blocks under it do not
    assert r"conv2\_x & 56$\times$56 & \multicolumn{5}{c}{3$\times$3 max pool, /2}" in tex
    assert r"\multicolumn{5}{c}{\begin{tabular}[c]{@{}c@{}}global avg pool \\ fc 1000" in tex
    assert r"\multicolumn" not in format_latex(graphs(["resnet18"])).split(r"\midrule")[1]


def test_columns_from_one_parameterised_spec(capsys, in_root):
    assert main(["table", *CIFAR]) == 0
    out = capsys.readouterr().out
    assert "| ResNet-20 | ResNet-56 |" in out
    assert "[3×3, 16; 3×3, 16] ×3 | 3×3, 16<br>[3×3, 16; 3×3, 16] ×9 |" in out
    assert main(["table", *CIFAR, "specs/cifar_resnet.arch:cifar_plain", "--headers",
                 "20-layer, 56-layer,plain 20"]) == 0
    assert "| stage | output size | 20-layer | 56-layer | plain 20 |" in capsys.readouterr().out
    assert main(["table", "specs/cifar_resnet.arch?depth=32"]) == 0  # both networks
    assert "| ResNet-32 | plain-32 |" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["specs/cifar_resnet.arch:nope"], "no network `nope` in specs/cifar_resnet.arch"),
    (["specs/cifar_resnet.arch:cifar_resnet?bogus=3"], "no network here has a parameter"),
    (["specs/cifar_resnet.arch:cifar_resnet?depth"], "write the settings as ?NAME=VALUE"),
    (["specs/cifar_resnet.arch?"], "write the settings as ?NAME=VALUE"),
    ([":cifar_resnet"], "no file"),
    (["specs/missing.arch"], "no such file"),
    (["specs/resnet18.arch", "--headers", "a,b"], "--headers names 2 columns, the table has 1"),
])
def test_bad_columns_are_usage_errors(argv, message, capsys, in_root):
    assert main(["table", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "internal error" not in err


def test_a_column_with_spec_errors_reports_them(capsys, in_root):
    assert main(["table", "specs/cifar_resnet.arch:cifar_resnet?depth=21", *CIFAR]) == 1
    err = capsys.readouterr().err
    assert "error[E0205]" in err and "checked with --set depth=21" in err


def test_table_command_writes_latex(tmp_path, capsys, in_root):
    out = tmp_path / "t.tex"
    assert main(["table", "specs/resnet18.arch", "specs/resnet34.arch", "--format", "latex",
                 "-o", str(out)]) == 0
    assert out.read_text().startswith("% needs")
    assert main(["table", "specs/resnet18.arch"]) == 0
    assert "| conv1 | 112×112 | 7×7, 64 |" in capsys.readouterr().out


CVPR = ("\\documentclass[twocolumn]{article}\n\\usepackage[paperwidth=8.5in,paperheight=11in,"
        "textwidth=6.875in,textheight=8.875in,columnsep=0.3125in]{geometry}\n"
        "\\usepackage{booktabs}\\usepackage{amsmath}\\usepackage{graphicx}\n")


def paper_tables() -> str:
    """ResNet's and VGG's tables in both notations, at text width (`table*`) and column
    width (`table`)."""
    resnets = graphs(RESNETS), ["18-layer", "34-layer", "50-layer", "101-layer", "152-layer"]
    vggs = graphs(VGGS), ["A", "B", "D", "E"]
    body = []
    for found, headers in (resnets, vggs):
        for env, width in (("table*", "text"), ("table", "column")):
            for notation in ("bracket", "vgg"):
                body += [rf"\begin{{{env}}}\centering",
                         format_latex(found, headers, notation, width), rf"\end{{{env}}}"]
    return "\n".join(body)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_tables_fit_a_cvpr_page(tmp_path):
    """Sized to the text or column width, no table overflows (an `Overfull \\hbox`)."""
    (tmp_path / "t.tex").write_text(CVPR + "\\begin{document}\n" + paper_tables()
                                    + "\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                          cwd=tmp_path, capture_output=True, timeout=120)
    log = (tmp_path / "t.log").read_text(errors="replace")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Overfull \\hbox" not in log, [line for line in log.splitlines() if "Overfull" in line]


# ---- GoogLeNet's Table 1: one network of branched modules -------------------------------

GOOGLENET_PAPER = {  # Szegedy et al. 2015, Table 1: #1×1, #3×3 reduce, #3×3, #5×5 reduce,
    # #5×5, pool proj; ops (M)
    "inception (3a)": ((64, 96, 128, 16, 32, 32), 128),
    "inception (3b)": ((128, 128, 192, 32, 96, 64), 304),
    "inception (4a)": ((192, 96, 208, 16, 48, 64), 73),
    "inception (4e)": ((256, 160, 320, 32, 128, 128), 170),
    "inception (5b)": ((384, 192, 384, 48, 128, 128), 71),
}


@pytest.mark.parametrize("fmt,formatter", [("md", format_markdown), ("tex", format_latex)])
def test_golden_googlenet_table(fmt, formatter):
    """One network with branched modules gets GoogLeNet's Table 1 by itself (`auto`)."""
    check_golden(ROOT / "tests" / "golden" / f"table_googlenet.{fmt}",
                 formatter(graphs(["googlenet"])))


def branch_channels_from_scopes(graph, module: str) -> list[list[tuple[int, int]]]:
    """(kernel, channels) of each conv of each `branch` scope of `module`, from the scope
    tree alone."""
    branches = [s.path for s in ir.children(graph, module) if s.kind == "branch"]
    return [[(n.args["kernel"], n.args["channels"]) for n in ir.nodes(graph)
             if n.op == "conv" and path in ir.scopes_of(graph, n.name)] for path in branches]


def test_branched_columns_are_the_spec_channels():
    """Each # cell is the channels of its branch's conv, read again from the scope tree:
    branch 1 a 1×1, branch 2 1×1 then 3×3, branch 3 1×1 then 5×5 (the paper's; torchvision
    has 3×3), branch 4 pool then 1×1."""
    graph = graphs(["googlenet"])[0]
    headers, rows = branched_rows(graph)
    assert headers == ["#1×1", "#3×3 reduce", "#3×3", "#5×5 reduce", "#5×5", "pool proj"]
    module_rows = [row for row in rows if row.kind.startswith("inception")]
    assert len(module_rows) == 9
    scopes = [path for path, _ in ir.instances(graph, "inception")]
    for row, scope in zip(module_rows, scopes, strict=True):
        b1, b2, b3, b4 = branch_channels_from_scopes(graph, scope)
        assert [k for k, _ in b1 + b2 + b3 + b4] == [1, 1, 3, 1, 5, 1]
        expected = [b1[0][1], b2[0][1], b2[1][1], b3[0][1], b3[1][1], b4[0][1]]
        assert [row.channels[h] for h in headers] == expected, scope


def test_branched_rows_agree_with_the_paper():
    """Channels as in the paper's Table 1; ops (MACs) within 1M of it (4a: 73.6M the paper
    rounds down to 73); parameters are ours (with biases, K = 1000), the paper's K is 1024."""
    text = format_markdown(graphs(["googlenet"]))
    for kind, (channels, ops) in GOOGLENET_PAPER.items():
        cells = next(line for line in text.splitlines() if f"| {kind} |" in line).split(" | ")
        assert tuple(map(int, cells[4:10])) == channels
        assert abs(int(cells[11].rstrip(" |")) - ops) <= 1, kind
    assert "| convolution | 7×7/2 | 112×112×64 | 1 |" in text
    assert "| convolution | 3×3/1 | 56×56×192 | 2 |  | 64 | 192 |" in text  # conv2 + conv3
    assert "| max pool | 3×3/2 | 28×28×192 |" in text and "LRN" not in text


def test_modules_that_do_not_fit_keep_brackets(in_root, capsys):
    """torchvision's GoogLeNet has 3×3 convs in two branches: no column for each, so it
    keeps ResNet's form by itself, and the branched form brackets each branch."""
    bn = compile_file(ROOT / "specs" / "googlenet_bn.arch").graph
    assert "| stage | output size |" in format_markdown([bn])
    text = format_markdown([bn], notation="branched")
    assert "| inception (3a) |  | 28×28×256 | 2 | [1×1, 64] ‖ [1×1, 96; 3×3, 128] ‖ " \
           "[1×1, 16; 3×3, 32] ‖ [3×3 max pool; 1×1, 32] |" in text
    assert r"\multicolumn" in format_latex([bn], notation="branched")
    assert "| stage |" in format_markdown(graphs(["googlenet", "resnet18"]))
    assert main(["table", "specs/googlenet.arch", "--notation", "bracket"]) == 0
    assert "[1×1, 64; 1×1, 96; 3×3, 128;" in capsys.readouterr().out
    assert main(["table", "specs/googlenet.arch", "specs/resnet18.arch",
                 "--notation", "branched"]) == 2
    assert "--notation branched tabulates one network" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_branched_latex_fits_a_cvpr_text_block(tmp_path):
    """At \\textwidth in `table*`: no `Overfull \\hbox`, and no taller than the text block."""
    table = format_latex(graphs(["googlenet"]), width="text")
    (tmp_path / "t.tex").write_text(
        CVPR + "\\begin{document}\n\\newsavebox\\tbox\\sbox\\tbox{" + table + "}\n"
        "\\typeout{TABLEHEIGHT=\\the\\dimexpr\\ht\\tbox+\\dp\\tbox\\relax}\n"
        "\\begin{table*}\\centering\\usebox\\tbox\\end{table*}\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                          cwd=tmp_path, capture_output=True, timeout=120)
    log = (tmp_path / "t.log").read_text(errors="replace")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Overfull \\hbox" not in log
    height = float(re.search(r"TABLEHEIGHT=([\d.]+)pt", log).group(1))
    assert height <= 8.875 * 72.27, height
