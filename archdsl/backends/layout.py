"""Laying out DOT text with Graphviz's `dot` (or the packaged port of it), and what a
diagram file can be: the one place archdsl runs a layout program. A backend that makes
DOT text stays pure; the layout is asked for by the command line and `archdsl.diagram`."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path


INSTALL_HELP = """Graphviz's `dot` program is needed to lay out diagrams and was not found on PATH.
Install it, then run the command again:
  Debian/Ubuntu:  sudo apt-get install graphviz
  Fedora/RHEL:    sudo dnf install graphviz
  macOS:          brew install graphviz
  Windows:        winget install graphviz   (or choco install graphviz)
  conda:          conda install -c conda-forge graphviz
or, for SVG and PNG without system packages: pip install graphviz-pure"""
PACKAGED = "graphviz-pure"  # a port of dot's layout, installed as a program by pip
PACKAGED_FORMATS = ("svg", "png", "tikz")
FORMATS = ("svg", "pdf", "png", "tikz", "dot")  # what a diagram can be written as
SUFFIXES = {"tikz": "tex"}  # file extensions that are not the format's name
# formats made here from dot's layout (as JSON), not written by dot itself
FROM_LAYOUT = ("tikz",)  # render_tikz, from dot's JSON


# points of blank page that dot's cairo PDF writer leaves on each side of the drawing
# (Graphviz's default print margin for PDF and PostScript, 0.5 in); SVG and PNG have none
PDF_MARGIN = 36

DOT_TIMEOUT = 30.0  # seconds; dot takes 0.2 s for ResNet-152 with every layer drawn


MIN_TEXT_POINTS = 6.0  # the smallest text a printed figure may have

# The text block of a two-column paper, in inches: CVPR's \columnwidth (3.28) and
# \textwidth (6.875), the narrowest of the IEEE (3.5, 7.16), ACM (3.33, 7.0) and CVPR
# templates, so a figure made for one fits all three. The block is 8.875 in tall (CVPR;
# IEEE's 9.7); a figure at most 8 in tall leaves 0.875 in (63 pt) for the caption and
# the float's spacing, so figure and caption fit the page.
COLUMN_INCHES = {"single": 3.28, "double": 6.875}
MAX_HEIGHT_INCHES = 8.0


def page_size(column: str, max_height: float | None = None) -> str:
    """Graphviz's `size` ("WIDTH,HEIGHT", inches; dot only scales down to it) for a
    figure in a paper's `column` ("single" or "double"), `max_height` inches tall at most.

    >>> page_size("single"), page_size("double", 4.5)
    ('3.28,8', '6.875,4.5')
    """
    return f"{COLUMN_INCHES[column]:g},{max_height or MAX_HEIGHT_INCHES:g}"


def printed_size(svg: bytes) -> tuple[float, float]:
    """(width, height) in inches of a laid-out SVG, as it prints at its natural size.

    >>> printed_size(b'<svg width="144pt" height="36pt"')
    (2.0, 0.5)
    """
    import re
    found = re.search(rb'<svg width="([\d.]+)pt"\s+height="([\d.]+)pt"', svg)
    return (float(found.group(1)) / 72, float(found.group(2)) / 72) if found else (0.0, 0.0)


def text_points(dot_source: str, svg: bytes) -> float:
    """The smallest text of a laid-out diagram, in points at its printed size: the
    smallest font size in the DOT source times the scale dot applied to fit `size`.

    >>> text_points("digraph { node [fontsize=10] a }",
    ...             b'<g id="graph0" class="graph" transform="scale(0.5 0.5) rotate(0)">')
    5.0
    """
    import re
    sizes = [float(v) for v in re.findall(r'fontsize="?([\d.]+)', dot_source)] or [14.0]
    found = re.search(rb'id="graph0"[^>]*transform="scale\(([\d.]+)', svg)
    return min(sizes) * (float(found.group(1)) if found else 1.0)


class LayoutError(RuntimeError):
    """Graphviz's dot is missing, failed, or ran past its time."""


