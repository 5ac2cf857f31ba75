"""Figures as an author submits them: PDF and PNG as tight as the SVG, a height that fits
the page at a paper's column, the printed point size reported (and too small a one
warned of) for one network, several side by side, a diff and the Python API, and no
Type 3 font in any PDF archdsl writes (diagrams, TikZ through pdflatex, cost plots)."""
from __future__ import annotations

import re
import shutil
import subprocess
import warnings

import pytest

import archdsl
from archdsl.backends.layout import layout, printed_size
from archdsl.backends.render_dot import render_dot
from archdsl.cli import main

from conftest import ROOT

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot not installed")
needs_pdffonts = pytest.mark.skipif(shutil.which("pdffonts") is None,
                                    reason="pdffonts (poppler-utils) not installed")
FIGURE3 = ["specs/vgg19.arch", "specs/plain34.arch", "specs/resnet34.arch"]


def graph_of(spec: str):
    return archdsl.compile_file(ROOT / "specs" / f"{spec}.arch").graph


def media_box(pdf: bytes) -> tuple[float, float]:
    """(width, height) in points of a PDF's first page."""
    x0, y0, x1, y1 = map(float, re.search(rb"/MediaBox \[ *([\d. ]+?) *\]", pdf).group(1).split())
    return x1 - x0, y1 - y0


@needs_dot
@pytest.mark.parametrize("spec,options", [("resnet50", {}), ("googlenet", {"column": "single"}),
                                          ("vgg16", {"direction": "LR"})])
def test_pdf_and_png_are_as_tight_as_the_svg(spec, options):
    """No 0.5 in of blank page round a PDF: its page is the SVG's size, to the point."""
    source = render_dot(graph_of(spec), **options)
    width, height = (v * 72 for v in printed_size(layout(source, "svg")))
    pdf_width, pdf_height = media_box(layout(source, "pdf"))
    assert abs(pdf_width - width) <= 1 and abs(pdf_height - height) <= 1
    png = layout(source, "png", dpi=144)
    pixels = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert abs(pixels[0] - width * 2) <= 3 and abs(pixels[1] - height * 2) <= 3


