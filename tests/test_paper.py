"""Figures and tables an author submits unedited: the README's figures and tables, made by
`archdsl render`, `stats --plot` and `table` for CVPR's two-column geometry (column
3.28 in, text block 6.875 x 8.875 in), included in tests/paper/paper.tex as they come
(figures at their natural size, as the README says, each in `figure` or `figure*`; tables
in `table*`) and compiled by pdflatex. From the log and the PDF: no overfull box, no float
taller than the text block, no Type 3 font, and every text item at 6 pt or more at print
size, or the tool's warning given for that figure.

The figures and tables are made in process (`archdsl.cli.main`), in one temporary folder,
once for the module; pdflatex runs once (the paper has no cross-references). Skips where
dot, matplotlib, pdflatex, the LaTeX packages, pdffonts or pdftotext are missing."""
from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from archdsl.cli import main

from conftest import ROOT

TEMPLATE = ROOT / "tests" / "paper" / "paper.tex"
MIN_POINTS = 6.0
SPECS = ROOT / "specs"


def spec(name: str, settings: str = "") -> str:
    return str(SPECS / f"{name}.arch") + settings


# The README's figures, each with the command that makes it (`make diagrams` draws them
# for the web; here at a paper's column). GoogLeNet at --depth 1, as the README says it
# needs in two columns.
FIGURES = {
    "vgg16": ["render", spec("vgg16"), "--column", "single"],
    "resnet50": ["render", spec("resnet50"), "--column", "single"],
    "vit_b_16": ["render", spec("vit_b_16"), "--column", "single"],
    "googlenet": ["render", spec("googlenet"), "--column", "double", "--depth", "1"],
    "unet": ["render", spec("unet"), "--column", "double"],
    "figure3": ["render", spec("vgg19"), spec("plain34"), spec("resnet34"), "--expand", "all",
                "--show", "stacks", "--no-shapes", "--merges", "plain", "--no-frames",
                "--caption", "vgg19=VGG-19", "--caption", "resnet34=34-layer residual",
                "--column", "double"],
    "costs": ["stats", spec("alexnet"), spec("vgg16"), "--column", "double"],
}
PLOTS = {"costs"}  # `stats --plot OUT`: matplotlib's, no point-size note

TABLES = {
    "resnet_table": ["table", spec("resnet18"), spec("resnet34"),
                     spec("resnet50", "?stride_on=1x1"), spec("resnet101", "?stride_on=1x1"),
                     spec("resnet152", "?stride_on=1x1"),  # headers: the specs' captions
                     "--format", "latex", "--width", "text"],
    "vgg_table": ["table", spec("vgg11"), spec("vgg11", "?lrn=true"), spec("vgg13"),
                  spec("vgg16", "?conv1x1=true"), spec("vgg16"), spec("vgg19"),
                  "--headers", "A,A-LRN,B,C,D,E", "--notation", "vgg",
                  "--format", "latex", "--width", "text"],
    # GoogLeNet's Table 1: a row per layer or inception module, its branches in columns
    # (`--notation auto`, the default, picks `branched` for one branched network)
    "googlenet_table": ["table", spec("googlenet"), "--format", "latex", "--width", "text"],
}


