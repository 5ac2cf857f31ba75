"""Hostile-input run of the command line: mutated copies of the shipped specs through
`check`, `ast`, `stats`, `render --format dot`, `fmt` and `build`, in this process, each under a
time limit. Prints the exit-status histogram per command and the slowest runs.

    python bench/fuzz_cli.py [--count 1000] [--seed 0] [--limit 2.0]

Passes when no run exits 70 (an internal error), raises, or takes longer than its limit:
--limit seconds for the front-end commands, --build-limit for `build`, which initialises
and writes every weight (VGG-16 is 528 MB on disk) and runs one forward pass (batch 1,
the spec's own input size). A spec that `check` accepts must also build: a build that
fails after check passed is a failure too.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import random
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archdsl.cli import main as archdsl  # noqa: E402

TOKENS = ["{", "}", "(", ")", ",", ";", "\n", ":", "=", "==", "?", ".", "x", "-", "*", "/", "//",
          "0", "1", "-3", "2.5", "1e9", "99999", "true", "false", "in", "in.channels", "repeat",
          "residual", "skip", "when", "concat", "add", "aux", "let", "input", "output", "from",
          "if", "else", "block", "network", "import", '"x.arch"', "std.nope", "relu", "conv",
          "linear", "flatten", "maxpool(3)", "same", "groups = 3", "#", '"', "\\\n", "\t", "é",
          "class", "forward", "_x", "\ufeff", "\xff", "repeat 100000 {", "upsample(1000)"]


def mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(0, len(text))
        j = rng.randint(i, min(len(text), i + 40))
        token = rng.choice(TOKENS)
        text = rng.choice([text[:i] + text[j:], text[:i] + token + text[i:],
                           text[:i] + token + text[j:], text[:j] + text[i:j] + text[j:]])
    return text


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout


def run(argv: list[str], hard_limit: float) -> tuple[int | str, float]:
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, hard_limit)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = archdsl(argv)
    except Timeout:
        code = "timeout"
    except SystemExit as exit_:
        code = exit_.code
    except BaseException as error:  # what main() should never let out
        code = f"raised {type(error).__name__}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return code, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="mutated specs (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=float, default=2.0,
                        help="seconds per check/ast/stats/render/fmt run (default 2)")
    parser.add_argument("--build-limit", type=float, default=10.0,
                        help="seconds per build run, weights written included (default 10)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    specs = [p.read_text() for p in sorted((ROOT / "specs").glob("*.arch"))]
    histogram: dict[str, Counter] = defaultdict(Counter)
    slowest, failures = [], []
    work = Path(tempfile.mkdtemp())
    for index in range(args.count):
        spec = work / f"fuzz{index}.arch"
        spec.write_text(mutate(rng.choice(specs), rng), encoding="utf-8", errors="surrogatepass")
        commands = {"check": ["check", str(spec)], "ast": ["ast", str(spec)],
                    "stats": ["stats", str(spec)],
                    "render": ["render", str(spec), "-o", str(work / "d.dot"), "--format", "dot"],
                    "fmt": ["fmt", str(spec), "-o", str(work / "formatted.arch")],
                    "build": ["build", str(spec), "-o", str(work / "build"), "--batch", "1",
                              "--device", "cpu"]}
        codes = {}
        for name, argv in commands.items():
            limit = args.build_limit if name == "build" else args.limit
            code, seconds = run(argv, hard_limit=max(10.0, 5 * limit))
            histogram[name][code] += 1
            slowest.append((seconds, name, index))
            codes[name] = code
            refused = name == "build" and codes["check"] == 0 and code != 0
            if code == 70 or not isinstance(code, int) or seconds > limit or refused:
                failures.append((name, index, code, round(seconds, 2)))
                (work / f"failed{index}.arch").write_text(spec.read_text())
    print(f"{args.count} mutated specs x {len(histogram)} commands (seed {args.seed}):")
    for name, counts in histogram.items():
        shown = ", ".join(f"exit {code}: {n}" for code, n in sorted(counts.items(), key=str))
        print(f"  {name:7} {shown}")
    slowest.sort(reverse=True)
    print("slowest: " + ", ".join(f"{name} #{i} {s:.2f} s" for s, name, i in slowest[:5]))
    if failures:
        print(f"FAILED ({len(failures)}), specs kept in {work}: {failures[:20]}")
        return 1
    print("no exit 70, no exception, nothing over the limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
