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


DOT_TIMEOUT = 30.0  # seconds; dot takes 0.2 s for ResNet-152 with every layer drawn


MIN_TEXT_POINTS = 6.0  # the smallest text a printed figure may have


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
    return done.stdout
