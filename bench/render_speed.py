"""Diagram speed for resnet152: DOT generation alone, and DOT plus Graphviz layout to SVG,
collapsed (default view) and fully expanded (--expand all).

    python bench/render_speed.py [--runs 3]
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl import compile_file  # noqa: E402
from archdsl.backends.render_dot import layout, render_dot  # noqa: E402


def median_time(function, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    graph = compile_file(ROOT / "specs" / "resnet152.arch").graph
    for label, expand in (("collapsed", ()), ("fully expanded", ("all",))):
        dot = render_dot(graph, expand=expand)
        boxes = len(re.findall(r'^\s+("[^"]+"|\w+) \[label=', dot, re.M))
        generate = median_time(lambda: render_dot(graph, expand=expand), args.runs)
        line = f"resnet152 {label:>14}: {boxes:4d} boxes, DOT {generate * 1000:7.1f} ms"
        if shutil.which("dot"):
            svg = median_time(lambda: layout(render_dot(graph, expand=expand), "svg"), args.runs)
            line += f", DOT + layout to SVG {svg * 1000:8.1f} ms"
        else:
            line += " (no `dot` installed: layout not timed)"
        print(line)


if __name__ == "__main__":
    main()
