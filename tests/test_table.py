"""`archdsl table`: the architecture tables of papers, from the shipped specs. ResNet's
Table 1 (the five ResNets) and VGG's Table 1 (VGG-11 to VGG-19) as golden files, in
Markdown and LaTeX; the LaTeX compiles where pdflatex is installed."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from archdsl import compile_file
from archdsl.backends.report_table import format_latex, format_markdown, table_rows
from archdsl.cli import main

from conftest import ROOT, check_golden

RESNETS = [f"resnet{d}" for d in (18, 34, 50, 101, 152)]
VGGS = [f"vgg{d}" for d in (11, 13, 16, 19)]


def graphs(names):
    return [compile_file(ROOT / "specs" / f"{n}.arch").graph for n in names]


@pytest.mark.parametrize("family,names", [("resnet", RESNETS), ("vgg", VGGS)])
@pytest.mark.parametrize("fmt,formatter", [("md", format_markdown), ("tex", format_latex)])
def test_golden_tables(family, names, fmt, formatter):
    check_golden(ROOT / "tests" / "golden" / f"table_{family}.{fmt}", formatter(graphs(names)))


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


def test_table_command_writes_latex(tmp_path, capsys, in_root):
    out = tmp_path / "t.tex"
    assert main(["table", "specs/resnet18.arch", "specs/resnet34.arch", "--format", "latex",
                 "-o", str(out)]) == 0
    assert out.read_text().startswith("% needs")
    assert main(["table", "specs/resnet18.arch"]) == 0
    assert "| conv1 | 112×112 | 7×7, 64 |" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_tables_compile(tmp_path):
    body = format_latex(graphs(RESNETS)) + "\n\n" + format_latex(graphs(VGGS))
    (tmp_path / "t.tex").write_text(
        "\\documentclass{article}\\usepackage{booktabs}\\usepackage{amsmath}"
        "\\usepackage[landscape,margin=1cm]{geometry}\\begin{document}\\tiny\n" + body
        + "\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "t.tex"], cwd=tmp_path,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
