"""Diagram speed for every shipped spec: DOT generation alone, and DOT plus layout to SVG
(Graphviz's dot, else the packaged port), collapsed (the default view) and fully expanded
(--expand all). Prints one line per spec and the slowest of each.

    python bench/render_speed.py [--runs 3] [--specs resnet152 googlenet]
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl import ir  # noqa: E402
from archdsl import compile_file  # noqa: E402
from archdsl.backends.layout import can_layout, layout, layout_program  # noqa: E402
from archdsl.backends.render_dot import render_dot  # noqa: E402


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
    parser.add_argument("--specs", nargs="*", help="spec names (default: every shipped spec)")
    args = parser.parse_args()
    paths = [ROOT / "specs" / f"{name}.arch" for name in args.specs] if args.specs else \
        sorted((ROOT / "specs").glob("*.arch"))
    laid = can_layout("svg")
    print(f"layout by {layout_program('svg') if laid else 'nothing (DOT only)'}")
    slowest = {}
    for path in paths:
        for graph in compile_file(path).graphs.values():
            cells = []
            for view, expand in (("collapsed", ()), ("expanded", ("all",))):
                dot = render_dot(graph, expand=expand)
                boxes = len(re.findall(r'^\s+("[^"]+"|\w+) \[label=', dot, re.M))
                draw = (lambda e=expand, g=graph: layout(render_dot(g, expand=e), "svg")) \
                    if laid else (lambda e=expand, g=graph: render_dot(g, expand=e))
                seconds = median_time(draw, args.runs)
                cells.append(f"{view} {boxes:4d} boxes {seconds * 1000:7.1f} ms")
                name = ir.network(graph).name
                if seconds > slowest.get(view, ("", 0))[1]:
                    slowest[view] = (name, seconds)
            print(f"{ir.network(graph).name:>20}: " + " | ".join(cells), flush=True)
    for view, (name, seconds) in slowest.items():
        print(f"slowest {view}: {name} {seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
