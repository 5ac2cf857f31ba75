"""Hostile-input run of the command line: mutated specs through `check`, `ast`, `stats`,
`table`, `render --format dot`, `fmt`, `build` and `export --to pytorch`, in this process,
each under a time limit. Prints the exit-status histogram per command, how many accepted
networks built and exported, the slowest runs and every failure, its mutant saved to reproduce.

    python bench/fuzz_cli.py [--count 2000] [--seed 0] [--limit 2.0] [--save DIR]

The seeds are the shipped specs, the examples of docs/language.md and docs/errors.md, and
the small specs below, which between them use every op of `archdsl.ops.OPS` and every
input layout (features, tokens, a signal, an image, a volume, a channels-last map). A
mutation deletes, inserts, replaces or repeats a span of text; deletes, repeats or moves a
line, or puts a call of an op before it; or swaps one word or number for another. The
inserted tokens include every op of the table (its name, a call, its argument names and
choices), every layout, and axis arguments, negative ones among them.

Passes when no run exits 70 (an internal error), raises, or takes longer than its limit
(--limit CPU seconds for the front-end commands, --build-limit for a build or an export,
twice that for the comparison of the two, which makes both modules; torch runs on one
thread, so that the CPU time is the work's, whatever else the machine runs; a run is
stopped after 5 times its limit of wall-clock time), and when these hold:

- `fmt` accepts every spec that `check` accepts; formatting its output again changes
  nothing; and the formatted spec checks exactly as the mutant (exit status, networks,
  diagnostic codes and messages, and the `ir` dump without source positions).
- For each network of a spec that `check` accepts, `build` (batch 1, cpu) and `export --to
  pytorch` (into a fresh directory) both succeed, and the exported file, given the built
  weights, computes what the built (lower_fx) module computes on a random batch: exactly,
  or within 1e-5. A network over --max-params is skipped; one over --max-macs is first
  checked on its inputs' spatial sizes divided by 2, 3, 4, ..., and skipped if none fits.
- Nothing accepts a spec that `check` rejects.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from archdsl import compile_file, compile_source, stats  # noqa: E402
from archdsl.backends.lower_fx import lower_fx  # noqa: E402
from archdsl.cli import main as archdsl  # noqa: E402
from archdsl.ops import OPS, REQUIRED  # noqa: E402
from archdsl.ops.shapes import LAYOUTS  # noqa: E402
from archdsl.runtime.export import example_inputs  # noqa: E402

# ---- the seed corpus ----------------------------------------------------------------------

# Small specs in the layouts the shipped ones barely reach; each takes a second to build.
SEEDS = {
    "signal.arch": """\
