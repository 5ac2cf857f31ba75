"""Every command and Python example in README.md and docs/*.md runs as written.

* `$ archdsl ...` lines in ```text blocks run in a fresh directory that has the shipped
  `specs/`; they must exit 0 (`diff` 0 or 1), and the output lines the document shows
  after them must appear in the real output, in order (`...` stands for lines left
  out, or for text left out inside a line).
* Lines of ```sh blocks run the same way. `make` lines are what CI itself runs, so they
  are not run again here; `archdsl train` gets `--data shapes:96 --epochs 1` appended
  (later options win; `--epochs 1 --set n_layer=1` for a language model on `--data
  text`), so a 15-epoch example costs seconds; a `sweep` that trains gets the same.
* ```python blocks run statement by statement, in document order, in one namespace per
  document and in the same directory as its commands (a model the training example
  wrote is there to load). An expression statement with a trailing comment states its
  value: the comment (with comment-only lines after it) must equal the value's repr.
* `arch` blocks are compiled by tests/test_docs.py.
"""
from __future__ import annotations

import ast
import glob
import io
import os
import re
import shlex
import subprocess
import sys
import tokenize

import pytest

from archdsl.backends.layout import can_layout

from conftest import ROOT

DOCUMENTS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
SHORT_TRAINING = ["--data", "shapes:96", "--epochs", "1"]


def examples(document: str):
    """(line, kind, body) for each runnable block, in document order."""
    text = (ROOT / document).read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        lang, body = match.group(1), match.group(2)
        line = text.count("\n", 0, match.start()) + 2
        if lang == "python":
            yield line, "python", body
        elif lang == "sh" or (lang == "text" and body.lstrip().startswith("$ ")):
            yield line, "commands", body


def commands(body: str):
    """(command line, expected output lines) for each command of a block."""
    if not body.lstrip().startswith("$ "):  # an sh block: every line is a command
        yield from ((line, []) for line in body.splitlines() if line.strip())
        return
    current, expected = None, []
    for line in body.splitlines():
        if line.startswith("$ "):
            if current is not None:
                yield current, expected
            current, expected = line[2:], []
        else:
            expected.append(line.rstrip())
    if current is not None:
        yield current, expected


def run_command(line: str, where) -> tuple[list[str], str] | None:
    words = shlex.split(line, comments=True)
    if not words or words[0] == "make":
        return None
    assert words[0] == "archdsl", f"documented command is not archdsl or make: {line}"
    argv = []
    for word in words[1:]:
        argv += sorted(glob.glob(word, root_dir=where)) if "*" in word else [word]
    if argv[0] == "train":  # text: one epoch of one layer on the text it names
        argv += ["--epochs", "1", "--set", "n_layer=1"] if "text" in argv else SHORT_TRAINING
    if argv[0] == "sweep" and not {"--no-train", "--show"} & set(argv):
        argv += [*SHORT_TRAINING, "--quiet"]  # each trial as short as a train example
    fmt = "pdf" if any(w == "pdf" or w.endswith(".pdf") for w in argv) else "svg"
    if argv[0] == "render" and not can_layout(fmt):
        return None  # needs Graphviz; tests/test_render.py covers the missing-dot path
    completed = subprocess.run([sys.executable, "-m", "archdsl", *argv], cwd=where,
                               capture_output=True, text=True, timeout=600,
                               env={**os.environ, "COLUMNS": "100"})
    ok = (0, 1) if argv[0] == "diff" else (0,)  # diff's 1: the networks differ
    assert completed.returncode in ok, f"`{line}` exited {completed.returncode}:\n" \
                                      f"{completed.stdout}\n{completed.stderr}"
    return argv, completed.stdout


def assert_shown_output(line: str, expected: list[str], actual: str) -> None:
    lines = [text.rstrip() for text in actual.splitlines()]
    position = 0
    for shown in expected:
        if shown in ("", "..."):
            continue
        pattern = re.compile(".*".join(map(re.escape, shown.split("..."))))
        found = next((i for i in range(position, len(lines)) if pattern.fullmatch(lines[i])),
                     None)
        assert found is not None, f"`{line}` does not print {shown!r}; it prints:\n{actual}"
        position = found + 1


def trailing_comments(source: str) -> dict[int, str]:
    """line -> the comment ending it, joined with the comment-only lines right after it."""
    comments, code_lines = {}, set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                                tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.add(token.start[0])
    joined = {}
    for number in sorted(comments):
        if number in code_lines:
            text, following = comments[number], number + 1
            while following in comments and following not in code_lines:
                text += " " + comments[following]
                following += 1
            joined[number] = text
    return joined


def run_python(body: str, namespace: dict, where: str) -> None:
    module = ast.parse(body, filename=where)
    comments = trailing_comments(body)
    for statement in module.body:
        if isinstance(statement, ast.Expr):
            value = eval(compile(ast.Expression(statement.value), where, "eval"), namespace)
            stated = comments.get(statement.end_lineno)
            if value is not None and stated is not None:
                assert " ".join(repr(value).split()) == " ".join(stated.split()), \
                    f"{where}: line {statement.lineno} is {value!r}, the document says {stated}"
        else:
            exec(compile(ast.Module([statement], []), where, "exec"), namespace)


# training.md's examples train networks for half a minute: they run with the slow tests.
SLOW_DOCUMENTS = {"docs/training.md"}


@pytest.mark.parametrize("document", [
    pytest.param(d, marks=[pytest.mark.slow] if d in SLOW_DOCUMENTS else [])
    for d in DOCUMENTS if list(examples(d))])
def test_document_examples_run_as_written(document, tmp_path, monkeypatch):
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    make_photo(tmp_path / "photo.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc_example__"}
    ran = 0
    for line, kind, body in examples(document):
        where = f"{document}:{line}"
        if kind == "python":
            run_python(body, namespace, where)
            ran += 1
            continue
        for command, expected in commands(body):
            result = run_command(command, tmp_path)
            if result is not None:
                assert_shown_output(command, expected, result[1])
                ran += 1
    assert ran, f"{document}: nothing ran"


def make_photo(path) -> None:
    """A drawn image for `archdsl run ... photo.png`."""
    from PIL import Image, ImageDraw
    image = Image.new("RGB", (64, 48), (40, 90, 160))
    ImageDraw.Draw(image).ellipse((16, 8, 48, 40), fill=(230, 200, 40))
    image.save(path)


def test_commands_are_split_as_documented():
    shown = "$ archdsl check a.arch\nline one\n...\n$ archdsl stats b.arch\n"
    assert list(commands(shown)) == [("archdsl check a.arch", ["line one", "..."]),
                                     ("archdsl stats b.arch", [])]
    assert list(commands("make build   # comment\narchdsl check x\n")) == \
        [("make build   # comment", []), ("archdsl check x", [])]


def test_a_stated_value_that_is_wrong_fails():
    with pytest.raises(AssertionError, match="the document says 3"):
        run_python("1 + 1   # 3\n", {}, "example")
    run_python("x = [1,\n     2]\nx   # [1,\n    #  2]\n", {}, "example")


def test_shown_output_must_be_printed_in_order():
    assert_shown_output("cmd", ["a", "...", "c"], "a\nb\nc\n")
    with pytest.raises(AssertionError, match="does not print 'a'"):
        assert_shown_output("cmd", ["c", "a"], "a\nb\nc\n")
