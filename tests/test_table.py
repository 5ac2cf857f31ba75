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

from archdsl import compile_file, compile_source
from archdsl.arguments import build_parser
from archdsl.backends.report_table import format_latex, format_markdown, table_rows
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
    assert headers == ["cifar_resnet (depth=20)", "cifar_resnet (depth=56)"]
    check_golden(ROOT / "tests" / "golden" / "table_cifar_columns.tex",
                 format_latex(found, headers, "vgg", "column"))


def test_resnet_table_reads_as_the_papers():
    """He et al. 2016, Table 1: blocks per stage 2/2/2/2, 3/4/6/3, 3/4/23/3, 3/8/36/3."""
    text = format_markdown(graphs(RESNETS))
    assert "[3×3, 64; 3×3, 64] ×2" in text and "[1×1, 256; 3×3, 256; 1×1, 1024] ×36" in text
    assert "[1×1, 256; 3×3, 256; 1×1, 1024] ×23" in text
    assert "| layer2 | 28×28 |" in text and "3×3 max pool, /2" in text
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
    assert r"maxpool, layer1 & 56$\times$56 & \multicolumn{5}{c}{3$\times$3 max pool, /2}" in tex
    assert r"\multicolumn{5}{c}{\begin{tabular}[c]{@{}c@{}}global avg pool \\ fc 1000" in tex
    assert r"\multicolumn" not in format_latex(graphs(["resnet18"])).split(r"\midrule")[1]


def test_columns_from_one_parameterised_spec(capsys, in_root):
    assert main(["table", *CIFAR]) == 0
    out = capsys.readouterr().out
    assert "| cifar_resnet (depth=20) | cifar_resnet (depth=56) |" in out
    assert "[3×3, 16; 3×3, 16] ×3 | 3×3, 16<br>[3×3, 16; 3×3, 16] ×9 |" in out
    assert main(["table", *CIFAR, "specs/cifar_resnet.arch:cifar_plain", "--headers",
                 "ResNet-20, ResNet-56,plain-20"]) == 0
    assert "| stage | output size | ResNet-20 | ResNet-56 | plain-20 |" in capsys.readouterr().out
    assert main(["table", "specs/cifar_resnet.arch?depth=32"]) == 0  # both networks
    assert "| cifar_resnet (depth=32) | cifar_plain (depth=32) |" in capsys.readouterr().out


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