def layout_program(fmt: str) -> str:
    """The program that lays out `fmt`: system `dot`, else the packaged port for the
    formats it writes (unless ARCHDSL_PACKAGED_DOT=0). Raises LayoutError saying what to
    install."""
    system = shutil.which("dot")
    if system is not None:
        return system
    packaged = _packaged_dot()
    if packaged is None:
        raise LayoutError(INSTALL_HELP)
    if fmt not in PACKAGED_FORMATS + ("json",):
        raise LayoutError(f"{fmt.upper()} needs Graphviz's dot; the packaged layout "
                          f"({PACKAGED}) writes {', '.join(f.upper() for f in PACKAGED_FORMATS)}"
                          ": choose --format svg, png or tikz, or install Graphviz\n"
                          + INSTALL_HELP)
    return packaged


def format_of(path) -> str | None:
    """The diagram format a file name asks for (`.tex` is TikZ), or None.

    >>> format_of("figure.tex"), format_of("a.SVG"), format_of("notes.txt")
    ('tikz', 'svg', None)
    """
    suffix = Path(path).suffix.lstrip(".").lower()
    named = {SUFFIXES.get(f, f): f for f in FORMATS}
    return named.get(suffix)


def suffix_of(fmt: str) -> str:
    """The file extension for a diagram format: `tikz` is `tex`."""
    return SUFFIXES.get(fmt, fmt)


def can_layout(fmt: str) -> bool:
    """Whether `layout` can make `fmt` on this machine."""
    try:
        return fmt == "dot" or bool(layout_program(fmt))
    except LayoutError:
        return False


def _packaged_dot() -> str | None:
    if os.environ.get("ARCHDSL_PACKAGED_DOT", "1") == "0":
        return None
    # on PATH, or beside this Python (a virtual environment that is not activated)
    search = os.pathsep.join(filter(None, (os.environ.get("PATH"),
                                           str(Path(sys.executable).parent))))
    return shutil.which(PACKAGED, path=search)


def layout(dot_source: str, fmt: str, timeout: float = DOT_TIMEOUT,
           dpi: int | None = None) -> bytes:
    """Run `dot` on DOT text, for at most `timeout` seconds. Raises LayoutError, with
    install help if dot is missing.

    >>> layout("digraph { a -> b }", "dot")
    b'digraph { a -> b }'
    """
    if fmt == "dot":
        return dot_source.encode()
    if fmt in FROM_LAYOUT:
        from .render_tikz import render_tikz
        return render_tikz(json.loads(layout(dot_source, "json", timeout))).encode()
    import subprocess  # here, not at the top: `archdsl check` reads this module's options
    program = layout_program(fmt)
    try:
        resolution = [f"-Gdpi={dpi}"] if dpi and fmt == "png" else []
        done = subprocess.run([program, f"-T{fmt}", *resolution], input=dot_source.encode(),
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise LayoutError(f"Graphviz's dot did not finish within {timeout:g} s; draw fewer "
                          "boxes (--depth 1, no --expand all) or allow more time with "
                          "--dot-timeout SECONDS") from None
    except OSError as error:
        raise LayoutError(f"Graphviz's dot could not run: {error}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise LayoutError(f"Graphviz's dot failed (exit {done.returncode}): "
                          + (message[-1] if message else "no message"))
    return tight_pdf(done.stdout) if fmt == "pdf" else done.stdout


def tight_pdf(pdf: bytes) -> bytes:
    """A PDF from `dot -Tpdf` cropped to its drawing, as tight as the SVG: its MediaBox
    less the PDF_MARGIN on each side. (A graph `margin` of 0 would drop the margin, but
    dot gives that to every cluster too, and the layout moves.) The box keeps its byte
    length, so the cross-reference offsets stay right.

    >>> tight_pdf(b"<< /MediaBox [ 0 0 197 620 ] >>")
    b'<< /MediaBox [36 36 161 584] >>'
    """
    import re
    found = re.search(rb"/MediaBox \[ *([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+) *\]", pdf)
    if found is None:
        return pdf
    x0, y0, x1, y1 = (float(v) for v in found.groups())
    if min(x1 - x0, y1 - y0) <= 2 * PDF_MARGIN:
        return pdf
    box = [x0 + PDF_MARGIN, y0 + PDF_MARGIN, x1 - PDF_MARGIN, y1 - PDF_MARGIN]
    cropped = ("/MediaBox [" + " ".join(f"{v:g}" for v in box) + "]").encode()
    old = found.group(0)
    if len(cropped) > len(old):
        return pdf
    cropped = cropped[:-1] + b" " * (len(old) - len(cropped)) + b"]"
    return pdf[:found.start()] + cropped + pdf[found.end():]
