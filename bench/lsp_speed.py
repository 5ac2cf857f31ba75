"""Language server speed: the diagnostics after an edit of specs/resnet152.arch, in
process: compile the edited text and turn its diagnostics into the protocol's (what the
server does on every `didChange`). Edits alternate between a valid text and one with an
error, so both paths are timed. As a reference, the same edit is timed alternately with
the cache of parsed imports emptied first (as every compile was before that cache).

    python bench/lsp_speed.py [--runs 50]

Target: median under 50 ms after warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl.lang import load  # noqa: E402
from archdsl.tools import editor  # noqa: E402

try:
    from archdsl.tools.lsp import _diagnostic  # the protocol's form, when pygls is there
except ImportError:
    def _diagnostic(problem):
        return problem


def diagnostics_after_edit(text: str, path: str) -> list:
    return [_diagnostic(p) for p in editor.problems(editor.analyse(text, path))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    spec = ROOT / "specs" / "resnet152.arch"
    good = spec.read_text()
    edits = {"valid edit (classes = 10)": good.replace("classes = 1000", "classes = 10"),
             "edit with an error (fc: conv)": good.replace("linear(classes)", "conv(classes)")}
    assert not diagnostics_after_edit(edits["valid edit (classes = 10)"], str(spec))
    assert diagnostics_after_edit(edits["edit with an error (fc: conv)"], str(spec))
    reference = "valid edit, imports parsed again (reference)"
    edits[reference] = edits["valid edit (classes = 10)"]
    times = {name: [] for name in edits}
    for i in range(args.runs + 5):
        for name, text in edits.items():
            if name == reference:
                load._parse_import.cache_clear()
            start = time.perf_counter()
            diagnostics_after_edit(text, str(spec))
            if i >= 5:  # warm-up: the parser's tables, caches of the op table
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"diagnostics after an edit of resnet152, {name}: median "
              f"{medians[name] * 1000:.1f} ms, min {min(values) * 1000:.1f} ms "
              f"over {args.runs} runs")
    print(f"valid edit / reference: {medians['valid edit (classes = 10)'] / medians[reference]:.2f}")


if __name__ == "__main__":
    main()