def _missing_tools() -> str | None:
    """What this machine lacks to make and check the paper (None: nothing)."""
    for tool in ("dot", "pdflatex", "kpsewhich", "pdffonts", "pdftotext"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    for package in ("geometry.sty", "graphicx.sty", "booktabs.sty", "amsmath.sty"):
        found = subprocess.run(["kpsewhich", package], capture_output=True, text=True)
        if not found.stdout.strip():
            return f"LaTeX package {package} not installed"
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        return "matplotlib not installed"
    return None


@dataclass(frozen=True)
class Word:
    """A word of a PDF as pdftotext -bbox-layout gives it, in points from the page's top
    left corner."""
    page: int
    text: str
    x: float
    y: float
    height: float


@dataclass(frozen=True)
class Paper:
    folder: Path
    notes: dict  # each figure's name: what its command printed on standard error
    log: str  # pdflatex's log
    source: str  # paper.tex

    def words(self, pdf: str = "paper.pdf") -> list[Word]:
        return pdf_words(self.folder / pdf)


def archdsl(argv: list[str], folder: Path) -> str:
    """Run `archdsl ARGV` in process; what it printed on standard error."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    assert code == 0, f"archdsl {' '.join(argv)} exited {code}:\n{err.getvalue()}"
    return err.getvalue()


@pytest.fixture(scope="module")
def paper(tmp_path_factory) -> Paper:
    missing = _missing_tools()
    if missing:
        pytest.skip(missing)
    folder = tmp_path_factory.mktemp("paper")
    notes = {}
    for name, argv in FIGURES.items():
        out = ["--plot" if name in PLOTS else "-o", str(folder / f"{name}.pdf")]
        notes[name] = archdsl(argv + out, folder)
    for name, argv in TABLES.items():
        archdsl(argv + ["-o", str(folder / f"{name}.tex")], folder)
    shutil.copy(TEMPLATE, folder / "paper.tex")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error",
                           "paper.tex"], cwd=folder, capture_output=True, text=True,
                          timeout=300)
    log = (folder / "paper.log").read_text(errors="replace")
    assert done.returncode == 0, f"pdflatex failed:\n{log[-3000:]}"
    return Paper(folder, notes, log, TEMPLATE.read_text())


def pdf_words(pdf: Path) -> list[Word]:
    """Every word of a PDF, with its box (pdftotext -bbox-layout)."""
    html = subprocess.run(["pdftotext", "-bbox-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    words = []
    for page, text in enumerate(html.split("<page ")[1:], 1):
        for m in re.finditer(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="[\d.]+" '
                             r'yMax="([\d.]+)">([^<]*)</word>', text):
            words.append(Word(page, m[4], float(m[1]), float(m[2]), float(m[3]) - float(m[2])))
    return words


def placed(figure: list[Word], words: list[Word]) -> list[tuple[Word, Word]]:
    """Where the figure's words are in the paper, as (figure word, paper word) pairs: the
    largest set found at one page and one shift, each word at the same height (so the
    figure is printed at its own size, not scaled)."""
    by_text: dict[tuple[int, str], list[Word]] = {}
    for word in words:
        by_text.setdefault((word.page, word.text), []).append(word)
    best: list[tuple[Word, Word]] = []
    for anchor, page in ((a, page) for a in figure[:3] for page in {w.page for w in words}):
        for start in by_text.get((page, anchor.text), []):
            dx, dy = start.x - anchor.x, start.y - anchor.y
            pairs = [(w, p) for w in figure for p in by_text.get((page, w.text), [])
                     if abs(p.x - w.x - dx) < 0.5 and abs(p.y - w.y - dy) < 0.5
                     and abs(p.height - w.height) < 0.05]
            best = max(best, pairs, key=len)
    return best


# A word's font size is its box height over the font's ascent plus descent (per em), which
# pdftotext adds up. Figures' sans fonts have at most 1.2 (DejaVu Sans, which dot and
# matplotlib use here, 1.164; Liberation Sans 1.117): dividing by 1.2 never overstates a
# figure's text. LaTeX's Computer Modern is measured on the paper's 10 pt body text.
SANS_EM = 1.2


def figure_points(words) -> float:
    return min(w.height for w in words) / SANS_EM


def told_points(note: str) -> float | None:
    """The smallest text's printed size that the tool's note gives (None: no such note)."""
    found = re.search(r"smallest text ([\d.]+) pt", note)
    return float(found[1]) if found else None


def warned(note: str) -> bool:
    return re.search(rf"^warning: .*below {MIN_POINTS:g} pt", note, re.M) is not None


def floats(source: str) -> dict[str, range]:
    """Each float of paper.tex, by the file it includes, with its lines."""
    lines = source.splitlines()
    found, start = {}, None
    for number, line in enumerate(lines, 1):
        if re.match(r"\\begin\{(figure|table)\*?\}", line.strip()):
            start = number
        included = re.search(r"\\(?:includegraphics|input)\{(\w+)\.(?:pdf|tex)\}", line)
        if included and start is not None:
            name = included[1]
        if re.match(r"\\end\{(figure|table)\*?\}", line.strip()) and start is not None:
            found[name] = range(start, number + 1)
            start = None
    return found


def test_the_paper_includes_every_figure_and_table(paper):
    assert set(floats(paper.source)) == set(FIGURES) | set(TABLES)


def test_no_overfull_box(paper):
    """Nothing sticks out of its column or its page: no figure wider than its column, no
    table wider than the text."""
    overfull = re.findall(r"^Overfull \\[hv]box.*$", paper.log, re.M)
    assert not overfull, "\n".join(overfull)


@pytest.mark.parametrize("name", [*FIGURES, *TABLES])
def test_no_float_taller_than_the_text_block(paper, name):
    """LaTeX warns "Float too large for page by N pt on input line L" at the float's end."""
    lines = floats(paper.source)[name]
    too_large = [m[0] for m in re.finditer(r"Float too large for page by ([\d.]+)pt on input "
                                           r"line (\d+)", paper.log) if int(m[2]) in lines]
    assert not too_large, too_large


def test_no_type3_font(paper):
    """Publishers' checks (IEEE PDF eXpress) refuse Type 3 (bitmap) fonts."""
    fonts = subprocess.run(["pdffonts", str(paper.folder / "paper.pdf")], capture_output=True,
                           text=True, check=True).stdout
    assert "Type 3" not in fonts, fonts


@pytest.mark.parametrize("name", sorted(set(FIGURES) - PLOTS))
def test_the_tool_reports_6pt_or_warns(paper, name):
    """`render --column` notes the smallest text's printed size, and warns below 6 pt."""
    note = paper.notes[name]
    points = told_points(note)
    assert points is not None, note
    assert points >= MIN_POINTS or warned(note), note


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_text_prints_at_6pt_or_was_warned(paper, name):
    """In the compiled paper, the figure's words are where the figure was placed, each as
    tall as in the figure's own PDF: it is printed at the size archdsl made it for. Their
    smallest size (box height / 1.2, see SANS_EM) is 6 pt or more, unless the tool warned;
    where the tool gave a size, the PDF agrees with it (within the fonts' spread of
    ascent + descent, 1.117 to 1.2 em)."""
    figure = pdf_words(paper.folder / f"{name}.pdf")
    pairs = placed(figure, paper.words())
    assert len(pairs) >= 0.9 * len(figure), (
        f"{name}: {len(pairs)} of its {len(figure)} words found in the paper at their own size")
    points = figure_points(p for _, p in pairs)
    note = paper.notes[name]
    assert points >= MIN_POINTS or warned(note), f"{name}: text at {points:.1f} pt\n{note}"
    told = told_points(note)
    if told is not None:
        assert told * 1.117 / SANS_EM - 0.1 <= points <= told + 0.1, (points, note)


def test_text_outside_the_figures_prints_at_6pt(paper):
    """Captions, body and tables (shrunk to \\textwidth by --width text): Computer Modern,
    whose size is a word's height over the body text's height per point (10 pt)."""
    words = paper.words()
    in_figures = {p for name in FIGURES
                  for _, p in placed(pdf_words(paper.folder / f"{name}.pdf"), words)}
    latex = [w for w in words if w not in in_figures]
    heights = [round(w.height, 2) for w in latex]
    per_point = max(set(heights), key=heights.count) / 10  # the body text's, the commonest
    small = sorted({(round(w.height / per_point, 1), w.page, w.text) for w in latex
                    if w.height / per_point < MIN_POINTS})
    assert not small, small[:20]
