"""`archdsl sweep specs/nas_bench_201.arch --no-train`: every one of the 15,625 cells of
NAS-Bench-201 checked and costed from the spec, in parallel processes, as a whole
command; then the same members one by one in this process, with the block expansions
the members share (lang/replay.py) and without, for the ratio.

    python bench/sweep_survey.py [--members N]

Target: all 15,625 cells in under 60 s on 2 cores.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl.explore import Family  # noqa: E402
from archdsl.lang.replay import BlockMemo  # noqa: E402

SPEC = ROOT / "specs" / "nas_bench_201.arch"


def whole_command() -> None:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "survey"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "archdsl", "sweep", str(SPEC), "--no-train",
                        "--out", str(out), "--plot", ""], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        seconds = time.perf_counter() - start
        rows = list(csv.DictReader((out / "trials.csv").open()))
    complete = sum(r["state"] == "complete" for r in rows)
    params = sorted(int(r["params"]) for r in rows)
    print(f"sweep --no-train: {len(rows):,} cells ({complete:,} check) in {seconds:.1f} s "
          f"on {os.cpu_count()} cores; parameters {params[0]:,} to {params[-1]:,}")


def per_member(count: int) -> None:
    family = Family(SPEC)
    members = list(family.space.members())[::max(1, 15625 // count)][:count]
    times = {}
    for shared in (True, False, True, False):  # alternating: the machine is noisy
        start = time.perf_counter()
        for values in members:
            if not shared:
                family.memo = BlockMemo()  # nothing carried from one member to the next
            family.member(values)
        times.setdefault(shared, []).append((time.perf_counter() - start) / len(members))
    with_memo, without = min(times[True]), min(times[False])
    print(f"one process, {len(members)} members: {with_memo * 1e3:.2f} ms a member with the "
          f"expansions shared, {without * 1e3:.2f} ms with each member's own "
          f"({without / with_memo:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=300)
    args = parser.parse_args()
    whole_command()
    per_member(args.members)


if __name__ == "__main__":
    main()