# a small audio classifier: a C x L signal, then tokens, then a signal again
block conv_bn(width, kernel, stride = 1) {
    conv(width, kernel, stride = stride, pad = (kernel - 1) // 2, bias = false)
    batchnorm
    relu
}

network tiny_m5(classes = 5, samples = 256) {
    input wave: 1 x samples as signal
    stem: conv_bn(8, 9, stride = 2)              # 8 x 128
          maxpool((3,), stride = 2, pad = 1)     # 8 x 64
    body: conv_bn(16, 3)
          avgpool(2, ceil_mode = true)           # 16 x 32
    seq:  transpose(-1, 0)                       # 32 tokens of 16 features
    attn: residual { layernorm; attention(2) }
          slice(1, 31, axis = -2, step = 2)      # 15 tokens
    back: transpose(0, 1)                        # 16 x 15 signal
          conv(16, (3,), pad = same)
          global_avgpool
          flatten(-2, -1)
    fc:   linear(classes)
}
""",
    "tokens.arch": """\
# a small ViT over a token sequence, with a class token and a position embedding
block encoder(heads, mlp) {
    let width = in.channels
    residual { ln_1: layernorm(eps = 1e-6); attn: attention(heads, 0.0, bias = true) }
    residual {
        ln_2: layernorm
        mlp:  { 0: linear(mlp); 1: gelu; 2: dropout(0.1); 3: linear(width) }
              stochastic_depth(0.1, "row")
    }
}

network tiny_vit(classes = 7, width = 16, heads = 2) {
    input patches: 9 x width as tokens
    param class_token: 1 x width = trunc_normal(std = 0.02)
    sequence: concat(class_token, patches, axis = 0)    # 10 tokens
    encoder: {
        param pos_embedding: 10 x width = normal(std = 0.02)
        add(sequence, pos_embedding)
        layers: { repeat 2 as i { "layer_{i}": encoder(heads, 2 * width) } }
        ln:     layernorm
    }
    cls:  take(0, axis = -2)                            # the class token
    from encoder
          slice(1, 10)
    rest: mean(-2)                                      # the mean of the others
    both: concat(cls, rest, axis = -1)                  # 2 * width features
    head: linear(classes)
          softmax
}
""",
    "volume.arch": """\
# a small video network: a C x T x H x W volume, then one frame of it
network tiny_r3d(classes = 4) {
    input clip: 3 x 4 x 16 x 16
    stem: conv(8, (3, 5, 5), stride = (1, 2, 2), pad = (1, 2, 2), bias = false)  # 8 x 4 x 8 x 8
          batchnorm
          relu
    pool: maxpool((1, 2, 2))                             # 8 x 4 x 4 x 4
    block: residual {
        conv(8, 3, pad = 1)
        batchnorm(eps = 1e-3, momentum = 0.01)
        silu
    }
    mid:   slice(1, 3, axis = -3)                        # 8 x 2 x 4 x 4
           avgpool((2, 1, 1))                            # 8 x 1 x 4 x 4
    frame: take(0, axis = 1)                             # 8 x 4 x 4: an image
           conv(12, 3, pad = 1, groups = 4)
           global_avgpool
           flatten
    fc:    linear(classes)
}
""",
    "channels_last.arch": """\
# a small Swin: channels-last maps, window attention, patch merging
block swin(heads, shift, window = 2) {
    let c = in.channels
    residual { norm1: layernorm; attn: window_attention(heads, window, shift, 0.0, 0.0) }
    residual {
        norm2: layernorm
        mlp:   { 0: linear(2 * c); 1: gelu; 3: linear(c) }
               stochastic_depth(0.2, "batch")
    }
}

network tiny_swin(classes = 3) {
    input image: 3 x 16 x 16
    embed: conv(8, 2, stride = 2)        # 8 x 8 x 8
           permute(1, 2, 0)              # 8 x 8 x 8, channels last
           layernorm
    stage: repeat 2 as i { swin(2, i % 2 == 0 ? 0 : 1) }
    merge: patch_merging                 # 4 x 4 x 16
    more:  swin(4, 0, window = 4)
    norm:  layernorm
           permute(-1, 0, 1)             # 16 x 4 x 4, channels first
           global_avgpool
           flatten(0, -1)
    head:  linear(classes)
}

network from_map(classes = 2) {
    input map: 6 x 6 x 12 as channels_last
    window_attention(3, 3, 1)
    patch_merging(eps = 1e-6)            # 3 x 3 x 24
    linear(8)
    permute(2, 0, 1)                     # 8 x 3 x 3
    flatten
    linear(classes)
}
""",
    "features.arch": """\
# flat features, then a small map through the remaining layers
network tiny_mlp(classes = 6) {
    input x: 64
    linear(48)
    batchnorm
    relu6
    scale(0.5)
    a:    dropout(0.2)
          linear(48, bias = false)
          leaky_relu(0.1)
    b:    identity
          add(a, b)
          tanh
    c:    hardswish
    from a
    gate: sigmoid
          mul(c, gate)
          hardsigmoid
          reshape(3, 4, 4)                 # a 3 x 4 x 4 map
          conv(8, 3, pad = 1)
          lrn(3, alpha = 1e-4, beta = 0.75, k = 2)
          groupnorm(2)
          channel_shuffle(2)
    m:    upsample(2)                      # 8 x 8 x 8
    up:   conv_transpose(8, 2, stride = 2) # 8 x 16 x 16
          crop(up, m)                      # 8 x 8 x 8
          chunk(2, index = 1)              # 4 x 8 x 8
    r:    resize(5, 7)                     # 4 x 5 x 7
          resize_like(r, m, mode = "nearest") # 4 x 8 x 8
          channel_linear(6)
          pad_channels(8)
          adaptive_avgpool(2, 3)
          gelu
          flatten(-3, -1)
          reshape(-1)
    out:  linear(classes)
}
""",
    "algebra.arch": """\
# the tensor algebra: token ids, masks, element-wise ops with numbers, reductions,
# products, attention from its parts, and the std.layers blocks
import std.layers

network algebra(vocab = 50, width = 16, heads = 2) {
    input ids: 12 as token_ids
    keep:  ne(ids, 0)
    from ids
    e:     embedding(vocab, width, padding_idx = 0)
    n:     rmsnorm(1e-5)
    q:     linear(width)
           reshape(-1, heads, width // heads)
           transpose(0, 1)
    qr:    rope()
    from n
    v:     linear(width)
           reshape(-1, heads, width // heads)
    vh:    transpose(0, 1)
           sdpa(qr, qr, vh, keep)
           transpose(0, 1)
    a:     reshape(-1, width)
           einsum("lc,mc->lm", a, n)
    p:     softmax(axis = -1)
    m:     matmul(p, n)
           sub(m, n)
           square
           mean("C", keep = true)
           add(1e-6)
    r:     sqrt
           div(m, r)
           maximum(-3)
           minimum(3)
    g:     swiglu(32)
    t:     topk(2, indices = true)
           gather(g, t, axis = -1)
           log_softmax(-1)
           cumsum(0)
           exp
           pow(2)
           amax(-1)
    o:     amin(-1, keep = true)
}
""",
}


# How often each family of seeds is drawn: the small seeds are few but reach the newer
# layouts, and the error examples of docs/errors.md are wrong on purpose.
WEIGHTS = {"specs": 0.4, "seeds": 0.3, "language.md": 0.2, "errors.md": 0.1}


def seed_corpus() -> dict[str, dict[str, str]]:
    """{family: {name: text}}: the shipped specs, the seeds above, the `arch` examples of
    the docs."""
    corpus = {"specs": {p.name: p.read_text() for p in sorted((ROOT / "specs").glob("*.arch"))},
              "seeds": dict(SEEDS)}
    for doc in ("language.md", "errors.md"):
        blocks = re.findall(r"```arch\n(.*?)```", (ROOT / "docs" / doc).read_text(), re.S)
        corpus[doc] = {f"{doc}#{i}": text for i, text in enumerate(blocks)}
    return corpus


def draw(corpus: dict[str, dict[str, str]], rng: random.Random) -> tuple[str, str, str]:
    """(family, name, text) of one seed: a family by its weight, then a seed of it."""
    family = rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
    name = rng.choice(sorted(corpus[family]))
    return family, name, corpus[family][name]


def ops_used(texts) -> set[str]:
    """The ops of the table that the given specs' networks use, as compiled."""
    return {graph.nodes[n]["node"].op for text in texts
            for graph in compile_source(text).graphs.values() for n in graph}


# ---- mutation -----------------------------------------------------------------------------

SYNTAX = ["{", "}", "(", ")", ",", ";", "\n", ":", "=", "==", "?", ".", "x", "-", "*", "/", "//",
          "#", '"', "\\\n", "\t", "é", "\ufeff", "\xff", "_x", "class", "forward", "(3,)", "()",
          "(1, 2, 2)", "[0]"]
NUMBERS = ["0", "1", "2", "3", "-1", "-2", "-3", "-4", "2.5", "1e-6", "1e9", "99999"]
KEYWORDS = ["true", "false", "in", "in.channels", "repeat", "repeat 3 as i {", "residual", "skip",
            "when", "aux", "let", "input", "output", "from", "if", "else", "block", "network",
            "def", "param", "as", "not", "and", "or", "import", '"x.arch"', "std.nope",
            "std.resnet", "same", "valid", "zeros", "normal(std = 0.02)", "repeat 100000 {",
            "upsample(1000)", "maxpool(3)", "groups = 3"]
# Axis arguments as the docs write them, negative ones among them.
AXES = ["axis = -1", "axis = -2", "axis = 0", "flatten(-2, -1)", "flatten(1, 2)",
        "take(0, axis = -2)", "take(-1)", "slice(1, 3, axis = -3)", "slice(-3, -1)",
        "permute(2, 0, 1)", "permute(1, 2, 0)", "transpose(-1, 0)", "transpose(0, 1)", "mean(-1)",
        "mean(0)", "concat(a, b, axis = -1)", "reshape(-1)", "reshape(4, -1)"]
# Inputs of every layout, and the lines that turn one layout into another.
LAYOUT_LINES = ["input x: 64\n", "input x: 64 as features\n", "input x: 8 x 16 as tokens\n",
                "input x: 2 x 64 as signal\n", "input x: 3 x 16 x 16\n",
                "input x: 3 x 8 x 8 as image\n", "input x: 3 x 4 x 8 x 8\n",
                "input x: 3 x 4 x 8 x 8 as volume\n", "input x: 8 x 8 x 6 as channels_last\n",
                "param p: 1 x 16 = ones\n", "param q: 4 x 4 as signal\n"]


def op_tokens() -> list[str]:
    """Every op of the table (bare, opened and called), its argument names and choices."""
    tokens = []
    for name, op in OPS.items():
        tokens += [name, f"{name}(", f"{name}()", f"\n{name}\n"]
        for arg in op.args:
            tokens.append(f"{arg.name} = ")
            tokens += [f'"{choice}"' for choice in arg.choices]
    return tokens


TOKENS = (SYNTAX + NUMBERS + KEYWORDS + AXES + LAYOUT_LINES + op_tokens()
          + [f"as {layout}" for layout in LAYOUTS])
# what one word may be swapped for: names that parse where a name did
WORDS = list(OPS) + list(LAYOUTS) + ["in", "x", "a", "b", "true", "same", "valid"]


# plausible values of each kind of required argument, for whole calls of every op
VALUES = {"int": ["1", "2", "4"], "float": ["0.1"], "pair": ["1", "2", "(2, 1)"],
          "sizes": ["1", "3", "(3,)", "(1, 3)", "(1, 2, 2)"], "axes": ["2, 0, 1", "1, 0", "0"],
          "dims": ["-1", "4, -1", "2, -1, 4"]}


def op_call(name: str, rng: random.Random) -> str:
    """A call of an op of the table with its required arguments filled in."""
    required = [rng.choice(VALUES[arg.kind]) for arg in OPS[name].args
                if arg.default is REQUIRED and arg.kind in VALUES]
    return f"{name}({', '.join(required)})" if required else name


def mutate(text: str, rng: random.Random) -> str:
    """A few edits, most often one: a mutant close to its seed still checks, and then goes
    through build and export."""
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        text = rng.choice([_edit_span, _edit_line, _swap_word, _swap_number])(text, rng)
    return text


def _edit_span(text: str, rng: random.Random) -> str:
    i = rng.randint(0, len(text))
    j = rng.randint(i, min(len(text), i + 40))
    token = rng.choice(TOKENS)
    return rng.choice([text[:i] + text[j:], text[:i] + token + text[i:],
                       text[:i] + token + text[j:], text[:j] + text[i:j] + text[j:]])


def _edit_line(text: str, rng: random.Random) -> str:
    """A whole line deleted, repeated, moved down, or a layer line put before it: the
    mutant mostly parses, and the layer after the edit meets a new shape or layout."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    i = rng.randrange(len(lines))
    indent = re.match(r"[ \t]*", lines[i]).group()
    layer = rng.choice([op_call(rng.choice(sorted(OPS)), rng), rng.choice(AXES)])
    lines[i:i + 2] = rng.choice([lines[i + 1:i + 2], lines[i:i + 1] * 2 + lines[i + 1:i + 2],
                                 lines[i + 1:i + 2] + lines[i:i + 1],
                                 [f"{indent}{layer}\n"] + lines[i:i + 2]])
    return "".join(lines)


def _swap_word(text: str, rng: random.Random) -> str:
    """One word swapped for an op name, a layout or a keyword: mostly still parses."""
    words = list(re.finditer(r"\b[a-z_][a-z_0-9]*\b", text))
    if not words:
        return text
    word = rng.choice(words)
    return text[:word.start()] + rng.choice(WORDS) + text[word.end():]


def _swap_number(text: str, rng: random.Random) -> str:
    """One integer swapped for a small one (an axis, a size), negative ones among them."""
    numbers = list(re.finditer(r"(?<![\w.])\d+(?![\w.])", text))
    if not numbers:
        return text
    number = rng.choice(numbers)
    return text[:number.start()] + rng.choice(NUMBERS[:8]) + text[number.end():]


# ---- running a command ----------------------------------------------------------------------


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout


@dataclass
class Run:
    """One command line, run in this process: its exit status (or what stopped it)."""
    argv: list[str]
    code: int | str
    seconds: float  # CPU time: what the run costs, whatever else the machine is doing
    out: str = ""
    err: str = ""


def run(argv: list[str], hard_limit: float) -> Run:
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, hard_limit)
    out, err = io.StringIO(), io.StringIO()
    start = time.process_time()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = archdsl(argv)
    except Timeout:
        code = "timeout"
    except SystemExit as exit_:
        code = exit_.code
    except BaseException as error:  # what main() should never let out
        code = f"raised {type(error).__name__}"
        err.write(traceback.format_exc())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return Run(argv, code, time.process_time() - start, out.getvalue(), err.getvalue())


def timed(function, hard_limit: float):
    """function() under the alarm: (its result or the exception it raised, CPU seconds)."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, hard_limit)
    start = time.process_time()
    try:
        result = function()
    except BaseException as error:
        result = error
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return result, time.process_time() - start


def debug_trace(argv: list[str]) -> str:
    """The traceback behind an exit 70: the same command with ARCHDSL_DEBUG set."""
    os.environ["ARCHDSL_DEBUG"] = "1"
    try:
        result = run(argv, hard_limit=60)
    finally:
        del os.environ["ARCHDSL_DEBUG"]
    return result.err


# ---- the session: runs, counts, failures -----------------------------------------------------


@dataclass
class Failure:
    index: int
    command: str
    what: str  # the class of failure, the same for the same bug
    detail: str
    argv: list[str]
    seconds: float


@dataclass
class Session:
    args: argparse.Namespace
    work: Path
    save: Path
    histogram: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    counts: Counter = field(default_factory=Counter)
    slowest: list = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    origin: dict[int, tuple[str, str]] = field(default_factory=dict)  # mutant: seed family, name
    families: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    ops_compared: set[str] = field(default_factory=set)  # ops of networks export matched

    def count(self, index: int, what: str) -> None:
        """One more of `what`, in all and for the family of the mutant's seed."""
        self.counts[what] += 1
        self.families[self.origin[index][0]][what] += 1

    def command(self, name: str, index: int, argv: list[str], limit: float,
                counted: bool = True) -> Run:
        """Run argv, count its exit status under `name`, and record it if it failed."""
        result = run(argv, hard_limit=max(10.0, 5 * limit))
        if counted:
            self.histogram[name][result.code] += 1
        self.slowest.append((result.seconds, name, index))
        if result.code == 70:
            trace = debug_trace(argv)
            self.fail(index, name, f"exit 70: {_signature(trace, result.err)}",
                      result.err + "\n" + trace, result)
        elif not isinstance(result.code, int):
            self.fail(index, name, f"{result.code}: {_signature(result.err, result.err)}",
                      result.err, result)
        elif result.seconds > limit:
            self.fail(index, name, "slow", f"{result.seconds:.3g} CPU s, limit {limit} s", result)
        return result

    def fail(self, index: int, command: str, what: str, detail: str, result: Run | None = None,
             seconds: float = 0.0) -> None:
        spec, kept = self.work / f"fuzz{index}.arch", self.save / f"fuzz{index}.arch"
        if not kept.exists():
            shutil.copy(spec, kept)
        # the command as it reproduces: on the kept copy of the mutant
        argv = [str(kept) if a == str(spec) else a for a in (result.argv if result else [])]
        self.failures.append(Failure(index, command, what, detail, argv,
                                     result.seconds if result else seconds))
        with open(self.save / "failures.txt", "a", encoding="utf-8", errors="replace") as log:
            log.write(f"#{index} {command}: {what}\n  command: archdsl {' '.join(argv)}\n"
                      f"  seed: {self.origin[index][1]}\n"
                      f"  spec: {kept}\n" + _indented(detail) + "\n")


def _indented(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.strip().splitlines()[-40:])


def _signature(trace: str, message: str) -> str:
    """Exception type and the archdsl line that raised it: one bug, one signature."""
    frames = re.findall(r'File "([^"]*archdsl/[^"]*)", line (\d+)', trace)
    error = re.findall(r"^(\w+(?:Error|Exception|Failure)\w*)\b", trace, re.M)
    where = f" at {Path(frames[-1][0]).relative_to(ROOT)}:{frames[-1][1]}" if frames else ""
    if error:
        return error[-1] + where
    return _first_error_line(message) + where


def _first_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if "error" in line.lower()]
    return re.sub(r"\d+", "N", lines[-1].strip())[:160] if lines else "(no message)"


# ---- the checks of one mutant ------------------------------------------------------------------


def front_end(session: Session, index: int, spec: Path) -> Run:
    """check, ast, stats, table and render; the result of check."""
    work, limit = session.work, session.args.limit
    commands = {"check": ["check", str(spec)], "ast": ["ast", str(spec)],
                "stats": ["stats", str(spec)], "table": ["table", str(spec)],
                "render": ["render", str(spec), "-o", str(work / "d.dot"), "--format", "dot"]}
    results = {name: session.command(name, index, argv, limit) for name, argv in commands.items()}
    return results["check"]


def meaning(session: Session, index: int, spec: Path) -> tuple:
    """What check and ir say of a spec, without its path or source positions."""
    limit = session.args.limit
    checked = session.command("check json", index, ["check", "--format", "json", str(spec)],
                              limit, counted=False)
    dumped = session.command("ir", index, ["ir", str(spec)], limit, counted=False)
    try:
        reports = json.loads(checked.out)
    except ValueError:
        reports = []
    networks = [r["networks"] for r in reports]
    diagnostics = sorted((d["code"], _positionless(d["message"], spec))
                         for r in reports for d in r["diagnostics"])
    ir = re.sub(r"  # \S+:\d+:\d+.*$", "", dumped.out, flags=re.M)
    return checked.code, networks, diagnostics, dumped.code, _positionless(ir, spec)


def _positionless(text: str, spec: Path) -> str:
    return re.sub(r"<spec>:\d+(:\d+)?", "<spec>", text.replace(str(spec), "<spec>"))


def formatting(session: Session, index: int, spec: Path, check: Run) -> None:
    """fmt takes what check takes; fmt is idempotent and keeps the meaning of the spec."""
    work, limit = session.work, session.args.limit
    once, twice = work / f"fmt{index}.arch", work / f"fmt{index}b.arch"
    result = session.command("fmt", index, ["fmt", str(spec), "-o", str(once)], limit)
    if result.code != 0:
        if check.code == 0:
            session.fail(index, "fmt", f"fmt exit {result.code} on a spec check accepts",
                         result.err, result)
        return
    again = session.command("fmt", index, ["fmt", str(once), "-o", str(twice)], limit,
                            counted=False)
    if again.code != 0 or not twice.exists() or twice.read_bytes() != once.read_bytes():
        shown = twice.read_text(errors="replace") if twice.exists() else "(not written)"
        session.fail(index, "fmt", "fmt is not idempotent",
                     f"exit {again.code}\n{again.err}\n--- once:\n"
                     f"{once.read_text(errors='replace')}\n--- twice:\n{shown}", again)
    before, after = meaning(session, index, spec), meaning(session, index, once)
    if before != after:
        shutil.copy(once, session.save / f"fuzz{index}.formatted.arch")
        session.fail(index, "fmt", "the formatted spec checks differently",
                     _difference(before, after), result)
    once.unlink(missing_ok=True)
    twice.unlink(missing_ok=True)


def _difference(before: tuple, after: tuple) -> str:
    parts = ("check exit", "networks", "diagnostics", "ir exit", "ir")
    lines = []
    for part, a, b in zip(parts, before, after):
        if a != b:
            if part == "ir":
                a_lines, b_lines = a.splitlines(), b.splitlines()
                changed = [(x, y) for x, y in zip(a_lines, b_lines) if x != y][:3]
                lines.append(f"ir differs: {changed or (len(a_lines), len(b_lines))}")
            else:
                lines.append(f"{part}: {a!r:.400} -> {b!r:.400}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Plan:
    """How one accepted network is built: its smaller inputs if any, or why it is skipped."""
    network: str
    ops: frozenset[str]
    inputs: tuple[tuple[str, tuple[int, ...]], ...] = ()  # (input name, sizes)
    skipped: str = ""

    @property
    def flags(self) -> list[str]:
        return [f for name, dims in self.inputs
                for f in ("--input", f"{name}={'x'.join(map(str, dims))}")]


def plan_builds(session: Session, spec: Path) -> list[Plan]:
    """One plan per network of an accepted spec, its inputs shrunk to fit the budget."""
    plans = []
    for name, graph in compile_file(spec).graphs.items():
        totals = stats(graph).totals
        ops = frozenset(graph.nodes[n]["node"].op for n in graph)
        if totals.params > session.args.max_params:
            plans.append(Plan(name, ops, skipped="too many parameters"))
        elif totals.macs > session.args.max_macs:
            plans.append(_shrunk(session, spec, name, graph, ops))
        else:
            plans.append(Plan(name, ops))
    return plans


def _shrunk(session: Session, spec: Path, name: str, graph, ops: frozenset[str]) -> Plan:
    """The largest of 1/2, 1/3, 1/4, 1/6, ... of the spatial sizes that checks and fits
    the budget: VGG-16 is over it at 56 x 56 (its classifier alone is 0.12 GMACs) and too
    small for its five pools at 28 x 28, but fits at 37 x 37."""
    shapes = {n: graph.nodes[n]["shape"] for n in graph if graph.nodes[n]["node"].op == "input"}
    for divisor in (2, 3, 4, 6, 8, 16, 32):
        inputs = {node: tuple(d if axis == "C" else max(1, d // divisor)
                              for d, axis in zip(shape, shape.axes))
                  for node, shape in shapes.items()}
        result = compile_file(spec, network=name, inputs=inputs)
        if result.ok:
            totals = stats(result.graph).totals
            if totals.macs <= session.args.max_macs and totals.params <= session.args.max_params:
                return Plan(name, ops, tuple(inputs.items()))
    return Plan(name, ops, skipped="too many MACs, even on smaller inputs")


def build_and_export(session: Session, index: int, spec: Path, check: Run) -> None:
    """Every accepted network builds, exports, and the export computes what the build does."""
    if check.code != 0:
        _refused_everywhere(session, index, spec)
        return
    plans, seconds = timed(lambda: plan_builds(session, spec), 5 * session.args.build_limit)
    if isinstance(plans, BaseException):
        session.fail(index, "plan", f"compile_file raised {type(plans).__name__}",
                     "".join(traceback.format_exception(plans)), seconds=seconds)
        return
    for plan in plans:
        session.count(index, "accepted networks")
        if plan.skipped:
            session.count(index, f"skipped: {plan.skipped}")
            continue
        _build_one(session, index, spec, plan)


def _refused_everywhere(session: Session, index: int, spec: Path) -> None:
    """A spec check rejects: build and export reject it too."""
    work, limit = session.work, session.args.build_limit
    for name, argv in (("build", ["build", str(spec), "-o", str(work / "build"), "--batch", "1",
                                  "--device", "cpu"]),
                       ("export", ["export", str(spec), "--to", "pytorch", "-o",
                                   str(work / "export")])):
        result = session.command(name, index, argv, limit)
        if result.code == 0:
            session.fail(index, name, f"{name} accepts a spec check rejects", result.out, result)
    shutil.rmtree(work / "build", ignore_errors=True)
    shutil.rmtree(work / "export", ignore_errors=True)


def _build_one(session: Session, index: int, spec: Path, plan: Plan) -> None:
    work, limit = session.work, session.args.build_limit
    built, exported = work / f"build{index}", work / f"export{index}"
    options = ["--network", plan.network, *plan.flags]
    build = session.command("build", index, ["build", str(spec), *options, "-o", str(built),
                                             "--batch", "1", "--device", "cpu"], limit)
    export = session.command("export", index, ["export", str(spec), *options, "--to", "pytorch",
                                               "-o", str(exported)], limit)
    for name, result in (("build", build), ("export", export)):
        if result.code != 0 and isinstance(result.code, int) and result.code != 70:
            session.fail(index, name, f"{name} exit {result.code} after check passed: "
                         f"{_first_error_line(result.err)}", result.err, result)
    if build.code == 0:
        session.count(index, "built")
    if build.code == 0 and export.code == 0:
        session.count(index, "exported")
        verdict, seconds = timed(lambda: compare(spec, plan, built, exported, index), 10 * limit)
        _judge(session, index, export, verdict, seconds, 2 * limit)
        if verdict in ("equal", "close"):
            session.ops_compared |= plan.ops
    shutil.rmtree(built, ignore_errors=True)
    shutil.rmtree(exported, ignore_errors=True)


def _judge(session: Session, index: int, export: Run, verdict, seconds: float,
           limit: float) -> None:
    session.slowest.append((seconds, "compare", index))
    if isinstance(verdict, BaseException):
        what = "timeout" if isinstance(verdict, Timeout) else f"raised {type(verdict).__name__}"
        trace = "".join(traceback.format_exception(verdict))
        session.fail(index, "compare", f"{what}: {_signature(trace, str(verdict))}",
                     trace, export, seconds)
    elif verdict in ("equal", "close"):
        session.count(index, f"export {verdict} to build")
        if seconds > limit:
            session.fail(index, "compare", "slow", f"{seconds:.3g} CPU s, limit {limit} s",
                         export, seconds)
    else:
        session.fail(index, "compare", "export differs from build", verdict, export, seconds)


def compare(spec: Path, plan: Plan, built: Path, exported: Path, index: int) -> str:
    """'equal', 'close' (within 1e-5) or what differs: the exported module, given the built
    weights, against the built module, both in eval mode, on one random batch."""
    graph = compile_file(spec, network=plan.network, inputs=dict(plan.inputs)).graph
    weights = torch.load(built / "weights.pt", weights_only=True)
    reference = lower_fx(graph)
    reference.load_state_dict(weights)
    standalone = exported_module(exported, plan.network)
    standalone.load_state_dict(weights)
    batch = example_inputs(graph, batch=2, seed=index)
    with torch.no_grad():
        want = _leaves(reference.eval()(*batch))
        got = _leaves(standalone.eval()(*batch))
    if [k for k, _ in want] != [k for k, _ in got]:
        return f"outputs differ: built {[k for k, _ in want]}, exported {[k for k, _ in got]}"
    verdict = "equal"
    for (key, a), (_, b) in zip(want, got):
        if a.shape != b.shape:
            return f"output {key}: built {tuple(a.shape)}, exported {tuple(b.shape)}"
        if not torch.equal(a, b):
            if not torch.allclose(a, b, rtol=1e-5, atol=1e-5, equal_nan=True):
                return f"output {key}: max difference {(a - b).abs().max().item():.3g}"
            verdict = "close"
    return verdict


def exported_module(directory: Path, network: str) -> torch.nn.Module:
    """The class of NETWORK.py, imported as a plain module and instantiated."""
    name = f"fuzz_export_{directory.name}"
    spec = importlib.util.spec_from_file_location(name, directory / f"{network}.py")
    code = importlib.util.module_from_spec(spec)
    sys.modules[name] = code  # dataclasses in the file look their module up
    try:
        spec.loader.exec_module(code)
    finally:
        del sys.modules[name]
    wanted = network.replace("_", "").lower()
    classes = [v for v in vars(code).values() if isinstance(v, type)
               and issubclass(v, torch.nn.Module) and v.__module__ == name
               and v.__name__.lower() in (wanted, "network")]
    if len(classes) != 1:
        raise LookupError(f"{directory / network}.py: no one class for network {network}")
    return classes[0]()


def _leaves(value, key: str = "") -> list[tuple[str, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        return [(key, value)]
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{key}.{k}")]
    if isinstance(value, (tuple, list)):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{key}[{i}]")]
    raise TypeError(f"output {key}: {type(value).__name__}, not a tensor")


# ---- the report --------------------------------------------------------------------------------


def report(session: Session, seconds: float) -> int:
    args, counts = session.args, session.counts
    print(f"{args.count} mutants (random seed {args.seed}), {seconds:.0f} s wall-clock:")
    for name, histogram in session.histogram.items():
        shown = ", ".join(f"exit {code}: {n}" for code, n in sorted(histogram.items(), key=str))
        print(f"  {name:7} {shown}")
    print(f"networks of accepted specs: {counts['accepted networks']}; built {counts['built']}, "
          f"exported {counts['exported']}; export equal to build {counts['export equal to build']}"
          f", within 1e-5 {counts['export close to build']}")
    for key in sorted(k for k in counts if k.startswith("skipped")):
        print(f"  {key}: {counts[key]}")
    for family, counted in session.families.items():
        print(f"  from {family:11}: {counted['mutants']:4} mutants, {counted['accepted']:3} "
              f"accepted, {counted['built']:3} networks built, "
              f"{counted['export equal to build'] + counted['export close to build']:3} "
              "exported equal")
    unmatched = sorted(set(OPS) - session.ops_compared)
    print(f"ops in networks whose export matched the build: {len(OPS) - len(unmatched)} of "
          f"{len(OPS)}" + (f" (not: {', '.join(unmatched)})" if unmatched else ""))
    session.slowest.sort(reverse=True)
    print("slowest (CPU s): "
          + ", ".join(f"{name} #{i} {s:.2f}" for s, name, i in session.slowest[:6]))
    if not session.failures:
        print("no exit 70, no exception, nothing over the limit, every invariant held")
        return 0
    classes = defaultdict(list)
    for failure in session.failures:
        classes[(failure.command, failure.what)].append(failure)
    print(f"FAILED: {len(session.failures)} failures of {len(classes)} kinds; mutants and "
          f"details in {session.save} (failures.txt):")
    for (command, what), failures in sorted(classes.items(), key=lambda kv: -len(kv[1])):
        first = min(failures, key=lambda f: len((session.save / f"fuzz{f.index}.arch")
                                                .read_bytes()))
        print(f"  {len(failures):4} x {command}: {what}\n"
              f"         e.g. archdsl {' '.join(first.argv) or '(in process)'}"
              f"  (seed {session.origin[first.index][1]})")
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="mutated specs (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=float, default=2.0,
                        help="seconds per check/ast/stats/table/render/fmt/ir run (default 2)")
    parser.add_argument("--build-limit", type=float, default=10.0,
                        help="seconds per build, export or comparison (default 10)")
    parser.add_argument("--max-params", type=float, default=150e6,
                        help="skip building networks with more parameters (default 150M)")
    parser.add_argument("--max-macs", type=float, default=1e9,
                        help="shrink the inputs of networks with more MACs (default 1G)")
    parser.add_argument("--save", type=Path, help="where to keep failing mutants "
                        "(default: a new temporary directory)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = seed_corpus()
    texts = [text for family in corpus.values() for text in family.values()]
    missing = sorted(set(OPS) - ops_used(texts))
    print("seeds: " + ", ".join(f"{len(family)} {name}" for name, family in corpus.items())
          + f"; they use {len(OPS) - len(missing)} of the {len(OPS)} ops"
          + (f" (not: {', '.join(missing)})" if missing else "")
          + f"; {len(TOKENS)} mutation tokens")
    work = Path(tempfile.mkdtemp(prefix="fuzz-cli-"))
    save = args.save or Path(tempfile.mkdtemp(prefix="fuzz-cli-failures-"))
    save.mkdir(parents=True, exist_ok=True)
    session = Session(args, work, save)
    rng = random.Random(args.seed)
    start = time.perf_counter()
    for index in range(args.count):
        spec = work / f"fuzz{index}.arch"
        family, name, text = draw(corpus, rng)
        spec.write_text(mutate(text, rng), encoding="utf-8", errors="surrogatepass")
        session.origin[index] = family, name
        session.count(index, "mutants")
        check = front_end(session, index, spec)
        if check.code == 0:
            session.count(index, "accepted")
        formatting(session, index, spec, check)
        build_and_export(session, index, spec, check)
        if (index + 1) % 100 == 0:
            print(f"  {index + 1} mutants, {time.perf_counter() - start:.0f} s, "
                  f"{len(session.failures)} failures", flush=True)
    shutil.rmtree(work)  # what a failure needs is in `save`
    return report(session, time.perf_counter() - start)


if __name__ == "__main__":
    sys.exit(main())
