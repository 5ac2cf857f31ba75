"""Front-end speed: `archdsl check` and `archdsl stats` on resnet152 as whole processes
(neither imports torch), `archdsl check` of every shipped spec as a whole process, and
check time for generated specs of 1,000 / 10,000 / 100,000 layers (parse + elaborate +
shapes + costs).

    python bench/check_speed.py [--runs 5] [--skip-specs] [--against REV]

With --against REV, `archdsl check specs/resnet152.arch` of this tree and of the commit
REV (checked out in a temporary git worktree) are timed alternately, both with their
bytecode compiled first (as an installed package has it), and the ratio is printed.

Targets: every shipped spec under 0.5 s wall; 100,000 layers under 10 s; linear growth.
"""
from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl import Limits, compile_source  # noqa: E402


def generated_spec(layers: int) -> str:
    """A VGG-like chain of `layers` explicit statements, spread over blocks of 100."""
    per_block = 100
    block_lines = []
    for i in range(per_block // 2):
        block_lines.append(f"    c{i}: conv(16, 3, pad = 1)")
        block_lines.append(f"    r{i}: relu")
    calls = [f"    s{i}: stack" for i in range(layers // per_block)]
    return ("block stack {\n" + "\n".join(block_lines) + "\n}\n"
            "network generated {\n    input image: 16 x 8 x 8\n" + "\n".join(calls) + "\n}\n")


def time_process(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def time_compile(text: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = compile_source(text, limits=Limits(max_nodes=10_000_000))
        times.append(time.perf_counter() - start)
        assert result.ok
    return times


def compare_with(rev: str, runs: int) -> None:
    """Whole-process check of resnet152, this tree against `rev`, alternating."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    spec = str(ROOT / "specs" / "resnet152.arch")
    with tempfile.TemporaryDirectory() as scratch:
        reference = Path(scratch) / "reference"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(reference), rev],
                       cwd=ROOT, check=True)
        try:
            trees = {"this tree": ROOT, rev: reference}
            for tree in trees.values():
                compileall.compile_dir(tree / "archdsl", quiet=1)
            times = {name: [] for name in trees}
            for i in range(runs):
                for name in (list(trees) if i % 2 else list(trees)[::-1]):
                    start = time.perf_counter()
                    subprocess.run([sys.executable, "-m", "archdsl", "check", spec],
                                   cwd=trees[name], env=env, check=True, capture_output=True)
                    times[name].append(time.perf_counter() - start)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(reference)], cwd=ROOT)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"archdsl check specs/resnet152.arch, {name}: median {median:.3f} s, "
              f"min {min(times[name]):.3f} s over {runs} runs")
    print(f"this tree / {rev}: {medians['this tree'] / medians[rev]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-specs", action="store_true", help="only resnet152 and the "
                        "generated specs")
    parser.add_argument("--against", metavar="REV", help="only time resnet152's check, "
                        "against this commit, alternating runs")
    args = parser.parse_args()
    if args.against:
        compare_with(args.against, args.runs)
        return
    if not args.skip_specs:
        slowest = []
        for spec in sorted((ROOT / "specs").glob("*.arch")):
            argv = [sys.executable, "-m", "archdsl", "check", str(spec.relative_to(ROOT))]
            wall = statistics.median(time_process(argv, max(1, args.runs // 2 + 1)))
            slowest.append((wall, spec.stem))
            print(f"archdsl check specs/{spec.name}: {wall:.3f} s", flush=True)
        wall, name = max(slowest)
        print(f"slowest whole-process check: {name}, {wall:.3f} s (median of "
              f"{max(1, args.runs // 2 + 1)}); {len(slowest)} specs")
    for command in ("check", "stats"):
        argv = [sys.executable, "-m", "archdsl", command, "specs/resnet152.arch"]
        wall = time_process(argv, args.runs)
        print(f"archdsl {command} specs/resnet152.arch (whole process): median "
              f"{statistics.median(wall):.3f} s, min {min(wall):.3f} s over {args.runs} runs")
    previous = None
    for layers in (1_000, 10_000, 100_000):
        runs = args.runs if layers < 100_000 else max(1, args.runs // 2)
        median = statistics.median(time_compile(generated_spec(layers), runs))
        growth = f", x{median / previous:.1f} for 10x layers" if previous else ""
        print(f"check {layers:>7,} layers: {median:.3f} s ({median / layers * 1e6:.1f} us/layer)"
              f"{growth}")
        previous = median


if __name__ == "__main__":
    main()