@needs_dot
def test_the_cropped_pdf_is_read_whole_by_a_pdf_reader(tmp_path):
    if shutil.which("pdfinfo") is None:
        pytest.skip("pdfinfo (poppler-utils) not installed")
    (tmp_path / "r.pdf").write_bytes(layout(render_dot(graph_of("resnet50")), "pdf"))
    done = subprocess.run(["pdfinfo", "r.pdf"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert "Page size:       125 x 494 pts" in done.stdout


@needs_dot
@pytest.mark.parametrize("column,width", [("single", 3.28), ("double", 6.875)])
def test_a_column_figure_fits_the_text_block_and_max_height_bounds_it(column, width, tmp_path,
                                                                     capsys, in_root):
    out = tmp_path / "v.svg"
    assert main(["render", "specs/resnet152.arch", "--column", column, "-o", str(out)]) == 0
    drawn = printed_size(out.read_bytes())
    assert drawn[0] <= width + 1 / 72 and drawn[1] <= 8.0 + 1 / 72
    assert main(["render", "specs/resnet152.arch", "--column", column, "--max-height", "3",
                 "-o", str(out)]) == 0
    assert printed_size(out.read_bytes())[1] <= 3.0 + 1 / 72
    err = capsys.readouterr().err
    assert re.search(r"note: resnet152: [\d.]+ x [\d.]+ in, smallest text [\d.]+ pt", err)


@pytest.mark.parametrize("argv,message", [
    (["--max-height", "0", "--column", "single"], "--max-height must be a positive number"),
    (["--max-height", "5"], "--max-height bounds a figure made for a paper's column"),
])
def test_max_height_that_cannot_work_says_why(argv, message, tmp_path, capsys, in_root):
    assert main(["render", "specs/vgg16.arch", "-o", str(tmp_path / "v.svg"), *argv]) == 2
    assert message in capsys.readouterr().err


@needs_dot
def test_vgg16_in_one_column_is_snaked_to_fit_the_page_legibly(tmp_path, capsys, in_root):
    out = tmp_path / "v.svg"
    # with its flatten and its no-op adaptive pool drawn (--show impl) it is too long
    # for one column; without them (the default) it fits unsnaked at 6.4 pt
    assert main(["render", "specs/vgg16.arch", "--column", "single", "--show", "impl",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "snaked into" in err and "warning" not in err
    width, height = printed_size(out.read_bytes())
    assert width <= 3.28 + 1 / 72 and height <= 8.0 + 1 / 72


@needs_dot
def test_side_by_side_figures_report_and_warn_their_point_size(tmp_path, capsys, in_root):
    """ResNet's Figure 3 with every layer, in the text width: too small, and said so."""
    out = tmp_path / "f.svg"
    assert main(["render", *FIGURE3, "--expand", "all", "--column", "double",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    found = re.search(r"warning: at --column double, vgg19, plain34, resnet34's smallest text "
                      r"prints at ([\d.]+) pt, below 6 pt", err)
    assert found and float(found.group(1)) < 6
    assert "note: vgg19, plain34, resnet34: " in err


@needs_dot
def test_the_python_api_warns_at_the_callers_line_and_gives_the_point_size():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure = archdsl.diagram(ROOT / "specs" / "googlenet.arch", column="single")
    assert [w.filename for w in caught] == [__file__]
    assert "below 6 pt" in str(caught[0].message) and figure.points < 6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        several = archdsl.diagram([ROOT / "specs" / f"{s}.arch" for s in ("vgg19", "resnet34")],
                                  expand="all", column="double")
    assert caught and several.points < 6 and "below 6 pt" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        legible = archdsl.diagram(ROOT / "specs" / "resnet50.arch", column="single",
                                  max_height=6)
    assert legible.points >= 6 and 'size="3.28,6"' in legible.dot
    assert archdsl.diagram(ROOT / "specs" / "resnet50.arch").points is None


@needs_dot
def test_a_diff_figure_reports_its_point_size(tmp_path, capsys, in_root):
    assert main(["render", "--diff", "specs/resnet18.arch", "specs/resnet34.arch", "--column",
                 "double", "-o", str(tmp_path / "d.svg")]) == 0
    assert "note: resnet18 and resnet34: " in capsys.readouterr().err


def fonts(pdf) -> str:
    done = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True)
    return done.stdout


@needs_dot
@needs_pdffonts
def test_a_diagram_pdf_embeds_vector_fonts(tmp_path, in_root):
    assert main(["render", "specs/resnet50.arch", "-o", str(tmp_path / "r.pdf")]) == 0
    listed = fonts(tmp_path / "r.pdf")
    assert "Type 3" not in listed and ("TrueType" in listed or "Type 1" in listed)


@needs_dot
@needs_pdffonts
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_a_tikz_figure_compiles_with_vector_fonts(tmp_path, in_root):
    assert main(["render", "specs/resnet18.arch", "-o", str(tmp_path / "r.tex")]) == 0
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "r.tex"],
                   cwd=tmp_path, capture_output=True, timeout=120, check=True)
    listed = fonts(tmp_path / "r.pdf")
    assert "Type 3" not in listed and "Type 1" in listed


@needs_pdffonts
def test_a_cost_plot_pdf_embeds_vector_fonts(tmp_path):
    pytest.importorskip("matplotlib")
    from archdsl.backends.plot_costs import plot_costs
    from archdsl.backends.report_stats import report_stats
    (tmp_path / "p.pdf").write_bytes(plot_costs([report_stats(graph_of("alexnet"))], "pdf"))
    listed = fonts(tmp_path / "p.pdf")
    assert "Type 3" not in listed and "TrueType" in listed


@pytest.mark.parametrize("column,width", [("single", 3.28), ("double", 6.875)])
def test_a_cost_plot_is_as_wide_as_the_column_asked_for(column, width):
    pytest.importorskip("matplotlib")
    from archdsl.backends.plot_costs import plot_costs
    from archdsl.backends.report_stats import report_stats
    reports = [report_stats(graph_of(s)) for s in ("alexnet", "vgg16")]
    pdf_width, pdf_height = media_box(plot_costs(reports, "pdf", column=column))
    assert abs(pdf_width - width * 72) < 1 and pdf_height <= 8 * 72
    assert media_box(plot_costs(reports, "pdf"))[0] > 7 * 72  # unsized: as wide as it needs


def test_stats_plot_column_sizes_the_plot_it_writes(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "costs.pdf"
    assert main(["stats", str(ROOT / "specs" / "alexnet.arch"), str(ROOT / "specs" / "vgg16.arch"),
                 "--plot", str(out), "--column", "single"]) == 0
    assert abs(media_box(out.read_bytes())[0] - 3.28 * 72) < 1
